#!/usr/bin/env bash
# Stops and removes the tailgate service.
#
#   uninstall.sh [--purge] [--root DIR]
#
# Keeps /etc/tailgate (configuration, profile) and /var/lib/tailgate (the queue directory)
# unless --purge is given: a persistent queue there may still hold data nobody has sent.
set -euo pipefail

purge=0
root=""
while [[ $# -gt 0 ]]; do
	case "$1" in
	--purge)
		purge=1
		shift
		;;
	--root)
		root="${2:?--root needs a directory}"
		shift 2
		;;
	*)
		echo "uninstall.sh: unknown argument: $1" >&2
		exit 2
		;;
	esac
done
if [[ -z "$root" ]]; then
	systemctl disable --now tailgate.service || true
fi
rm -f "$root/etc/systemd/system/tailgate.service"
rm -rf "$root/etc/systemd/system/tailgate.service.d"
rm -f "$root/etc/sysctl.d/60-tailgate.conf"
rm -f "$root/usr/local/bin/tailgate" "$root/usr/local/bin/tailgate.previous" \
	"$root/usr/local/bin/tailgate.rolled-back"
rm -rf "$root/usr/local/lib/tailgate" "$root/usr/local/share/doc/tailgate"
if [[ $purge -eq 1 ]]; then
	rm -rf "$root/etc/tailgate" "$root/var/lib/tailgate"
	if [[ -z "$root" ]]; then
		userdel tailgate 2>/dev/null || true
	fi
fi
if [[ -z "$root" ]]; then
	systemctl daemon-reload
	echo "uninstall.sh: removed; kernel settings stay as applied until reboot (sysctl --system)"
fi
