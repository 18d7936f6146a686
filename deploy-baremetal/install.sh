#!/usr/bin/env bash
# Installs tailgate as a systemd service on a dedicated gateway node.
#
#   install.sh --binary PATH [--config FILE] [--profile FILE] [--root DIR] [--no-start]
#
# --binary   the tailgate binary to install (target/release/tailgate).
# --config   the configuration to install as /etc/tailgate/config.yaml if none is there yet
#            (an existing one is never overwritten); default: the binary's embedded default.
# --profile  a tuning profile to install as /etc/tailgate/profile.yaml; its CPUs become the
#            unit's CPUAffinity and its irq_cpus are applied before each start.
# --root     installs under DIR instead of / and runs no systemctl or sysctl (for tests).
# --no-start installs and enables, but does not (re)start the service.
#
# An upgrade is the same command with the new binary: the running one is kept as
# /usr/local/bin/tailgate.previous, and the new configuration is checked with the new binary
# before the service restarts. Roll back with rollback.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
binary=""
config=""
profile=""
root=""
start=1
usage() {
	sed -n '4,14p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
while [[ $# -gt 0 ]]; do
	case "$1" in
	--binary)
		binary="${2:?}"
		shift 2
		;;
	--config)
		config="${2:?}"
		shift 2
		;;
	--profile)
		profile="${2:?}"
		shift 2
		;;
	--root)
		root="${2:?}"
		shift 2
		;;
	--no-start)
		start=0
		shift
		;;
	-h | --help) usage ;;
	*)
		echo "install.sh: unknown argument: $1" >&2
		usage
		;;
	esac
done
[[ -x "$binary" ]] || {
	echo "install.sh: --binary must name an executable tailgate" >&2
	exit 1
}
if [[ -z "$root" && $(id -u) -ne 0 ]]; then
	echo "install.sh: run as root (or give --root DIR to stage an install)" >&2
	exit 1
fi

bin="$root/usr/local/bin"
lib="$root/usr/local/lib/tailgate"
doc="$root/usr/local/share/doc/tailgate"
etc="$root/etc/tailgate"
unit_dir="$root/etc/systemd/system"
install -d "$bin" "$lib" "$doc" "$etc" "$unit_dir" "$root/etc/sysctl.d" "$root/var/lib/tailgate"

# The configuration first, checked by the binary about to run it: a bad file stops the install
# before anything running changes.
if [[ ! -e "$etc/config.yaml" ]]; then
	if [[ -n "$config" ]]; then
		install -m 0640 "$config" "$etc/config.yaml"
	else
		"$binary" print-default-config >"$etc/config.yaml"
		chmod 0640 "$etc/config.yaml"
	fi
fi
if [[ -n "$profile" ]]; then
	install -m 0644 "$profile" "$etc/profile.yaml"
fi
"$binary" check-config "$etc/config.yaml"

if [[ -e "$bin/tailgate" ]]; then
	cp -p "$bin/tailgate" "$bin/tailgate.previous"
fi
install -m 0755 "$binary" "$bin/tailgate.new"
mv -f "$bin/tailgate.new" "$bin/tailgate"
install -m 0755 "$here/irq-affinity.sh" "$lib/irq-affinity.sh"
install -m 0644 "$here/README.md" "$doc/README.md"
install -m 0644 "$here/tailgate.service" "$unit_dir/tailgate.service"
install -m 0644 "$here/60-tailgate.conf" "$root/etc/sysctl.d/60-tailgate.conf"

# The profile's placement as a drop-in: CPUAffinity from its `cpus:` list (nothing for
# `cpus: all`), and its interrupt plan applied before each start, with privileges (`+`).
dropin="$unit_dir/tailgate.service.d"
rm -f "$dropin/profile.conf"
if [[ -n "$profile" ]]; then
	install -d "$dropin"
	{
		echo "# Written by install.sh from $(basename "$profile")."
		echo "[Service]"
		cpus=$(grep -E '^[[:space:]]*cpus:[[:space:]]*\[' "$etc/profile.yaml" | head -n 1 || true)
		if [[ -n "$cpus" ]]; then
			cpus=${cpus#*[}
			cpus=${cpus%%]*}
			echo "CPUAffinity=${cpus//,/}"
		fi
		if grep -qE '^[[:space:]]*irq_cpus:[[:space:]]*\[[[:space:]]*[0-9]' "$etc/profile.yaml"; then
			echo "ExecStartPre=+/usr/local/lib/tailgate/irq-affinity.sh --profile /etc/tailgate/profile.yaml"
		fi
	} >"$dropin/profile.conf"
fi

if [[ -n "$root" ]]; then
	echo "install.sh: staged under $root (no users, sysctl or systemctl changed)"
	exit 0
fi
getent group tailgate >/dev/null || groupadd --system tailgate
getent passwd tailgate >/dev/null ||
	useradd --system --gid tailgate --home-dir /var/lib/tailgate --shell /usr/sbin/nologin tailgate
chown root:tailgate "$etc/config.yaml"
chown tailgate:tailgate /var/lib/tailgate
sysctl --system >/dev/null
systemctl daemon-reload
systemctl enable tailgate.service
if [[ $start -eq 1 ]]; then
	systemctl restart tailgate.service
	systemctl --no-pager --lines=5 status tailgate.service
fi
