//! Traces built to be told apart at the sinks, for tests where a tier of gateways (or a load
//! balancer) spreads them over several sinks: span ids that say the round, the trace and the
//! span, what each sink received, per trace, and the front gateway's configuration whose
//! `loadbalancing` exporter does the spreading.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tailgate_bench::sink::Sink;

use std::net::SocketAddr;

use super::gateway::{free_port, loopback, received_spans};

/// Trace `trace`'s id; never all zeros (an invalid id, which receivers refuse).
pub fn trace_id(trace: u64) -> Vec<u8> {
    let trace = trace + 1;
    let mut id = vec![0u8; 16];
    id[..8].copy_from_slice(&trace.to_be_bytes());
    id[8..].copy_from_slice(&(trace.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes());
    id
}

/// Span `span` of every trace in `traces`, in one request; span ids say `round`, the trace and
/// the span, so every span sent is told apart.
pub fn request(traces: std::ops::Range<u64>, span: u64, round: u64) -> Vec<u8> {
    let spans = traces
        .map(|t| Span {
            trace_id: trace_id(t),
            span_id: ((round << 48) | (t << 8) | span).to_be_bytes().to_vec(),
            name: format!("op-{span}"),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Per sink, per trace id: the span ids it received.
pub type Received = Vec<BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>>>;

pub fn stop_all(sinks: Vec<Sink>) -> Received {
    sinks
        .into_iter()
        .map(|sink| {
            let mut traces: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>> = BTreeMap::new();
            for (_, span) in received_spans(&sink.stop().expect("stop a sink")) {
                traces
                    .entry(span.trace_id)
                    .or_default()
                    .insert(span.span_id);
            }
            traces
        })
        .collect()
}

/// The round of a span id.
pub fn round_of(span_id: &[u8]) -> u64 {
    u64::from_be_bytes(span_id.try_into().expect("8 bytes")) >> 48
}

/// Per trace of `round`, the sinks its spans of that round reached.
pub fn owners(received: &Received, round: u64) -> BTreeMap<Vec<u8>, BTreeSet<usize>> {
    let mut owners: BTreeMap<Vec<u8>, BTreeSet<usize>> = BTreeMap::new();
    for (sink, traces) in received.iter().enumerate() {
        for (trace, spans) in traces {
            if spans.iter().any(|s| round_of(s) == round) {
                owners.entry(trace.clone()).or_default().insert(sink);
            }
        }
    }
    owners
}

/// The distinct spans of `round` received over all sinks.
pub fn spans_of_round(received: &Received, round: u64) -> BTreeSet<Vec<u8>> {
    received
        .iter()
        .flat_map(|traces| traces.values().flatten())
        .filter(|s| round_of(s) == round)
        .cloned()
        .collect()
}

/// A front gateway of two shards whose traces go through `loadbalancing` to `backends`, on
/// free ports.
pub fn front_config(backends: &[SocketAddr]) -> (String, SocketAddr, SocketAddr, SocketAddr) {
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    (
        front_config_at(backends, grpc, http, admin),
        grpc,
        http,
        admin,
    )
}

/// [`front_config`] on the given receiver and admin addresses.
pub fn front_config_at(
    backends: &[SocketAddr],
    grpc: SocketAddr,
    http: SocketAddr,
    admin: SocketAddr,
) -> String {
    let hostnames = backends
        .iter()
        .map(|b| format!("\"{b}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let second_cpu = usize::from(std::thread::available_parallelism().map_or(1, |n| n.get()) > 1);
    format!(
        "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        endpoint: {http}
processors:
  batch:
    timeout: 20ms
exporters:
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        timeout: 1s
        tls:
          insecure: true
        retry_on_failure:
          initial_interval: 50ms
          max_interval: 200ms
    resolver:
      static:
        hostnames: [{hostnames}]
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [loadbalancing]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0, {second_cpu}]
"
    )
}
