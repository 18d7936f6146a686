#!/usr/bin/env bash
# System calls per 1,000 spans: runs a scenario (realistic.yaml by default), and once its load is
# flowing attaches `strace -c -f` to the gateway for a fixed window, reading the gateway's
# accepted spans from its /metrics before and after the window. Prints strace's table and the
# calls per 1,000 accepted spans, in total and per call. strace slows the gateway, so the window's
# spans are counted, not assumed; the ratio is what holds.
# Usage: bench-rig/scenarios/syscalls.sh [scenario.yaml] [window seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
scenario=${1:-bench-rig/scenarios/realistic.yaml}
window=${2:-5}
bin=target/release
[ -x $bin/tailgate-bench ] && [ -x $bin/tailgate ] || cargo build --release -p tailgate -p tailgate-bench
command -v strace > /dev/null || { echo "syscalls.sh needs strace (Debian: apt-get install strace)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"; kill "$run" 2> /dev/null || true' EXIT
$bin/tailgate-bench run "$scenario" --duration $((window + 10)) --out "$work/run" > "$work/run.log" 2>&1 &
run=$!

# The gateway, and its metrics address from the configuration the rig wrote.
for _ in $(seq 1 600); do
  gateway=$(pgrep -f "$bin/tailgate --config" | head -1 || true)
  config=$(ls "$work"/run/*/config.yaml 2> /dev/null | head -1 || true)
  [ -n "$gateway" ] && [ -n "$config" ] && break
  sleep 0.2
done
[ -n "$gateway" ] || { echo "the gateway did not start" >&2; cat "$work/run.log" >&2; exit 1; }
metrics=$(awk '/telemetry:/{t=1} t && /address:/{print $2; exit}' "$config")
accepted() {
  curl -sf "http://$metrics/metrics" |
    awk '/^otelcol_receiver_accepted_spans[{ ]/{sum += $NF} END {printf "%d\n", sum}'
}
# The load is flowing once the gateway accepts spans (the load builds its pool first).
for _ in $(seq 1 1200); do
  [ "$(accepted 2> /dev/null || echo 0)" -gt 0 ] && break
  sleep 0.1
done
sleep 1
before=$(accepted)
timeout -s INT "$window" strace -c -f -p "$gateway" -o "$work/strace.txt" 2> /dev/null || true
after=$(accepted)
wait "$run" || true
spans=$((after - before))
cat "$work/strace.txt"
python3 - "$work/strace.txt" "$spans" <<'EOF'
import sys
table, spans = sys.argv[1], int(sys.argv[2])
rows = []
for line in open(table):
    parts = line.split()
    if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] not in ("total", "syscall"):
        calls = int(parts[3])
        errors = int(parts[4]) if len(parts) == 6 else 0
        rows.append((parts[-1], calls, errors))
total = sum(calls for _, calls, _ in rows)
print(f"\nspans accepted in the window: {spans}")
if spans:
    print(f"system calls per 1,000 spans: {1000 * total / spans:.1f}")
    for name, calls, errors in sorted(rows, key=lambda r: -r[1]):
        print(f"  {name:<20} {1000 * calls / spans:8.2f}   ({errors} of {calls} failed)")
EOF
