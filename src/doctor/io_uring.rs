//! io_uring: can this process create a ring, and does the kernel know every operation glommio
//! submits?
//!
//! glommio 0.9 checks a fixed list of opcodes when it first starts an executor and exits the
//! process (`Your kernel is older than Caesar`) if one is missing; it also panics when the
//! kernel cannot answer the probe at all. The doctor probes the same list, plus
//! `ASYNC_CANCEL`, which glommio submits to cancel an operation without listing it, with a ring
//! of its own made by the `io-uring` crate, so the reason comes out as a finding instead.

use io_uring::{opcode, IoUring, Probe};

use super::{Finding, Level};

/// The check that a ring can be created.
pub const CHECK_RING: &str = "io_uring";
/// The check that the kernel supports the opcodes glommio submits.
pub const CHECK_OPCODES: &str = "io_uring.opcodes";

/// Entries of the probing ring: the smallest useful ring, since nothing is submitted on it.
const PROBE_RING_ENTRIES: u32 = 8;

/// The opcodes glommio 0.9 submits (`GLOMMIO_URING_OPS` in its `sys/uring.rs`, plus
/// `ASYNC_CANCEL`), each with its name and the kernel release that introduced it.
const GLOMMIO_OPCODES: [(u8, &str, &str); 24] = [
    (opcode::Nop::CODE, "NOP", "5.1"),
    (opcode::Readv::CODE, "READV", "5.1"),
    (opcode::Writev::CODE, "WRITEV", "5.1"),
    (opcode::Fsync::CODE, "FSYNC", "5.1"),
    (opcode::ReadFixed::CODE, "READ_FIXED", "5.1"),
    (opcode::WriteFixed::CODE, "WRITE_FIXED", "5.1"),
    (opcode::PollAdd::CODE, "POLL_ADD", "5.1"),
    (opcode::PollRemove::CODE, "POLL_REMOVE", "5.1"),
    (opcode::SendMsg::CODE, "SENDMSG", "5.3"),
    (opcode::RecvMsg::CODE, "RECVMSG", "5.3"),
    (opcode::Timeout::CODE, "TIMEOUT", "5.4"),
    (opcode::TimeoutRemove::CODE, "TIMEOUT_REMOVE", "5.5"),
    (opcode::Accept::CODE, "ACCEPT", "5.5"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL", "5.5"),
    (opcode::LinkTimeout::CODE, "LINK_TIMEOUT", "5.5"),
    (opcode::Connect::CODE, "CONNECT", "5.5"),
    (opcode::Fallocate::CODE, "FALLOCATE", "5.6"),
    (opcode::OpenAt::CODE, "OPENAT", "5.6"),
    (opcode::Close::CODE, "CLOSE", "5.6"),
    (opcode::Statx::CODE, "STATX", "5.6"),
    (opcode::Read::CODE, "READ", "5.6"),
    (opcode::Write::CODE, "WRITE", "5.6"),
    (opcode::Send::CODE, "SEND", "5.6"),
    (opcode::Recv::CODE, "RECV", "5.6"),
];

/// Why no ring could be created or probed.
#[derive(Debug)]
enum RingError {
    /// `io_uring_setup` does not exist: a kernel before 5.1, or one built without io_uring.
    Unsupported,
    /// `kernel.io_uring_disabled` forbids rings to this process (1: only to members of
    /// `kernel.io_uring_group` and privileged processes; 2: to everyone).
    Disabled(u64),
    /// Refused with `io_uring_disabled` at 0: a seccomp filter (container runtimes' default
    /// profiles block io_uring) or a security module.
    Denied,
    /// Out of locked memory: before 5.12 the ring itself is charged to `RLIMIT_MEMLOCK`.
    NoMemory,
    /// Any other refusal.
    Other(std::io::Error),
    /// A ring was created, but the kernel cannot answer a probe (`IORING_REGISTER_PROBE` came
    /// in 5.6).
    NoProbe(std::io::Error),
}

impl RingError {
    fn from_setup(err: std::io::Error) -> RingError {
        match err.raw_os_error() {
            Some(libc::ENOSYS) => RingError::Unsupported,
            Some(libc::EPERM) => match live_sysctl("kernel/io_uring_disabled") {
                Some(level) if level > 0 => RingError::Disabled(level),
                _ => RingError::Denied,
            },
            Some(libc::ENOMEM) => RingError::NoMemory,
            _ => RingError::Other(err),
        }
    }

    fn found(&self) -> String {
        match self {
            RingError::Unsupported => "io_uring_setup: not implemented (ENOSYS)".to_string(),
            RingError::Disabled(level) => {
                format!("io_uring_setup refused: kernel.io_uring_disabled = {level}")
            }
            RingError::Denied => {
                "io_uring_setup refused (EPERM) with kernel.io_uring_disabled = 0".to_string()
            }
            RingError::NoMemory => "io_uring_setup: out of locked memory (ENOMEM)".to_string(),
            RingError::Other(err) => format!("io_uring_setup failed: {err}"),
            RingError::NoProbe(err) => format!("a ring was created, but not probed: {err}"),
        }
    }

    fn fix(&self) -> String {
        match self {
            RingError::Unsupported => {
                "run a kernel of 5.8 or later built with CONFIG_IO_URING=y".to_string()
            }
            RingError::Disabled(_) => "sysctl -w kernel.io_uring_disabled=0 (persist it in \
                 /etc/sysctl.d/), or with 1 add the gateway's user to the group \
                 kernel.io_uring_group names"
                .to_string(),
            RingError::Denied => "allow io_uring_setup, io_uring_enter and io_uring_register in \
                 the seccomp profile (docker/podman: --security-opt seccomp=PROFILE; \
                 Kubernetes: securityContext.seccompProfile) or in the security module's policy"
                .to_string(),
            RingError::NoMemory => "raise RLIMIT_MEMLOCK (systemd: LimitMEMLOCK=infinity; \
                 shell: ulimit -l unlimited), or run a kernel of 5.12 or later"
                .to_string(),
            RingError::Other(_) => "see io_uring_setup(2) for the error".to_string(),
            RingError::NoProbe(_) => {
                "run a kernel of 5.8 or later, as glommio requires".to_string()
            }
        }
    }
}

/// Creates a ring and probes it: the `io_uring` and `io_uring.opcodes` findings.
pub fn check() -> (Finding, Finding) {
    let release = live_text("kernel/osrelease").unwrap_or_else(|| "unknown".to_string());
    let supported = match probe() {
        Ok(probe) => probe,
        Err(err) => {
            let why = "every shard is a glommio executor whose I/O goes through its own \
                       io_uring rings: without one no shard starts";
            let ring = Finding::flag(
                CHECK_RING,
                Level::Fail,
                format!("{} (kernel {release})", err.found()),
                why,
                err.fix(),
            );
            let opcodes = Finding::flag(
                CHECK_OPCODES,
                Level::Fail,
                "not probed: no io_uring ring could be created",
                why,
                err.fix(),
            );
            return (ring, opcodes);
        }
    };
    let ring = Finding::ok(
        CHECK_RING,
        format!("a ring was created and probed (kernel {release})"),
        "every shard is a glommio executor whose I/O goes through its own io_uring rings",
    );
    let missing: Vec<String> = GLOMMIO_OPCODES
        .iter()
        .filter(|(code, _, _)| !supported.is_supported(*code))
        .map(|(_, name, since)| format!("{name} (Linux {since})"))
        .collect();
    let opcodes = if missing.is_empty() {
        Finding::ok(
            CHECK_OPCODES,
            format!("all {} opcodes glommio submits", GLOMMIO_OPCODES.len()),
            "glommio exits the process at its first executor when one is missing",
        )
    } else {
        Finding::flag(
            CHECK_OPCODES,
            Level::Fail,
            format!("kernel {release} lacks {}", missing.join(", ")),
            "glommio exits the process at its first executor when one is missing",
            "run a kernel of 5.8 or later (glommio's minimum)",
        )
    };
    (ring, opcodes)
}

/// The opcodes a freshly created ring supports.
fn probe() -> Result<Probe, RingError> {
    let ring = IoUring::new(PROBE_RING_ENTRIES).map_err(RingError::from_setup)?;
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(RingError::NoProbe)?;
    Ok(probe)
}

/// A sysctl of this machine (not of the doctor's tree: it explains a live refusal).
fn live_sysctl(name: &str) -> Option<u64> {
    live_text(name)?.parse().ok()
}

/// The text of `/proc/sys/NAME` on this machine, trimmed.
fn live_text(name: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/sys/{name}")).ok()?;
    Some(text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_opcode_list_names_each_opcode_once() {
        let mut codes: Vec<u8> = GLOMMIO_OPCODES.iter().map(|(code, _, _)| *code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), GLOMMIO_OPCODES.len());
    }

    #[test]
    fn setup_errors_are_told_apart() {
        let err = |errno| std::io::Error::from_raw_os_error(errno);
        assert!(matches!(
            RingError::from_setup(err(libc::ENOSYS)),
            RingError::Unsupported
        ));
        assert!(matches!(
            RingError::from_setup(err(libc::ENOMEM)),
            RingError::NoMemory
        ));
        assert!(matches!(
            RingError::from_setup(err(libc::EINVAL)),
            RingError::Other(_)
        ));
    }
}
