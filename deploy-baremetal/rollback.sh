#!/usr/bin/env bash
# Puts back the binary install.sh replaced (/usr/local/bin/tailgate.previous) and restarts.
#
#   rollback.sh [--root DIR]
#
# The configuration is left as it is: if the upgrade changed it, restore your copy first (the
# previous binary checks it before it starts, and refuses keys it does not know).
set -euo pipefail

root=""
if [[ "${1:-}" == "--root" ]]; then
	root="${2:?--root needs a directory}"
fi
bin="$root/usr/local/bin"
if [[ ! -x "$bin/tailgate.previous" ]]; then
	echo "rollback.sh: no previous binary at $bin/tailgate.previous" >&2
	exit 1
fi
"$bin/tailgate.previous" check-config "$root/etc/tailgate/config.yaml"
cp -p "$bin/tailgate" "$bin/tailgate.rolled-back"
mv -f "$bin/tailgate.previous" "$bin/tailgate"
if [[ -z "$root" ]]; then
	systemctl restart tailgate.service
fi
echo "rollback.sh: $bin/tailgate is the previous binary again; the replaced one is tailgate.rolled-back"
