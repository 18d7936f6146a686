#!/usr/bin/env python3
"""One raw unary gRPC call with grpcio, for the gateway's error-path tests.

Usage:
  grpc_call.py --target 127.0.0.1:4317 --method /pkg.Service/Method
               (--request-file FILE | --request-zeros N)
               [--compression none|gzip] [--timeout SECONDS] [--out FILE]
               [--metadata KEY=VALUE ...]

The request message is the file's bytes as they are (no serializer), or N zero bytes
(--request-zeros: a large, highly compressible message without a file of that size).
With --compression gzip the call is made with grpc.Compression.Gzip, so grpcio itself
compresses the message and sends grpc-encoding: gzip. Each --metadata pair is sent as
call metadata (keys lower-case, as gRPC requires).

The result is written as JSON to --out (stdout when not given):
  {"code": grpc.StatusCode name ("OK", "INVALID_ARGUMENT", ...),
   "details": the status message or null,
   "trailing_metadata": [[key, value]] (bytes values, from -bin keys, as base64),
   "response_hex": the response message's bytes in hex, or null when there is none}

Exit codes: 0 whenever the call completed, with any status (an RPC error is a result here,
not a failure); 1 usage or other errors.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys

import grpc


def metadata_pairs(metadata) -> list[list[str]]:
    pairs = []
    for key, value in metadata or ():
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        pairs.append([key, value])
    return pairs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, help="host:port")
    p.add_argument("--method", required=True, help="/package.Service/Method")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--request-file")
    source.add_argument("--request-zeros", type=int)
    p.add_argument("--compression", choices=("none", "gzip"), default="none")
    p.add_argument("--timeout", type=float, default=20.0, help="call deadline, seconds")
    p.add_argument("--out")
    p.add_argument("--metadata", action="append", default=[], help="KEY=VALUE call metadata")
    args = p.parse_args()
    metadata = [tuple(pair.split("=", 1)) for pair in args.metadata]

    if args.request_file is not None:
        with open(args.request_file, "rb") as f:
            request = f.read()
    else:
        request = bytes(args.request_zeros)

    options = [
        # The tests talk to loopback: never through a proxy.
        ("grpc.enable_http_proxy", 0),
        # Limits are the server's to enforce; the client must not refuse first.
        ("grpc.max_send_message_length", -1),
        ("grpc.max_receive_message_length", -1),
    ]
    compression = grpc.Compression.Gzip if args.compression == "gzip" else grpc.Compression.NoCompression
    with grpc.insecure_channel(args.target, options=options) as channel:
        call = channel.unary_unary(args.method, request_serializer=None, response_deserializer=None)
        try:
            response, outcome = call.with_call(
                request, timeout=args.timeout, compression=compression, metadata=metadata
            )
            result = {
                "code": outcome.code().name,
                "details": outcome.details(),
                "trailing_metadata": metadata_pairs(outcome.trailing_metadata()),
                "response_hex": response.hex(),
            }
        except grpc.RpcError as error:
            result = {
                "code": error.code().name,
                "details": error.details(),
                "trailing_metadata": metadata_pairs(error.trailing_metadata()),
                "response_hex": None,
            }

    text = json.dumps(result)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
