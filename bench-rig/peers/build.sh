#!/usr/bin/env bash
# Builds the Go peers the bench rig measures tailgate against, from the modules pinned in
# bench-rig/peers/*/go.mod and go.sum, into target/peers/:
#   target/peers/otelcol       the OpenTelemetry Collector with the components the peer scenarios
#                              use (bench-rig/peers/otelcol/main.go)
#   target/peers/telemetrygen  contrib's load generator (cmd/telemetrygen), the module's `tool`
#
# A binary newer than every go.mod, go.sum and .go file of its folder is left as it is, so the
# scenarios and tests can call this before every run. `-mod=readonly`: the build uses exactly the
# committed go.sum and fails rather than resolving anything new. A lock on target/peers/.lock
# keeps two callers (tests run in parallel) from building at once. GOMODCACHE and GOCACHE are the
# go command's defaults unless set.
# Usage: bench-rig/peers/build.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
peers=$root/bench-rig/peers
out=$root/target/peers
command -v go >/dev/null || {
  echo "build.sh: go is not on PATH (the peers need Go >= the go line of their go.mod)" >&2
  exit 1
}
mkdir -p "$out"
exec 9> "$out/.lock"
flock 9

# build NAME PACKAGE: builds PACKAGE in the module bench-rig/peers/NAME into target/peers/NAME.
build() {
  local name=$1 package=$2
  local dir=$peers/$name bin=$out/$name
  local newer
  if [ -x "$bin" ]; then
    newer=$(find "$dir" -maxdepth 1 -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) \
      -newer "$bin" -print -quit)
    if [ -z "$newer" ]; then
      echo "build.sh: $bin is up to date"
      return
    fi
    echo "build.sh: $newer is newer than $bin"
  fi
  echo "build.sh: building $bin: (cd $dir && go build -mod=readonly -trimpath -buildvcs=false $package) with $(go version)"
  local start=$SECONDS
  (cd "$dir" && go build -mod=readonly -trimpath -buildvcs=false -o "$bin.partial" "$package")
  mv "$bin.partial" "$bin"
  echo "build.sh: built $bin in $((SECONDS - start)) s"
}

build otelcol .
build telemetrygen github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen
