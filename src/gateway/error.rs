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
}

impl StartError {
    /// The process exit status this error ends the gateway with.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::ShardFailed(_) => lifecycle::FATAL_EXIT_CODE as u8,
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
