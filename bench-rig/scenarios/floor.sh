#!/usr/bin/env bash
# The floor: the CPU cost per span of only reading the load generator's OTLP/gRPC bytes from a
# loopback TCP socket (a writer thread sends the load's 500-span requests with their 5-byte gRPC
# prefixes as fast as the socket takes them; a reader thread reads and discards them into a
# 64 KiB buffer and measures its own CPU time). No gateway on this machine can receive these
# spans for less than reader_cpu_ns_per_span. Reader and writer are pinned to different cores.
# Usage: bench-rig/scenarios/floor.sh [seconds] [spans/request]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
spans=${2:-500}
bin=target/release
[ -x $bin/tailgate-bench ] || cargo build --release -p tailgate-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cpus=$(nproc)
reader_cpu=0
writer_cpu=$(( cpus > 1 ? 1 : 0 ))
$bin/tailgate-bench floor --duration "$seconds" --spans-per-request "$spans" \
  --reader-cpu "$reader_cpu" --writer-cpu "$writer_cpu" --report "$work/floor.json" > /dev/null
python3 -c "import json, sys; print(json.dumps(json.load(open(sys.argv[1])), indent=1))" "$work/floor.json"
