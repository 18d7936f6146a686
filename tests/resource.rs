//! The Collector's `resource` processor through the real binary, over real sockets: every
//! action (insert, update, upsert from a value, another attribute or the client's metadata;
//! delete and hash by key and by pattern; extract; convert to each type) on resources of every
//! value type, duplicated keys included, against the Collector built from its modules (contrib
//! `resource` v0.161.0) with the same configuration (`default_value` and a group whose
//! resource is written in two fields, which a decoder merges, among them): each span must
//! arrive under the same resource attributes, in the same order, at both sinks. And the spans
//! themselves are forwarded as they came.

mod common;

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use common::gateway::received_spans;
use common::otlp::{kv, s};
use common::parity::{built_peers, post_all, settle_signals, Pair};

/// The actions both systems run, indented for `processors.resource`.
const ACTIONS: &str = r#"    attributes:
      - {key: deployment.environment, value: production, action: insert}
      - {key: cloud.region, value: eu-west-1, action: upsert}
      - {key: tier, value: 3, action: update}
      - {key: weight, value: 0.5, action: upsert}
      - {key: canary, value: true, action: insert}
      - {key: owner, from_attribute: team, action: upsert}
      - {key: tenant, from_context: metadata.x-tenant, action: insert}
      - {key: caller, from_context: x-caller, action: upsert}
      - {key: secret, action: delete}
      - {action: delete, pattern: ^tmp\.}
      - {key: user.email, action: hash}
      - {action: hash, pattern: ^pii\.}
      - {key: http.url, pattern: '^(?P<scheme>https?)://(?P<host>[^/:]+)(?::(?P<port>\d+))?', action: extract}
      - {key: port, action: convert, converted_type: int}
      - {key: ratio, action: convert, converted_type: double}
      - {key: count, action: convert, converted_type: string}
      - {key: zone, from_attribute: missing.attr, default_value: fallback, action: upsert}
      - {key: team, from_attribute: missing.attr, default_value: 0, action: update}
      - {key: only.default, default_value: 7, action: insert}
      - {key: pii.phone, from_context: x-caller, action: delete}
"#;

/// Resources that exercise every action on every value type.
fn resources() -> Vec<Vec<KeyValue>> {
    let values: Vec<Option<Value>> = vec![
        s("8080"),
        s("x"),
        s(""),
        s("0.25"),
        s("1e400"),
        s("-inf"),
        Some(Value::IntValue(42)),
        Some(Value::IntValue(-7)),
        Some(Value::DoubleValue(3.7)),
        Some(Value::DoubleValue(-2.5e-7)),
        Some(Value::DoubleValue(1.5e21)),
        Some(Value::DoubleValue(100.0)),
        Some(Value::BoolValue(true)),
        Some(Value::BytesValue(vec![1, 2, 255])),
        None,
    ];
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let w = &values[(i * 7 + 3) % values.len()];
        let mut attrs = vec![
            kv("service.name", s(&format!("svc-{i}"))),
            kv("port", v.clone()),
            kv("ratio", w.clone()),
            kv("count", v.clone()),
            kv("user.email", w.clone()),
            kv("pii.name", v.clone()),
            kv("pii.phone", s("555-0100")),
            kv("pii.name", s("second")),
            kv("tmp.a", s("1")),
            kv("tmp.b", s("2")),
            kv("tmp.a", s("3")),
            kv("secret", s("one")),
            kv("secret", s("two")),
        ];
        if i % 2 == 0 {
            attrs.push(kv("team", s("payments")));
            attrs.push(kv("tier", s("web")));
            attrs.push(kv("deployment.environment", s("staging")));
        }
        if i % 3 == 0 {
            attrs.push(kv("http.url", s("https://shop.example.com:8443/cart")));
        } else if i % 3 == 1 {
            attrs.push(kv("http.url", s("http://api.internal/v1")));
            attrs.push(kv("host", s("replaced")));
        } else {
            attrs.push(kv("http.url", Some(Value::IntValue(5))));
        }
        out.push(attrs);
    }
    // No attributes at all; no resource at all is the next group's case.
    out.push(Vec::new());
    out
}

/// One request holding a group per resource (and one without a resource), two spans each.
fn request() -> (Vec<u8>, usize) {
    let mut groups: Vec<ResourceSpans> = resources()
        .into_iter()
        .map(|attributes| ResourceSpans {
            resource: Some(Resource {
                attributes,
                dropped_attributes_count: 2,
                ..Resource::default()
            }),
            ..ResourceSpans::default()
        })
        .collect();
    groups.push(ResourceSpans::default());
    let mut spans = 0;
    for (g, group) in groups.iter_mut().enumerate() {
        group.scope_spans = vec![ScopeSpans {
            spans: (0..2u64)
                .map(|i| Span {
                    trace_id: [(g as u64 + 1).to_be_bytes(), 9u64.to_be_bytes()].concat(),
                    span_id: (g as u64 * 2 + i + 1).to_be_bytes().to_vec(),
                    name: format!("g{g}s{i}"),
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    attributes: vec![kv("span.attr", s("kept"))],
                    ..Span::default()
                })
                .collect(),
            ..ScopeSpans::default()
        }];
        spans += 2;
    }
    let mut body = ExportTraceServiceRequest {
        resource_spans: groups,
    }
    .encode_to_vec();
    // A group with two `resource` fields, which a decoder merges: service.name in the first,
    // tier and host in the second.
    let first = ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", s("merged"))],
            ..Resource::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: [99u64.to_be_bytes(), 9u64.to_be_bytes()].concat(),
                span_id: 999u64.to_be_bytes().to_vec(),
                name: "merged".into(),
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                ..Span::default()
            }],
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    };
    let second = Resource {
        attributes: vec![kv("tier", s("web")), kv("host", s("h"))],
        ..Resource::default()
    }
    .encode_to_vec();
    let mut group = first.encode_to_vec();
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut group);
    prost::encoding::encode_varint(second.len() as u64, &mut group);
    group.extend_from_slice(&second);
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut body);
    prost::encoding::encode_varint(group.len() as u64, &mut body);
    body.extend_from_slice(&group);
    (body, spans + 1)
}

type Received = BTreeMap<String, (Option<Resource>, Span)>;

fn received(sink: tailgate_bench::sink::Sink) -> Received {
    received_spans(&sink.stop().expect("stop the sink"))
        .into_iter()
        .map(|(resource, span)| (span.name.clone(), (resource, span)))
        .collect()
}

#[test]
fn resources_are_edited_as_the_collector_edits_them() {
    let Some(built) = built_peers() else {
        return;
    };
    let (body, sent) = request();
    let pair = Pair::start(&built, |http, upstream| {
        format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: {http}\n        include_metadata: true\nprocessors:\n  resource:\n{ACTIONS}exporters:\n  otlp:\n    endpoint: {upstream}\n    tls:\n      insecure: true\n    compression: none\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [resource]\n      exporters: [otlp]\n"
        )
    });
    post_all(
        &pair.receivers(),
        &[body],
        &[("X-Tenant", "acme"), ("X-Caller", "a")],
    );
    let sent_spans = [("otelcol_exporter_sent_spans", sent)];
    settle_signals(pair.admin, &pair.ours_sink, &sent_spans);
    settle_signals(pair.theirs.metrics, &pair.theirs_sink, &sent_spans);
    let (ours_sink, theirs_sink) = pair.stop();
    let (ours, theirs) = (received(ours_sink), received(theirs_sink));
    assert_eq!(ours.len(), sent);
    assert_eq!(theirs.len(), sent);
    for (name, (resource, span)) in &theirs {
        let (our_resource, our_span) = &ours[name];
        assert_eq!(
            our_resource, resource,
            "span {name}: tailgate's resource (left) is not the Collector's (right)"
        );
        // The Collector writes an empty `status` where none came (its encoder writes every
        // message field); tailgate forwards the span as it came.
        let normal = |span: &Span| Span {
            status: Some(span.status.clone().unwrap_or_default()),
            ..span.clone()
        };
        assert_eq!(normal(our_span), normal(span), "span {name}");
        assert!(our_span.status.is_none(), "span {name} as it was sent");
    }
    // The actions did something: the first group as it arrived at both.
    let first = theirs["g0s0"].0.as_ref().expect("a resource");
    let keys: Vec<&str> = first.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert!(
        keys.contains(&"tenant") && keys.contains(&"scheme"),
        "{keys:?}"
    );
    assert!(!keys.contains(&"tmp.a"), "{keys:?}");
}
