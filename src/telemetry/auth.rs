//! The receivers' authentication family: requests refused for want of valid credentials.
//!
//! The Collector counts no such thing (its auth extensions only log); this is tailgate's own,
//! named and labelled like the other receiver families so it sits beside them on a dashboard.

use super::cell::Counter;
use super::registry::RegistryBuilder;

/// One listener's authentication counters.
#[derive(Debug, Clone)]
pub struct AuthMetrics {
    /// `tailgate_receiver_auth_failures{reason="missing"}`: requests without credentials (the
    /// header absent or empty).
    pub missing: Counter,
    /// `tailgate_receiver_auth_failures{reason="invalid"}`: requests whose credentials did not
    /// match (a wrong token or password, an unknown user, a malformed header).
    pub invalid: Counter,
}

impl AuthMetrics {
    /// Registers the family for `receiver` over `transport` on `shard`.
    pub fn register(
        builder: &mut RegistryBuilder,
        receiver: &str,
        transport: &str,
        shard: &str,
    ) -> Self {
        let mut counter = |reason: &str| {
            builder.counter(
                "tailgate_receiver_auth_failures",
                "Number of requests the receiver refused for missing or invalid credentials, \
                 with the reason.",
                &[
                    ("receiver", receiver),
                    ("transport", transport),
                    ("shard", shard),
                    ("reason", reason),
                ],
            )
        };
        AuthMetrics {
            missing: counter("missing"),
            invalid: counter("invalid"),
        }
    }
}
