//! Per-listener connection families: how many are open, the cap, and what was refused or failed.
//!
//! The Collector has no metrics for its listeners' connections; these are tailgate's own. Each
//! (receiver, transport, shard) listener has its series, written only by its shard.

use super::cell::{Counter, Gauge};
use super::registry::RegistryBuilder;

/// One listener's connection cells.
#[derive(Debug, Clone)]
pub struct ConnectionMetrics {
    /// `tailgate_receiver_connections_open`: connections this listener's shard serves now.
    pub open: Gauge,
    /// `tailgate_receiver_connections_limit`: the most it serves at once (from the descriptor
    /// budget, see `ingest::accept`).
    pub limit: Gauge,
    /// `tailgate_receiver_connections_refused{reason="limit"}`: connections closed on accept
    /// because the listener was at its limit.
    pub refused_at_limit: Counter,
    /// `tailgate_receiver_connections_closed{reason="timeout"}`: connections closed because a
    /// handshake, head or idle timeout passed.
    pub closed_on_timeout: Counter,
    /// `tailgate_receiver_connections_closed{reason="too_many_pings"}`: gRPC connections ended
    /// with GOAWAY `ENHANCE_YOUR_CALM` for pinging more often than the enforcement policy allows.
    pub closed_too_many_pings: Counter,
    /// `tailgate_receiver_accept_errors{reason="descriptors"}`: accepts that failed for want of
    /// descriptors or kernel memory (EMFILE, ENFILE, ENOBUFS, ENOMEM); the listener backs off.
    pub accept_errors_descriptors: Counter,
    /// `tailgate_receiver_accept_errors{reason="other"}`: accepts that failed otherwise (a peer
    /// that reset before it was accepted).
    pub accept_errors_other: Counter,
    /// TLS handshakes, on a TLS listener.
    pub tls: Option<TlsMetrics>,
}

/// Why a TLS handshake failed, as `tailgate_receiver_tls_handshake_failures{reason}` says it.
pub const TLS_FAILURE_REASONS: &[&str] = &[
    // No ClientHello (or no complete handshake) within the handshake timeout.
    "timeout",
    // The first byte is not a TLS record: plaintext or garbage sent to a TLS port.
    "not_tls",
    // mTLS: the client sent no certificate.
    "no_client_certificate",
    // mTLS: the client's certificate has expired (or is not yet valid).
    "certificate_expired",
    // mTLS: the client's certificate is not from the configured client CA.
    "certificate_unknown_issuer",
    // mTLS: the client's certificate is otherwise unusable (wrong usage, bad signature).
    "certificate_invalid",
    // No version, suite, group or ALPN protocol in common.
    "incompatible",
    // The client aborted with an alert (it did not accept the gateway's certificate, often).
    "alert_received",
    // The client broke the protocol.
    "protocol",
    // The connection ended during the handshake.
    "closed",
];

/// One TLS listener's handshake counters on one shard.
#[derive(Debug, Clone)]
pub struct TlsMetrics {
    /// `tailgate_receiver_tls_handshakes`: handshakes completed.
    pub handshakes: Counter,
    /// `tailgate_receiver_tls_handshakes_in_progress`: handshakes begun and not yet ended
    /// (bounded per listener and shard).
    pub in_progress: Gauge,
    /// `tailgate_receiver_tls_handshake_failures{reason}`, in [`TLS_FAILURE_REASONS`]' order.
    failures: Vec<Counter>,
}

impl TlsMetrics {
    /// Registers the TLS families of `receiver` over `transport` on `shard`.
    pub fn register(
        builder: &mut RegistryBuilder,
        receiver: &str,
        transport: &str,
        shard: usize,
    ) -> Self {
        let shard = shard.to_string();
        let labels = [
            ("receiver", receiver),
            ("transport", transport),
            ("shard", shard.as_str()),
        ];
        TlsMetrics {
            handshakes: builder.counter(
                "tailgate_receiver_tls_handshakes",
                "Number of TLS handshakes the receiver completed.",
                &labels,
            ),
            in_progress: builder.gauge(
                "tailgate_receiver_tls_handshakes_in_progress",
                "Number of TLS handshakes in progress on this shard's listener.",
                &labels,
            ),
            failures: TLS_FAILURE_REASONS
                .iter()
                .map(|reason| {
                    builder.counter(
                        "tailgate_receiver_tls_handshake_failures",
                        "Number of connections closed because their TLS handshake failed, with \
                         the reason.",
                        &[
                            ("receiver", receiver),
                            ("transport", transport),
                            ("shard", shard.as_str()),
                            ("reason", reason),
                        ],
                    )
                })
                .collect(),
        }
    }

    /// Counts a failed handshake; `reason` is one of [`TLS_FAILURE_REASONS`] (else `protocol`).
    pub fn failed(&self, reason: &str) {
        let at = |name: &str| TLS_FAILURE_REASONS.iter().position(|r| *r == name);
        if let Some(i) = at(reason).or_else(|| at("protocol")) {
            self.failures[i].inc();
        }
    }
}

impl ConnectionMetrics {
    /// Registers the connection families of `receiver` over `transport` on `shard`.
    pub fn register(
        builder: &mut RegistryBuilder,
        receiver: &str,
        transport: &str,
        shard: &str,
    ) -> Self {
        let labels = [
            ("receiver", receiver),
            ("transport", transport),
            ("shard", shard),
        ];
        let with_reason = |reason: &'static str| {
            [
                ("receiver", receiver),
                ("transport", transport),
                ("shard", shard),
                ("reason", reason),
            ]
        };
        ConnectionMetrics {
            open: builder.gauge(
                "tailgate_receiver_connections_open",
                "Number of connections the receiver serves on this shard now.",
                &labels,
            ),
            limit: builder.gauge(
                "tailgate_receiver_connections_limit",
                "The most connections the receiver serves on this shard at once, derived from \
                 the process's open-file limit.",
                &labels,
            ),
            refused_at_limit: builder.counter(
                "tailgate_receiver_connections_refused",
                "Number of connections closed as soon as accepted, with the reason.",
                &with_reason("limit"),
            ),
            closed_on_timeout: builder.counter(
                "tailgate_receiver_connections_closed",
                "Number of connections the receiver closed on its own, with the reason.",
                &with_reason("timeout"),
            ),
            closed_too_many_pings: builder.counter(
                "tailgate_receiver_connections_closed",
                "Number of connections the receiver closed on its own, with the reason.",
                &with_reason("too_many_pings"),
            ),
            accept_errors_descriptors: builder.counter(
                "tailgate_receiver_accept_errors",
                "Number of failed accepts, with the reason; the listener backs off after each.",
                &with_reason("descriptors"),
            ),
            accept_errors_other: builder.counter(
                "tailgate_receiver_accept_errors",
                "Number of failed accepts, with the reason; the listener backs off after each.",
                &with_reason("other"),
            ),
            tls: None,
        }
    }
}
