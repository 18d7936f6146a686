#!/usr/bin/env bash
# A central that is down, then back: tailgate-bench load at a fixed rate -> tailgate (one shard,
# persistent sending queue) -> nothing for OUTAGE seconds, then tailgate-bench sink on the
# exporter's endpoint while the load goes on.
#
# Reports, as one JSON line: the backlog when the central came back (tailgate_exporter_pending_spans:
# queued in memory or on disk, or being sent), how long it took to drain while ingest went on,
# the drain's rates (net: backlog / drain time; gross: spans sent / drain time) as multiples of
# the ingest rate, refusals, the gateway's peak RSS against its memory budget
# (tailgate_shard_memory_limit_bytes) and the queue's peak disk use. Every accepted span must
# reach the sink (checked at the end).
# Usage: bench-rig/scenarios/outage-drain.sh [rate spans/s] [outage s] [after s] [write_delay]
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-100000}
outage=${2:-60}
after=${3:-60}
write_delay=${4:-200ms}
bin=target/release
[ -x $bin/tailgate ] && [ -x $bin/tailgate-bench ] || {
  cargo build --release -p tailgate --bin tailgate
  cargo build --release -p tailgate-bench
}
work=$(mktemp -d)
source bench-rig/scenarios/lib.sh
gw=; sink=; load=
trap 'kill $gw $sink $load 2>/dev/null || true; rm -rf "$work"' EXIT
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
    retry_on_failure:
      initial_interval: 1s
      max_interval: 2s
      max_elapsed_time: 0s
    sending_queue:
      storage: file_storage
      sizer: bytes
      queue_size: 17179869184
extensions:
  file_storage:
    directory: $work/queue
    create_directory: true
    write_delay: $write_delay
service:
  extensions: [file_storage]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: $admin
shards:
  cpus: [1]
YAML
$bin/tailgate --config "$work/gateway.yaml" 2> "$work/gateway.log" & gw=$!
for _ in $(seq 100); do curl -sf "http://$admin/readyz" > /dev/null && break; sleep 0.1; done
budget=$(metric tailgate_shard_memory_limit_bytes)
$bin/tailgate-bench load --endpoint http://127.0.0.1:24317 --protocol grpc --connections 4 \
  --rate "$rate" --duration $((outage + after)) --spans-per-request 500 --cpu 0 \
  --report "$work/load.json" > /dev/null 2>&1 & load=$!
peak_rss=0; peak_disk=0
sample() {
  local rss disk
  rss=$(awk '/VmRSS/ {print $2 * 1024}' "/proc/$gw/status")
  disk=$(metric tailgate_exporter_queue_disk_bytes)
  [ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
  [ "$disk" -gt "$peak_disk" ] && peak_disk=$disk
  return 0
}
for _ in $(seq $((outage * 4))); do sample; sleep 0.25; done
backlog=$(metric tailgate_exporter_pending_spans)
sent_before=$(metric otelcol_exporter_sent_spans)
$bin/tailgate-bench sink --listen 127.0.0.1:14317 --report "$work/sink.json" --cpu 0 & sink=$!
back=$(date +%s.%N)
drained=
# Drained: what is pending is down to what arrives within a batch timeout or two.
while kill -0 $load 2> /dev/null; do
  sample
  if [ "$(metric tailgate_exporter_pending_spans)" -le $((rate / 2)) ]; then
    drained=$(date +%s.%N)
    break
  fi
  sleep 0.25
done
sent_at_drain=$(metric otelcol_exporter_sent_spans)
wait $load || true
load=
accepted=$(python3 -c "import json; print(json.load(open('$work/load.json'))['spans_accepted'])")
refused=$(python3 -c "import json; print(json.load(open('$work/load.json')).get('spans_refused', 0))")
for _ in $(seq 600); do sample; [ "$(metric otelcol_exporter_sent_spans)" -ge "$accepted" ] && break; sleep 0.1; done
sent=$(metric otelcol_exporter_sent_spans)
kill -TERM $gw; wait $gw || true; gw=
kill -TERM $sink; wait $sink || true; sink=
python3 - "$rate" "$outage" "$backlog" "$back" "${drained:-}" "$sent_before" "$sent_at_drain" \
  "$accepted" "$refused" "$sent" "$peak_rss" "$budget" "$peak_disk" "$write_delay" <<'PY'
import json, sys
(rate, outage, backlog, back, drained, sent_before, sent_at_drain, accepted, refused, sent,
 peak_rss, budget, peak_disk, write_delay) = sys.argv[1:]
rate, backlog = int(rate), int(backlog)
took = float(drained) - float(back) if drained else None
gross = (int(sent_at_drain) - int(sent_before)) / took if took else None
print(json.dumps({
    "scenario": "outage-drain", "ingest_spans_per_s": rate, "outage_s": int(outage),
    "write_delay": write_delay,
    "backlog_spans": backlog, "drain_s": round(took, 1) if took else None,
    "net_drain_spans_per_s": round(backlog / took) if took else None,
    "net_drain_x_ingest": round(backlog / took / rate, 2) if took else None,
    "gross_send_spans_per_s": round(gross) if gross else None,
    "gross_send_x_ingest": round(gross / rate, 2) if gross else None,
    "accepted": int(accepted), "refused": int(refused), "sent": int(sent),
    "all_sent": int(sent) >= int(accepted),
    "peak_rss_mib": int(peak_rss) >> 20, "memory_budget_mib": int(budget) >> 20,
    "peak_disk_mib": int(peak_disk) >> 20,
}))
PY
