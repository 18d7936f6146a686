#!/usr/bin/env bash
# What full TLS handshakes cost the gateway: tailgate with one shard (pinned to CPU 0) and a TLS
# OTLP/gRPC receiver (ECDSA P-256 certificate from `tailgate-bench certs`), and
# `tailgate-bench handshakes` on CPU 1 opening connections and performing full TLS 1.3
# handshakes (no session resumption: every one is the full handshake an agent's reconnect
# costs), each followed by close, with C in flight at once, at the maximum for the given time.
# It reports handshakes a second (one shard, so also per shard), the gateway's CPU time a
# handshake (utime + stime from /proc/PID/stat over the run, as lib.sh reads it), and from that
# the handshakes one fully busy shard would take a second; the client's report (failures by
# reason, latency, what was negotiated, its own CPU a handshake) is printed beside it. If the
# client's CPU a handshake is near the gateway's, the client (one core) was the limit: the
# gateway's CPU a handshake is the figure to compare.
#
# Usage: bench-rig/scenarios/handshakes.sh [seconds] [connections in flight] [client threads]
#          [more tailgate-bench handshakes flags, e.g. --key-exchange x25519 or --hold]
# SHARD_CPU and CLIENT_CPU (0 and 1) move the gateway's shard and the client; KEEP=DIR keeps the
# gateway's log, config, certificates and both reports there.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-64}
threads=${3:-1}
shift $(($# < 3 ? $# : 3))
shard_cpu=${SHARD_CPU:-0}
client_cpu=${CLIENT_CPU:-1}
bin=target/release
[ -x $bin/tailgate ] && [ -x $bin/tailgate-bench ] || cargo build --release -p tailgate -p tailgate-bench
work=$(mktemp -d)
source bench-rig/scenarios/lib.sh
trap 'kill $gw $sink 2>/dev/null || true; rm -rf "$work"' EXIT
$bin/tailgate-bench certs --out "$work/tls"
cat > "$work/gateway.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:24317
        tls:
          cert_file: $work/tls/server.pem
          key_file: $work/tls/server-key.pem
processors:
  batch:
    send_batch_size: 8192
    timeout: 200ms
exporters:
  otlp:
    endpoint: 127.0.0.1:14317
    tls:
      insecure: true
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
  cpus: [$shard_cpu]
YAML
# Every thread of the gateway on the shard's CPU, so its CPU time is one shard's.
start_gateway_and_sink "taskset -c $shard_cpu $bin/tailgate" "$work/gateway.yaml" --cpu "$shard_cpu"
before=$(ticks)
start=$(date +%s.%N)
status=0
taskset -c "$client_cpu" $bin/tailgate-bench handshakes --addr 127.0.0.1:24317 \
  --tls-ca "$work/tls/ca.pem" --alpn h2 --threads "$threads" --connections "$connections" \
  --duration "$seconds" --report "$work/handshakes.json" "$@" > /dev/null || status=$?
end=$(date +%s.%N)
after=$(ticks)
if [ -n "${KEEP:-}" ]; then cp -r "$work/gateway.log" "$work/gateway.yaml" "$work/tls" "$work/handshakes.json" "$KEEP"/; fi
kill -TERM $gw; wait $gw || true
kill -TERM $sink; wait $sink || true
[ -s "$work/handshakes.json" ] || { echo "handshakes.sh: the client wrote no report" >&2; exit 1; }
hz=$(getconf CLK_TCK)
python3 - "$work/handshakes.json" "$before" "$after" "$hz" "$start" "$end" <<'PY'
import json, sys
client = json.load(open(sys.argv[1]))
cpu_s = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
wall_s = float(sys.argv[6]) - float(sys.argv[5])
done = client["handshakes_completed"]
per_handshake_us = cpu_s * 1e6 / max(done, 1)
print(json.dumps({
    "shards": 1,
    "handshakes_completed": done, "handshakes_failed": client["handshakes_failed"],
    "failures": client["failures"],
    "handshakes_per_s": round(client["handshakes_per_s"]),
    "handshakes_per_s_per_shard": round(client["handshakes_per_s"]),
    "gateway_cpu_s": cpu_s, "gateway_busy_share": round(cpu_s / wall_s, 3),
    "gateway_cpu_us_per_handshake": round(per_handshake_us, 1),
    "handshakes_per_s_per_busy_shard": round(1e6 / per_handshake_us) if done else 0,
    "client_cpu_us_per_handshake": round(client["client_cpu_us_per_handshake"], 1),
    "handshake_us": client["handshake_us"], "negotiated": client["negotiated"],
    "connections_in_flight": client["connections"], "client_threads": client["threads"],
    "connections_held": client["connections_held"],
}, indent=1))
PY
exit $status
