//! Test helpers: real OTLP bytes built with prost, read back through the wire layer.

use std::time::Instant;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use super::{FinalDecision, PolicySet, Trace, TraceSpan};
use crate::config::{Policy, PolicyKind, TailSampling};
use tailgate_wire::TracesRequest;

/// The trace id the helpers use.
pub(crate) const ID: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];

/// One millisecond in nanoseconds.
pub(crate) const MS: u64 = 1_000_000;
/// A start time well away from 0.
pub(crate) const T0: u64 = 1_700_000_000_000_000_000;

pub(crate) fn attr(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub(crate) fn str_attr(key: &str, value: &str) -> KeyValue {
    attr(key, any_value::Value::StringValue(value.to_string()))
}

pub(crate) fn int_attr(key: &str, value: i64) -> KeyValue {
    attr(key, any_value::Value::IntValue(value))
}

pub(crate) fn double_attr(key: &str, value: f64) -> KeyValue {
    attr(key, any_value::Value::DoubleValue(value))
}

pub(crate) fn bool_attr(key: &str, value: bool) -> KeyValue {
    attr(key, any_value::Value::BoolValue(value))
}

/// Span number `n` of trace [`ID`], from `start_ms` to `end_ms` after [`T0`].
pub(crate) fn span(n: u8, start_ms: u64, end_ms: u64) -> Span {
    Span {
        trace_id: ID.to_vec(),
        span_id: vec![n + 1; 8],
        name: format!("span-{n}"),
        start_time_unix_nano: T0 + start_ms * MS,
        end_time_unix_nano: T0 + end_ms * MS,
        ..Default::default()
    }
}

pub(crate) fn with_attrs(mut span: Span, attributes: Vec<KeyValue>) -> Span {
    span.attributes = attributes;
    span
}

pub(crate) fn with_status(mut span: Span, code: i32) -> Span {
    span.status = Some(Status {
        code,
        message: String::new(),
    });
    span
}

/// A resource group: `resource` (`None`: no `Resource` message at all) and its spans.
pub(crate) fn group(resource: Option<Vec<KeyValue>>, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: resource.map(|attributes| Resource {
            attributes,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        schema_url: String::new(),
    }
}

/// Encodes the groups as one request.
pub(crate) fn encode(groups: Vec<ResourceSpans>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: groups,
    }
    .encode_to_vec()
}

/// Every span of a validated request with its resource, in wire order.
pub(crate) fn spans_of<'a>(request: &TracesRequest<'a>) -> Vec<TraceSpan<'a>> {
    let mut out = Vec::new();
    for group in request.request().resource_groups() {
        let resource = group.resource();
        for scope in group.scope_groups() {
            let scope_view = scope.scope();
            out.extend(scope.spans().map(|span| TraceSpan {
                span,
                resource,
                scope: scope_view,
            }));
        }
    }
    out
}

/// Calls `f` with the trace made of `groups`.
pub(crate) fn with_trace<R>(groups: Vec<ResourceSpans>, f: impl FnOnce(&Trace<'_>) -> R) -> R {
    let bytes = encode(groups);
    let request = TracesRequest::parse(&bytes).expect("valid request");
    let spans = spans_of(&request);
    f(&Trace::new(ID, &spans))
}

pub(crate) fn policy(name: &str, kind: PolicyKind) -> Policy {
    Policy {
        name: name.to_string(),
        kind,
    }
}

/// A `tail_sampling` configuration with these policies and the defaults otherwise.
pub(crate) fn config(policies: Vec<Policy>) -> TailSampling {
    TailSampling {
        decision_wait: crate::config::DECISION_WAIT_DEFAULT,
        decision_wait_after_root_received: None,
        num_traces: crate::config::NUM_TRACES_DEFAULT,
        expected_new_traces_per_sec: 0,
        decision_cache: Default::default(),
        sample_on_first_match: false,
        drop_pending_traces_on_shutdown: false,
        block_on_overflow: false,
        maximum_trace_size_bytes: None,
        stress_relief: Default::default(),
        policies,
        sampling_strategy: Default::default(),
        num_shards: 1,
        use_tracestate: false,
    }
}

/// A one-shard set of these policies.
pub(crate) fn set(policies: Vec<Policy>) -> PolicySet {
    PolicySet::new(&config(policies), 1).expect("policies compile")
}

/// The decision for the trace made of `groups`, without its borrowed per-policy record.
pub(crate) fn decide(
    set: &mut PolicySet,
    groups: Vec<ResourceSpans>,
    now: Instant,
) -> FinalDecision<'static> {
    with_trace(groups, |trace| {
        let d = set.decide(trace, now);
        FinalDecision {
            sampled: d.sampled,
            decision: d.decision,
            policy: d.policy,
            per_policy: &[],
            latencies_us: &[],
            threshold: d.threshold,
        }
    })
}

/// The decision of the single policy `kind` for the trace made of `groups`.
pub(crate) fn evaluate_one(kind: PolicyKind, groups: Vec<ResourceSpans>) -> super::Decision {
    let mut set = set(vec![policy("p", kind)]);
    with_trace(groups, |trace| {
        set.decide(trace, Instant::now()).per_policy[0].expect("evaluated")
    })
}
