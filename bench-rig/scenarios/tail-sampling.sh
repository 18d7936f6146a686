#!/usr/bin/env bash
# Tail sampling over OTLP/gRPC: tailgate-bench load -> tailgate (2 shards, tail_sampling with
# decision_wait 2s keeping about 10 % of traces) -> tailgate-bench sink.
#
# The load runs for the given time while the script samples the gateway's RSS and its trace
# buffer gauges once a second; then it waits until every accepted span has been decided and
# every kept span exported. It reports the ingest rate, the spans kept and received, the gateway's
# CPU time per accepted span over the whole period (process user+system time from /proc), and,
# at the sample with the most spans buffered, RSS growth against the raw bytes of the spans
# held (tailgate_shard_buffered_span_bytes). Policies: a latency threshold no trace reaches and
# probabilistic at 10 % (the load's generator marks 1 span in 20 as an error, so an errors
# policy would keep about 40 % of its traces).
# Usage: bench-rig/scenarios/tail-sampling.sh [seconds] [connections] [spans/request] [rate]
# (GWBIN=path runs another gateway binary; PERF=FILE records a perf profile of the gateway there.)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-15}; connections=${2:-4}; spans=${3:-500}; rate=${4:-max}
bin=target/release; gwbin=${GWBIN:-target/release/tailgate}
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
  tail_sampling:
    decision_wait: 2s
    num_traces: 2000000
    policies:
      - name: slow
        type: latency
        latency:
          threshold_ms: 10000
      - name: some
        type: probabilistic
        probabilistic:
          sampling_percentage: 10
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
      processors: [tail_sampling, batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: 127.0.0.1:28888
YAML
start_gateway_and_sink "$gwbin" "$work/gateway.yaml"
rss0=$(awk '/VmRSS/ {print $2}' /proc/$gw/status)
before=$(ticks); start=$(date +%s.%N)
$bin/tailgate-bench load --endpoint http://127.0.0.1:24317 --protocol grpc --connections "$connections" \
  --rate "$rate" --duration "$seconds" --spans-per-request "$spans" --report "$work/load.json" > /dev/null &
lp=$!
if [ -n "${PERF:-}" ]; then perf record -F 999 -g -p $gw -o "$PERF" -- sleep $((seconds - 2)) >/dev/null 2>&1 & fi
# Sample RSS and the buffer's gauges once a second while the load runs.
samples=""
while kill -0 $lp 2>/dev/null; do
  sleep 1
  kill -0 $lp 2>/dev/null || break
  samples="$samples $(awk '/VmRSS/ {print $2}' /proc/$gw/status):$(metric tailgate_shard_buffered_span_bytes):$(metric tailgate_shard_buffered_spans):$(metric tailgate_shard_buffered_bytes)"
done
wait $lp
accepted=$(python3 -c "import json; print(json.load(open('$work/load.json'))['spans_accepted'])")
# Every accepted span decided (2 s wait) and the kept ones exported.
for _ in $(seq 1200); do
  d=$(metric tailgate_decided_spans); [ "$d" -ge "$accepted" ] && break; sleep 0.05; done
kept=$(curl -s http://127.0.0.1:28888/metrics | awk '/^tailgate_decided_spans\{decision="sampled"/ {s += $NF} END {printf "%d", s}')
for _ in $(seq 1200); do [ "$(metric otelcol_exporter_sent_spans)" -ge "$kept" ] && break; sleep 0.05; done
drained=$(date +%s.%N); after=$(ticks)
kill -TERM $gw; wait $gw
kill -TERM $sink; wait $sink
python3 - "$work/load.json" "$work/sink.json" "$before" "$after" "$(getconf CLK_TCK)" "$start" "$drained" "$kept" "$rss0" "$samples" <<'PY'
import json, sys
load = json.load(open(sys.argv[1])); sink = json.load(open(sys.argv[2]))
cpu_s = (int(sys.argv[4]) - int(sys.argv[3])) / int(sys.argv[5])
accepted = load["spans_accepted"]
rss0 = int(sys.argv[9])
samples = [tuple(int(x) for x in s.split(":")) for s in sys.argv[10].split()]
# The sample with the most spans buffered.
rss, raw, spans, held = max(samples, key=lambda s: s[2]) if samples else (0, 0, 0, 0)
print(json.dumps({
    "spans_accepted": accepted, "spans_refused": load["spans_refused"],
    "ingest_spans_per_s": round(load["spans_per_s"]),
    "kept_spans": int(sys.argv[8]), "spans_at_sink": sink["spans_received"], "duplicates": sink["duplicates"],
    "all_decided_and_exported_after_s": round(float(sys.argv[7]) - float(sys.argv[6]), 2),
    "gateway_cpu_s": cpu_s, "gateway_cpu_ns_per_span": round(cpu_s * 1e9 / max(accepted, 1)),
    "buffered_spans_peak": spans, "buffered_span_bytes": raw, "buffer_accounted_bytes": held,
    "rss_kib_start": rss0, "rss_kib_at_peak": rss,
    "rss_growth_over_raw": round((rss - rss0) * 1024 / max(raw, 1), 3),
    "rss_growth_minus_1_25_raw_per_span": round(((rss - rss0) * 1024 - 1.25 * raw) / max(spans, 1), 1),
    "latency_us": load["latency_us"],
}, indent=1))
PY
