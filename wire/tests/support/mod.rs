//! Helpers shared by the wire-layer integration tests: proptest strategies that build random
//! valid OTLP trace requests with the prost types, and the conversion of wire views back into
//! prost types so the two can be compared.

#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use proptest::collection::vec;
use proptest::prelude::*;
use tailgate_wire::{AnyValueView, KeyValueView, SpanView, TracesRequest};

pub fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._ é-]{0,12}"
}

pub fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        text().prop_map(any_value::Value::StringValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        any::<i64>().prop_map(any_value::Value::IntValue),
        (-1e12f64..1e12).prop_map(any_value::Value::DoubleValue),
        vec(any::<u8>(), 0..8).prop_map(any_value::Value::BytesValue),
    ]
    .prop_map(|v| AnyValue { value: Some(v) });
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(|values| AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
            }),
            vec((text(), inner), 0..3).prop_map(|kvs| AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: kvs.into_iter().map(|(k, v)| key_value(k, v)).collect(),
                })),
            }),
        ]
    })
}

pub fn key_value(key: String, value: AnyValue) -> KeyValue {
    KeyValue {
        key,
        value: Some(value),
        ..Default::default()
    }
}

pub fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    vec((text(), any_value()), 0..4)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| key_value(k, v)).collect())
}

/// A valid (non-zero) id of `len` bytes.
pub fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), len).prop_map(|mut id| {
        id[0] |= 1;
        id
    })
}

pub fn event() -> impl Strategy<Value = span::Event> {
    (any::<u64>(), text(), attributes(), 0u32..3).prop_map(
        |(time_unix_nano, name, attributes, d)| span::Event {
            time_unix_nano,
            name,
            attributes,
            dropped_attributes_count: d,
        },
    )
}

pub fn link() -> impl Strategy<Value = span::Link> {
    (id(16), id(8), text(), attributes(), any::<u32>()).prop_map(
        |(trace_id, span_id, trace_state, attributes, flags)| span::Link {
            trace_id,
            span_id,
            trace_state,
            attributes,
            dropped_attributes_count: 0,
            flags,
        },
    )
}

/// A span of one of `trace_ids`, so that traces have several spans.
pub fn span(trace_ids: Vec<Vec<u8>>) -> impl Strategy<Value = Span> {
    let ids = (0..trace_ids.len(), id(8), prop::option::of(id(8)), text());
    let body = (
        text(),
        0i32..6,
        any::<u64>(),
        any::<u64>(),
        attributes(),
        any::<u32>(),
    );
    let tail = (
        vec(event(), 0..2),
        vec(link(), 0..2),
        prop::option::of((text(), 1i32..3)),
        (0u32..4, 0u32..4, 0u32..4),
    );
    (ids, body, tail).prop_map(
        move |(
            (trace, span_id, parent, trace_state),
            (name, kind, start, end, attributes, flags),
            (events, links, status, (dropped_attributes, dropped_events, dropped_links)),
        )| Span {
            trace_id: trace_ids[trace].clone(),
            span_id,
            trace_state,
            parent_span_id: parent.unwrap_or_default(),
            flags,
            name,
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            dropped_attributes_count: dropped_attributes,
            events,
            dropped_events_count: dropped_events,
            links,
            dropped_links_count: dropped_links,
            status: status.map(|(message, code)| Status { message, code }),
        },
    )
}

pub fn scope() -> impl Strategy<Value = Option<InstrumentationScope>> {
    prop::option::of(
        (text(), text(), attributes()).prop_map(|(name, version, attributes)| {
            InstrumentationScope {
                name,
                version,
                attributes,
                dropped_attributes_count: 0,
            }
        }),
    )
}

pub fn resource() -> impl Strategy<Value = Option<Resource>> {
    prop::option::of(
        (attributes(), 0u32..3).prop_map(|(attributes, dropped)| Resource {
            attributes,
            dropped_attributes_count: dropped,
            ..Default::default()
        }),
    )
}

/// A random valid traces request: a few resources and scopes, spans of a handful of traces.
pub fn traces_request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    vec(id(16), 1..6).prop_flat_map(|trace_ids| {
        let scope_spans =
            (scope(), vec(span(trace_ids), 0..5), text()).prop_map(|(scope, spans, schema_url)| {
                ScopeSpans {
                    scope,
                    spans,
                    schema_url,
                }
            });
        let resource_spans = (resource(), vec(scope_spans, 0..3), text()).prop_map(
            |(resource, scope_spans, schema_url)| ResourceSpans {
                resource,
                scope_spans,
                schema_url,
            },
        );
        vec(resource_spans, 0..3)
            .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
    })
}

fn string(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("generated strings are UTF-8")
}

pub fn to_any_value(view: AnyValueView<'_>) -> AnyValue {
    let value = match view {
        AnyValueView::Empty => None,
        AnyValueView::String(s) => Some(any_value::Value::StringValue(string(s))),
        AnyValueView::Bool(b) => Some(any_value::Value::BoolValue(b)),
        AnyValueView::Int(i) => Some(any_value::Value::IntValue(i)),
        AnyValueView::Double(d) => Some(any_value::Value::DoubleValue(d)),
        AnyValueView::Bytes(b) => Some(any_value::Value::BytesValue(b.to_vec())),
        AnyValueView::Array(a) => Some(any_value::Value::ArrayValue(ArrayValue {
            values: a.iter().map(to_any_value).collect(),
        })),
        AnyValueView::KvList(kvs) => Some(any_value::Value::KvlistValue(KeyValueList {
            values: kvs.map(to_key_value).collect(),
        })),
    };
    AnyValue { value }
}

pub fn to_key_value(kv: KeyValueView<'_>) -> KeyValue {
    key_value(string(kv.key), to_any_value(kv.value))
}

/// Rebuilds a prost span from nothing but a span view.
pub fn to_span(view: &SpanView<'_>) -> Span {
    let status = (view.status_code() != 0 || !view.status_message().is_empty()).then(|| Status {
        message: string(view.status_message()),
        code: view.status_code(),
    });
    Span {
        trace_id: view.trace_id().to_vec(),
        span_id: view.span_id().to_vec(),
        trace_state: string(view.trace_state()),
        parent_span_id: view.parent_span_id().to_vec(),
        flags: view.flags(),
        name: string(view.name()),
        kind: view.kind(),
        start_time_unix_nano: view.start_time_unix_nano(),
        end_time_unix_nano: view.end_time_unix_nano(),
        attributes: view.attributes().map(to_key_value).collect(),
        dropped_attributes_count: view.dropped_attributes_count(),
        events: view
            .events()
            .map(|e| span::Event {
                time_unix_nano: e.time_unix_nano(),
                name: string(e.name()),
                attributes: e.attributes().map(to_key_value).collect(),
                dropped_attributes_count: e.dropped_attributes_count(),
            })
            .collect(),
        dropped_events_count: view.dropped_events_count(),
        links: view
            .links()
            .map(|l| span::Link {
                trace_id: l.trace_id().to_vec(),
                span_id: l.span_id().to_vec(),
                trace_state: string(l.trace_state()),
                attributes: l.attributes().map(to_key_value).collect(),
                dropped_attributes_count: l.dropped_attributes_count(),
                flags: l.flags(),
            })
            .collect(),
        dropped_links_count: view.dropped_links_count(),
        status,
    }
}

/// Rebuilds a whole prost request from nothing but the wire views.
pub fn to_request(request: &TracesRequest<'_>) -> ExportTraceServiceRequest {
    let resource_spans = request
        .request()
        .resource_groups()
        .map(|rg| ResourceSpans {
            resource: rg.resource().map(|r| Resource {
                attributes: r.attributes().map(to_key_value).collect(),
                dropped_attributes_count: r.dropped_attributes_count(),
                ..Default::default()
            }),
            scope_spans: rg
                .scope_groups()
                .map(|sg| ScopeSpans {
                    scope: sg.scope().map(|s| InstrumentationScope {
                        name: string(s.name()),
                        version: string(s.version()),
                        attributes: s.attributes().map(to_key_value).collect(),
                        dropped_attributes_count: s.dropped_attributes_count(),
                    }),
                    spans: sg.spans().map(|s| to_span(&s)).collect(),
                    schema_url: string(sg.schema_url()),
                })
                .collect(),
            schema_url: string(rg.schema_url()),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// Statuses that carry nothing encode as an empty message; views cannot tell those from an
/// absent status, and neither does any consumer of spans.
pub fn without_empty_statuses(mut request: ExportTraceServiceRequest) -> ExportTraceServiceRequest {
    for rs in &mut request.resource_spans {
        for ss in &mut rs.scope_spans {
            for span in &mut ss.spans {
                if span.status == Some(Status::default()) {
                    span.status = None;
                }
            }
        }
    }
    request
}

/// `value` as a protobuf varint.
pub fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}
