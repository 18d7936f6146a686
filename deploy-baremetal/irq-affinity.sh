#!/usr/bin/env bash
# Applies a tuning profile's interrupt plan: every MSI interrupt of the gateway's NICs goes to
# the profile's `irq_cpus`, round-robin, so the CPUs that run shards take no NIC interrupts.
#
#   irq-affinity.sh --profile FILE [--nic NAME]... [--dry-run] [--root DIR]
#
# --profile  a tuning profile (tuning/*.yaml, or what `tailgate tune` wrote); its one-line
#            `irq_cpus: [0, 1, 32, 33]` is the plan.
# --nic      a NIC to steer (repeatable); without it, every NIC with MSI interrupts
#            (/sys/class/net/*/device/msi_irqs, or the PCI device above a virtio NIC), which
#            skips loopback and virtual devices.
# --dry-run  prints what would be written, changes nothing.
# --root     reads and writes sys/ and proc/ under DIR instead of / (for tests).
#
# Writes /proc/irq/N/smp_affinity_list; needs root. Not persistent: run it at boot (install.sh
# adds it to the unit as ExecStartPre when a profile is installed) and after NIC changes.
# irqbalance moves interrupts back: stop it, or give it IRQBALANCE_BANNED_CPULIST=<shard CPUs>.
set -euo pipefail

usage() {
	sed -n '4,10p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

profile=""
root=""
dry_run=0
nics=()
while [[ $# -gt 0 ]]; do
	case "$1" in
	--profile)
		profile="${2:?--profile needs a file}"
		shift 2
		;;
	--nic)
		nics+=("${2:?--nic needs a name}")
		shift 2
		;;
	--root)
		root="${2:?--root needs a directory}"
		shift 2
		;;
	--dry-run)
		dry_run=1
		shift
		;;
	-h | --help) usage ;;
	*)
		echo "irq-affinity.sh: unknown argument: $1" >&2
		usage
		;;
	esac
done
[[ -n "$profile" ]] || usage
[[ -r "$profile" ]] || {
	echo "irq-affinity.sh: cannot read the profile $profile" >&2
	exit 1
}

# The plan: the flow-style list on the profile's `irq_cpus:` line.
line=$(grep -E '^[[:space:]]*irq_cpus:[[:space:]]*\[' "$profile" | head -n 1 || true)
if [[ -z "$line" ]]; then
	echo "irq-affinity.sh: $profile has no one-line 'irq_cpus: [...]'; nothing to apply" >&2
	exit 1
fi
list=${line#*[}
list=${list%%]*}
read -r -a cpus <<<"${list//,/ }"
if [[ ${#cpus[@]} -eq 0 ]]; then
	echo "irq-affinity.sh: $profile leaves no CPUs for interrupts (irq_cpus: []); nothing to do" >&2
	exit 0
fi
for cpu in "${cpus[@]}"; do
	[[ "$cpu" =~ ^[0-9]+$ ]] || {
		echo "irq-affinity.sh: irq_cpus in $profile: '$cpu' is not a CPU id" >&2
		exit 1
	}
done

# A NIC's MSI interrupts: on its PCI device, or for a virtio NIC on the PCI device above the
# virtio device (`device/..`). Prints the directory, or nothing.
msi_dir() {
	local device="$root/sys/class/net/$1/device"
	if [[ -d "$device/msi_irqs" ]]; then
		echo "$device/msi_irqs"
	elif [[ -d "$device/../msi_irqs" ]]; then
		echo "$device/../msi_irqs"
	fi
}

if [[ ${#nics[@]} -eq 0 ]]; then
	for dir in "$root"/sys/class/net/*/; do
		name=$(basename "$dir")
		[[ -n "$(msi_dir "$name")" ]] && nics+=("$name")
	done
fi
if [[ ${#nics[@]} -eq 0 ]]; then
	echo "irq-affinity.sh: no NIC with MSI interrupts under $root/sys/class/net" >&2
	exit 1
fi

if [[ -z "$root" && $dry_run -eq 0 ]] && pgrep -x irqbalance >/dev/null 2>&1; then
	echo "irq-affinity.sh: warning: irqbalance is running and will move these interrupts back;" \
		"stop it or set IRQBALANCE_BANNED_CPULIST to the shard CPUs" >&2
fi

failed=0
next=0
for nic in "${nics[@]}"; do
	irq_dir=$(msi_dir "$nic")
	if [[ -z "$irq_dir" ]]; then
		echo "irq-affinity.sh: $nic has no MSI interrupts (no msi_irqs on its device)" >&2
		failed=1
		continue
	fi
	mapfile -t irqs < <(find "$irq_dir" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n)
	for irq in "${irqs[@]}"; do
		cpu=${cpus[$((next % ${#cpus[@]}))]}
		next=$((next + 1))
		target="$root/proc/irq/$irq/smp_affinity_list"
		now=$(cat "$target" 2>/dev/null || echo "?")
		if [[ $dry_run -eq 1 ]]; then
			echo "$nic: IRQ $irq -> CPU $cpu (now $now)"
		elif echo "$cpu" 2>/dev/null >"$target"; then
			echo "$nic: IRQ $irq -> CPU $cpu"
		else
			# Kernel-managed interrupts (some drivers' queue IRQs) refuse a new affinity.
			echo "irq-affinity.sh: $nic: IRQ $irq: cannot write $target" >&2
			failed=1
		fi
	done
done
exit "$failed"
