//! Network sysctls: the accept queue, TCP buffer autotuning limits, the receive backlog, and
//! the ports outgoing connections draw from.
//!
//! Host-wide sysctls (`net.core.rmem_max`, `netdev_max_backlog`, ...) are absent from a
//! container's own network namespace; a missing file is reported as not visible here, not as a
//! problem, since the host's value is the one that applies.

use super::tree::{ReadError, Tree};
use super::{Finding, Level};
use crate::ingest::accept::LISTEN_BACKLOG;

/// `net.core.somaxconn`.
pub const CHECK_SOMAXCONN: &str = "net.core.somaxconn";
/// `net.ipv4.tcp_rmem`.
pub const CHECK_TCP_RMEM: &str = "net.ipv4.tcp_rmem";
/// `net.ipv4.tcp_wmem`.
pub const CHECK_TCP_WMEM: &str = "net.ipv4.tcp_wmem";
/// `net.core.rmem_max`.
pub const CHECK_RMEM_MAX: &str = "net.core.rmem_max";
/// `net.core.wmem_max`.
pub const CHECK_WMEM_MAX: &str = "net.core.wmem_max";
/// `net.core.netdev_max_backlog`, judged by the drops it has caused.
pub const CHECK_NETDEV_BACKLOG: &str = "net.core.netdev_max_backlog";
/// `net.ipv4.ip_local_port_range`.
pub const CHECK_PORT_RANGE: &str = "net.ipv4.ip_local_port_range";

/// The somaxconn tailgate recommends: the kernel's default since 5.4, with room above the
/// backlog tailgate asks for.
const SOMAXCONN_RECOMMENDED: u64 = 4096;

/// The smallest TCP autotuning maximum (`tcp_rmem`/`tcp_wmem`'s third value) that does not
/// cap throughput on a regional link: one connection moves at most a window per round trip,
/// and 4 MiB per 50 ms is about 670 Mbit/s.
const TCP_BUFFER_MAX_MIN_BYTES: u64 = 4 << 20;

/// The autotuning maximum the fix suggests: room for a 1 Gbit/s link at 130 ms.
const TCP_BUFFER_MAX_RECOMMENDED_BYTES: u64 = 16 << 20;

/// The narrowest local port range left alone: IANA's ephemeral range (49152–65535) holds
/// 16 384 ports, and a narrower one is a deliberate restriction.
const PORT_RANGE_MIN: u64 = 16_384;

/// The most CPUs' lines read from `/proc/net/softnet_stat` (one line per CPU).
const SOFTNET_LINES_MAX: usize = 8192;

/// A finding for a file that could not be read: absent is "not visible here" (ok), anything
/// else a warning that the value could not be checked.
fn unread(check: &'static str, err: ReadError, why: &str) -> Finding {
    match err {
        ReadError::Missing { path } => Finding::ok(
            check,
            format!(
                "{path} is not there: not visible here (a container's network namespace \
                     shows only its own sysctls); check it on the host"
            ),
            why,
        ),
        err => Finding::unreadable(check, err.to_string(), why),
    }
}

/// `net.core.somaxconn` caps every listen backlog.
pub fn somaxconn(tree: &Tree) -> Finding {
    let backlog = u64::try_from(LISTEN_BACKLOG).unwrap_or(0);
    let why = format!(
        "the kernel silently caps each listener's accept queue (tailgate asks for \
         {backlog} per shard) at somaxconn; when agents reconnect together (a gateway \
         restart, a load balancer failover) a short queue drops their SYNs, and each waits a \
         1 s, 3 s, 7 s retransmit"
    );
    match tree.read_u64("/proc/sys/net/core/somaxconn") {
        Err(err) => unread(CHECK_SOMAXCONN, err, &why),
        Ok(value) if value >= backlog => Finding::ok(CHECK_SOMAXCONN, value.to_string(), why),
        Ok(value) => Finding::flag(
            CHECK_SOMAXCONN,
            Level::Warn,
            value.to_string(),
            why,
            format!(
                "sysctl -w net.core.somaxconn={SOMAXCONN_RECOMMENDED}, and persist it in \
                 /etc/sysctl.d/"
            ),
        ),
    }
}

/// `tcp_rmem`: the receive window autotuning may grow to.
pub fn tcp_rmem(tree: &Tree) -> Finding {
    tcp_buffer(
        tree,
        CHECK_TCP_RMEM,
        "the largest receive window a connection may advertise: agents sending from another \
         region or zone are capped at max ÷ round trip",
    )
}

/// `tcp_wmem`: the send buffer autotuning may grow to.
pub fn tcp_wmem(tree: &Tree) -> Finding {
    tcp_buffer(
        tree,
        CHECK_TCP_WMEM,
        "the most unacknowledged data a connection may have in flight: exporters sending to a \
         central endpoint in another region are capped at max ÷ round trip",
    )
}

fn tcp_buffer(tree: &Tree, check: &'static str, why: &str) -> Finding {
    let path = format!("/proc/sys/{}", check.replace('.', "/"));
    match tree.read_u64s::<3>(&path) {
        Err(err) => unread(check, err, why),
        Ok([min, default, max]) => {
            let found = format!("min {min}, default {default}, max {max}");
            if max >= TCP_BUFFER_MAX_MIN_BYTES {
                Finding::ok(check, found, why)
            } else {
                Finding::flag(
                    check,
                    Level::Warn,
                    found,
                    format!(
                        "{why}; under {} MiB a 50 ms link carries less than about 670 Mbit/s \
                         per connection",
                        TCP_BUFFER_MAX_MIN_BYTES >> 20
                    ),
                    format!(
                        "sysctl -w {check}=\"{min} {default} \
                         {TCP_BUFFER_MAX_RECOMMENDED_BYTES}\", and persist it in /etc/sysctl.d/"
                    ),
                )
            }
        }
    }
}

/// `net.core.rmem_max` against the receive buffer the tuning profile asks for (0: none, the
/// kernel autotunes within `tcp_rmem`).
pub fn rmem_max(tree: &Tree, requested_bytes: u64) -> Finding {
    socket_buffer_cap(
        tree,
        CHECK_RMEM_MAX,
        "socket_receive_buffer_bytes",
        requested_bytes,
    )
}

/// `net.core.wmem_max` against the send buffer the tuning profile asks for.
pub fn wmem_max(tree: &Tree, requested_bytes: u64) -> Finding {
    socket_buffer_cap(
        tree,
        CHECK_WMEM_MAX,
        "socket_send_buffer_bytes",
        requested_bytes,
    )
}

fn socket_buffer_cap(tree: &Tree, check: &'static str, key: &str, requested: u64) -> Finding {
    let why = format!(
        "caps a buffer set explicitly (the profile's {key}); the kernel silently clamps a \
         larger request, while 0 leaves autotuning within tcp_rmem/tcp_wmem in charge"
    );
    let path = format!("/proc/sys/{}", check.replace('.', "/"));
    match tree.read_u64(&path) {
        Err(err) => unread(check, err, &why),
        Ok(max) if requested <= max => {
            let asked = if requested == 0 {
                "no explicit buffer asked for".to_string()
            } else {
                format!("{key} {requested} fits")
            };
            Finding::ok(check, format!("{max} ({asked})"), why)
        }
        Ok(max) => Finding::flag(
            check,
            Level::Warn,
            format!("{max}, below {key} {requested}"),
            why,
            format!("sysctl -w {check}={requested}, and persist it in /etc/sysctl.d/"),
        ),
    }
}

/// `netdev_max_backlog`, judged by the packets its queue has dropped (`/proc/net/softnet_stat`,
/// second column) rather than by a number: the default 1000 is enough until a NIC's bursts
/// outrun the CPU that drains them, and the drop counter says when that has happened.
pub fn netdev_backlog(tree: &Tree) -> Finding {
    let why = "packets wait in a per-CPU queue of this length before the TCP stack takes them; \
               a full queue drops them, and TCP recovers by retransmitting";
    let value = match tree.read_u64("/proc/sys/net/core/netdev_max_backlog") {
        Ok(value) => value,
        Err(err) => return unread(CHECK_NETDEV_BACKLOG, err, why),
    };
    let dropped = tree
        .read("/proc/net/softnet_stat")
        .ok()
        .and_then(|text| softnet_dropped(&text));
    match dropped {
        None => Finding::ok(
            CHECK_NETDEV_BACKLOG,
            format!("{value} (drop counters not readable)"),
            why,
        ),
        Some(0) => Finding::ok(
            CHECK_NETDEV_BACKLOG,
            format!("{value}, no packet dropped for a full backlog since boot"),
            why,
        ),
        Some(dropped) => Finding::flag(
            CHECK_NETDEV_BACKLOG,
            Level::Warn,
            format!("{value}, and {dropped} packet(s) dropped for a full backlog since boot"),
            why,
            format!(
                "sysctl -w net.core.netdev_max_backlog={}, persist it in /etc/sysctl.d/, and \
                 spread NIC interrupts over more CPUs (the tuning profile's irq_cpus)",
                value.saturating_mul(4).max(8192)
            ),
        ),
    }
}

/// The sum of `/proc/net/softnet_stat`'s second column (hex, per CPU): packets dropped because
/// the backlog was full. `None` if the text is not that table.
fn softnet_dropped(text: &str) -> Option<u64> {
    let mut total = 0u64;
    for line in text.lines().take(SOFTNET_LINES_MAX) {
        let dropped = line.split_whitespace().nth(1)?;
        total = total.saturating_add(u64::from_str_radix(dropped, 16).ok()?);
    }
    Some(total)
}

/// `ip_local_port_range`: the ports outgoing connections (exporters, peer gateways) bind.
pub fn port_range(tree: &Tree) -> Finding {
    let why = "exporters and the load-balancing exporter connect out from these ports; a \
               closed connection holds its port for 60 s (TIME_WAIT) per destination, so a \
               narrow range runs out under reconnect churn";
    match tree.read_u64s::<2>("/proc/sys/net/ipv4/ip_local_port_range") {
        Err(err) => unread(CHECK_PORT_RANGE, err, why),
        Ok([low, high]) => {
            let ports = high.saturating_sub(low).saturating_add(1);
            let found = format!("{low}-{high} ({ports} ports)");
            if high >= low && ports >= PORT_RANGE_MIN {
                Finding::ok(CHECK_PORT_RANGE, found, why)
            } else {
                Finding::flag(
                    CHECK_PORT_RANGE,
                    Level::Warn,
                    found,
                    why,
                    "sysctl -w net.ipv4.ip_local_port_range=\"32768 60999\" (the kernel's \
                     default), keeping tailgate's listening ports (4317, 4318, 8888) outside it",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softnet_drops_are_summed_over_cpus() {
        let text = "0000a1b2 00000000 00000003 00000000\n0001ffff 00000010 00000000 00000000\n";
        assert_eq!(softnet_dropped(text), Some(16));
        assert_eq!(softnet_dropped(""), Some(0));
        assert_eq!(softnet_dropped("zz"), None);
        assert_eq!(softnet_dropped("00 xx"), None);
    }
}
