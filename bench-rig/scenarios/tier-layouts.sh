#!/usr/bin/env bash
# Three samplers behind one entry point, four ways, same load, in rounds that alternate the
# layouts: what each layout costs in CPU a span, all its processes together, and whether it
# decides every trace once with all its spans.
#
#   tailgate-tier       load -> tailgate A -> {A, B, C} by trace ownership (the `tier` section)
#   tailgate-two-tier   load -> tailgate front (loadbalancing) -> samplers A, B, C
#   collector-two-tier  load -> Collector front (loadbalancing) -> Collector samplers A, B, C
#   collector-front     load -> Collector front (loadbalancing) -> tailgate samplers A, B, C
#
# The last is the migration users make first: their Collectors' loadbalancing tier kept, the
# sampling tier replaced. The Collector is built from its modules (bench-rig/peers/build.sh,
# v0.161.0, contrib's loadbalancing exporter and tail_sampling processor), each Collector given
# one CPU (GOMAXPROCS=1) as each tailgate has one shard. Every sampler tail samples alike
# (probabilistic 10 %, decision_wait 2 s) and exports to one tailgate-bench sink that judges
# what arrives against the load's oracle. The fronts batch (8192 spans, 200 ms) and forward with
# their exporter's default compression, gzip, both alike (COMPRESSION=zstd or none for another);
# the tier forwards with its own default, zstd at level -1. The load is what users send:
# gzip-compressed gRPC requests of 500 spans in 16 KiB DATA frames, semantic corpus.
#
# CPU a span = CPU (user + system, /proc) of every gateway and Collector of the layout, from
# the load's start until the sink has had nothing new for 3 s, over the spans the load had
# accepted; the load generator and the sink are not counted. Steady: the same over the load's
# second half but its last second, over the spans the load offered in that window (the load
# keeps its rate unless the layout refuses or falls behind, which the line then shows).
# Usage: bench-rig/scenarios/tier-layouts.sh [seconds] [spans/s] [rounds] [layouts...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-30}; rate=${2:-50000}; rounds=${3:-1}; shift $(( $# > 3 ? 3 : $# ))
layouts=("$@")
[ ${#layouts[@]} -gt 0 ] || layouts=(tailgate-tier tailgate-two-tier collector-two-tier collector-front)
bin=target/release; gwbin=${GWBIN:-target/release/tailgate}
[ -x $bin/tailgate ] && [ -x $bin/tailgate-bench ] || cargo build --release -p tailgate -p tailgate-bench
bash bench-rig/peers/build.sh > /dev/null
otelcol=target/peers/otelcol
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
compression=${COMPRESSION:-gzip}

# The receivers of process N (0: a front or tier node A, 1-3: samplers A-C) listen on
# 127.0.0.(N+1):24317 (a tier node and a sampler A share .2 by layout, never at once); admin or
# Prometheus metrics on 127.0.0.1:(28890+N).
addr() { echo "127.0.0.$(( $1 + 1 )):24317"; }
admin() { echo $(( 28890 + $1 )); }

# The sampling part every sampler has, tailgate's or the Collector's: the same text.
sampling() {
  cat <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: $1
processors:
  batch:
    send_batch_size: 8192
    timeout: 200ms
  tail_sampling:
    decision_wait: 2s
    num_traces: 2000000
    policies:
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
YAML
}

# A front: batch, then loadbalancing by trace id over samplers 1-3.
front() {
  cat <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: $(addr 0)
processors:
  batch:
    send_batch_size: 8192
    timeout: 200ms
exporters:
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        tls:
          insecure: true
        compression: $compression
    resolver:
      static:
        hostnames: [$(addr 1), $(addr 2), $(addr 3)]
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [loadbalancing]
YAML
}

# tailgate's telemetry and shard for process N on CPU; the Collector's telemetry for N.
tailgate_tail() {
  printf '  telemetry:\n    metrics:\n      address: 127.0.0.1:%s\nshards:\n  cpus: [%s]\n' "$(admin "$1")" "$2"
}
collector_tail() {
  printf '  telemetry:\n    logs:\n      level: warn\n    metrics:\n      level: normal\n      readers:\n'
  printf '        - pull:\n            exporter:\n              prometheus:\n                host: 127.0.0.1\n                port: %s\n' "$(admin "$1")"
}
tier_section() {
  printf 'tier:\n  resolver:\n    static:\n      hostnames: [%s, %s, %s]\n  protocol:\n    otlp:\n      tls:\n        insecure: true\n' \
    "$(addr 1)" "$(addr 2)" "$(addr 3)"
}

# start KIND N CPU CONFIG_FILE: a tailgate or a Collector as process N, pinned to CPU.
start() {
  local kind=$1 n=$2 cpu=$3 config=$4
  if [ "$kind" = tailgate ]; then
    $gwbin --config "$config" 2> "$work/p$n.log" & procs+=($!); pids+=($!)
  else
    GOMAXPROCS=1 taskset -c "$cpu" $otelcol --config "$config" 2> "$work/p$n.log" & procs+=($!); pids+=($!)
  fi
}

# metric N NAME: the sum of NAME's series (or NAME_total's, as the Collector's Prometheus
# exporter names counters) on process N's metrics.
metric() {
  curl -s "http://127.0.0.1:$(admin "$1")/metrics" |
    awk -v m="$2" '{split($1, name, "{")} name[1] == m || name[1] == m "_total" {s += $NF} END {printf "%.0f\n", s + 0}'
}
ticks() { local t=0; for p in "${procs[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
each_ticks() { for p in "${procs[@]}"; do awk '{printf "%d ", $14 + $15}' "/proc/$p/stat"; done; }
sink_spans() { awk '{print $1}' "$work/progress" 2> /dev/null || echo 0; }

# run LAYOUT: one measurement; prints a JSON line.
run() {
  local layout=$1
  rm -f "$work/progress"
  $bin/tailgate-bench sink --listen 127.0.0.1:14317 --cpu 0 --report "$work/sink.json" \
    --expect "$work/expect.json" --progress-file "$work/progress" & local sink=$!
  pids=("$sink"); procs=()
  local entry samplers=tailgate n; entry=$(addr 0)
  case $layout in
    tailgate-tier)
      # Tier nodes 1-3: A (on CPU 0) takes the load.
      entry=$(addr 1)
      for n in 1 2 3; do
        { sampling "$(addr $n)"; tailgate_tail $n $(( n == 1 ? 0 : 1 )); tier_section; } > "$work/p$n.yaml"
        start tailgate $n $(( n == 1 ? 0 : 1 )) "$work/p$n.yaml"
      done ;;
    tailgate-two-tier|collector-two-tier|collector-front)
      local front_kind=tailgate
      [ "$layout" = tailgate-two-tier ] || front_kind=collector
      [ "$layout" = collector-two-tier ] && samplers=collector
      if [ $front_kind = tailgate ]; then { front; tailgate_tail 0 0; } > "$work/p0.yaml"
      else { front; collector_tail 0; } > "$work/p0.yaml"; fi
      start $front_kind 0 0 "$work/p0.yaml"
      for n in 1 2 3; do
        if [ $samplers = tailgate ]; then { sampling "$(addr $n)"; tailgate_tail $n 1; } > "$work/p$n.yaml"
        else { sampling "$(addr $n)"; collector_tail $n; } > "$work/p$n.yaml"; fi
        start $samplers $n 1 "$work/p$n.yaml"
      done ;;
    *) echo "unknown layout $layout" >&2; exit 2 ;;
  esac
  # Ready: every process serves its metrics and every receiver listens.
  local all_n; if [ "$layout" = tailgate-tier ]; then all_n="1 2 3"; else all_n="0 1 2 3"; fi
  for n in $all_n; do
    for _ in $(seq 200); do
      curl -sf "http://127.0.0.1:$(admin "$n")/metrics" > /dev/null &&
        (exec 3<> "/dev/tcp/${entry%:*}/24317") 2> /dev/null && break
      sleep 0.1
    done
  done
  local before each_before; before=$(ticks); each_before=$(each_ticks)
  $bin/tailgate-bench load --endpoint "http://$entry" --protocol grpc --connections 4 \
    --rate "$rate" --duration "$seconds" --spans-per-request 500 --cpu 1 --quiet \
    --corpus semantic --compression gzip --frame-size 16384 \
    --oracle-policy probabilistic:10 --expect-out "$work/expect.json" \
    --report "$work/load.json" > /dev/null & local lp=$!
  local warm=$(( seconds / 2 > 4 ? seconds / 2 : 4 ))
  sleep $warm
  local t1; t1=$(ticks)
  sleep $((seconds - warm - 1))
  local t2; t2=$(ticks)
  wait $lp
  # Drained: decision_wait has passed since the load's end and the sink had nothing new for 3 s.
  sleep 3
  local last=-1 same=0
  for _ in $(seq 600); do
    local now; now=$(sink_spans)
    if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; last=$now; fi
    [ $same -ge 30 ] && break
    sleep 0.1
  done
  local after each; after=$(ticks); each=$(each_ticks)
  local decisions=0
  for n in 1 2 3; do
    decisions=$((decisions + $(metric $n otelcol_processor_tail_sampling_global_count_traces_sampled)))
  done
  local rss=""
  for p in "${procs[@]}"; do rss+="$(awk '/^VmHWM/ {print $2}' "/proc/$p/status") "; done
  for p in "${procs[@]}"; do kill -TERM "$p"; wait "$p" || true; done
  kill -TERM $sink; wait $sink || true
  python3 - "$layout" "$work/load.json" "$work/sink.json" "$before" "$after" "$(getconf CLK_TCK)" \
    "$t1 $t2" "$((seconds - warm - 1))" "$rate" "$decisions" "$each_before" "$each" "$rss" <<'PY'
import json, sys
layout = sys.argv[1]
load = json.load(open(sys.argv[2])); sink = json.load(open(sys.argv[3]))
hz = int(sys.argv[6])
cpu_s = (int(sys.argv[5]) - int(sys.argv[4])) / hz
t1, t2 = (int(x) for x in sys.argv[7].split())
window, rate = int(sys.argv[8]), int(sys.argv[9])
accepted = load["spans_accepted"]
print(json.dumps({
    "layout": layout, "spans_accepted": accepted, "spans_refused": load["spans_refused"],
    "ingest_spans_per_s": round(load["spans_per_s"]),
    "cpu_s": round(cpu_s, 2), "cpu_ns_per_span": round(cpu_s * 1e9 / max(accepted, 1)),
    "steady_cpu_ns_per_span": round((t2 - t1) / hz * 1e9 / max(window * rate, 1)),
    "process_cpu_s": [round((int(b) - int(a)) / hz, 2)
                      for a, b in zip(sys.argv[11].split(), sys.argv[12].split())],
    "process_peak_rss_mib": [round(int(k) / 1024) for k in sys.argv[13].split()],
    "decisions": int(sys.argv[10]), "traces_sent": sink.get("expected_traces_sent"),
    "kept_complete": sink.get("kept_traces_complete"), "kept_partial": sink.get("kept_traces_partial"),
    "kept_missing": sink.get("kept_traces_missing"), "kept_wrongly": sink.get("traces_kept_wrongly"),
    "duplicates": sink.get("duplicated_spans"), "verified": sink.get("verified"),
}))
PY
}

for _ in $(seq "$rounds"); do
  for layout in "${layouts[@]}"; do run "$layout"; done
done
