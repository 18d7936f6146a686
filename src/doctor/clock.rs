//! The clock source: every timestamp the gateway takes (decision timers, batch timeouts,
//! latency) is a `clock_gettime`, which the vDSO answers in user space only from a clock
//! source it can read there.

use super::tree::{ReadError, Tree};
use super::{Finding, Level};

/// The clock source check.
pub const CHECK: &str = "clocksource";

const CURRENT: &str = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
const AVAILABLE: &str = "/sys/devices/system/clocksource/clocksource0/available_clocksource";

/// Clock sources the vDSO reads in user space: the CPU's counter, and the paravirtual clocks of
/// KVM and Hyper-V guests.
const FAST: [&str; 4] = [
    "tsc",
    "kvm-clock",
    "arch_sys_counter",
    "hyperv_clocksource_tsc_page",
];

/// Clock sources that cost a system call (and a slow device read) per timestamp.
const SLOW: [&str; 5] = ["hpet", "acpi_pm", "jiffies", "refined-jiffies", "pit"];

/// The clock source finding.
pub fn check(tree: &Tree) -> Finding {
    let why = "the gateway reads the clock for every request, timer and batch; tsc (or a VM's \
               kvm-clock) is read in user space, while hpet and acpi_pm make each read a \
               system call costing microseconds";
    let current = match tree.read(CURRENT) {
        Ok(current) => current,
        Err(ReadError::Missing { .. }) => {
            return Finding::ok(CHECK, "not exposed here", why);
        }
        Err(err) => return Finding::unreadable(CHECK, err.to_string(), why),
    };
    if FAST.contains(&current.as_str()) {
        return Finding::ok(CHECK, current, why);
    }
    if !SLOW.contains(&current.as_str()) {
        return Finding::ok(CHECK, format!("{current} (not one the doctor judges)"), why);
    }
    let available = tree.read(AVAILABLE).unwrap_or_default();
    let better = available
        .split_whitespace()
        .find(|source| FAST.contains(source));
    let fix = match better {
        Some(source) => format!(
            "echo {source} > {CURRENT} (persist with the kernel command line \
             clocksource={source}); if the kernel fell back from tsc as unstable, see dmesg"
        ),
        None => "this machine offers no fast clock source: on a VM use the hypervisor's \
                 paravirtual clock, on bare metal check the BIOS and dmesg for why tsc was \
                 marked unstable"
            .to_string(),
    };
    let found = if available.is_empty() {
        current
    } else {
        format!("{current} (available: {available})")
    };
    Finding::flag(CHECK, Level::Warn, found, why, fix)
}
