#!/usr/bin/env bash
# Pass-through over OTLP/gRPC: tailgate-bench load -> tailgate (N shards) -> tailgate-bench sink.
#
# The load runs for the given time; then the script waits until the gateway's exporters have
# sent every accepted span (a closed-loop load can outrun the upstream, and what is still queued
# is not yet through). It reports the ingest rate, the end-to-end rate (spans accepted divided by
# the time until all were exported), and the gateway's CPU time per span over that whole period
# (process user+system time from /proc). `tailgate-bench run bench-rig/scenarios/passthrough.yaml`
# does the same with pinning, the oracle's verdict and a chart; this script stays for the
# figures already recorded with it. Usage: bench-rig/scenarios/passthrough.sh [seconds] [connections] [spans/request] [rate]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-15}
connections=${2:-4}
spans=${3:-500}
rate=${4:-max}
bin=target/release
[ -x $bin/tailgate ] && [ -x $bin/tailgate-bench ] || cargo build --release -p tailgate -p tailgate-bench
work=$(mktemp -d)
source bench-rig/scenarios/lib.sh
trap 'kill $gw $sink 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/gateway.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:24317
processors:
  batch:
    send_batch_size: 8192
    timeout: 200ms
exporters:
  otlp:
    endpoint: 127.0.0.1:14317
    tls:
      insecure: true
    compression: none
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: 127.0.0.1:28888
YAML
start_gateway_and_sink $bin/tailgate "$work/gateway.yaml"
before=$(ticks)
start=$(date +%s.%N)
$bin/tailgate-bench load --endpoint http://127.0.0.1:24317 --protocol grpc --connections "$connections" \
  --rate "$rate" --duration "$seconds" --spans-per-request "$spans" --report "$work/load.json" > /dev/null
accepted=$(python3 -c "import json; print(json.load(open('$work/load.json'))['spans_accepted'])")
for _ in $(seq 1200); do [ "$(metric otelcol_exporter_sent_spans)" -ge "$accepted" ] && break; sleep 0.05; done
drained=$(date +%s.%N)
after=$(ticks)
curl -s http://127.0.0.1:28888/metrics > "$work/metrics.before-stop"
kill -TERM $gw; wait $gw
if [ -n "${KEEP:-}" ]; then cp "$work/metrics.before-stop" "$work/gateway.log" "$KEEP"/; fi
kill -TERM $sink; wait $sink
hz=$(getconf CLK_TCK)
python3 - "$work/load.json" "$work/sink.json" "$before" "$after" "$hz" "$start" "$drained" <<'PY'
import json, sys
load = json.load(open(sys.argv[1])); sink = json.load(open(sys.argv[2]))
cpu_s = (int(sys.argv[4]) - int(sys.argv[3])) / int(sys.argv[5])
accepted = load["spans_accepted"]
through_s = float(sys.argv[7]) - float(sys.argv[6])
print(json.dumps({
    "end_to_end_spans_per_s": round(accepted / through_s), "all_exported_after_s": round(through_s, 2),
    "spans_accepted": accepted, "spans_refused": load["spans_refused"],
    "requests_sent": load["requests_sent"],
    "spans_at_sink": sink["spans_received"], "duplicates_at_sink": sink["duplicates"],
    "ingest_spans_per_s": round(load["spans_per_s"]), "load_duration_s": round(load["duration_s"], 2),
    "gateway_cpu_s": cpu_s, "gateway_cpu_ns_per_span": round(cpu_s * 1e9 / max(accepted, 1)),
    "generator_cpu_ns_per_span": round(load["generator_cpu_s"] * 1e9 / max(accepted, 1)),
    "latency_us": load["latency_us"],
}, indent=1))
PY
