//! Where an exporter connects: its endpoint's name resolved off the shard's thread, every
//! address it resolves to used, and resolved again on an interval and after a failure.
//!
//! The system resolver (`getaddrinfo`) blocks; on a shard's thread it would stop every
//! connection the shard serves for as long as the DNS server takes. It runs instead on the
//! executor's blocking-task thread (glommio's `spawn_blocking`), bounded by
//! [`RESOLVE_TIMEOUT`], and the shard awaits the answer like any other I/O. An endpoint given as
//! an IP address never touches the resolver.
//!
//! A name may stand for several addresses (several centrals behind one DNS name, a headless
//! Kubernetes Service): each new connection starts at the next address in turn, so an
//! exporter's connections spread over all of them, and falls through to the others if that one
//! refuses. The answer is used for [`REFRESH_INTERVAL`], or until every address failed, so
//! addresses that come and go are followed. A resolution that fails while an earlier answer is
//! known keeps the earlier answer (a DNS outage does not take a working upstream away).

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long a resolved answer is used before the name is resolved again.
pub(crate) const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// How long one resolution may take.
pub(crate) const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most addresses kept from one answer.
pub(crate) const ADDRESSES_MAX: usize = 64;

/// One endpoint's addresses, on one shard.
#[derive(Debug)]
pub(crate) struct Resolver {
    host: String,
    port: u16,
    /// The endpoint's IP address, when it was given as one.
    literal: Option<SocketAddr>,
    answer: RefCell<Answer>,
    /// Where the next connection starts in the answer.
    next: Cell<usize>,
    /// `balancer_name: pick_first`: every connection starts at the first address.
    first_always: Cell<bool>,
    /// A lookup is under way: others use the last answer instead of starting one more, so a
    /// DNS server that hangs queues at most one lookup per [`RESOLVE_TIMEOUT`] per endpoint on
    /// the blocking-task thread, however many connections are being made.
    resolving: Cell<bool>,
}

#[derive(Debug, Default)]
struct Answer {
    addresses: Vec<SocketAddr>,
    resolved_at: Option<Instant>,
    /// Every address failed since the last resolution: resolve before the next connection.
    stale: bool,
}

impl Resolver {
    /// A resolver for `host:port` (a name, or an IP address).
    pub(crate) fn new(host: &str, port: u16) -> Resolver {
        Resolver {
            host: host.to_string(),
            port,
            literal: host
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, port)),
            answer: RefCell::new(Answer::default()),
            next: Cell::new(0),
            first_always: Cell::new(false),
            resolving: Cell::new(false),
        }
    }

    /// The addresses to try for a new connection, in order: the answer rotated to start at the
    /// next address in turn. Resolves first when the answer is missing, old or stale.
    pub(crate) async fn addresses(&self) -> io::Result<Vec<SocketAddr>> {
        if let Some(addr) = self.literal {
            return Ok(vec![addr]);
        }
        let due = {
            let answer = self.answer.borrow();
            answer.stale
                || answer
                    .resolved_at
                    .is_none_or(|at| at.elapsed() >= REFRESH_INTERVAL)
        };
        if due && self.resolving.get() && !self.answer.borrow().addresses.is_empty() {
            return Ok(self.rotated());
        }
        if due && self.resolving.get() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("resolving {} is still under way", self.host),
            ));
        }
        if due {
            // Cleared however the lookup ends, a connection attempt that times out and drops
            // this future included.
            let _resolving = Resolving::start(&self.resolving);
            match self.resolve().await {
                Ok(addresses) => self.answered(addresses),
                // Keep using what worked; resolve again on the next connection.
                Err(err) if !self.answer.borrow().addresses.is_empty() => {
                    tracing::debug!(
                        "resolving {}: {err}; the last answer stays in use",
                        self.host
                    );
                }
                Err(err) => return Err(err),
            }
        }
        Ok(self.rotated())
    }

    /// Starts the rotation at the `offset`th address: shard `n` passes `n`, so the shards'
    /// first connections spread over the addresses too.
    pub(crate) fn start_at(&self, offset: usize) {
        self.next.set(offset);
    }

    /// Makes every connection start at the first address (`pick_first`) rather than the next
    /// in turn.
    pub(crate) fn pick_first(&self) {
        self.first_always.set(true);
    }

    /// The port connections go to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The name (or IP address) resolved.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// Every address of the last answer failed: the next connection resolves again.
    pub(crate) fn all_failed(&self) {
        self.answer.borrow_mut().stale = true;
    }

    /// The name's addresses, from the blocking-task thread, within [`RESOLVE_TIMEOUT`].
    async fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        lookup(&self.host, self.port, RESOLVE_TIMEOUT).await
    }

    fn answered(&self, mut addresses: Vec<SocketAddr>) {
        addresses.dedup();
        let mut answer = self.answer.borrow_mut();
        if answer.addresses != addresses && answer.resolved_at.is_some() {
            tracing::info!(
                "{}:{} now resolves to {addresses:?} (was {:?})",
                self.host,
                self.port,
                answer.addresses
            );
        }
        *answer = Answer {
            addresses,
            resolved_at: Some(Instant::now()),
            stale: false,
        };
    }

    fn rotated(&self) -> Vec<SocketAddr> {
        let answer = self.answer.borrow();
        let len = answer.addresses.len();
        if len == 0 {
            return Vec::new();
        }
        if self.first_always.get() {
            return answer.addresses.clone();
        }
        let start = self.next.get() % len;
        self.next.set(start + 1);
        answer.addresses[start..]
            .iter()
            .chain(&answer.addresses[..start])
            .copied()
            .collect()
    }
}

/// The addresses of `host` on `port`, looked up on the executor's blocking-task thread within
/// `timeout` (at most [`ADDRESSES_MAX`], in the resolver's order); an error when there are
/// none. Must run on a glommio executor.
pub(crate) async fn lookup(
    host: &str,
    port: u16,
    timeout: Duration,
) -> io::Result<Vec<SocketAddr>> {
    let owned = host.to_string();
    let lookup = glommio::executor().spawn_blocking(move || {
        (owned.as_str(), port)
            .to_socket_addrs()
            .map(|addrs| addrs.take(ADDRESSES_MAX).collect::<Vec<_>>())
    });
    let answer = glommio::timer::timeout(timeout, async { Ok(lookup.await) })
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("resolving {host} took longer than {timeout:?}"),
            )
        })??;
    if answer.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the name resolved to no address",
        ));
    }
    Ok(answer)
}

/// Marks a lookup under way for as long as it lives.
struct Resolving<'a>(&'a Cell<bool>);

impl<'a> Resolving<'a> {
    fn start(flag: &'a Cell<bool>) -> Self {
        flag.set(true);
        Resolving(flag)
    }
}

impl Drop for Resolving<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        glommio::LocalExecutor::default().run(future)
    }

    #[test]
    fn an_ip_address_is_its_own_answer() {
        let resolver = Resolver::new("127.0.0.1", 4317);
        let addrs = run(resolver.addresses()).unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:4317".parse().unwrap()]);
    }

    #[test]
    fn connections_start_at_each_address_in_turn() {
        let resolver = Resolver::new("central.example", 4317);
        let a: SocketAddr = "10.0.0.1:4317".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:4317".parse().unwrap();
        let c: SocketAddr = "10.0.0.3:4317".parse().unwrap();
        resolver.answered(vec![a, b, c]);
        let firsts: Vec<SocketAddr> = (0..4)
            .map(|_| run(resolver.addresses()).unwrap()[0])
            .collect();
        assert_eq!(firsts, vec![a, b, c, a]);
        assert_eq!(run(resolver.addresses()).unwrap(), vec![b, c, a]);
    }

    #[test]
    fn pick_first_starts_every_connection_at_the_first_address() {
        let resolver = Resolver::new("central.example", 4317);
        resolver.pick_first();
        resolver.start_at(2);
        let a: SocketAddr = "10.0.0.1:4317".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:4317".parse().unwrap();
        resolver.answered(vec![a, b]);
        for _ in 0..3 {
            assert_eq!(run(resolver.addresses()).unwrap(), vec![a, b]);
        }
    }

    #[test]
    fn a_name_resolves_off_the_shard_thread_and_again_when_stale() {
        let resolver = Resolver::new("localhost", 4317);
        let addrs = run(resolver.addresses()).unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        let first = resolver.answer.borrow().resolved_at.unwrap();
        resolver.all_failed();
        run(resolver.addresses()).unwrap();
        assert!(resolver.answer.borrow().resolved_at.unwrap() > first);
        assert!(!resolver.answer.borrow().stale);
    }

    #[test]
    fn a_lookup_under_way_is_not_started_twice() {
        let resolver = Resolver::new("central.example", 4317);
        let known: SocketAddr = "10.0.0.9:4317".parse().unwrap();
        resolver.resolving.set(true);
        let err = run(resolver.addresses()).unwrap_err();
        assert!(err.to_string().contains("still under way"), "{err}");
        resolver.answered(vec![known]);
        resolver.all_failed();
        assert_eq!(
            run(resolver.addresses()).unwrap(),
            vec![known],
            "the last answer"
        );
        assert!(
            resolver.resolving.get(),
            "no second lookup was started or ended"
        );
        // A lookup whose caller gives up clears the mark.
        resolver.resolving.set(false);
        run(async {
            let lookup = resolver.addresses();
            let _ =
                glommio::timer::timeout(Duration::from_micros(1), async { Ok(lookup.await) }).await;
        });
        assert!(!resolver.resolving.get());
    }

    #[test]
    fn a_failed_resolution_keeps_the_last_answer() {
        let resolver = Resolver::new("no-such-host.invalid", 4317);
        assert!(run(resolver.addresses()).is_err(), "nothing known yet");
        let known: SocketAddr = "10.0.0.9:4317".parse().unwrap();
        resolver.answered(vec![known]);
        resolver.all_failed();
        assert_eq!(run(resolver.addresses()).unwrap(), vec![known]);
    }
}
