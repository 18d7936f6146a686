//! Why the gateway could not start, or stopped: each kind says what to do about it, and which
//! exit status it ends the process with.

use std::io;
use std::net::SocketAddr;

use crate::lifecycle;

/// Why the gateway could not start.
#[derive(Debug)]
pub enum StartError {
    /// The configuration asks for something this build does not do.
    Unsupported(String),
    /// The machine cannot give what the configuration asks (CPUs, the memory size, a name
    /// that resolves): the same file may be right for another machine, so `check-config`
    /// reports these as notes.
    Machine(String),
    /// A thread or the signal handlers could not be set up, or a shard failed (see the log).
    Io(io::Error),
    /// A listener could not bind its address.
    Bind {
        /// Which listener, with the key that sets its address.
        listener: &'static str,
        /// The address it was given.
        addr: SocketAddr,
        /// What the system said.
        source: io::Error,
    },
    /// A shard failed while running (it panicked): the gateway stopped, fail-stop.
    ShardFailed(io::Error),
    /// The gateway stopped, but what it had accepted was not all sent: the spans, metric points
    /// and log records still held at the drain's deadline (a central that did not take them).
    LostAtShutdown {
        /// Spans, metric points and log records lost.
        items: [u64; 3],
    },
}

/// The exit status of a shutdown that left accepted data unsent: `EX_TEMPFAIL` from
/// sysexits(3), so a supervisor tells it from a clean stop (0), a refused configuration (1) and
/// a fatal error (70).
pub const LOST_AT_SHUTDOWN_EXIT_CODE: u8 = 75;

impl StartError {
    /// The process exit status this error ends the gateway with.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::ShardFailed(_) => lifecycle::FATAL_EXIT_CODE as u8,
            StartError::LostAtShutdown { .. } => LOST_AT_SHUTDOWN_EXIT_CODE,
            _ => 1,
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Unsupported(what) | StartError::Machine(what) => f.write_str(what),
            StartError::Io(err) => write!(f, "{err}"),
            StartError::ShardFailed(err) => write!(f, "stopped after a fatal error: {err}"),
            StartError::LostAtShutdown {
                items: [spans, points, records],
            } => write!(
                f,
                "stopped, but {spans} span(s), {points} metric point(s) and {records} log \
                 record(s) it had accepted were still unsent at the drain's deadline and are \
                 lost (tailgate_dropped_*{{reason=\"shutdown\"}}); there is no on-disk queue \
                 to keep them"
            ),
            StartError::Bind {
                listener,
                addr,
                source,
            } => {
                write!(f, "{listener}: cannot listen on {addr}: {source}")?;
                if source.kind() == io::ErrorKind::AddrInUse {
                    f.write_str("; stop what listens there, or choose another address")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for StartError {}

impl From<io::Error> for StartError {
    fn from(err: io::Error) -> Self {
        StartError::Io(err)
    }
}
