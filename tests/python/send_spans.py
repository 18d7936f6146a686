#!/usr/bin/env python3
"""Send deterministic traces through the official OpenTelemetry Python SDK.

Used by tailgate's integration tests (tests/common/python.rs) as a real, third-party
OTLP client. Spans are built through the SDK's public API (TracerProvider,
BatchSpanProcessor, tracer.start_as_current_span) and exported with one of the
official exporters:

  grpc           opentelemetry-exporter-otlp-proto-grpc   (requirements-proto.txt)
  http/protobuf  opentelemetry-exporter-otlp-proto-http   (requirements-proto.txt)
  http/json      opentelemetry-exporter-otlp-json-http    (requirements-json.txt)

--endpoint is the base URL (http://127.0.0.1:4318). For the HTTP protocols
"/v1/traces" is appended when the URL has no path; a URL with a path is used as is.

Each trace has --spans-per-trace spans arranged as a binary tree (span i's parent is
span (i-1)//2), created by nesting start_as_current_span, so all spans of a trace share
a trace id and every non-root span has a parent. Trace and span ids come from a
random.Random seeded with --seed, so a given seed always produces the same ids.
Every --error-every-th trace (trace indexes K-1, 2K-1, ...) has status ERROR with a
description on its root; all other spans have status UNSET.

--header NAME=VALUE (repeatable) is sent with every export, configured the way an SDK user
configures it: through OTEL_EXPORTER_OTLP_HEADERS (values URL-encoded).

--out receives a JSON document:
  {"protocol", "endpoint", "seed", "expected_spans",
   "export_calls": [{"spans": n, "result": "SUCCESS"|"FAILURE"}],
   "spans": [{"trace_id": 32 hex, "span_id": 16 hex, "parent_span_id": 16 hex or "",
              "name", "kind": OTLP enum value (1 internal, 2 server, 3 client, ...),
              "attributes": {key: plain JSON value}, "events": [{"name", "attributes"}],
              "status_code": 0 unset / 1 ok / 2 error, "status_message",
              "service_name"}]}
The span fields are read from the ReadableSpan objects handed to the exporter, so
they are exactly what was exported.

Exit codes: 0 all exports succeeded; 2 an export call returned FAILURE (or raised);
3 the exporter saw a different number of spans than were created; 1 usage/other error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import threading
from urllib.parse import quote, urlsplit

# Ambient OTEL_* settings (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_*, ...) must not
# change what the tests send; drop them before the SDK reads its environment.
for _key in [k for k in os.environ if k.startswith("OTEL_")]:
    del os.environ[_key]

from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator  # noqa: E402
from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: E402

PROTOCOLS = ("grpc", "http/protobuf", "http/json")

# SDK SpanKind -> OTLP Span.SpanKind enum value (the proto enum has UNSPECIFIED = 0).
OTLP_KIND = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
OTLP_STATUS = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}


class SeededIdGenerator(IdGenerator):
    """Deterministic, never-zero trace and span ids."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def _draw(self, bits: int) -> int:
        with self._lock:
            while True:
                value = self._rng.getrandbits(bits)
                if value != 0:
                    return value

    def generate_span_id(self) -> int:
        return self._draw(64)

    def generate_trace_id(self) -> int:
        return self._draw(128)


class RecordingExporter(SpanExporter):
    """Delegates to the real exporter and records every call's spans and result."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.calls: list[tuple[int, SpanExportResult]] = []
        self.spans: list = []

    def export(self, spans):
        spans = list(spans)
        try:
            result = self._inner.export(spans)
        except Exception as error:  # noqa: BLE001 - any raise is an export failure
            print(f"send_spans: exporter raised: {error!r}", file=sys.stderr)
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            result = SpanExportResult.FAILURE
        with self._lock:
            self.calls.append((len(spans), result))
            self.spans.extend(spans)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def http_url(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def read_file(path):
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def make_exporter(protocol: str, endpoint: str, compression: str, timeout: float, tls) -> SpanExporter:
    """`tls` is (ca_file, client_cert_file, client_key_file), each None when not given."""
    gzip = compression == "gzip"
    deflate = compression == "deflate"
    ca_file, cert_file, key_file = tls
    if protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        secure = endpoint.startswith("https://")
        credentials = None
        if secure and ca_file is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read_file(ca_file),
                private_key=read_file(key_file),
                certificate_chain=read_file(cert_file),
            )
        return OTLPSpanExporter(
            endpoint=endpoint,
            insecure=not secure,
            credentials=credentials,
            compression=(
                grpc.Compression.Gzip
                if gzip
                else grpc.Compression.Deflate
                if deflate
                else grpc.Compression.NoCompression
            ),
            timeout=timeout,
        )
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(
            endpoint=http_url(endpoint),
            certificate_file=ca_file,
            client_certificate_file=cert_file,
            client_key_file=key_file,
            compression=(
                Compression.Gzip
                if gzip
                else Compression.Deflate
                if deflate
                else Compression.NoCompression
            ),
            timeout=timeout,
        )
    if protocol == "http/json":
        from opentelemetry.exporter.otlp.common.http import Compression
        from opentelemetry.exporter.otlp.json.http import OTLPSpanExporter

        return OTLPSpanExporter(
            endpoint=http_url(endpoint),
            compression=(
                Compression.GZIP
                if gzip
                else Compression.DEFLATE
                if deflate
                else Compression.NONE
            ),
            timeout=timeout,
        )
    raise ValueError(f"unknown protocol {protocol!r}")


def emit_trace(tracer, rng: random.Random, args, t: int) -> None:
    errored = args.error_every > 0 and t % args.error_every == args.error_every - 1

    def span(i: int) -> None:
        root = i == 0
        kind = SpanKind.SERVER if root else (SpanKind.CLIENT if i % 2 else SpanKind.INTERNAL)
        attributes = {
            "test.protocol": args.protocol,
            "test.trace_index": t,
            "test.span_index": i,
            "test.seed": args.seed,
            # Dyadic fractions round-trip exactly through every encoding.
            "test.ratio": rng.randrange(0, 1 << 16) / 256.0,
            "test.is_root": root,
            "test.tags": [f"tag-{t % 3}", f"tag-{i % 5}", f"r{rng.randrange(1000)}"],
        }
        with tracer.start_as_current_span(
            f"trace-{t}/span-{i}" if not root else f"trace-{t}/root",
            kind=kind,
            attributes=attributes,
        ) as current:
            current.add_event("checkpoint", {"event.seq": i, "event.note": f"t{t}s{i}"})
            for child in (2 * i + 1, 2 * i + 2):
                if child < args.spans_per_trace:
                    span(child)
            if root and errored:
                current.set_status(Status(StatusCode.ERROR, f"injected error in trace {t}"))

    span(0)


def plain(value):
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


def describe(span) -> dict:
    ctx = span.get_span_context()
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent is not None else "",
        "name": span.name,
        "kind": OTLP_KIND[span.kind],
        "attributes": {k: plain(v) for k, v in (span.attributes or {}).items()},
        "events": [
            {"name": e.name, "attributes": {k: plain(v) for k, v in (e.attributes or {}).items()}}
            for e in span.events
        ],
        "status_code": OTLP_STATUS[span.status.status_code],
        "status_message": span.status.description or "",
        "service_name": span.resource.attributes.get("service.name", ""),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--header", action="append", default=[], help="NAME=VALUE sent with every export")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--protocol", required=True, choices=PROTOCOLS)
    p.add_argument("--traces", type=int, required=True)
    p.add_argument("--spans-per-trace", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--error-every", type=int, default=0, help="0 = no error traces")
    p.add_argument("--compression", choices=("none", "gzip", "deflate"), default="none")
    p.add_argument("--batch-size", type=int, default=512, help="BatchSpanProcessor max_export_batch_size")
    p.add_argument("--timeout", type=float, default=10.0, help="exporter timeout, seconds")
    p.add_argument("--ca-file", help="TLS: trust only this CA (https:// endpoints)")
    p.add_argument("--client-cert", help="TLS: present this client certificate (mTLS)")
    p.add_argument("--client-key", help="TLS: the client certificate's key")
    args = p.parse_args()
    if args.traces < 0 or args.spans_per_trace < 1 or args.error_every < 0 or args.batch_size < 1:
        p.error("need --traces >= 0, --spans-per-trace >= 1, --error-every >= 0, --batch-size >= 1")

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if args.header:
        pairs = (h.split("=", 1) for h in args.header)
        os.environ["OTEL_EXPORTER_OTLP_HEADERS"] = ",".join(f"{n}={quote(v)}" for n, v in pairs)

    expected = args.traces * args.spans_per_trace
    recorder = RecordingExporter(make_exporter(
            args.protocol,
            args.endpoint,
            args.compression,
            args.timeout,
            (args.ca_file, args.client_cert, args.client_key),
        ))
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"tailgate-test-{args.protocol}"}),
        id_generator=SeededIdGenerator(args.seed),
    )
    provider.add_span_processor(
        BatchSpanProcessor(
            recorder,
            # Large enough that the queue never drops a span.
            max_queue_size=max(2048, expected + 1),
            max_export_batch_size=args.batch_size,
            schedule_delay_millis=60_000,
            export_timeout_millis=int(args.timeout * 1000 * 3),
        )
    )
    tracer = provider.get_tracer("tailgate.tests.send_spans", "1.0.0")
    rng = random.Random(args.seed ^ 0x5EED)
    for t in range(args.traces):
        emit_trace(tracer, rng, args, t)

    flushed = provider.force_flush(timeout_millis=int(args.timeout * 1000 * 4))
    provider.shutdown()

    failures = sum(1 for _, r in recorder.calls if r is not SpanExportResult.SUCCESS)
    document = {
        "protocol": args.protocol,
        "endpoint": args.endpoint,
        "seed": args.seed,
        "expected_spans": expected,
        "export_calls": [{"spans": n, "result": r.name} for n, r in recorder.calls],
        "spans": [describe(s) for s in recorder.spans],
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)

    if failures:
        print(
            f"send_spans: {failures} of {len(recorder.calls)} export calls failed "
            f"({args.protocol} -> {args.endpoint})",
            file=sys.stderr,
        )
        return 2
    if len(recorder.spans) != expected or not flushed:
        print(
            f"send_spans: exported {len(recorder.spans)} spans, created {expected} (force_flush returned {flushed})",
            file=sys.stderr,
        )
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
