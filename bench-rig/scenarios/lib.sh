# Sourced by the shell scenarios (passthrough.sh, tail-sampling.sh, telemetrygen.sh): the gateway
# and the rig's sink on their fixed loopback ports, the gateway's metrics and its CPU ticks.
# The caller sets $bin (the rig's binaries) and $work (a scratch folder) and traps EXIT to kill
# $gw and $sink.

# The gateway's admin address, as the scenarios' configurations set it.
admin=127.0.0.1:28888

# start_gateway_and_sink GATEWAY CONFIG [sink flags...]: starts the sink on 127.0.0.1:14317
# (its report in $work/sink.json) and the gateway on CONFIG (its log in $work/gateway.log);
# sets $sink and $gw and waits until the gateway is ready. A gateway that exits or is not ready
# within 10 s fails the call with its log on stderr (the caller's EXIT trap stops the sink).
start_gateway_and_sink() {
  local gateway=$1 config=$2
  shift 2
  $bin/tailgate-bench sink --listen 127.0.0.1:14317 --report "$work/sink.json" "$@" & sink=$!
  $gateway --config "$config" 2> "$work/gateway.log" & gw=$!
  for _ in $(seq 100); do
    kill -0 "$gw" 2> /dev/null || break
    curl -sf "http://$admin/readyz" > /dev/null && return 0
    sleep 0.1
  done
  echo "$(basename "$0"): the gateway did not become ready; its log:" >&2
  cat "$work/gateway.log" >&2
  return 1
}

# The gateway's CPU time (user + system) in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$gw/stat"; }

# metric NAME: the sum of NAME's series on the gateway's /metrics, as a whole number.
metric() {
  curl -s "http://$admin/metrics" |
    awk -v m="$1" '{split($1, name, "{")} name[1] == m {s += $NF} END {printf "%.0f\n", s + 0}'
}
