//! Listening and accepting: each shard's SO_REUSEPORT listeners, the connection budget, and an
//! accept loop that cannot spin.
//!
//! # The descriptor budget
//!
//! Every connection is a file descriptor, and a process out of descriptors fails everywhere at
//! once: accepts, exporter connections, files. So the caps are derived from the machine at
//! start ([`ConnectionBudget::from_limit`]): of the process's `RLIMIT_NOFILE` (raised to its hard
//! limit first), [`RESERVED_DESCRIPTORS`] are kept for the process (standard streams, the admin
//! server and its connections, logs), [`RESERVED_DESCRIPTORS_PER_SHARD`] for each shard's
//! runtime (its io_uring rings, eventfds, timers), [`RESERVED_DESCRIPTORS_PER_EXPORTER`] for each
//! exporter on each shard (its connections and, later, queue files), one for each listener, and
//! the rest is split evenly between the listeners of all shards. No listener exceeds
//! [`CONNECTIONS_PER_LISTENER_MAX`]. All listeners together then cannot exhaust descriptors,
//! and a connection past its listener's cap is closed as soon as it is accepted — refused now,
//! counted, rather than failing something else later.
//!
//! # Accept errors
//!
//! A failed accept is counted by reason and followed by a pause that doubles with each
//! consecutive failure ([`ACCEPT_BACKOFF_MIN`] up to [`ACCEPT_BACKOFF_MAX`]) and resets on the
//! next success. An accept that fails at once (EMFILE does) therefore yields the shard to the
//! tasks that close connections and to the stop signal, instead of retrying in a loop that
//! starves them.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};

use crate::telemetry::ConnectionMetrics;
use tailgate_shards::sync::Stop;

/// The listen backlog of each shard's sockets.
pub(crate) const LISTEN_BACKLOG: i32 = 1024;

/// Descriptors kept for the process as a whole: standard streams, the admin listener and its
/// connections, log files, signal handling.
pub const RESERVED_DESCRIPTORS: u64 = 64;
/// Descriptors kept for each shard's runtime: glommio's io_uring rings, eventfds and timers.
pub const RESERVED_DESCRIPTORS_PER_SHARD: u64 = 32;
/// Descriptors kept for each exporter on each shard: its connections to the destination.
pub const RESERVED_DESCRIPTORS_PER_EXPORTER: u64 = 8;
/// The most connections one listener (one receiver transport on one shard) serves at once,
/// however many descriptors there are.
pub const CONNECTIONS_PER_LISTENER_MAX: usize = 16_384;

/// The first pause after a failed accept.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest pause between accepts while they keep failing.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How many connections each listener may hold, derived from the descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// The process's open-file limit the budget was drawn from.
    pub descriptors: u64,
    /// Descriptors kept for everything but client connections.
    pub reserved: u64,
    /// The cap of each listener.
    pub per_listener: usize,
}

/// Why no connection budget fits the descriptor limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetTooSmall {
    /// The open-file limit.
    pub descriptors: u64,
    /// What the gateway needs before its first connection.
    pub needed: u64,
}

impl std::fmt::Display for BudgetTooSmall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the open-file limit (RLIMIT_NOFILE) is {}, and this configuration needs {} \
             descriptors before it serves one connection; raise it (systemd: LimitNOFILE=, \
             shell: ulimit -n) or run fewer shards, receivers or exporters",
            self.descriptors, self.needed
        )
    }
}

impl ConnectionBudget {
    /// Splits `descriptors` between `listeners` listeners over `shards` shards that run
    /// `exporters` exporters each.
    pub fn from_limit(
        descriptors: u64,
        shards: usize,
        listeners: usize,
        exporters: usize,
    ) -> Result<ConnectionBudget, BudgetTooSmall> {
        let shards = shards as u64;
        let listeners = listeners as u64;
        let per_shard = (exporters as u64)
            .saturating_mul(RESERVED_DESCRIPTORS_PER_EXPORTER)
            .saturating_add(RESERVED_DESCRIPTORS_PER_SHARD);
        let reserved = RESERVED_DESCRIPTORS
            .saturating_add(shards.saturating_mul(per_shard))
            .saturating_add(listeners);
        // At least one connection per listener, or the gateway cannot serve at all.
        let needed = reserved.saturating_add(listeners);
        if descriptors < needed || listeners == 0 {
            return Err(BudgetTooSmall {
                descriptors,
                needed,
            });
        }
        // descriptors ≥ needed > reserved, and listeners > 0: checked above.
        let per_listener = descriptors
            .saturating_sub(reserved)
            .checked_div(listeners)
            .unwrap_or(0);
        Ok(ConnectionBudget {
            descriptors,
            reserved,
            per_listener: usize::try_from(per_listener)
                .unwrap_or(usize::MAX)
                .min(CONNECTIONS_PER_LISTENER_MAX),
        })
    }
}

/// The process's current open-file limit (the soft limit).
pub fn open_files_limit() -> io::Result<u64> {
    crate::sys::open_files_limits().map(|(soft, _)| soft)
}

/// Socket options of a shard's listening sockets, from the tuning profile; the connections
/// accepted on a listener inherit its buffer sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenOptions {
    /// SO_RCVBUF; 0 leaves the kernel's default and its receive-buffer autotuning.
    pub receive_buffer_bytes: u32,
    /// SO_SNDBUF; 0 leaves the kernel's default.
    pub send_buffer_bytes: u32,
    /// SO_INCOMING_CPU: among the SO_REUSEPORT listeners of an address, the kernel gives a
    /// new connection to the one whose CPU handled its packets (the NIC queue's interrupt CPU),
    /// so the connection's data stays in that CPU's cache.
    pub incoming_cpu: Option<usize>,
}

/// Binds one shard's listening socket on `addr`: SO_REUSEPORT so every shard binds the same
/// address and the kernel spreads connections over them, and SO_REUSEADDR so a (re)start is not
/// refused while connections of an earlier process sit in TIME_WAIT on the port. Buffer sizes
/// are set before `listen`, so the window scale a connection agrees in its handshake fits them.
/// Must run on the shard's executor, which the listener belongs to.
pub fn listen(addr: std::net::SocketAddr, options: ListenOptions) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if options.receive_buffer_bytes > 0 {
        socket.set_recv_buffer_size(options.receive_buffer_bytes as usize)?;
    }
    if options.send_buffer_bytes > 0 {
        socket.set_send_buffer_size(options.send_buffer_bytes as usize)?;
    }
    if let Some(cpu) = options.incoming_cpu {
        socket.set_cpu_affinity(cpu)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(tailgate_shards::net::listener_from_socket(socket))
}

/// Whether an accept error means the process or the kernel is out of descriptors or memory.
fn out_of_resources(err: &glommio::GlommioError<()>) -> bool {
    let glommio::GlommioError::IoError(err) = err else {
        return false;
    };
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The pause after `failures` consecutive failed accepts.
pub fn accept_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    ACCEPT_BACKOFF_MIN
        .saturating_mul(1u32 << doublings)
        .min(ACCEPT_BACKOFF_MAX)
}

/// A listener's open connections against its cap.
pub struct Connections {
    open: Cell<usize>,
    limit: usize,
    metrics: ConnectionMetrics,
}

impl Connections {
    /// No connections yet, at most `limit` at once.
    pub fn new(limit: usize, metrics: ConnectionMetrics) -> Rc<Self> {
        metrics.limit.set(i64::try_from(limit).unwrap_or(i64::MAX));
        Rc::new(Connections {
            open: Cell::new(0),
            limit,
            metrics,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.get()
    }

    /// Counts a connection closed because a timeout passed.
    pub fn timed_out(&self) {
        self.metrics.closed_on_timeout.inc();
    }

    /// Counts a connection ended because its client pinged too often.
    pub fn too_many_pings(&self) {
        self.metrics.closed_too_many_pings.inc();
    }

    fn set_open(&self, open: usize) {
        self.open.set(open);
        self.metrics
            .open
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }
}

/// The receivers' shared accept loop: accepts connections on `listener` until `stop` is
/// triggered and runs `serve(stream)` for each as a task of this shard, counting it in
/// `connections` from the moment it is accepted (so the cap and the shutdown drain, which waits
/// for the count to reach zero, see it at once) until its task ends. A connection over the cap
/// is closed at once; failed accepts back off (see the module documentation).
pub async fn serve_connections<F, Fut>(
    listener: &TcpListener,
    stop: &Stop,
    connections: &Rc<Connections>,
    mut serve: F,
) where
    F: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let mut failures = 0u32;
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            stop.wait().await;
            None
        })
        .await;
        let stream = match accepted {
            Some(Ok(stream)) => {
                failures = 0;
                stream
            }
            Some(Err(err)) => {
                failures = failures.saturating_add(1);
                if out_of_resources(&err) {
                    if failures == 1 {
                        tracing::warn!(
                            "accepting on {:?}: {err}; backing off until descriptors free up",
                            listener.local_addr().ok()
                        );
                    }
                    connections.metrics.accept_errors_descriptors.inc();
                } else {
                    connections.metrics.accept_errors_other.inc();
                }
                let pause = accept_backoff(failures);
                let stopped = future::or(
                    async {
                        glommio::timer::sleep(pause).await;
                        false
                    },
                    async {
                        stop.wait().await;
                        true
                    },
                )
                .await;
                if stopped {
                    break;
                }
                continue;
            }
            None => break,
        };
        if connections.open() >= connections.limit {
            connections.metrics.refused_at_limit.inc();
            drop(stream);
            continue;
        }
        connections.set_open(connections.open().saturating_add(1));
        let connection = serve(stream);
        let connections = connections.clone();
        glommio::spawn_local(async move {
            connection.await;
            connections.set_open(connections.open().saturating_sub(1));
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_the_reserve_and_splits_the_rest() {
        let budget = ConnectionBudget::from_limit(20_000, 2, 4, 1).unwrap();
        assert_eq!(budget.reserved, 64 + 2 * (32 + 8) + 4);
        assert_eq!(budget.per_listener, (20_000 - 148) / 4);
        let all = budget.per_listener as u64 * 4 + budget.reserved;
        assert!(all <= 20_000, "{all}");
        assert_eq!(
            ConnectionBudget::from_limit(1 << 40, 1, 2, 1)
                .unwrap()
                .per_listener,
            CONNECTIONS_PER_LISTENER_MAX
        );
        let err = ConnectionBudget::from_limit(100, 2, 4, 1).unwrap_err();
        assert_eq!(err.needed, 152);
        assert!(err.to_string().contains("RLIMIT_NOFILE"), "{err}");
    }

    #[test]
    fn listen_options_reach_the_connections_accepted() {
        // The listener's fd is glommio's; a connection accepted on it inherits its buffers.
        let receive_buffer = |options: ListenOptions| {
            glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                .spawn(move || async move {
                    let listener = listen("127.0.0.1:0".parse().unwrap(), options).unwrap();
                    let addr = listener.local_addr().unwrap();
                    let client = glommio::net::TcpStream::connect(addr).await.unwrap();
                    let accepted = listener.accept().await.unwrap();
                    let socket = socket2::SockRef::from(&accepted);
                    let sizes = (
                        socket.recv_buffer_size().unwrap(),
                        socket.send_buffer_size().unwrap(),
                    );
                    drop(client);
                    sizes
                })
                .unwrap()
                .join()
                .unwrap()
        };
        let tuned = ListenOptions {
            receive_buffer_bytes: 100_000,
            send_buffer_bytes: 50_000,
            incoming_cpu: Some(0),
        };
        // Linux doubles what is asked for, for its own bookkeeping (socket(7)).
        assert_eq!(receive_buffer(tuned), (2 * 100_000, 2 * 50_000));
        assert_ne!(receive_buffer(ListenOptions::default()).0, 2 * 100_000);
    }

    #[test]
    fn accept_backoff_doubles_to_its_ceiling() {
        assert_eq!(accept_backoff(1), ACCEPT_BACKOFF_MIN);
        assert_eq!(accept_backoff(2), ACCEPT_BACKOFF_MIN * 2);
        assert_eq!(accept_backoff(8), ACCEPT_BACKOFF_MIN * 128);
        assert_eq!(accept_backoff(9), ACCEPT_BACKOFF_MAX);
        assert_eq!(accept_backoff(u32::MAX), ACCEPT_BACKOFF_MAX);
    }
}
