//! `tier`: tailgate's own section, with no Collector counterpart: the tailgate nodes that share
//! trace ownership, so that each trace is decided once, on one core of one node.
//!
//! ```yaml
//! tier:
//!   resolver:                  # the loadbalancing exporter's layout: static or dns
//!     dns:
//!       hostname: tailgate-headless.observability.svc.cluster.local
//!       port: 4317
//!       interval: 5s
//!       timeout: 1s
//!   self: ${env:POD_IP}:4317   # optional: which member this node is (found when left out)
//!   protocol:
//!     otlp:                    # every otlp exporter key but endpoint (and storage, auth);
//!                              # compression left out: zstd at level -1
//!       tls:
//!         insecure: true
//! ```
//!
//! Every member must be given the same membership: each computes the same ring from it.

use std::net::SocketAddr;

use serde::Deserialize;

use super::component::Ctx;
use super::error::ConfigError;
use super::exporters::{
    check_protocol, check_resolver, BackendResolver, OtlpExporter, RawProtocol, RawResolver,
};
use super::values::KeyPath;

/// The zstd level members forward at when `tier.protocol.otlp` leaves compression out:
/// libzstd's first fast level, which on spans that compress like real ones costs 40 % less CPU
/// than the default level 3, compressing and decompressing together, for 3 % more bytes
/// (docs/BENCHMARKS.md, "A tier of three nodes").
pub const TIER_ZSTD_LEVEL_DEFAULT: i64 = -1;

/// The `tier` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    /// Where the members come from; this node is one of them (or none, for a node that only
    /// forwards).
    pub resolver: BackendResolver,
    /// Which member this node is, when given; otherwise the member whose address is one a
    /// gRPC receiver of this node listens on.
    pub self_address: Option<SocketAddr>,
    /// How spans are forwarded to their owners: an `otlp` exporter per member.
    pub protocol: OtlpExporter,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTier {
    resolver: Option<RawResolver>,
    #[serde(rename = "self")]
    self_address: Option<String>,
    protocol: Option<RawProtocol>,
}

/// Checks the `tier` section, if there is one.
pub(super) fn check(raw: Option<RawTier>, ctx: &Ctx<'_>) -> Result<Option<Tier>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let path = KeyPath::root().key("tier");
    let resolver = check_resolver(raw.resolver, &path.key("resolver"), &path, None, ctx)?;
    let self_address = match raw.self_address {
        None => None,
        Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
            ctx.invalid(
                &path.key("self"),
                format!(
                    "`{text}` is not an IP address and port; give this node's address as the \
                     other members reach it, such as 10.0.0.5:4317"
                ),
            )
        })?),
    };
    let protocol_path = path.key("protocol");
    let mut raw_protocol = raw.protocol;
    if let Some(raw_protocol) = raw_protocol.as_mut() {
        // Members forward to each other every span they do not own: zstd at a fast level
        // unless the section says otherwise, not the `otlp` exporter's gzip, which costs
        // several times the CPU a span for a few percent fewer bytes.
        raw_protocol.default_compression("zstd", TIER_ZSTD_LEVEL_DEFAULT);
    }
    let protocol = check_protocol(raw_protocol, &protocol_path, ctx)?;
    let otlp_path = protocol_path.key("otlp");
    if protocol.sending_queue.storage.is_some() {
        return Err(ctx.unsupported(
            &otlp_path.key("sending_queue").key("storage"),
            "spans on their way to their owner are held in memory: a node that stops hands \
             them over first; remove storage",
        ));
    }
    if protocol.auth.is_some() {
        return Err(ctx.unsupported(
            &otlp_path.key("auth"),
            "the tier does not take an authenticator; give the peers' credentials under headers",
        ));
    }
    Ok(Some(Tier {
        resolver,
        self_address,
        protocol,
    }))
}
