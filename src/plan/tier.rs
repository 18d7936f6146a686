//! The `tier` section as a plan: the forwarder's settings, with how this node finds itself
//! among the members.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use crate::config::{self, Config};
use crate::export::{
    is_listening_on, Backends, Exporter, ExporterSettings, LoadBalancingSettings, Local, Routing,
};
use crate::gateway::StartError;
use crate::tier::{FORWARDED_HEADER, FORWARDED_VALUE};
use crate::tls::{ClientTls, Reload};

use super::exporters::{backends, otlp_settings};
use super::ReceiverPlan;

/// The tier's forwarder settings for `config`, if it has a `tier` section; its TLS
/// configuration, loaded, joins `tls`.
pub(super) fn plan(
    config: &Config,
    receivers: &[ReceiverPlan],
    shards: usize,
    tls: &mut Vec<Arc<dyn Reload>>,
) -> Result<Option<LoadBalancingSettings>, StartError> {
    let Some(tier) = &config.tier else {
        return Ok(None);
    };
    let client_tls = match &tier.protocol.tls {
        Some(settings) => {
            let loaded = ClientTls::load(
                "the tier".to_string(),
                settings.clone(),
                crate::tls::ALPN_H2,
            )
            .map_err(|why| super::tls_error("tier.protocol.otlp.tls", &settings.common, why))?;
            tls.push(loaded.clone());
            Some(loaded)
        }
        None => None,
    };
    let mut otlp = otlp_settings(&tier.protocol, shards, client_tls);
    otlp.pass_metadata = passes_metadata(receivers, &otlp.headers)?;
    otlp.headers
        .push((FORWARDED_HEADER.to_string(), FORWARDED_VALUE.to_string()));
    let listening: Vec<SocketAddr> = receivers
        .iter()
        .filter_map(|r| r.grpc.as_ref().map(|(addr, _, _)| *addr))
        .collect();
    let backends = backends(&tier.resolver);
    let local = local(tier, &backends, listening)?;
    let settings = LoadBalancingSettings {
        routing: Routing::TraceId,
        otlp,
        backends,
        local: Some(local),
    };
    Exporter::check(&ExporterSettings::LoadBalancing(settings.clone()))
        .map_err(|err| StartError::Machine(format!("tier.protocol.otlp: {err}")))?;
    Ok(Some(settings))
}

/// Whether the forwarder passes each span's client metadata on (whether the receivers keep
/// any). Then every gRPC receiver (where members forward to) must keep the same keys as the
/// receiver that kept the most, so a tenant reaches the owner whatever receiver took the span,
/// and no key may be a header the forward request sets itself (`headers`, the tier's own).
fn passes_metadata(
    receivers: &[ReceiverPlan],
    headers: &[(String, String)],
) -> Result<bool, StartError> {
    let captures = receivers.iter().flat_map(|r| {
        let grpc = r
            .grpc
            .as_ref()
            .map(|(_, s, _)| ("grpc", s.capture.as_deref()));
        let http = r
            .http
            .as_ref()
            .map(|(_, s, _)| ("http", s.capture.as_deref()));
        grpc.into_iter()
            .chain(http)
            .map(move |(protocol, c)| (&r.name, protocol, c))
    });
    let Some(kept) = captures
        .clone()
        .filter_map(|(_, _, capture)| capture)
        .max_by_key(|capture| capture.keys().len())
    else {
        return Ok(false);
    };
    for (name, protocol, capture) in captures {
        if protocol == "grpc" && capture != Some(kept) {
            return Err(StartError::Unsupported(format!(
                "receivers.{name}.protocols.grpc: a tier forwards each span's client metadata \
                 to the member that owns its trace, over gRPC, and this receiver (where members \
                 forward to) would not keep {}; set include_metadata: true on every gRPC \
                 protocol of a tier node's receivers",
                kept.keys().join(", ")
            )));
        }
    }
    let taken = kept.keys().iter().find(|key| {
        crate::config::headers_setter::RESERVED.contains(&&***key)
            || [FORWARDED_HEADER, "authorization"].contains(&&***key)
            || key.starts_with("grpc-")
            || headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(key))
    });
    if let Some(key) = taken {
        return Err(StartError::Unsupported(format!(
            "client metadata key {key}: a tier forwards each span's client metadata to the member \
             that owns its trace as request headers, and {key} is a header the forward request \
             sets itself (gRPC's, or tier.protocol.otlp.headers); batch by, or set headers \
             from, another key"
        )));
    }
    Ok(true)
}

/// How this node recognises itself: `tier.self`; or, in a static list, the one entry a gRPC
/// receiver of this node listens on (names resolved now); or, for DNS, the answers' address a
/// receiver listens on, checked at every answer.
fn local(
    tier: &config::Tier,
    backends: &Backends,
    listening: Vec<SocketAddr>,
) -> Result<Local, StartError> {
    if let Some(address) = tier.self_address {
        if !listening.iter().any(|l| l.port() == address.port()) {
            return Err(StartError::Machine(format!(
                "tier.self: {address} is this node, but no gRPC receiver of it listens on port \
                 {}; the other members could not forward to it",
                address.port()
            )));
        }
        return Ok(Local::Address(address));
    }
    let Backends::Static(members) = backends else {
        return Ok(Local::Listening(listening));
    };
    let mine: Vec<&String> = members
        .iter()
        .filter(|member| {
            member
                .to_socket_addrs()
                .map(|mut addrs| addrs.any(|a| is_listening_on(&listening, a)))
                .unwrap_or(false)
        })
        .collect();
    match mine.as_slice() {
        [] => {
            tracing::info!(
                "no member of tier.resolver.static.hostnames is this node (no gRPC receiver \
                 listens on one): it forwards every trace to the members"
            );
            Ok(Local::Listening(listening))
        }
        [one] => Ok(Local::Endpoint((*one).clone())),
        several => Err(StartError::Machine(format!(
            "tier.resolver.static.hostnames: {} are all this node (a gRPC receiver listens on \
             each); set tier.self to the one the other members use",
            several
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
