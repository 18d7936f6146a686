#!/usr/bin/env bash
# Peer: Rotel. The pass-through scenario (passthrough.sh) with rotel-agent in the gateway's place:
# tailgate-bench load -> rotel-agent (OTLP/gRPC receiver, batch 8192 spans / 200 ms, OTLP/gRPC
# exporter told not to compress) -> tailgate-bench sink.
#
# The exporter is told not to compress (`--otlp-exporter-compression none`, and the traces-specific
# flag too), but rotel-agent 0.0.1-alpha10, the binary in PyPI's rotel 0.0.1a15, gzips its export
# requests all the same (`grpc-encoding: gzip`, compressed-flag 1 in the gRPC prefix, about 340
# bytes a span on the wire against 615): its CPU time includes gzip, tailgate's does not.
#
# Rotel comes from PyPI (the `rotel` package ships the rotel-agent binary); this script installs
# it into a virtual environment under target/python/rotel the first time. Rotel exposes no
# metrics endpoint to poll, so the drain is judged from the socket: after the load ends the script
# waits until the bytes Rotel's exporter has had acknowledged by the sink (`ss -ti`) have not
# changed for 1 s, and takes that last change as the moment everything was exported. Rotel's CPU
# time (user + system from /proc/<pid>/stat) is taken over the load and the drain, up to that
# moment, and divided by spans accepted. Rotel listens on 34317, not the gateway's 24317: it leaves
# TIME_WAIT sockets on its listening port, and the next run's gateway could not bind there.
# Usage: bench-rig/scenarios/peer-rotel.sh [seconds] [connections] [spans/request] [rate]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-15}
connections=${2:-4}
spans=${3:-500}
rate=${4:-max}
rotel_version=${ROTEL_VERSION:-0.0.1a15}
bin=target/release
[ -x $bin/tailgate-bench ] || cargo build --release -p tailgate-bench
venv=target/python/rotel
[ -x $venv/bin/python ] || python3 -m venv $venv
$venv/bin/python -m pip show rotel 2>/dev/null | grep -qx "Version: $rotel_version" \
  || $venv/bin/python -m pip install -q --disable-pip-version-check "rotel==$rotel_version"
agent=$($venv/bin/python -c "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))")
[ -x "$agent" ] || { echo "no rotel-agent binary at $agent" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $rotel $sink 2>/dev/null || true; rm -rf "$work"' EXIT
$bin/tailgate-bench sink --listen 127.0.0.1:14317 --report "$work/sink.json" & sink=$!
"$agent" start \
  --otlp-grpc-endpoint 127.0.0.1:34317 --otlp-http-endpoint 127.0.0.1:34318 \
  --batch-max-size 8192 --batch-timeout 200ms \
  --exporter otlp --otlp-exporter-endpoint http://127.0.0.1:14317 \
  --otlp-exporter-protocol grpc --otlp-exporter-compression none \
  --otlp-exporter-traces-compression none \
  --pid-file "$work/rotel.pid" --log-file "$work/rotel.log" > "$work/rotel.out" 2>&1 & rotel=$!
for _ in $(seq 100); do [ -n "$(ss -Hltn 'sport = :34317')" ] && break; sleep 0.1; done
ticks() { awk '{print $14 + $15}' /proc/$rotel/stat; }
# Bytes Rotel's exporter connections have had acknowledged by the sink.
exported_bytes() {
  ss -Htin state established 'dport = :14317' \
    | grep -o 'bytes_acked:[0-9]*' | awk -F: '{s += $2} END {print s + 0}'
}
before=$(ticks)
start=$(date +%s%N)
$bin/tailgate-bench load --endpoint http://127.0.0.1:34317 --protocol grpc --connections "$connections" \
  --rate "$rate" --duration "$seconds" --spans-per-request "$spans" --report "$work/load.json" > /dev/null
load_end=$(date +%s%N)
# Drain: poll every 50 ms; the last change of the exported bytes is when all was sent. Give up
# after 60 s.
last_bytes=$(exported_bytes); last_change=$(date +%s%N); last_ticks=$(ticks)
for _ in $(seq 1200); do
  sleep 0.05
  now=$(date +%s%N); bytes=$(exported_bytes)
  if [ "$bytes" != "$last_bytes" ]; then
    last_bytes=$bytes; last_change=$now; last_ticks=$(ticks)
  elif [ $(( now - last_change )) -ge 1000000000 ]; then
    break
  fi
done
kill -TERM $rotel; wait $rotel || true
if [ -n "${KEEP:-}" ]; then cp "$work/rotel.out" "$KEEP"/; fi
kill -TERM $sink; wait $sink
hz=$(getconf CLK_TCK)
version=$("$agent" --version 2>/dev/null || echo unknown)
python3 - "$work/load.json" "$work/sink.json" "$before" "$last_ticks" "$hz" "$start" "$last_change" \
  "$load_end" "$last_bytes" "$rotel_version" "$version" <<'PY'
import json, sys
load = json.load(open(sys.argv[1])); sink = json.load(open(sys.argv[2]))
cpu_s = (int(sys.argv[4]) - int(sys.argv[3])) / int(sys.argv[5])
accepted = load["spans_accepted"]
start, drained, load_end = (int(a) / 1e9 for a in sys.argv[6:9])
through_s = max(drained, load_end) - start
print(json.dumps({
    "peer": "rotel", "rotel_package": sys.argv[10], "rotel_agent_version": sys.argv[11],
    "end_to_end_spans_per_s": round(accepted / through_s), "all_exported_after_s": round(through_s, 2),
    "spans_accepted": accepted, "spans_refused": load["spans_refused"],
    "requests_sent": load["requests_sent"],
    "spans_at_sink": sink["spans_received"], "at_sink_equals_accepted": sink["spans_received"] == accepted,
    "requests_at_sink": sink["requests_received"], "bytes_exported": int(sys.argv[9]),
    "ingest_spans_per_s": round(load["spans_per_s"]), "load_duration_s": round(load["duration_s"], 2),
    "rotel_cpu_s": cpu_s, "rotel_cpu_ns_per_span": round(cpu_s * 1e9 / max(accepted, 1)),
    "generator_cpu_ns_per_span": round(load["generator_cpu_s"] * 1e9 / max(accepted, 1)),
    "latency_us": load["latency_us"],
}, indent=1))
PY
