#!/usr/bin/env python3
"""An OTLP peer that records which headers each export request carried.

Usage:
  header_sink.py --grpc HOST:PORT --http HOST:PORT --out FILE

Serves OTLP/gRPC (the trace, metrics and logs Export services, on a thread pool) and OTLP/HTTP
(POST /v1/traces, /v1/metrics, /v1/logs with Content-Type application/x-protobuf, optionally
gzip Content-Encoding; HTTP/1.1 with keep-alive). Every export is answered with an empty success
response; over HTTP any other path gets 404, another content type 415, a body that does not
decode 400, and none of those is recorded.

For every accepted export one JSON line is appended to FILE and flushed at once:
  {"transport": "grpc" | "http",
   "signal": "traces" | "metrics" | "logs",
   "headers": {lower-cased name: [values, in the order received]},
   "services": [the string value of `service.name` of each resource group, in order;
                "" when absent],
   "items": spans, metric data points or log records in the request}
gRPC headers are the call's invocation metadata (binary `-bin` values as base64); HTTP headers
are the request's own.

Prints "listening" once both servers are bound and serves until SIGTERM or SIGINT, then exits 0.
Exit codes: 3 when a port cannot be bound (the caller may retry on other ports); 1 other errors.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import signal
import sys
import threading
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

# Bounds: handler threads for gRPC calls, and the largest HTTP body read (decoded or not).
GRPC_WORKERS_MAX = 16
HTTP_BODY_BYTES_MAX = 64 * 1024 * 1024
EXIT_BIND_FAILED = 3


def service_name(resource) -> str:
    for attribute in resource.attributes:
        if attribute.key == "service.name":
            return attribute.value.string_value
    return ""


def count_traces(request) -> tuple[list[str], int]:
    groups = request.resource_spans
    items = sum(len(scope.spans) for group in groups for scope in group.scope_spans)
    return [service_name(group.resource) for group in groups], items


def metric_points(metric) -> int:
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind else 0


def count_metrics(request) -> tuple[list[str], int]:
    groups = request.resource_metrics
    items = sum(
        metric_points(metric)
        for group in groups
        for scope in group.scope_metrics
        for metric in scope.metrics
    )
    return [service_name(group.resource) for group in groups], items


def count_logs(request) -> tuple[list[str], int]:
    groups = request.resource_logs
    items = sum(len(scope.log_records) for group in groups for scope in group.scope_logs)
    return [service_name(group.resource) for group in groups], items


# signal -> (request type, response type, counter)
SIGNALS = {
    "traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        count_traces,
    ),
    "metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        count_metrics,
    ),
    "logs": (
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        count_logs,
    ),
}


class Recorder:
    """Appends one JSON line per export to the output file; safe from many threads."""

    def __init__(self, path: str):
        self.lock = threading.Lock()
        self.file = open(path, "a", encoding="utf-8")

    def record(self, transport: str, signal_name: str, pairs, request) -> None:
        headers: dict[str, list[str]] = {}
        for name, value in pairs:
            if isinstance(value, bytes):
                value = base64.b64encode(value).decode("ascii")
            headers.setdefault(name.lower(), []).append(value)
        services, items = SIGNALS[signal_name][2](request)
        line = json.dumps(
            {
                "transport": transport,
                "signal": signal_name,
                "headers": headers,
                "services": services,
                "items": items,
            }
        )
        with self.lock:
            if self.file.closed:  # an export still in flight at shutdown
                return
            self.file.write(line + "\n")
            self.file.flush()

    def close(self) -> None:
        with self.lock:
            self.file.close()


def grpc_servicer(base, signal_name: str, recorder: Recorder):
    response_type = SIGNALS[signal_name][1]

    class Servicer(base):
        def Export(self, request, context):
            recorder.record("grpc", signal_name, context.invocation_metadata(), request)
            return response_type()

    return Servicer()


def start_grpc(address: str, recorder: Recorder) -> grpc.Server:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=GRPC_WORKERS_MAX),
        options=[
            # A port shared with another process would split the exports between the two.
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", HTTP_BODY_BYTES_MAX),
        ],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
        grpc_servicer(trace_service_pb2_grpc.TraceServiceServicer, "traces", recorder), server
    )
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
        grpc_servicer(metrics_service_pb2_grpc.MetricsServiceServicer, "metrics", recorder), server
    )
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
        grpc_servicer(logs_service_pb2_grpc.LogsServiceServicer, "logs", recorder), server
    )
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"gRPC cannot bind {address}: {error}") from error
    if port == 0:
        raise OSError(f"gRPC cannot bind {address}")
    server.start()
    return server


def http_handler(recorder: Recorder):
    paths = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - the base class's signature
            pass

        def answer(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def read_body(self) -> bytes | None:
            """The body by Content-Length or chunked; None (and the connection closed) if it
            cannot be read within the bound."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks, total = [], 0
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    total += size
                    if total > HTTP_BODY_BYTES_MAX:
                        self.close_connection = True
                        return None
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            if length > HTTP_BODY_BYTES_MAX:
                self.close_connection = True
                return None
            return self.rfile.read(length)

        def do_POST(self):
            body = self.read_body()
            if body is None:
                self.answer(413, b"body too large\n")
                return
            signal_name = paths.get(self.path.split("?", 1)[0])
            if signal_name is None:
                self.answer(404, b"not found\n")
                return
            content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if content_type != "application/x-protobuf":
                self.answer(415, b"want Content-Type application/x-protobuf\n")
                return
            encoding = self.headers.get("Content-Encoding", "").strip().lower()
            try:
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding not in ("", "identity"):
                    self.answer(415, f"unsupported Content-Encoding {encoding}\n".encode())
                    return
                request = SIGNALS[signal_name][0].FromString(body)
            except (OSError, EOFError, zlib.error, DecodeError) as error:
                self.answer(400, f"bad request body: {error}\n".encode())
                return
            recorder.record("http", signal_name, self.headers.items(), request)
            response = SIGNALS[signal_name][1]().SerializeToString()
            self.answer(200, response, "application/x-protobuf")

        def not_found(self):
            self.read_body()
            self.answer(404, b"not found\n")

        do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = not_found

        def do_HEAD(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grpc", required=True, help="HOST:PORT for OTLP/gRPC")
    p.add_argument("--http", required=True, help="HOST:PORT for OTLP/HTTP")
    p.add_argument("--out", required=True, help="file the JSON lines are appended to")
    args = p.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    recorder = Recorder(args.out)
    try:
        grpc_server = start_grpc(args.grpc, recorder)
    except OSError as error:
        print(error, file=sys.stderr, flush=True)
        return EXIT_BIND_FAILED
    try:
        http_server = ThreadingHTTPServer(split_address(args.http), http_handler(recorder))
    except OSError as error:
        print(f"HTTP cannot bind {args.http}: {error}", file=sys.stderr, flush=True)
        grpc_server.stop(None)
        return EXIT_BIND_FAILED
    # Connections kept alive by a client must not hold the process open at SIGTERM.
    http_server.daemon_threads = True
    http_thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    http_thread.start()
    print("listening", flush=True)

    while not stop.wait(1.0):
        pass
    http_server.shutdown()
    http_server.server_close()
    grpc_server.stop(None).wait()
    recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
