#!/usr/bin/env bash
# A tier of three tailgates against one tailgate alone, same load, in alternating pairs: what
# forwarding a span to the member that owns its trace costs, sending and receiving node
# together, and whether the tier decides every trace once with all its spans.
#
# Both layouts tail sample (probabilistic 10 %, decision_wait 2s) and export to one
# tailgate-bench sink that judges what arrives against the load's oracle. The load goes to the
# first node only (as an L4 balancer with one target would send it), so about 2/3 of the spans
# are forwarded, over OTLP/gRPC with zstd at level -1 (the tier's default), to 127.0.0.2 and
# 127.0.0.3. The load is what users send: gzip-compressed requests of 500 spans in 16 KiB DATA
# frames, from the semantic corpus (spans that compress like real telemetry; CORPUS=benchmark
# for the SDK benchmark's text).
#
#   single: load -> tailgate A (1 shard)                      -> sink
#   tier:   load -> tailgate A -> {A, B, C} by trace ownership -> sink
#
# CPU ns per forwarded span = (CPU of A + B + C in the tier - CPU of A alone) / spans forwarded,
# each from /proc, over the whole run (load, decisions, export) and over the steady window (the
# second half of the load but its last second, once the trace buffers have filled: their first
# fill costs the kernel's page clearing, once per process, which a short run would charge to the
# tier's extra processes). Also reported: decisions over the tier
# against traces sent (decided once), and the sink's verdict (kept traces complete, none extra).
# Usage: bench-rig/scenarios/tier.sh [seconds] [spans/s] [pairs] [compression[:level]]
# (GWBIN=path runs another gateway binary; PERF=FILE records a perf profile of the tier's first
# node over the steady window there, with call graphs, PERF_NODE=1 or 2 of another node;
# PERF=FILE with PERF_NODE=all profiles every gateway of both layouts over their steady windows,
# into FILE.single and FILE.tier, and prints after each pair where the extra CPU went: each
# symbol's samples in the tier less the single node's, in ns a forwarded span; TLS=1 puts every hop on
# mutual TLS — the clients' to the first node, and the members' to each other, with certificates
# from a private authority — in both layouts, so the difference is still forwarding alone;
# TENANTS=N spreads the load's connections over N tenants (`x-tenant`), which every node keeps
# (include_metadata), batches apart and sets as X-Scope-OrgID on its exports, in both layouts,
# so the tier forwards each span with its tenant, in an outbox per member and tenant.)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}; rate=${2:-200000}; pairs=${3:-3}; compression=${4:-zstd:-1}
bin=target/release; gwbin=${GWBIN:-target/release/tailgate}
[ -x $bin/tailgate ] && [ -x $bin/tailgate-bench ] || cargo build --release -p tailgate -p tailgate-bench
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
tls=${TLS:-0}
tenants=${TENANTS:-0}
perf_hz=999
if [ "$tls" = 1 ]; then
  $bin/tailgate-bench certs --out "$work/certs" --host 127.0.0.1 --host 127.0.0.2 --host 127.0.0.3
fi

# config HOST ADMIN_PORT CPU TIER: a node's configuration on 127.0.0.HOST:24317.
config() {
  local host=$1 admin=$2 cpu=$3 tier=$4
  cat <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.$host:24317
$([ "$tenants" -gt 0 ] && printf '        include_metadata: true\n')
$([ "$tls" = 1 ] && printf '        tls:\n          cert_file: %s\n          key_file: %s\n          client_ca_file: %s\n' \
    "$work/certs/server.pem" "$work/certs/server-key.pem" "$work/certs/ca.pem")
processors:
  batch:
    send_batch_size: 8192
    timeout: 200ms
$([ "$tenants" -gt 0 ] && printf '    metadata_keys: [x-tenant]\n')
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
$([ "$tenants" -gt 0 ] && printf '    auth:\n      authenticator: headers_setter\nextensions:\n  headers_setter:\n    headers:\n      - key: X-Scope-OrgID\n        from_context: x-tenant\n')
service:
$([ "$tenants" -gt 0 ] && printf '  extensions: [headers_setter]\n')
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling, batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: 127.0.0.1:$admin
shards:
  cpus: [$cpu]
YAML
  if [ "$tier" = yes ]; then
    cat <<YAML
tier:
  resolver:
    static:
      hostnames: [127.0.0.1:24317, 127.0.0.2:24317, 127.0.0.3:24317]
  protocol:
    otlp:
      compression: ${compression%%:*}
$([ "$compression" != "${compression#*:}" ] && printf '      compression_params:\n        level: %s\n' "${compression#*:}")
$(if [ "$tls" = 1 ]; then
    printf '      tls:\n        ca_file: %s\n        cert_file: %s\n        key_file: %s\n' \
      "$work/certs/ca.pem" "$work/certs/client.pem" "$work/certs/client-key.pem"
  else
    printf '      tls:\n        insecure: true\n'
  fi)
YAML
  fi
}

# metric ADMIN_PORT NAME [LABEL_FILTER]: the sum of NAME's series matching the filter.
metric() {
  curl -s "http://127.0.0.1:$1/metrics" |
    awk -v m="$2" -v f="${3:-}" '{split($1, name, "{")} name[1] == m && index($1, f) {s += $NF} END {printf "%.0f\n", s + 0}'
}
# sum NAME [FILTER]: over the running nodes.
sum() { local t=0; for a in "${admins[@]}"; do t=$((t + $(metric "$a" "$@"))); done; echo $t; }
ticks() { local t=0; for p in "${gws[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
# faults: the nodes' minor page faults (each a page the kernel clears and maps on first touch).
faults() { local t=0; for p in "${gws[@]}"; do t=$((t + $(awk '{print $10}' "/proc/$p/stat"))); done; echo $t; }
# each_ticks: every node's ticks, space-separated.
each_ticks() { for p in "${gws[@]}"; do awk '{printf "%d ", $14 + $15}' "/proc/$p/stat"; done; }
# each_wakes: every node's context switches (all threads, voluntary: it slept and was woken;
# involuntary: preempted), space-separated — what two CPUs shared by five processes cost.
each_wakes() {
  for p in "${gws[@]}"; do
    cat /proc/$p/task/*/status | awk '/^voluntary_ctxt/ {v += $2} /^nonvoluntary_ctxt/ {n += $2} END {printf "%d:%d ", v, n}'
  done
}

# run MODE: one measurement; prints a JSON line.
run() {
  local mode=$1 hosts
  if [ "$mode" = tier ]; then hosts="1 2 3"; else hosts="1"; fi
  $bin/tailgate-bench sink --listen 127.0.0.1:14317 --cpu 0 --report "$work/sink.json" \
    --expect "$work/expect.json" & local sink=$!
  pids=($sink); gws=(); admins=()
  local cpu=0
  for h in $hosts; do
    config "$h" $((28887 + h)) $cpu $([ "$mode" = tier ] && echo yes || echo no) > "$work/node$h.yaml"
    $gwbin --config "$work/node$h.yaml" 2> "$work/node$h.log" & gws+=($!); pids+=($!)
    admins+=($((28887 + h))); cpu=1
  done
  for a in "${admins[@]}"; do
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$a/readyz" > /dev/null && break; sleep 0.1; done
  done
  local before each_before; before=$(ticks); each_before=$(each_ticks)
  local endpoint=http://127.0.0.1:24317 tls_args=()
  if [ "$tls" = 1 ]; then
    endpoint=https://127.0.0.1:24317
    tls_args=(--tls-ca "$work/certs/ca.pem" --tls-cert "$work/certs/client.pem"
      --tls-key "$work/certs/client-key.pem")
  fi
  $bin/tailgate-bench load --endpoint $endpoint "${tls_args[@]}" --protocol grpc --connections 4 \
    --rate "$rate" --duration "$seconds" --spans-per-request "${SPANS:-500}" --cpu 1 --quiet \
    --corpus "${CORPUS:-semantic}" --compression gzip --frame-size 16384 --tenants "$tenants" \
    --oracle-policy probabilistic:10 --expect-out "$work/expect.json" \
    --report "$work/load.json" > /dev/null & local lp=$!
  # The steady window: from half-way through the load (at least 4 s in: the trace buffers have
  # filled, decision_wait is 2 s, and the allocator has its pages) to 1 s before its end; CPU
  # over the tier's nodes, spans as the first node accepted them from the client.
  local warm=$(( seconds / 2 > 4 ? seconds / 2 : 4 ))
  sleep $warm
  if [ -n "${PERF:-}" ] && [ "${PERF_NODE:-0}" = all ]; then
    perf record -F "$perf_hz" -p "$(IFS=,; echo "${gws[*]}")" -o "$PERF.$mode" \
      -- sleep $((seconds - warm - 1)) > /dev/null 2>&1 &
  elif [ -n "${PERF:-}" ] && [ "$mode" = tier ]; then
    perf record -F 999 -g -p "${gws[${PERF_NODE:-0}]}" -o "$PERF" -- sleep $((seconds - warm - 1)) > /dev/null 2>&1 &
  fi
  local t1 a1 f1 w1 m1; m1=$(faults); t1=$(ticks); a1=$(metric 28888 otelcol_receiver_accepted_spans); f1=$(sum tailgate_tier_forwarded_spans); w1=$(each_wakes)
  sleep $((seconds - warm - 1))
  local t2 a2 f2 w2 m2; m2=$(faults); t2=$(ticks); a2=$(metric 28888 otelcol_receiver_accepted_spans); f2=$(sum tailgate_tier_forwarded_spans); w2=$(each_wakes)
  wait $lp
  local accepted; accepted=$(python3 -c "import json; print(json.load(open('$work/load.json'))['spans_accepted'])")
  for _ in $(seq 1200); do [ "$(sum tailgate_decided_spans)" -ge "$accepted" ] && break; sleep 0.05; done
  local kept; kept=$(sum tailgate_decided_spans 'decision="sampled"')
  for _ in $(seq 1200); do [ "$(sum otelcol_exporter_sent_spans 'exporter="otlp"')" -ge "$kept" ] && break; sleep 0.05; done
  local after each_after; after=$(ticks); each_after=$(each_ticks)
  local forwarded received other decisions
  forwarded=$(sum tailgate_tier_forwarded_spans); received=$(sum tailgate_tier_received_spans 'owner="self"')
  other=$(sum tailgate_tier_received_spans 'owner="other"')
  decisions=$(sum otelcol_processor_tail_sampling_global_count_traces_sampled)
  for p in "${gws[@]}"; do kill -TERM "$p"; wait "$p" || true; done
  kill -TERM $sink; wait $sink || true
  python3 - "$mode" "$work/load.json" "$work/sink.json" "$before" "$after" "$(getconf CLK_TCK)" \
    "$forwarded" "$received" "$other" "$decisions" "$each_before" "$each_after" \
    "$t1 $t2 $a1 $a2 $f1 $f2" "$w1" "$w2" "$((seconds - warm - 1))" "$m1 $m2" <<'PY'
import json, sys
mode = sys.argv[1]
load = json.load(open(sys.argv[2])); sink = json.load(open(sys.argv[3]))
cpu_s = (int(sys.argv[5]) - int(sys.argv[4])) / int(sys.argv[6])
accepted = load["spans_accepted"]
t1, t2, a1, a2, f1, f2 = (int(x) for x in sys.argv[13].split())
steady = {"cpu_s": round((t2 - t1) / int(sys.argv[6]), 2), "spans": a2 - a1, "forwarded": f2 - f1,
          "cpu_ns_per_span": round((t2 - t1) / int(sys.argv[6]) * 1e9 / max(a2 - a1, 1)),
          "minor_faults": (lambda m: int(m[1]) - int(m[0]))(sys.argv[17].split()),
          # Per node, a second: [voluntary, involuntary] context switches.
          "node_switches_per_s": [[round((int(b) - int(a)) / int(sys.argv[16])) for a, b in
                                   zip(w1.split(":"), w2.split(":"))]
                                  for w1, w2 in zip(sys.argv[14].split(), sys.argv[15].split())]}
print(json.dumps({
    "mode": mode, "spans_accepted": accepted, "spans_refused": load["spans_refused"],
    "ingest_spans_per_s": round(load["spans_per_s"]),
    "cpu_s": round(cpu_s, 2), "cpu_ns_per_span": round(cpu_s * 1e9 / max(accepted, 1)),
    "forwarded": int(sys.argv[7]), "received_from_members": int(sys.argv[8]),
    "received_not_owned": int(sys.argv[9]),
    "decisions": int(sys.argv[10]), "traces_sent": sink.get("expected_traces_sent"),
    "kept_complete": sink.get("kept_traces_complete"), "kept_partial": sink.get("kept_traces_partial"),
    "kept_missing": sink.get("kept_traces_missing"), "kept_wrongly": sink.get("traces_kept_wrongly"),
    "duplicates": sink.get("duplicated_spans"), "verified": sink.get("verified"),
    "node_cpu_s": [round((int(b) - int(a)) / int(sys.argv[6]), 2)
                   for a, b in zip(sys.argv[11].split(), sys.argv[12].split())],
    "steady": steady,
}))
PY
}

for pair in $(seq "$pairs"); do
  single=$(run single); echo "$single"
  tier=$(run tier); echo "$tier"
  python3 - "$single" "$tier" <<'PY'
import json, sys
s, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
extra = t["cpu_s"] * 1e9 - s["cpu_s"] * 1e9 * t["spans_accepted"] / max(s["spans_accepted"], 1)
ss, ts = s["steady"], t["steady"]
steady = ts["cpu_s"] * 1e9 - ss["cpu_s"] * 1e9 * ts["spans"] / max(ss["spans"], 1)
print(json.dumps({"pair_cpu_ns_per_forwarded_span": round(extra / max(t["forwarded"], 1)),
                  "pair_steady_cpu_ns_per_forwarded_span": round(steady / max(ts["forwarded"], 1)),
                  "forwarded_share": round(t["forwarded"] / max(t["spans_accepted"], 1), 3)}))
PY
  if [ -n "${PERF:-}" ] && [ "${PERF_NODE:-0}" = all ]; then
    for mode in single tier; do
      perf report -i "$PERF.$mode" --no-children --sort symbol --stdio -n 2> /dev/null > "$work/symbols.$mode"
    done
    python3 - "$work/symbols.single" "$work/symbols.tier" "$single" "$tier" "$perf_hz" <<'PY'
import json, sys
# The single node's samples scaled to the spans the tier's window took, as the pair's steady
# figure is.
def samples(path):
    counts = {}
    for line in open(path):
        fields = line.split()
        if len(fields) > 3 and fields[0].endswith("%") and fields[1].isdigit():
            symbol = " ".join(fields[3:]).rstrip(" -")
            counts[symbol] = counts.get(symbol, 0) + int(fields[1])
    return counts
s, t = json.loads(sys.argv[3])["steady"], json.loads(sys.argv[4])["steady"]
scale = t["spans"] / max(s["spans"], 1)
single = {k: v * scale for k, v in samples(sys.argv[1]).items()}
tier = samples(sys.argv[2])
ns = 1e9 / int(sys.argv[5]) / max(t["forwarded"], 1)
deltas = sorted(((tier.get(k, 0) - single.get(k, 0), k) for k in set(single) | set(tier)), reverse=True)
print(json.dumps({"extra_ns_per_forwarded_span": round((sum(tier.values()) - sum(single.values())) * ns),
                  "top": [[round(d * ns), k[:80]] for d, k in deltas[:15]]}))
PY
  fi
done
