#!/usr/bin/env bash
# Pass-through driven by the Collector's own load generator, so a figure does not rest on our
# generator alone: telemetrygen (contrib's cmd/telemetrygen v0.161.0, built by
# bench-rig/peers/build.sh into target/peers/telemetrygen) -> tailgate (one shard on CPU 1,
# OTLP/gRPC and OTLP/HTTP in, batch, OTLP/gRPC out) -> tailgate-bench sink (CPU 0).
#
# telemetrygen runs on CPU 0 beside the sink at niceness 10, as `tailgate-bench run` runs its
# load, so the sink always gets the time it needs. Its traces are two spans each (a parent and
# one child, 4 attributes, no events): far smaller than the rig's SDK-shaped spans, so its
# per-span costs are not comparable with the rig's figures, only with each other.
#
# Counts: telemetrygen logs the traces each worker generated (spans = traces x 2). Unthrottled
# (rate 0), its SDK's batch span processor drops spans when its 2048-span queue is full, and
# counts those drops only in a debug log, so "generated" can exceed what it sent; what it sent is
# what tailgate accepted (otelcol_receiver_accepted_spans, telemetrygen has no retries here that
# could send a span twice). The script waits until tailgate has exported every accepted span
# (otelcol_exporter_sent_spans), then reports tailgate's CPU time (user + system from
# /proc/PID/stat) over the run and the drain, divided by spans accepted, and what the sink got.
# Unthrottled on the 2-core VM its workers outrun its one exporting goroutine and it drops most
# of what it generates: a rate per worker that it can send, and larger batches (its
# --batch-size, spans a request, 100 by default), measure the gateway rather than the drops.
# Usage: bench-rig/scenarios/telemetrygen.sh [seconds] [workers] [grpc|http] [spans/s per worker, 0 = unthrottled] [spans/request]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
workers=${2:-4}
protocol=${3:-grpc}
rate=${4:-0}
batch=${5:-100}
bin=target/release
[ -x $bin/tailgate ] && [ -x $bin/tailgate-bench ] || cargo build --release -p tailgate -p tailgate-bench
bash bench-rig/peers/build.sh >&2
telemetrygen=target/peers/telemetrygen
case $protocol in
  grpc) endpoint=(--otlp-endpoint 127.0.0.1:24317) ;;
  http) endpoint=(--otlp-endpoint 127.0.0.1:24318 --otlp-http) ;;
  *) echo "protocol: grpc or http, not $protocol" >&2; exit 2 ;;
esac
work=$(mktemp -d)
source bench-rig/scenarios/lib.sh
trap 'kill $gw $sink 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/gateway.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:24317
      http:
        endpoint: 127.0.0.1:24318
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
shards:
  cpus: [1]
YAML
start_gateway_and_sink $bin/tailgate "$work/gateway.yaml" --cpu 0
before=$(ticks)
start=$(date +%s%N)
nice -n 10 taskset -c 0 $telemetrygen traces --otlp-insecure "${endpoint[@]}" \
  --rate "$rate" --workers "$workers" --batch-size "$batch" --duration "${seconds}s" \
  2> "$work/telemetrygen.log"
load_end=$(date +%s%N)
accepted=$(metric otelcol_receiver_accepted_spans)
for _ in $(seq 1200); do [ "$(metric otelcol_exporter_sent_spans)" -ge "$accepted" ] && break; sleep 0.05; done
drained=$(date +%s%N)
after=$(ticks)
refused=$(metric otelcol_receiver_refused_spans)
kill -TERM $gw; wait $gw
kill -TERM $sink; wait $sink
if [ -n "${KEEP:-}" ]; then cp "$work/telemetrygen.log" "$work/gateway.log" "$KEEP"/; fi
traces=$(grep -o '"traces": [0-9]*' "$work/telemetrygen.log" | awk '{s += $2} END {print s + 0}')
hz=$(getconf CLK_TCK)
python3 - "$work/sink.json" "$before" "$after" "$hz" "$start" "$load_end" "$drained" \
  "$traces" "$accepted" "$refused" "$protocol" "$workers" "$rate" "$batch" <<'PY'
import json, sys
sink = json.load(open(sys.argv[1]))
cpu_s = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
start, load_end, drained = (int(a) / 1e9 for a in sys.argv[5:8])
traces, accepted, refused = (int(float(a)) for a in sys.argv[8:11])
generated = traces * 2
print(json.dumps({
    "generator": "telemetrygen v0.161.0", "protocol": sys.argv[11], "workers": int(sys.argv[12]),
    "rate_per_worker": float(sys.argv[13]), "spans_per_request": int(sys.argv[14]),
    "telemetrygen_spans_generated": generated,
    "telemetrygen_spans_dropped_before_sending": generated - accepted - refused,
    "gateway_spans_accepted": accepted, "gateway_spans_refused": refused,
    "spans_at_sink": sink["spans_received"], "at_sink_equals_accepted": sink["spans_received"] == accepted,
    "duplicates_at_sink": sink["duplicates"],
    "load_s": round(load_end - start, 2), "all_exported_after_s": round(drained - start, 2),
    "end_to_end_spans_per_s": round(accepted / (drained - start)),
    "gateway_cpu_s": cpu_s, "gateway_cpu_ns_per_span": round(cpu_s * 1e9 / max(accepted, 1)),
}, indent=1))
PY
