#!/usr/bin/env python3
"""Writes hand-encoded OTLP protobuf seeds for the `scan_traces` fuzz target.

No dependencies: the few messages are encoded by hand, field numbers as in opentelemetry-proto.
Run from anywhere; the seeds go to seeds/scan_traces/ next to this script:

    python3 fuzz/seeds.py

The seeds are small valid requests (a traces request with every span field, nested attributes,
events, links, unknown header fields and rejected spans; a metrics and a logs request, which the
target also parses) so libFuzzer starts from the structure instead of finding it byte by byte.
"""

import os
import struct


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(number, wire_type):
    return varint(number << 3 | wire_type)


def v(number, value):  # varint field
    return tag(number, 0) + varint(value)


def f64(number, value):  # fixed64 field
    return tag(number, 1) + struct.pack("<Q", value)


def dbl(number, value):  # double field
    return tag(number, 1) + struct.pack("<d", value)


def f32(number, value):  # fixed32 field
    return tag(number, 5) + struct.pack("<I", value)


def ld(number, payload):  # length-delimited field
    if isinstance(payload, str):
        payload = payload.encode()
    return tag(number, 2) + varint(len(payload)) + payload


def msg(*fields):
    return b"".join(fields)


# common.v1
def any_string(s):
    return ld(1, s)


def kv(key, any_value):
    return msg(ld(1, key), ld(2, any_value))


def attrs(number, *pairs):
    return msg(*(ld(number, kv(k, val)) for k, val in pairs))


NESTED = [
    ("str", any_string("value")),
    ("bool", v(2, 1)),
    ("int", v(3, 42)),
    ("neg", v(3, -7)),
    ("double", dbl(4, 3.25)),
    ("bytes", ld(7, b"\x00\x01\x02")),
    ("array", ld(5, msg(ld(1, any_string("a")), ld(1, v(3, 1)), ld(1, ld(5, ld(1, v(2, 0))))))),
    ("kvlist", ld(6, msg(ld(1, kv("inner", any_string("x"))), ld(1, kv("deeper", ld(6, ld(1, kv("z", v(3, 9))))))))),
    ("empty", b""),
]

RESOURCE = msg(attrs(1, ("service.name", any_string("checkout")), *NESTED), v(2, 1))
SCOPE = msg(ld(1, "io.opentelemetry.lib"), ld(2, "1.2.3"), attrs(3, ("scope.attr", v(3, 5))), v(4, 0))
UNKNOWN = msg(v(100, 7), ld(101, b"unknown"))  # unknown fields travel in group headers


def trace_id(first):
    return bytes([first]) + bytes(range(1, 16))


def span(first, name, **extra):
    fields = [
        ld(1, extra.get("trace_id", trace_id(first))),
        ld(2, extra.get("span_id", bytes([first or 1, 2, 3, 4, 5, 6, 7, 8]))),
        ld(3, "vendor=value"),
        ld(4, bytes([9, 9, 9, 9, 9, 9, 9, 9])),
        ld(5, name),
        v(6, 2),
        f64(7, 1_544_712_660_000_000_000),
        f64(8, 1_544_712_661_000_000_000),
        attrs(9, ("http.method", any_string("GET")), *NESTED[:4]),
        v(10, 1),
        ld(11, msg(f64(1, 1_544_712_660_500_000_000), ld(2, "event"), attrs(3, ("e", any_string("v"))), v(4, 0))),
        v(12, 0),
        ld(13, msg(ld(1, trace_id(first + 1)), ld(2, bytes(range(1, 9))), ld(3, ""), attrs(4, ("l", v(2, 1))), v(5, 0), f32(6, 0x100))),
        v(14, 0),
        ld(15, msg(ld(2, "boom"), v(3, 2))),
        f32(16, 0x101),
    ]
    return msg(*fields)


def traces():
    spans_a = msg(
        ld(2, span(0, "a0")),
        ld(2, span(1, "a1")),
        ld(2, span(2, "a2")),
        ld(2, span(5, "bad-trace-id", trace_id=b"\x01\x02")),  # rejected: short trace id
        ld(2, span(3, "zero-span-id", span_id=bytes(8))),  # rejected: zero span id
    )
    group_a = msg(ld(1, RESOURCE), ld(2, msg(ld(1, SCOPE), spans_a, ld(3, "https://opentelemetry.io/schemas/1.21.0"))), ld(3, "https://opentelemetry.io/schemas/1.21.0"), UNKNOWN)
    group_b = msg(ld(2, msg(UNKNOWN, ld(2, span(4, "b4")))), ld(2, msg(ld(1, SCOPE), ld(2, span(6, "b6")))))
    return msg(ld(1, group_a), ld(1, group_b), ld(1, b""))


def small_trace():
    return ld(1, ld(2, ld(2, msg(ld(1, trace_id(7)), ld(2, bytes(range(1, 9))), ld(5, "s")))))


def metrics():
    number_point = msg(attrs(7, ("a", any_string("b"))), f64(2, 1), f64(3, 2), dbl(4, 2.5), v(8, 0))
    int_point = msg(f64(3, 3), tag(6, 1) + struct.pack("<q", -5))
    gauge = ld(5, msg(ld(1, number_point), ld(1, int_point)))
    total = ld(7, msg(ld(1, int_point), v(2, 2), v(3, 1)))
    histogram_point = msg(f64(3, 1), f64(4, 3), dbl(5, 6.0), ld(6, struct.pack("<QQ", 1, 2)), ld(7, struct.pack("<d", 1.0)))
    histogram = ld(9, msg(ld(1, histogram_point), v(2, 1)))
    metric = lambda name, data: ld(2, msg(ld(1, name), ld(2, "desc"), ld(3, "1"), data))
    scope_metrics = msg(ld(1, SCOPE), metric("g", gauge), metric("s", total), metric("h", histogram))
    return ld(1, msg(ld(1, RESOURCE), ld(2, scope_metrics)))


def logs():
    record = msg(
        f64(1, 1), f64(11, 2), v(2, 17), ld(3, "ERROR"),
        ld(5, ld(6, ld(1, kv("msg", any_string("hello"))))),
        attrs(6, *NESTED[:3]), v(7, 0), f32(8, 1),
        ld(9, trace_id(3)), ld(10, bytes(range(1, 9))), ld(12, "event.name"),
    )
    return ld(1, msg(ld(1, RESOURCE), ld(2, msg(ld(1, SCOPE), ld(2, record), ld(2, b"")))))


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "scan_traces")
    os.makedirs(out, exist_ok=True)
    seeds = {
        "traces.pb": traces(),
        "small_trace.pb": small_trace(),
        "metrics.pb": metrics(),
        "logs.pb": logs(),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
