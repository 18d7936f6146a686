//! Resource limits: the locked memory io_uring charges, and the open files every connection
//! takes.

use super::{Finding, Level};

/// The `RLIMIT_MEMLOCK` check.
pub const CHECK_MEMLOCK: &str = "rlimit.memlock";
/// The `RLIMIT_NOFILE` check.
pub const CHECK_NOFILE: &str = "rlimit.nofile";

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Below this soft limit glommio refuses to start an executor (`MIN_MEMLOCK_LIMIT` in its
/// `Reactor::new`).
const GLOMMIO_MEMLOCK_MIN_BYTES: u64 = 512 * KIB;

/// The I/O memory each glommio executor registers with io_uring (its `DEFAULT_IO_MEMORY`;
/// tailgate keeps the default).
const IO_MEMORY_BYTES: u64 = 10 * MIB;

/// The rings of one glommio executor (main, latency and poll), each of which registers the
/// executor's I/O memory, so the kernel charges it once per ring.
const RINGS_PER_EXECUTOR: u64 = 3;

/// The open-file limit under which a gateway's connection caps get tight: at most 16 384
/// connections per listener (`CONNECTIONS_PER_LISTENER_MAX`) times the two OTLP listeners
/// of a shard is 32 768 on one shard alone, and agents number in the thousands per gateway.
const NOFILE_RECOMMENDED: u64 = 65_536;

/// `CAP_IPC_LOCK`'s bit in the capability sets (`linux/capability.h`).
const CAP_IPC_LOCK_BIT: u32 = 14;

/// `RLIMIT_MEMLOCK` against what `shards` executors need.
pub fn memlock(shards: usize) -> Finding {
    let (soft, _hard) = match crate::sys::locked_memory_limits() {
        Ok(limits) => limits,
        Err(err) => {
            return Finding::flag(
                CHECK_MEMLOCK,
                Level::Warn,
                format!("cannot read RLIMIT_MEMLOCK: {err}"),
                "glommio needs some locked memory for its rings",
                "see getrlimit(2)",
            )
        }
    };
    let shards = u64::try_from(shards.max(1)).unwrap_or(u64::MAX);
    let wanted = shards
        .saturating_mul(RINGS_PER_EXECUTOR)
        .saturating_mul(IO_MEMORY_BYTES);
    memlock_finding(soft, has_ipc_lock(), shards, wanted)
}

/// The memlock finding for a soft limit, whether the process holds `CAP_IPC_LOCK`, and the
/// bytes `shards` executors would register.
fn memlock_finding(soft: u64, ipc_lock: bool, shards: u64, wanted: u64) -> Finding {
    let found = format!("soft limit {}", limit_text(soft));
    let fix = "systemd: LimitMEMLOCK=infinity in the unit; shell: ulimit -l unlimited; \
               or /etc/security/limits.conf: `USER - memlock unlimited`";
    if soft != libc::RLIM_INFINITY && soft < GLOMMIO_MEMLOCK_MIN_BYTES {
        return Finding::flag(
            CHECK_MEMLOCK,
            Level::Fail,
            found,
            "glommio refuses to start an executor below 512 KiB of locked memory, so no shard \
             starts",
            fix,
        );
    }
    if ipc_lock {
        return Finding::ok(
            CHECK_MEMLOCK,
            format!("{found}, and the process has CAP_IPC_LOCK"),
            "io_uring charges no locked memory to a process with CAP_IPC_LOCK",
        );
    }
    if soft == libc::RLIM_INFINITY || soft >= wanted {
        return Finding::ok(
            CHECK_MEMLOCK,
            found,
            format!(
                "{shards} shard(s) register {} of I/O memory with io_uring (10 MiB per ring, \
                 3 rings per shard)",
                limit_text(wanted)
            ),
        );
    }
    Finding::flag(
        CHECK_MEMLOCK,
        Level::Warn,
        found,
        format!(
            "{shards} shard(s) would register {} of I/O memory with io_uring (10 MiB per \
             ring, 3 rings per shard); past the limit glommio skips registering it and file \
             I/O (the persistent queue) copies through unregistered buffers",
            limit_text(wanted)
        ),
        fix,
    )
}

/// Whether this process's effective capabilities include `CAP_IPC_LOCK` (root usually has it;
/// io_uring then charges nothing to the memlock limit).
fn has_ipc_lock() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| effective_caps(&status))
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK_BIT) != 0)
}

/// The `CapEff:` mask of a `/proc/PID/status` text.
fn effective_caps(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// `RLIMIT_NOFILE`: tailgate raises its soft limit to the hard limit at start, so the hard
/// limit is the one that bounds connections.
pub fn nofile() -> Finding {
    match crate::sys::open_files_limits() {
        Ok((soft, hard)) => nofile_finding(soft, hard),
        Err(err) => Finding::flag(
            CHECK_NOFILE,
            Level::Warn,
            format!("cannot read RLIMIT_NOFILE: {err}"),
            "every client connection is a file descriptor",
            "see getrlimit(2)",
        ),
    }
}

fn nofile_finding(soft: u64, hard: u64) -> Finding {
    let found = format!(
        "soft {}, hard {}",
        limit_text_count(soft),
        limit_text_count(hard)
    );
    if hard == libc::RLIM_INFINITY || hard >= NOFILE_RECOMMENDED {
        return Finding::ok(
            CHECK_NOFILE,
            found,
            "tailgate raises the soft limit to the hard one at start and splits it into \
             per-listener connection caps",
        );
    }
    Finding::flag(
        CHECK_NOFILE,
        Level::Warn,
        found,
        format!(
            "every client connection is a file descriptor: tailgate raises the soft limit to \
             the hard one at start and splits it into per-listener connection caps, so under \
             {NOFILE_RECOMMENDED} a gateway in front of thousands of agents refuses \
             connections it could serve"
        ),
        "systemd: LimitNOFILE=1048576 in the unit; shell: ulimit -Hn 1048576 (as root) or \
         /etc/security/limits.conf: `USER - nofile 1048576`",
    )
}

/// A byte limit as people write it.
fn limit_text(bytes: u64) -> String {
    if bytes == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// A count limit, or `unlimited`.
fn limit_text_count(count: u64) -> String {
    if count == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        count.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memlock_under_glommios_minimum_fails_even_with_the_capability() {
        let f = memlock_finding(64 * KIB, true, 2, 60 * MIB);
        assert_eq!(f.level, Level::Fail);
        assert!(f.fix.is_some());
    }

    #[test]
    fn memlock_below_the_registered_memory_warns_without_the_capability() {
        assert_eq!(
            memlock_finding(8 * MIB, false, 2, 60 * MIB).level,
            Level::Warn
        );
        assert_eq!(memlock_finding(8 * MIB, true, 2, 60 * MIB).level, Level::Ok);
        assert_eq!(
            memlock_finding(60 * MIB, false, 2, 60 * MIB).level,
            Level::Ok
        );
        let unlimited = memlock_finding(libc::RLIM_INFINITY, false, 2, 60 * MIB);
        assert_eq!(unlimited.level, Level::Ok);
        assert!(unlimited.found.contains("unlimited"));
    }

    #[test]
    fn nofile_is_judged_by_the_hard_limit() {
        assert_eq!(nofile_finding(1024, 1_048_576).level, Level::Ok);
        assert_eq!(nofile_finding(1024, 4096).level, Level::Warn);
        assert_eq!(nofile_finding(1024, libc::RLIM_INFINITY).level, Level::Ok);
    }

    #[test]
    fn effective_capabilities_are_read_from_status() {
        let status = "Name:\ttailgate\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(effective_caps(status), Some(0x1ff_ffff_ffff));
        assert_eq!(effective_caps("Name:\tx\n"), None);
    }

    #[test]
    fn limits_print_in_their_units() {
        assert_eq!(limit_text(8 * MIB), "8 MiB");
        assert_eq!(limit_text(512 * KIB), "512 KiB");
        assert_eq!(limit_text(1000), "1000 bytes");
        assert_eq!(limit_text(libc::RLIM_INFINITY), "unlimited");
    }
}
