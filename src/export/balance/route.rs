//! Splitting a batch by the backend that owns each part, on the bytes as they are.
//!
//! A batch is an export request (see [`crate::export::Batch`]); routing scans it in place and
//! writes one request per backend by copying byte ranges under new length prefixes — nothing is
//! decoded into owned structures or encoded again:
//!
//! - by trace id (traces): [`Split`], the same one-pass scanner and framer that routes spans to
//!   shards at ingest, with the ring as the owner function; each span goes under the resource and
//!   scope bytes it arrived with.
//! - by trace id (logs): each log record by its `trace_id`; a record without one goes to a
//!   backend drawn at random, as the Collector does, framed the same way under its groups'
//!   headers.
//! - by service (traces, metrics) or resource (metrics): each resource group whole, by its
//!   `service.name` (a group without one is routed by the empty name, where the Collector
//!   refuses it) or by its resource's encoded bytes.
//!
//! The scratch space (split tables, header arenas, framer) lives in the [`Router`] and is reused
//! from batch to batch.

use std::ops::Range;

use bytes::Bytes;

use tailgate_wire::{
    item_count, AnyValueView, Framer, LogRecordView, Piece, Request, Signal, Split, WireError,
};

use super::ring::key_of;
use crate::export::batch::Batch;
use crate::export::retry::Xorshift;

/// What a load balancer routes by (the configuration's `routing_key`, settled per signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// Each span (traces) or log record (logs) by its trace id.
    TraceId,
    /// Each resource group by its `service.name`.
    Service,
    /// Each resource group by its resource.
    Resource,
}

/// A batch's parts, per backend: the backend's index and its part.
pub(super) type Parts = Vec<(usize, Batch)>;

/// Splits batches by owner; one per load balancer, reused.
pub(super) struct Router {
    routing: Routing,
    split: Split,
    framer: Framer,
    /// Group headers of the batch being routed (log records by trace id).
    resource_headers: Vec<u8>,
    scope_headers: Vec<u8>,
    rng: Xorshift,
}

/// A log record of the batch being routed: its groups' headers (ranges of the arenas) and its
/// own bytes (a range of the batch).
struct Record {
    resource: Range<usize>,
    scope: Range<usize>,
    item: Range<usize>,
}

impl Router {
    /// A router for `routing`; `rng` draws the backend of log records without a trace id.
    pub(super) fn new(routing: Routing, rng: Xorshift) -> Router {
        Router {
            routing,
            split: Split::new(1),
            framer: Framer::new(),
            resource_headers: Vec::new(),
            scope_headers: Vec::new(),
            rng,
        }
    }

    /// Splits `batch` over `backends` backends, `owner` mapping a key's ring position to one
    /// of them; returns the parts (backends that own nothing of it get none) and how many items
    /// could not be routed (spans with malformed ids, which the receivers refuse before a batch
    /// forms, so in practice none).
    pub(super) fn route(
        &mut self,
        batch: &Batch,
        backends: usize,
        mut owner: impl FnMut(u64) -> usize,
    ) -> Result<(Parts, u64), WireError> {
        assert!(backends > 0, "routing needs a backend");
        if backends == 1 {
            return Ok((vec![(owner(0), batch.clone())], 0));
        }
        match (self.routing, batch.signal) {
            (Routing::TraceId, Signal::Traces) => self.by_trace(batch, backends, owner),
            (Routing::TraceId, _) => self.by_record_trace(batch, backends, owner),
            (Routing::Service, _) => Ok((by_group(batch, backends, owner, service_key), 0)),
            (Routing::Resource, _) => Ok((by_group(batch, backends, owner, resource_key), 0)),
        }
    }

    fn by_trace(
        &mut self,
        batch: &Batch,
        backends: usize,
        mut owner: impl FnMut(u64) -> usize,
    ) -> Result<(Parts, u64), WireError> {
        if self.split.shard_count() != backends {
            self.split = Split::new(backends);
        }
        self.split
            .run(&batch.bytes, |trace_id| owner(key_of(trace_id)))?;
        let mut parts = Vec::new();
        for backend in 0..backends {
            let spans = self.split.spans(backend).len() as u64;
            if spans == 0 {
                continue;
            }
            let mut out = Vec::new();
            self.split
                .frame(&batch.bytes, backend, &mut self.framer, &mut out);
            parts.push((backend, part(batch, out, spans)));
        }
        Ok((parts, self.split.rejected()))
    }

    fn by_record_trace(
        &mut self,
        batch: &Batch,
        backends: usize,
        mut owner: impl FnMut(u64) -> usize,
    ) -> Result<(Parts, u64), WireError> {
        self.resource_headers.clear();
        self.scope_headers.clear();
        let bytes: &[u8] = &batch.bytes;
        let request = Request::trusted(batch.signal, bytes);
        let mut routed: Vec<Vec<Record>> = (0..backends).map(|_| Vec::new()).collect();
        for resource in request.resource_groups() {
            let start = self.resource_headers.len();
            resource.header().write_to(&mut self.resource_headers);
            let resource_range = start..self.resource_headers.len();
            for scope in resource.scope_groups() {
                let start = self.scope_headers.len();
                scope.header().write_to(&mut self.scope_headers);
                let scope_range = start..self.scope_headers.len();
                for item in scope.items() {
                    let trace_id = LogRecordView::new(item).trace_id();
                    let key = if trace_id.len() == 16 && trace_id.iter().any(|&b| b != 0) {
                        key_of(trace_id)
                    } else {
                        self.rng.next_u64()
                    };
                    routed[owner(key)].push(Record {
                        resource: resource_range.clone(),
                        scope: scope_range.clone(),
                        item: item.offset..item.offset + item.bytes.len(),
                    });
                }
            }
        }
        let mut parts = Vec::new();
        for (backend, records) in routed.iter().enumerate() {
            if records.is_empty() {
                continue;
            }
            let (resources, scopes) = (&self.resource_headers, &self.scope_headers);
            let pieces = records.iter().map(|r| Piece {
                resource: &resources[r.resource.clone()],
                scope: &scopes[r.scope.clone()],
                item: &bytes[r.item.clone()],
            });
            let mut out = Vec::new();
            self.framer.frame(pieces, &mut out);
            parts.push((backend, part(batch, out, records.len() as u64)));
        }
        Ok((parts, 0))
    }
}

/// Routes whole resource groups by `key`, each copied under its own length prefix.
fn by_group(
    batch: &Batch,
    backends: usize,
    mut owner: impl FnMut(u64) -> usize,
    key: fn(&tailgate_wire::ResourceGroup<'_>) -> u64,
) -> Parts {
    let request = Request::trusted(batch.signal, &batch.bytes);
    let mut outs: Vec<Vec<u8>> = (0..backends).map(|_| Vec::new()).collect();
    for group in request.resource_groups() {
        let out = &mut outs[owner(key(&group))];
        let raw = group.raw();
        // Field 1 (the request's resource groups), length-delimited.
        out.push(0x0a);
        put_varint(out, raw.len() as u64);
        out.extend_from_slice(raw);
    }
    outs.into_iter()
        .enumerate()
        .filter(|(_, out)| !out.is_empty())
        .map(|(backend, out)| {
            let items = item_count(&Request::trusted(batch.signal, &out));
            (backend, part(batch, out, items))
        })
        .collect()
}

/// The ring position of a resource group's `service.name` (the empty name without one).
fn service_key(group: &tailgate_wire::ResourceGroup<'_>) -> u64 {
    let name = group
        .resource()
        .and_then(|resource| resource.attributes().get(b"service.name"))
        .and_then(|value| match value {
            AnyValueView::String(name) => Some(name),
            _ => None,
        })
        .unwrap_or_default();
    key_of(name)
}

/// The ring position of a resource group's resource, as encoded (attributes in the order
/// sent: the same resource sent in another order may go elsewhere).
fn resource_key(group: &tailgate_wire::ResourceGroup<'_>) -> u64 {
    key_of(group.resource().map_or(&[][..], |resource| resource.raw()))
}

/// One backend's part of `batch`, carrying its client metadata.
fn part(batch: &Batch, bytes: Vec<u8>, items: u64) -> Batch {
    Batch {
        signal: batch.signal,
        bytes: Bytes::from(bytes),
        items,
        metadata: batch.metadata.clone(),
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    use super::*;
    use crate::export::balance::ring::Ring;

    fn service(name: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(name.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    fn trace_id(trace: u8) -> Vec<u8> {
        let mut id = vec![0x5a; 16];
        id[0] = trace;
        id[15] = trace.wrapping_mul(31);
        id
    }

    /// 40 traces of 3 spans each, spread over 4 resources and 2 scopes each.
    fn traces() -> Batch {
        let resource_spans = (0..4u8)
            .map(|r| ResourceSpans {
                resource: service(&format!("svc-{r}")),
                scope_spans: (0..2u8)
                    .map(|s| ScopeSpans {
                        spans: (0..40u8)
                            .flat_map(|t| (0..3u8).map(move |n| (t, n)))
                            .filter(|(t, n)| (t + n) % 4 == r && n % 2 == s % 2)
                            .map(|(t, n)| Span {
                                trace_id: trace_id(t),
                                span_id: vec![t, n, 1, 1, 1, 1, 1, 1],
                                name: format!("{t}/{n}"),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        let bytes = ExportTraceServiceRequest { resource_spans }.encode_to_vec();
        let items = item_count(&Request::parse(Signal::Traces, &bytes).unwrap());
        Batch {
            signal: Signal::Traces,
            bytes: Bytes::from(bytes),
            items,
            metadata: Default::default(),
        }
    }

    fn owner_on(ring: &Ring) -> impl FnMut(u64) -> usize + '_ {
        |key| ring.owner(key, |_| true).unwrap()
    }

    #[test]
    fn traces_split_by_trace_keep_every_span_under_its_resource_and_scope() {
        let batch = traces();
        assert_eq!(batch.items, 120);
        let backends = ["a:4317", "b:4317", "c:4317"];
        let ring = Ring::new(&backends);
        let mut router = Router::new(Routing::TraceId, Xorshift::from_seed(1));
        let (parts, unrouted) = router.route(&batch, 3, owner_on(&ring)).unwrap();
        assert_eq!(unrouted, 0);
        assert!(
            parts.len() > 1,
            "40 traces over 3 backends use more than one"
        );
        let mut owner_of_trace: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for (backend, part) in &parts {
            let request = ExportTraceServiceRequest::decode(&part.bytes[..]).unwrap();
            let mut spans = 0;
            for rs in &request.resource_spans {
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        spans += 1;
                        let (t, n) = (span.span_id[0], span.span_id[1]);
                        assert_eq!(rs.resource, service(&format!("svc-{}", (t + n) % 4)));
                        assert!(seen.insert((t, n)), "span {t}/{n} twice");
                        let first = *owner_of_trace
                            .entry(span.trace_id.clone())
                            .or_insert(*backend);
                        assert_eq!(first, *backend, "trace {t} split over backends");
                        let key = key_of(&span.trace_id);
                        assert_eq!(ring.owner(key, |_| true), Some(*backend));
                    }
                }
            }
            assert_eq!(part.items, spans);
        }
        assert_eq!(seen.len(), 120, "every span routed once");
    }

    #[test]
    fn traces_by_service_move_whole_resource_groups() {
        let batch = traces();
        let ring = Ring::new(&["a:4317", "b:4317", "c:4317", "d:4317"]);
        let mut router = Router::new(Routing::Service, Xorshift::from_seed(1));
        let (parts, _) = router.route(&batch, 4, owner_on(&ring)).unwrap();
        let mut total = 0;
        for (backend, part) in &parts {
            let request = ExportTraceServiceRequest::decode(&part.bytes[..]).unwrap();
            for rs in &request.resource_spans {
                let Some(any_value::Value::StringValue(name)) =
                    rs.resource.as_ref().unwrap().attributes[0]
                        .value
                        .as_ref()
                        .unwrap()
                        .value
                        .clone()
                else {
                    panic!("a service name");
                };
                assert_eq!(
                    ring.owner(key_of(name.as_bytes()), |_| true),
                    Some(*backend)
                );
                assert_eq!(rs.scope_spans.len(), 2, "the group whole");
            }
            total += part.items;
        }
        assert_eq!(total, 120);
    }

    #[test]
    fn metrics_by_service_count_data_points() {
        let metrics = |svc: &str, points: usize| ResourceMetrics {
            resource: service(svc),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "m".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint::default(); points],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = ExportMetricsServiceRequest {
            resource_metrics: (0..12)
                .map(|i| metrics(&format!("s{}", i % 6), i + 1))
                .collect(),
        }
        .encode_to_vec();
        let batch = Batch {
            signal: Signal::Metrics,
            bytes: Bytes::from(bytes),
            items: (1..=12).sum(),
            metadata: Default::default(),
        };
        let ring = Ring::new(&["a:1", "b:1", "c:1"]);
        let mut router = Router::new(Routing::Service, Xorshift::from_seed(1));
        let (parts, _) = router.route(&batch, 3, owner_on(&ring)).unwrap();
        let mut total = 0;
        let mut services_seen: BTreeMap<String, usize> = BTreeMap::new();
        for (backend, part) in &parts {
            let request = ExportMetricsServiceRequest::decode(&part.bytes[..]).unwrap();
            for rm in &request.resource_metrics {
                let kv = &rm.resource.as_ref().unwrap().attributes[0];
                let Some(any_value::Value::StringValue(name)) =
                    kv.value.as_ref().unwrap().value.clone()
                else {
                    panic!("a service name");
                };
                assert_eq!(*services_seen.entry(name).or_insert(*backend), *backend);
            }
            total += part.items;
        }
        assert_eq!(
            total, batch.items,
            "data points, as the Collector counts them"
        );
    }

    #[test]
    fn logs_follow_their_trace_and_records_without_one_still_go_somewhere() {
        let record = |trace: Option<u8>| LogRecord {
            trace_id: trace.map(trace_id).unwrap_or_default(),
            severity_text: format!("{trace:?}"),
            ..Default::default()
        };
        let bytes = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: service("logs"),
                scope_logs: vec![ScopeLogs {
                    log_records: (0..30u8)
                        .map(|i| record((i % 3 != 0).then_some(i % 10)))
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let batch = Batch {
            signal: Signal::Logs,
            bytes: Bytes::from(bytes),
            items: 30,
            metadata: Default::default(),
        };
        let ring = Ring::new(&["a:1", "b:1", "c:1"]);
        let mut router = Router::new(Routing::TraceId, Xorshift::from_seed(7));
        let (parts, _) = router.route(&batch, 3, owner_on(&ring)).unwrap();
        let mut total = 0;
        for (backend, part) in &parts {
            let request = ExportLogsServiceRequest::decode(&part.bytes[..]).unwrap();
            for rl in &request.resource_logs {
                assert_eq!(rl.resource, service("logs"));
                for record in rl.scope_logs.iter().flat_map(|s| &s.log_records) {
                    total += 1;
                    if !record.trace_id.is_empty() {
                        assert_eq!(
                            ring.owner(key_of(&record.trace_id), |_| true),
                            Some(*backend)
                        );
                    }
                }
            }
            assert_eq!(
                part.items,
                ExportLogsServiceRequest::decode(&part.bytes[..])
                    .unwrap()
                    .resource_logs
                    .iter()
                    .flat_map(|r| &r.scope_logs)
                    .map(|s| s.log_records.len() as u64)
                    .sum::<u64>()
            );
        }
        assert_eq!(total, 30);
    }
}
