//! OTLP/JSON through the wire layer's public API, checked against the OTLP specification's
//! JSON encoding rules rather than against what the converter happens to produce.
//!
//! The rules exercised (OTLP specification, "JSON Protobuf Encoding", on top of the proto3 JSON
//! mapping): keys are lowerCamelCase field names, and the proto field names (`trace_id`) are
//! accepted as the proto3 mapping lets parsers do; trace and span ids are hex, not base64;
//! 64-bit integers are decimal strings when written and either strings or numbers when read;
//! enums are integers when written, and names are read as the Collector reads them; `bytes`
//! other than ids are base64; unknown keys are ignored at every level.
//!
//! Expected values are written out by hand (ids as byte arrays, times as integers) so a test
//! fails when the conversion is wrong, not only when it changes.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric, number_data_point,
    summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::Value;

use tailgate_wire::json::{from_protobuf, to_protobuf, JsonError};
use tailgate_wire::{
    AnyValueView, LogRecordView, Request, Signal, SpanDefect, TracesRequest, STATUS_CODE_ERROR,
};

// --- helpers -----------------------------------------------------------------------------------

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.to_owned())
}

fn traces_from_json(json: &str) -> ExportTraceServiceRequest {
    let bytes = to_protobuf(Signal::Traces, json.as_bytes()).expect("valid OTLP/JSON");
    ExportTraceServiceRequest::decode(bytes.as_slice()).expect("to_protobuf wrote valid protobuf")
}

fn single_span(json_span: &str) -> Span {
    let json = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{json_span}]}}]}}]}}"#);
    let mut request = traces_from_json(&json);
    request
        .resource_spans
        .remove(0)
        .scope_spans
        .remove(0)
        .spans
        .remove(0)
}

fn to_json_value(signal: Signal, bytes: &[u8]) -> Value {
    let json = from_protobuf(signal, bytes).expect("valid protobuf");
    serde_json::from_slice(&json).expect("from_protobuf wrote valid JSON")
}

/// Every object key anywhere in `value`, for checks on key spelling.
fn all_keys(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                all_keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| all_keys(v, out)),
        _ => {}
    }
}

// Ids of the hand-written trace request, as bytes.
const TRACE_ID: [u8; 16] = [
    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
];
const SPAN_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];
const PARENT_SPAN_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73];
const CHILD_SPAN_ID: [u8; 8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
const LINK_TRACE_ID: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const LINK_SPAN_ID: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];
const ORPHAN_TRACE_ID: [u8; 16] = [0xab; 16];
const ORPHAN_SPAN_ID: [u8; 8] = [0xcd; 8];

/// A trace request as an SDK or a person would write it: every AnyValue type, both spellings
/// of 64-bit integers and enums, proto field names beside JSON names, and keys this version of
/// OTLP does not define at every level.
const HAND_WRITTEN_TRACES: &str = r#"{
  "resourceSpans": [
    {
      "resource": {
        "attributes": [
          { "key": "service.name", "value": { "stringValue": "checkout" } },
          { "key": "host.cpus", "value": { "intValue": 16 } }
        ],
        "droppedAttributesCount": "3",
        "futureResourceField": { "kind": "SPAN_KIND_NOT_A_SPAN", "list": [1, 2] }
      },
      "schemaUrl": "https://opentelemetry.io/schemas/1.24.0",
      "futureResourceGroupField": 7,
      "scope_spans": [
        {
          "scope": {
            "name": "io.opentelemetry.contrib.http",
            "version": "1.4.0",
            "attributes": [ { "key": "scope.attr", "value": { "stringValue": "s" } } ],
            "futureScopeField": true
          },
          "schemaUrl": "https://opentelemetry.io/schemas/1.21.0",
          "spans": [
            {
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "eee19b7ec3c1b174",
              "parentSpanId": "eee19b7ec3c1b173",
              "traceState": "rojo=00f067aa0ba902b7",
              "name": "GET /api/cart",
              "kind": "SPAN_KIND_SERVER",
              "startTimeUnixNano": "1544712660123456789",
              "endTimeUnixNano": "1544712661000000001",
              "flags": 257,
              "attributes": [
                { "key": "http.method", "value": { "stringValue": "GET", "futureValueField": 1 } },
                { "key": "http.retry", "value": { "boolValue": true } },
                { "key": "http.status_code", "value": { "intValue": "503" } },
                { "key": "net.peer.port", "value": { "intValue": 8443 } },
                { "key": "sample.rate", "value": { "doubleValue": 0.25 } },
                { "key": "payload.digest", "value": { "bytesValue": "3q2+7w==" } },
                { "key": "http.route.parts", "value": { "arrayValue": { "values": [
                  { "stringValue": "api" },
                  { "intValue": "-7" },
                  { "boolValue": false },
                  { "doubleValue": 1.5 }
                ] } } },
                { "key": "http.request.header", "value": { "kvlistValue": { "values": [
                  { "key": "accept", "value": { "stringValue": "application/json" } },
                  { "key": "nested", "value": { "kvlistValue": { "values": [
                    { "key": "depth", "value": { "intValue": "2" } }
                  ] } } }
                ] } } },
                { "key": "snake.value", "value": { "string_value": "accepted" } },
                { "key": "empty", "value": {} },
                { "key": "unknown.kv.key", "value": { "stringValue": "v" }, "futureKeyValueField": [] }
              ],
              "droppedAttributesCount": 2,
              "events": [
                {
                  "timeUnixNano": "1544712660500000000",
                  "name": "cache.miss",
                  "attributes": [ { "key": "cache.key", "value": { "stringValue": "cart:42" } } ],
                  "droppedAttributesCount": 1,
                  "futureEventField": "x"
                }
              ],
              "droppedEventsCount": 3,
              "links": [
                {
                  "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                  "spanId": "00f067aa0ba902b7",
                  "traceState": "congo=t61rcWkgMzE",
                  "attributes": [ { "key": "link.reason", "value": { "stringValue": "retry" } } ],
                  "droppedAttributesCount": 5,
                  "flags": "769",
                  "futureLinkField": null
                }
              ],
              "droppedLinksCount": 4,
              "status": {
                "code": "STATUS_CODE_ERROR",
                "message": "upstream timeout",
                "futureStatusField": []
              },
              "futureSpanField": { "nested": [1, { "deep": null }] }
            },
            {
              "trace_id": "5b8efff798038103d269b633813fc60c",
              "span_id": "0102030405060708",
              "parent_span_id": "eee19b7ec3c1b174",
              "name": "SELECT cart",
              "kind": 3,
              "start_time_unix_nano": 1544712660300000007,
              "endTimeUnixNano": 1544712660400000009,
              "dropped_attributes_count": 6,
              "status": { "code": 2 }
            }
          ]
        }
      ]
    },
    {
      "scopeSpans": [
        { "spans": [ { "traceId": "abababababababababababababababab", "spanId": "cdcdcdcdcdcdcdcd", "name": "orphan" } ] }
      ]
    }
  ],
  "futureTopLevelField": { "resourceSpans": 5 }
}"#;

/// `HAND_WRITTEN_TRACES` as the prost types, built field by field from the JSON above.
fn hand_written_traces_expected() -> ExportTraceServiceRequest {
    let server_span = Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: SPAN_ID.to_vec(),
        parent_span_id: PARENT_SPAN_ID.to_vec(),
        trace_state: "rojo=00f067aa0ba902b7".into(),
        name: "GET /api/cart".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: 1_544_712_660_123_456_789,
        end_time_unix_nano: 1_544_712_661_000_000_001,
        flags: 0x101,
        attributes: vec![
            kv("http.method", string("GET")),
            kv("http.retry", any_value::Value::BoolValue(true)),
            kv("http.status_code", any_value::Value::IntValue(503)),
            kv("net.peer.port", any_value::Value::IntValue(8443)),
            kv("sample.rate", any_value::Value::DoubleValue(0.25)),
            kv(
                "payload.digest",
                any_value::Value::BytesValue(vec![0xde, 0xad, 0xbe, 0xef]),
            ),
            kv(
                "http.route.parts",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(string("api")),
                        },
                        AnyValue {
                            value: Some(any_value::Value::IntValue(-7)),
                        },
                        AnyValue {
                            value: Some(any_value::Value::BoolValue(false)),
                        },
                        AnyValue {
                            value: Some(any_value::Value::DoubleValue(1.5)),
                        },
                    ],
                }),
            ),
            kv(
                "http.request.header",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![
                        kv("accept", string("application/json")),
                        kv(
                            "nested",
                            any_value::Value::KvlistValue(KeyValueList {
                                values: vec![kv("depth", any_value::Value::IntValue(2))],
                            }),
                        ),
                    ],
                }),
            ),
            kv("snake.value", string("accepted")),
            KeyValue {
                key: "empty".into(),
                value: Some(AnyValue { value: None }),
                ..Default::default()
            },
            kv("unknown.kv.key", string("v")),
        ],
        dropped_attributes_count: 2,
        events: vec![span::Event {
            time_unix_nano: 1_544_712_660_500_000_000,
            name: "cache.miss".into(),
            attributes: vec![kv("cache.key", string("cart:42"))],
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 3,
        links: vec![span::Link {
            trace_id: LINK_TRACE_ID.to_vec(),
            span_id: LINK_SPAN_ID.to_vec(),
            trace_state: "congo=t61rcWkgMzE".into(),
            attributes: vec![kv("link.reason", string("retry"))],
            dropped_attributes_count: 5,
            flags: 0x301,
        }],
        dropped_links_count: 4,
        status: Some(Status {
            message: "upstream timeout".into(),
            code: 2,
        }),
    };
    let client_span = Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: CHILD_SPAN_ID.to_vec(),
        parent_span_id: SPAN_ID.to_vec(),
        name: "SELECT cart".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: 1_544_712_660_300_000_007,
        end_time_unix_nano: 1_544_712_660_400_000_009,
        dropped_attributes_count: 6,
        status: Some(Status {
            message: String::new(),
            code: 2,
        }),
        ..Default::default()
    };
    let orphan = Span {
        trace_id: ORPHAN_TRACE_ID.to_vec(),
        span_id: ORPHAN_SPAN_ID.to_vec(),
        name: "orphan".into(),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", string("checkout")),
                        kv("host.cpus", any_value::Value::IntValue(16)),
                    ],
                    dropped_attributes_count: 3,
                    entity_refs: vec![],
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "io.opentelemetry.contrib.http".into(),
                        version: "1.4.0".into(),
                        attributes: vec![kv("scope.attr", string("s"))],
                        dropped_attributes_count: 0,
                    }),
                    spans: vec![server_span, client_span],
                    schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
            },
            ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    scope: None,
                    spans: vec![orphan],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
        ],
    }
}

// --- hand-written traces -------------------------------------------------------------------------

#[test]
fn hand_written_trace_request_decodes_every_field() {
    let decoded = traces_from_json(HAND_WRITTEN_TRACES);
    let expected = hand_written_traces_expected();
    // Field by field first, so a failure points at the part that differs.
    let (got_rs, want_rs) = (&decoded.resource_spans, &expected.resource_spans);
    assert_eq!(got_rs.len(), 2);
    assert_eq!(got_rs[0].resource, want_rs[0].resource);
    assert_eq!(got_rs[0].schema_url, want_rs[0].schema_url);
    assert_eq!(
        got_rs[0].scope_spans[0].scope,
        want_rs[0].scope_spans[0].scope
    );
    assert_eq!(
        got_rs[0].scope_spans[0].schema_url,
        want_rs[0].scope_spans[0].schema_url
    );
    let (got, want) = (
        &got_rs[0].scope_spans[0].spans,
        &want_rs[0].scope_spans[0].spans,
    );
    assert_eq!(got.len(), 2);
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.trace_id, w.trace_id, "{}", w.name);
        assert_eq!(g.span_id, w.span_id, "{}", w.name);
        assert_eq!(g.parent_span_id, w.parent_span_id, "{}", w.name);
        assert_eq!(g.kind, w.kind, "{}", w.name);
        assert_eq!(g.start_time_unix_nano, w.start_time_unix_nano, "{}", w.name);
        assert_eq!(g.end_time_unix_nano, w.end_time_unix_nano, "{}", w.name);
        for (ga, wa) in g.attributes.iter().zip(&w.attributes) {
            assert_eq!(ga, wa);
        }
        assert_eq!(g.attributes.len(), w.attributes.len(), "{}", w.name);
        assert_eq!(g.events, w.events, "{}", w.name);
        assert_eq!(g.links, w.links, "{}", w.name);
        assert_eq!(g.status, w.status, "{}", w.name);
    }
    // Then the whole message, which covers every remaining field.
    assert_eq!(decoded, expected);
}

#[test]
fn hand_written_trace_request_reads_through_span_views() {
    let bytes = to_protobuf(Signal::Traces, HAND_WRITTEN_TRACES.as_bytes()).unwrap();
    let request = TracesRequest::parse(&bytes).expect("to_protobuf output validates");
    let spans: Vec<_> = request.spans().collect();
    assert_eq!(spans.len(), 3);

    let server = &spans[0];
    assert_eq!(server.defect(), None);
    assert_eq!(server.trace_id(), TRACE_ID);
    assert_eq!(server.trace_id_array(), Some(TRACE_ID));
    assert_eq!(server.span_id(), SPAN_ID);
    assert_eq!(server.parent_span_id(), PARENT_SPAN_ID);
    assert_eq!(server.trace_state(), b"rojo=00f067aa0ba902b7");
    assert_eq!(server.name(), b"GET /api/cart");
    assert_eq!(server.kind(), 2, "SPAN_KIND_SERVER is 2");
    assert_eq!(server.start_time_unix_nano(), 1_544_712_660_123_456_789);
    assert_eq!(server.end_time_unix_nano(), 1_544_712_661_000_000_001);
    assert_eq!(server.flags(), 0x101);
    assert_eq!(server.status_code(), STATUS_CODE_ERROR);
    assert_eq!(server.status_message(), b"upstream timeout");
    assert_eq!(server.dropped_attributes_count(), 2);
    assert_eq!(server.dropped_events_count(), 3);
    assert_eq!(server.dropped_links_count(), 4);

    let attrs = server.attributes();
    assert_eq!(attrs.clone().count(), 11);
    assert!(matches!(
        attrs.clone().get(b"http.method"),
        Some(AnyValueView::String(b"GET"))
    ));
    assert!(matches!(
        attrs.clone().get(b"http.retry"),
        Some(AnyValueView::Bool(true))
    ));
    assert!(matches!(
        attrs.clone().get(b"http.status_code"),
        Some(AnyValueView::Int(503))
    ));
    assert!(matches!(
        attrs.clone().get(b"net.peer.port"),
        Some(AnyValueView::Int(8443))
    ));
    assert!(
        matches!(attrs.clone().get(b"sample.rate"), Some(AnyValueView::Double(d)) if d == 0.25)
    );
    assert!(matches!(
        attrs.clone().get(b"payload.digest"),
        Some(AnyValueView::Bytes(&[0xde, 0xad, 0xbe, 0xef]))
    ));
    match attrs.clone().get(b"http.route.parts") {
        Some(AnyValueView::Array(array)) => {
            let items: Vec<_> = array.iter().collect();
            assert_eq!(items.len(), 4);
            assert!(matches!(items[0], AnyValueView::String(b"api")));
            assert!(matches!(items[1], AnyValueView::Int(-7)));
            assert!(matches!(items[2], AnyValueView::Bool(false)));
            assert!(matches!(items[3], AnyValueView::Double(d) if d == 1.5));
        }
        other => panic!("http.route.parts: {other:?}"),
    }
    match attrs.clone().get(b"http.request.header") {
        Some(AnyValueView::KvList(list)) => {
            let entries: Vec<_> = list.collect();
            assert_eq!(entries.len(), 2);
            assert_eq!(entries[0].key, b"accept");
            assert!(matches!(
                entries[0].value,
                AnyValueView::String(b"application/json")
            ));
            assert_eq!(entries[1].key, b"nested");
            match &entries[1].value {
                AnyValueView::KvList(inner) => {
                    let inner: Vec<_> = inner.clone().collect();
                    assert_eq!(inner.len(), 1);
                    assert_eq!(inner[0].key, b"depth");
                    assert!(matches!(inner[0].value, AnyValueView::Int(2)));
                }
                other => panic!("nested: {other:?}"),
            }
        }
        other => panic!("http.request.header: {other:?}"),
    }
    assert!(matches!(
        attrs.clone().get(b"snake.value"),
        Some(AnyValueView::String(b"accepted"))
    ));
    assert!(matches!(
        attrs.clone().get(b"empty"),
        Some(AnyValueView::Empty)
    ));
    assert!(attrs.get(b"absent").is_none());

    let events: Vec<_> = server.events().collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].time_unix_nano(), 1_544_712_660_500_000_000);
    assert_eq!(events[0].name(), b"cache.miss");
    assert_eq!(events[0].dropped_attributes_count(), 1);
    assert!(matches!(
        events[0].attributes().get(b"cache.key"),
        Some(AnyValueView::String(b"cart:42"))
    ));

    let links: Vec<_> = server.links().collect();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].trace_id(), LINK_TRACE_ID);
    assert_eq!(links[0].span_id(), LINK_SPAN_ID);
    assert_eq!(links[0].trace_state(), b"congo=t61rcWkgMzE");
    assert_eq!(links[0].flags(), 0x301);
    assert_eq!(links[0].dropped_attributes_count(), 5);
    assert!(matches!(
        links[0].attributes().get(b"link.reason"),
        Some(AnyValueView::String(b"retry"))
    ));

    let client = &spans[1];
    assert_eq!(client.defect(), None);
    assert_eq!(client.trace_id(), TRACE_ID);
    assert_eq!(client.span_id(), CHILD_SPAN_ID);
    assert_eq!(client.parent_span_id(), SPAN_ID);
    assert_eq!(client.kind(), 3, "SPAN_KIND_CLIENT is 3");
    assert_eq!(client.start_time_unix_nano(), 1_544_712_660_300_000_007);
    assert_eq!(client.end_time_unix_nano(), 1_544_712_660_400_000_009);
    assert_eq!(client.status_code(), STATUS_CODE_ERROR);
    assert_eq!(client.status_message(), b"");
    assert_eq!(client.dropped_attributes_count(), 6);
    assert_eq!(client.events().count(), 0);
    assert_eq!(client.links().count(), 0);

    let orphan = &spans[2];
    assert_eq!(orphan.defect(), None);
    assert_eq!(orphan.trace_id(), ORPHAN_TRACE_ID);
    assert_eq!(orphan.name(), b"orphan");
    assert_eq!(orphan.kind(), 0);
    assert_eq!(orphan.status_code(), 0);

    // Group headers: resource, scope and schema URLs.
    let groups: Vec<_> = request.request().resource_groups().collect();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        groups[0].schema_url(),
        b"https://opentelemetry.io/schemas/1.24.0"
    );
    let resource = groups[0].resource().expect("first group has a resource");
    assert_eq!(resource.dropped_attributes_count(), 3);
    assert!(matches!(
        resource.attributes().get(b"service.name"),
        Some(AnyValueView::String(b"checkout"))
    ));
    assert!(matches!(
        resource.attributes().get(b"host.cpus"),
        Some(AnyValueView::Int(16))
    ));
    let scope_group = groups[0].scope_groups().next().unwrap();
    assert_eq!(
        scope_group.schema_url(),
        b"https://opentelemetry.io/schemas/1.21.0"
    );
    let scope = scope_group.scope().expect("first scope group has a scope");
    assert_eq!(scope.name(), b"io.opentelemetry.contrib.http");
    assert_eq!(scope.version(), b"1.4.0");
    assert!(groups[1].resource().is_none());
    assert_eq!(groups[1].schema_url(), b"");
    assert!(groups[1].scope_groups().next().unwrap().scope().is_none());
}

#[test]
fn proto_field_names_are_accepted_everywhere() {
    let json = r#"{"resource_spans":[{
        "resource":{"attributes":[{"key":"k","value":{"int_value":"-5"}}],"dropped_attributes_count":1},
        "schema_url":"https://example.com/r",
        "scope_spans":[{
            "scope":{"name":"lib","dropped_attributes_count":"2"},
            "schema_url":"https://example.com/s",
            "spans":[{
                "trace_id":"0af7651916cd43dd8448eb211c80319c",
                "span_id":"b7ad6b7169203331",
                "trace_state":"a=b",
                "start_time_unix_nano":"10",
                "end_time_unix_nano":20,
                "dropped_events_count":3,
                "dropped_links_count":4,
                "events":[{"time_unix_nano":"15","name":"e","dropped_attributes_count":5}],
                "links":[{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"00f067aa0ba902b7","trace_state":"x=y"}],
                "attributes":[{"key":"a","value":{"array_value":{"values":[{"bool_value":true}]}}},
                              {"key":"b","value":{"kvlist_value":{"values":[{"key":"c","value":{"double_value":2.5}}]}}},
                              {"key":"d","value":{"bytes_value":"AAE="}}]
            }]
        }]
    }]}"#;
    let request = traces_from_json(json);
    let rs = &request.resource_spans[0];
    assert_eq!(rs.schema_url, "https://example.com/r");
    let resource = rs.resource.as_ref().unwrap();
    assert_eq!(resource.dropped_attributes_count, 1);
    assert_eq!(
        resource.attributes,
        vec![kv("k", any_value::Value::IntValue(-5))]
    );
    let ss = &rs.scope_spans[0];
    assert_eq!(ss.schema_url, "https://example.com/s");
    assert_eq!(ss.scope.as_ref().unwrap().name, "lib");
    assert_eq!(ss.scope.as_ref().unwrap().dropped_attributes_count, 2);
    let span = &ss.spans[0];
    assert_eq!(
        span.trace_id,
        [
            0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80,
            0x31, 0x9c
        ]
    );
    assert_eq!(
        span.span_id,
        [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]
    );
    assert_eq!(span.trace_state, "a=b");
    assert_eq!(
        (span.start_time_unix_nano, span.end_time_unix_nano),
        (10, 20)
    );
    assert_eq!(
        (span.dropped_events_count, span.dropped_links_count),
        (3, 4)
    );
    assert_eq!(span.events[0].time_unix_nano, 15);
    assert_eq!(span.events[0].dropped_attributes_count, 5);
    assert_eq!(span.links[0].span_id, LINK_SPAN_ID);
    assert_eq!(span.links[0].trace_state, "x=y");
    assert_eq!(
        span.attributes,
        vec![
            kv(
                "a",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::BoolValue(true)),
                    }],
                }),
            ),
            kv(
                "b",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![kv("c", any_value::Value::DoubleValue(2.5))],
                }),
            ),
            kv("d", any_value::Value::BytesValue(vec![0x00, 0x01])),
        ]
    );
}

// --- ids -----------------------------------------------------------------------------------------

#[test]
fn uppercase_hex_ids_are_accepted() {
    let span = single_span(
        r#"{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
            "parentSpanId":"eEe19B7ec3C1b173"}"#,
    );
    assert_eq!(span.trace_id, TRACE_ID);
    assert_eq!(span.span_id, SPAN_ID);
    assert_eq!(span.parent_span_id, PARENT_SPAN_ID);
}

#[test]
fn invalid_hex_ids_are_errors() {
    for bad in [
        // Not hex digits.
        r#"{"traceId":"5b8efff798038103d269b633813fc6zz","spanId":"eee19b7ec3c1b174"}"#,
        // Odd number of digits.
        r#"{"traceId":"5b8efff798038103d269b633813fc60","spanId":"eee19b7ec3c1b174"}"#,
        // Base64, which is what plain proto3 JSON would use for bytes.
        r#"{"traceId":"W47/95gDgQPSabYzgT/GDA==","spanId":"eee19b7ec3c1b174"}"#,
        // Not a string at all.
        r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":12345678}"#,
        // A bad link id is as bad as a bad span id.
        r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "links":[{"traceId":"not-hex","spanId":"eee19b7ec3c1b174"}]}"#,
    ] {
        let json = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{bad}]}}]}}]}}"#);
        match to_protobuf(Signal::Traces, json.as_bytes()) {
            Err(JsonError::Json(_)) => {}
            other => panic!("{bad}: expected a JSON error, got {other:?}"),
        }
    }
}

#[test]
fn wrong_length_hex_ids_decode_and_the_span_reports_the_defect() {
    let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"5b8efff7","spanId":"eee19b7ec3c1b174","name":"short trace id"},
        {"traceId":"5b8efff798038103d269b633813fc60c00","spanId":"eee19b7ec3c1b174","name":"long trace id"},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b","name":"short span id"},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"eeee","name":"short parent"},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"bad link",
         "links":[{"traceId":"4bf92f35","spanId":"00f067aa0ba902b7"}]},
        {"spanId":"eee19b7ec3c1b174","name":"no trace id"},
        {"traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b174","name":"zero trace id"},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"fine"}
    ]}]}]}"#;
    let bytes = to_protobuf(Signal::Traces, json.as_bytes()).expect("lengths are not JSON errors");
    let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
    let prost_spans = &decoded.resource_spans[0].scope_spans[0].spans;
    assert_eq!(prost_spans[0].trace_id, [0x5b, 0x8e, 0xff, 0xf7]);
    assert_eq!(prost_spans[1].trace_id.len(), 17);

    let request = TracesRequest::parse(&bytes).expect("wire-valid");
    let defects: Vec<_> = request
        .spans()
        .map(|s| (String::from_utf8(s.name().to_vec()).unwrap(), s.defect()))
        .collect();
    let expected = [
        ("short trace id", Some(SpanDefect::TraceIdLength(4))),
        ("long trace id", Some(SpanDefect::TraceIdLength(17))),
        ("short span id", Some(SpanDefect::SpanIdLength(3))),
        ("short parent", Some(SpanDefect::ParentSpanIdLength(2))),
        ("bad link", Some(SpanDefect::LinkTraceIdLength(4))),
        ("no trace id", Some(SpanDefect::TraceIdLength(0))),
        ("zero trace id", Some(SpanDefect::TraceIdZero)),
        ("fine", None),
    ];
    assert_eq!(defects.len(), expected.len());
    for ((name, defect), (want_name, want_defect)) in defects.iter().zip(expected) {
        assert_eq!(name, want_name);
        assert_eq!(*defect, want_defect, "{name}");
    }
}

// --- integers --------------------------------------------------------------------------------------

#[test]
fn sixty_four_bit_values_near_the_limit_keep_every_digit() {
    // 2^64 - 1 and 2^64 - 2 are far beyond 2^53, where a JSON number read as a double would
    // lose its low bits; as strings and as JSON integers both must arrive exactly.
    let span = single_span(
        r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "startTimeUnixNano":"18446744073709551614","endTimeUnixNano":18446744073709551615,
            "events":[{"timeUnixNano":"18446744073709551615"}],
            "attributes":[{"key":"max","value":{"intValue":"9223372036854775807"}},
                          {"key":"max_number","value":{"intValue":9223372036854775807}}]}"#,
    );
    assert_eq!(span.start_time_unix_nano, u64::MAX - 1);
    assert_eq!(span.end_time_unix_nano, u64::MAX);
    assert_eq!(span.events[0].time_unix_nano, u64::MAX);
    assert_eq!(
        span.attributes,
        vec![
            kv("max", any_value::Value::IntValue(i64::MAX)),
            kv("max_number", any_value::Value::IntValue(i64::MAX)),
        ]
    );

    let metrics = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
        {"name":"h","histogram":{"dataPoints":[{"count":"18446744073709551615",
            "bucketCounts":["18446744073709551614", 18446744073709551615, "0"],
            "explicitBounds":[1, 2.5],"timeUnixNano":"18446744073709551613"}]}},
        {"name":"g","gauge":{"dataPoints":[{"asInt":"-9223372036854775808"}]}}
    ]}]}]}"#;
    let bytes = to_protobuf(Signal::Metrics, metrics.as_bytes()).unwrap();
    let decoded = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
    let metrics = &decoded.resource_metrics[0].scope_metrics[0].metrics;
    let Some(metric::Data::Histogram(h)) = &metrics[0].data else {
        panic!("histogram expected: {:?}", metrics[0]);
    };
    let point = &h.data_points[0];
    assert_eq!(point.count, u64::MAX);
    assert_eq!(point.bucket_counts, [u64::MAX - 1, u64::MAX, 0]);
    assert_eq!(point.explicit_bounds, [1.0, 2.5]);
    assert_eq!(point.time_unix_nano, u64::MAX - 2);
    let Some(metric::Data::Gauge(g)) = &metrics[1].data else {
        panic!("gauge expected: {:?}", metrics[1]);
    };
    assert_eq!(
        g.data_points[0].value,
        Some(number_data_point::Value::AsInt(i64::MIN))
    );
}

#[test]
fn out_of_range_64_bit_values_are_errors() {
    for bad in [
        r#""startTimeUnixNano":"18446744073709551616""#,
        r#""startTimeUnixNano":"-1""#,
        r#""startTimeUnixNano":-1"#,
        r#""startTimeUnixNano":"12abc""#,
        r#""attributes":[{"key":"k","value":{"intValue":"9223372036854775808"}}]"#,
        r#""attributes":[{"key":"k","value":{"intValue":"1.5"}}]"#,
    ] {
        let json = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c",{bad}}}]}}]}}]}}"#
        );
        assert!(
            matches!(
                to_protobuf(Signal::Traces, json.as_bytes()),
                Err(JsonError::Json(_))
            ),
            "{bad} must be refused"
        );
    }
}

#[test]
fn negative_int_values_as_strings_and_numbers() {
    let span = single_span(
        r#"{"attributes":[
            {"key":"a","value":{"intValue":"-1"}},
            {"key":"b","value":{"intValue":-42}},
            {"key":"c","value":{"intValue":"-9223372036854775808"}},
            {"key":"d","value":{"intValue":-9223372036854775808}}]}"#,
    );
    let ints: Vec<_> = span
        .attributes
        .iter()
        .map(|a| a.value.as_ref().and_then(|v| v.value.clone()))
        .collect();
    assert_eq!(
        ints,
        [
            Some(any_value::Value::IntValue(-1)),
            Some(any_value::Value::IntValue(-42)),
            Some(any_value::Value::IntValue(i64::MIN)),
            Some(any_value::Value::IntValue(i64::MIN)),
        ]
    );
}

#[test]
fn thirty_two_bit_fields_may_be_strings() {
    let span = single_span(
        r#"{"droppedAttributesCount":"7","droppedEventsCount":"8","droppedLinksCount":"9",
            "flags":"4294967295"}"#,
    );
    assert_eq!(span.dropped_attributes_count, 7);
    assert_eq!(span.dropped_events_count, 8);
    assert_eq!(span.dropped_links_count, 9);
    assert_eq!(span.flags, u32::MAX);
}

#[test]
fn enums_by_name_by_number_and_by_decimal_string() {
    let cases = [
        (r#""SPAN_KIND_UNSPECIFIED""#, 0),
        (r#""SPAN_KIND_INTERNAL""#, 1),
        (r#""SPAN_KIND_SERVER""#, 2),
        (r#""SPAN_KIND_CLIENT""#, 3),
        (r#""SPAN_KIND_PRODUCER""#, 4),
        (r#""SPAN_KIND_CONSUMER""#, 5),
        ("5", 5),
        (r#""4""#, 4),
    ];
    for (kind, want) in cases {
        let span = single_span(&format!(r#"{{"kind":{kind}}}"#));
        assert_eq!(span.kind, want, "kind {kind}");
    }
    for (code, want) in [
        (r#""STATUS_CODE_UNSET""#, 0),
        (r#""STATUS_CODE_OK""#, 1),
        (r#""STATUS_CODE_ERROR""#, 2),
        ("1", 1),
    ] {
        let span = single_span(&format!(r#"{{"status":{{"code":{code}}}}}"#));
        assert_eq!(span.status.unwrap().code, want, "code {code}");
    }
}

// --- errors --------------------------------------------------------------------------------------

#[test]
fn not_json_is_a_typed_error_with_a_position() {
    for body in [
        &b"{\"resourceSpans\": ["[..],
        b"",
        b"resourceSpans",
        b"\xff\xfe",
    ] {
        let err = to_protobuf(Signal::Traces, body).unwrap_err();
        assert!(matches!(err, JsonError::Json(_)), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("OTLP/JSON"), "{message}");
        // serde_json reports where parsing stopped; a user can find the spot.
        assert!(message.contains("line 1"), "{message}");
    }
}

#[test]
fn wrong_shape_is_a_typed_error_saying_what_was_found() {
    let cases: [(Signal, &str, &str); 5] = [
        (Signal::Traces, r#"{"resourceSpans": 5}"#, "5"),
        (Signal::Traces, r#"[{"resourceSpans": []}]"#, "sequence"),
        (
            Signal::Traces,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":17}]}]}]}"#,
            "17",
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":"x"}]}"#,
            "\"x\"",
        ),
        (
            Signal::Logs,
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":{}}]}]}"#,
            "map",
        ),
    ];
    for (signal, body, found) in cases {
        let err = to_protobuf(signal, body.as_bytes()).unwrap_err();
        assert!(matches!(err, JsonError::Json(_)), "{body}: {err:?}");
        let message = err.to_string();
        assert!(message.starts_with("invalid OTLP/JSON"), "{message}");
        assert!(message.contains("invalid type"), "{body}: {message}");
        assert!(
            message.contains(found),
            "{body}: {message} should mention {found}"
        );
    }
}

#[test]
fn unknown_enum_names_are_typed_errors() {
    let cases: [(Signal, &str, &str, &str); 5] = [
        (
            Signal::Traces,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_BOGUS"}]}]}]}"#,
            "kind",
            "SPAN_KIND_BOGUS",
        ),
        // Enum names are case-sensitive and carry their prefix.
        (
            Signal::Traces,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SERVER"}]}]}]}"#,
            "kind",
            "SERVER",
        ),
        (
            Signal::Traces,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"status":{"code":"status_code_error"}}]}]}]}"#,
            "code",
            "status_code_error",
        ),
        (
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_WEEKLY"}}]}]}]}"#,
            "aggregationTemporality",
            "AGGREGATION_TEMPORALITY_WEEKLY",
        ),
        (
            Signal::Logs,
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severity_number":"SEVERITY_NUMBER_LOUD"}]}]}]}"#,
            "severityNumber",
            "SEVERITY_NUMBER_LOUD",
        ),
    ];
    for (signal, body, want_field, want_value) in cases {
        let err = to_protobuf(signal, body.as_bytes()).unwrap_err();
        match &err {
            JsonError::UnknownEnum { field, value } => {
                assert_eq!(*field, want_field);
                assert_eq!(value, want_value);
            }
            other => panic!("{body}: expected UnknownEnum, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(want_field), "{message}");
        assert!(message.contains(want_value), "{message}");
    }
}

#[test]
fn protobuf_that_does_not_decode_is_a_typed_error() {
    // Field 1, wire type LEN, length 5, but only two bytes follow.
    let truncated = [0x0a, 0x05, 0x01, 0x02];
    for signal in [Signal::Traces, Signal::Metrics, Signal::Logs] {
        let err = from_protobuf(signal, &truncated).unwrap_err();
        assert!(matches!(err, JsonError::Protobuf(_)), "{err:?}");
        assert!(err.to_string().contains("protobuf"), "{err}");
    }
}

#[test]
fn empty_requests_in_both_directions() {
    for (signal, json) in [
        (Signal::Traces, "{}"),
        (Signal::Traces, r#"{"resourceSpans":[]}"#),
        (Signal::Metrics, "{}"),
        (Signal::Logs, r#"{"resourceLogs":[]}"#),
    ] {
        let bytes = to_protobuf(signal, json.as_bytes()).unwrap();
        assert!(
            bytes.is_empty(),
            "{json}: an empty request encodes to no bytes"
        );
        let back = to_json_value(signal, &bytes);
        let back = to_protobuf(signal, back.to_string().as_bytes()).unwrap();
        assert!(back.is_empty());
    }
}

// --- round trips -----------------------------------------------------------------------------------

/// protobuf → JSON → protobuf must give back the same message, and since prost's encoding of a
/// message is deterministic, the same bytes.
fn round_trip<T: Message + Default + PartialEq + std::fmt::Debug>(signal: Signal, original: &T) {
    let bytes = original.encode_to_vec();
    let json = from_protobuf(signal, &bytes).expect("from_protobuf");
    let again = to_protobuf(signal, &json).unwrap_or_else(|e| {
        panic!(
            "to_protobuf of from_protobuf output: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    let decoded = T::decode(again.as_slice()).expect("decodes");
    assert_eq!(&decoded, original, "{}", String::from_utf8_lossy(&json));
    assert_eq!(again, bytes);
    // The JSON itself must be a valid request for the wire layer's scanner once converted.
    Request::parse(signal, &again).expect("wire-valid");
}

#[test]
fn traces_round_trip() {
    round_trip(Signal::Traces, &hand_written_traces_expected());
}

fn gauge_point(time: u64, value: number_data_point::Value) -> NumberDataPoint {
    NumberDataPoint {
        attributes: vec![kv("cpu", any_value::Value::IntValue(time as i64 % 4))],
        start_time_unix_nano: 0,
        time_unix_nano: time,
        exemplars: vec![],
        flags: 0,
        value: Some(value),
    }
}

/// A metrics request with every kind of metric data, exemplars, optional fields set and unset,
/// and values at the edges of their types.
fn every_metric_kind() -> ExportMetricsServiceRequest {
    let gauge = Metric {
        name: "system.cpu.utilization".into(),
        description: "CPU use".into(),
        unit: "1".into(),
        metadata: vec![kv("prometheus.type", string("gauge"))],
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![
                gauge_point(
                    1_700_000_000_000_000_001,
                    number_data_point::Value::AsDouble(0.125),
                ),
                gauge_point(
                    1_700_000_000_000_000_002,
                    number_data_point::Value::AsInt(-3),
                ),
                gauge_point(u64::MAX, number_data_point::Value::AsInt(i64::MIN)),
                NumberDataPoint {
                    flags: 1, // no recorded value
                    value: None,
                    ..gauge_point(7, number_data_point::Value::AsInt(0))
                },
            ],
        })),
    };
    let sum = Metric {
        name: "http.server.requests".into(),
        unit: "{request}".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                start_time_unix_nano: 1_600_000_000_000_000_000,
                exemplars: vec![Exemplar {
                    filtered_attributes: vec![kv("user", string("u-1"))],
                    time_unix_nano: 1_700_000_000_000_000_500,
                    span_id: SPAN_ID.to_vec(),
                    trace_id: TRACE_ID.to_vec(),
                    value: Some(exemplar::Value::AsInt(1)),
                }],
                ..gauge_point(
                    1_700_000_000_000_000_900,
                    number_data_point::Value::AsInt(i64::MAX),
                )
            }],
            aggregation_temporality: 2,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    let histogram = Metric {
        name: "http.server.duration".into(),
        unit: "ms".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![
                HistogramDataPoint {
                    attributes: vec![kv("route", string("/cart"))],
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    count: 10,
                    sum: Some(1234.5),
                    bucket_counts: vec![1, 2, 3, 4],
                    explicit_bounds: vec![5.0, 10.0, 100.0],
                    exemplars: vec![Exemplar {
                        filtered_attributes: vec![],
                        time_unix_nano: 3,
                        span_id: CHILD_SPAN_ID.to_vec(),
                        trace_id: LINK_TRACE_ID.to_vec(),
                        value: Some(exemplar::Value::AsDouble(42.25)),
                    }],
                    flags: 0,
                    min: Some(-0.5),
                    max: Some(999.75),
                },
                HistogramDataPoint {
                    count: u64::MAX,
                    bucket_counts: vec![u64::MAX],
                    sum: None,
                    min: None,
                    max: None,
                    ..Default::default()
                },
            ],
            aggregation_temporality: 1,
        })),
        ..Default::default()
    };
    let exponential = Metric {
        name: "rpc.latency".into(),
        data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                attributes: vec![kv("rpc.method", string("Get"))],
                start_time_unix_nano: 11,
                time_unix_nano: 12,
                count: 17,
                sum: Some(3.5),
                scale: -3,
                zero_count: 2,
                positive: Some(Buckets {
                    offset: -2,
                    bucket_counts: vec![5, 0, 6],
                }),
                negative: Some(Buckets {
                    offset: 3,
                    bucket_counts: vec![u64::MAX - 7],
                }),
                flags: 0,
                exemplars: vec![],
                min: Some(-1.0),
                max: Some(8.0),
                zero_threshold: 1e-9,
            }],
            aggregation_temporality: 2,
        })),
        ..Default::default()
    };
    let summary = Metric {
        name: "gc.pause".into(),
        data: Some(metric::Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                attributes: vec![],
                start_time_unix_nano: 21,
                time_unix_nano: 22,
                count: 100,
                sum: 2500.0,
                quantile_values: vec![
                    ValueAtQuantile {
                        quantile: 0.0,
                        value: 1.0,
                    },
                    ValueAtQuantile {
                        quantile: 0.99,
                        value: 120.5,
                    },
                    ValueAtQuantile {
                        quantile: 1.0,
                        value: 300.0,
                    },
                ],
                flags: 0,
            }],
        })),
        ..Default::default()
    };
    let no_data = Metric {
        name: "declared.only".into(),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![
            ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", string("api"))],
                    dropped_attributes_count: 0,
                    entity_refs: vec![],
                }),
                scope_metrics: vec![
                    ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name: "meter-a".into(),
                            version: "2.0".into(),
                            ..Default::default()
                        }),
                        metrics: vec![gauge, sum, histogram],
                        schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                    },
                    ScopeMetrics {
                        scope: None,
                        metrics: vec![exponential, summary, no_data],
                        schema_url: String::new(),
                    },
                ],
                schema_url: "https://opentelemetry.io/schemas/1.25.0".into(),
            },
            ResourceMetrics::default(),
        ],
    }
}

#[test]
fn metrics_round_trip_every_kind() {
    round_trip(Signal::Metrics, &every_metric_kind());
}

fn log_record(n: u64, severity: i32, body: Option<any_value::Value>) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000 + n,
        observed_time_unix_nano: 1_700_000_000_000_000_100 + n,
        severity_number: severity,
        severity_text: String::new(),
        body: body.map(|value| AnyValue { value: Some(value) }),
        attributes: vec![],
        dropped_attributes_count: 0,
        flags: 0,
        trace_id: vec![],
        span_id: vec![],
        event_name: String::new(),
    }
}

fn some_logs() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", string("billing"))],
                dropped_attributes_count: 1,
                entity_refs: vec![],
            }),
            scope_logs: vec![
                ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "log4j".into(),
                        ..Default::default()
                    }),
                    log_records: vec![
                        LogRecord {
                            severity_text: "WARN".into(),
                            attributes: vec![kv("thread", string("main"))],
                            dropped_attributes_count: 2,
                            flags: 1,
                            trace_id: TRACE_ID.to_vec(),
                            span_id: SPAN_ID.to_vec(),
                            event_name: "payment.retry".into(),
                            ..log_record(1, 13, Some(string("card declined, retrying")))
                        },
                        log_record(
                            2,
                            17,
                            Some(any_value::Value::KvlistValue(KeyValueList {
                                values: vec![
                                    kv("code", any_value::Value::IntValue(-402)),
                                    kv("fatal", any_value::Value::BoolValue(false)),
                                ],
                            })),
                        ),
                        log_record(3, 0, Some(any_value::Value::BytesValue(vec![0, 255, 7]))),
                        log_record(4, 24, None),
                    ],
                    schema_url: "https://opentelemetry.io/schemas/1.20.0".into(),
                },
                ScopeLogs::default(),
            ],
            schema_url: String::new(),
        }],
    }
}

#[test]
fn logs_round_trip() {
    round_trip(Signal::Logs, &some_logs());
}

#[test]
fn hand_written_logs_with_severity_by_name() {
    let json = r#"{"resourceLogs":[{
        "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing"}}]},
        "scopeLogs":[{
            "scope":{"name":"log4j"},
            "logRecords":[
                {"timeUnixNano":"1700000000000000001","observedTimeUnixNano":1700000000000000101,
                 "severityNumber":"SEVERITY_NUMBER_WARN","severityText":"WARN",
                 "body":{"stringValue":"card declined, retrying"},
                 "attributes":[{"key":"thread","value":{"stringValue":"main"}}],
                 "droppedAttributesCount":2,"flags":1,
                 "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
                 "eventName":"payment.retry","futureLogField":{"x":1}},
                {"severityNumber":17,"body":{"kvlistValue":{"values":[
                    {"key":"code","value":{"intValue":"-402"}}]}}},
                {"severity_number":"SEVERITY_NUMBER_FATAL4","severity_text":"FATAL",
                 "body":{"arrayValue":{"values":[{"stringValue":"a"},{"doubleValue":-0.5}]}}}
            ]
        }]
    }]}"#;
    let bytes = to_protobuf(Signal::Logs, json.as_bytes()).unwrap();
    let decoded = ExportLogsServiceRequest::decode(bytes.as_slice()).unwrap();
    let records = &decoded.resource_logs[0].scope_logs[0].log_records;
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[0],
        LogRecord {
            severity_text: "WARN".into(),
            attributes: vec![kv("thread", string("main"))],
            dropped_attributes_count: 2,
            flags: 1,
            trace_id: TRACE_ID.to_vec(),
            span_id: SPAN_ID.to_vec(),
            event_name: "payment.retry".into(),
            ..log_record(1, 13, Some(string("card declined, retrying")))
        }
    );
    assert_eq!(records[1].severity_number, 17);
    assert_eq!(
        records[1].body,
        Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![kv("code", any_value::Value::IntValue(-402))],
            })),
        })
    );
    assert_eq!(records[2].severity_number, 24);
    assert_eq!(records[2].severity_text, "FATAL");

    // The same request read in place.
    let request = Request::parse(Signal::Logs, &bytes).unwrap();
    let views: Vec<_> = request
        .items()
        .map(|(_, _, item)| LogRecordView::new(item))
        .collect();
    assert_eq!(views.len(), 3);
    assert_eq!(views[0].severity_number(), 13, "SEVERITY_NUMBER_WARN is 13");
    assert_eq!(views[0].severity_text(), b"WARN");
    assert!(matches!(
        views[0].body(),
        AnyValueView::String(b"card declined, retrying")
    ));
    assert_eq!(views[0].trace_id(), TRACE_ID);
    assert_eq!(views[0].span_id(), SPAN_ID);
    assert!(matches!(
        views[0].attributes().get(b"thread"),
        Some(AnyValueView::String(b"main"))
    ));
    assert!(matches!(views[1].body(), AnyValueView::KvList(_)));
    assert_eq!(views[2].severity_number(), 24);
    assert!(matches!(views[2].body(), AnyValueView::Array(_)));
    assert_eq!(views[2].trace_id(), b"");

    // And back: the protobuf of the hand-written JSON survives a second trip.
    round_trip(Signal::Logs, &decoded);
}

#[test]
fn hand_written_metrics_with_names_and_strings() {
    let json = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
        {"name":"requests","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE",
            "isMonotonic":true,"dataPoints":[{"asInt":"42","startTimeUnixNano":"5","timeUnixNano":6},
                                             {"asDouble":0.5,"flags":"1"}]}},
        {"name":"latency","exponentialHistogram":{"aggregationTemporality":1,"dataPoints":[
            {"count":"4","scale":"-2","zeroCount":1,"zeroThreshold":0.001,
             "positive":{"offset":"-1","bucketCounts":["3"]},
             "negative":{"offset":2,"bucketCounts":[]}}]}},
        {"name":"gc","summary":{"dataPoints":[{"count":3,"sum":7.5,
            "quantileValues":[{"quantile":0.5,"value":2},{"quantile":1,"value":"Infinity"}]}]}},
        {"name":"temp","gauge":{"dataPoints":[{"asDouble":-40}]},"futureMetricField":true}
    ]}]}]}"#;
    let bytes = to_protobuf(Signal::Metrics, json.as_bytes()).unwrap();
    let decoded = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
    let metrics = &decoded.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(metrics.len(), 4);

    let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
        panic!("{:?}", metrics[0]);
    };
    assert_eq!(sum.aggregation_temporality, 2);
    assert!(sum.is_monotonic);
    assert_eq!(sum.data_points.len(), 2);
    assert_eq!(
        sum.data_points[0].value,
        Some(number_data_point::Value::AsInt(42))
    );
    assert_eq!(sum.data_points[0].start_time_unix_nano, 5);
    assert_eq!(sum.data_points[0].time_unix_nano, 6);
    assert_eq!(
        sum.data_points[1].value,
        Some(number_data_point::Value::AsDouble(0.5))
    );
    assert_eq!(sum.data_points[1].flags, 1);

    let Some(metric::Data::ExponentialHistogram(exp)) = &metrics[1].data else {
        panic!("{:?}", metrics[1]);
    };
    assert_eq!(exp.aggregation_temporality, 1);
    let point = &exp.data_points[0];
    assert_eq!((point.count, point.scale, point.zero_count), (4, -2, 1));
    assert_eq!(point.zero_threshold, 0.001);
    assert_eq!(
        point.positive,
        Some(Buckets {
            offset: -1,
            bucket_counts: vec![3],
        })
    );
    assert_eq!(
        point.negative,
        Some(Buckets {
            offset: 2,
            bucket_counts: vec![],
        })
    );

    let Some(metric::Data::Summary(summary)) = &metrics[2].data else {
        panic!("{:?}", metrics[2]);
    };
    let point = &summary.data_points[0];
    assert_eq!((point.count, point.sum), (3, 7.5));
    assert_eq!(point.quantile_values[0].value, 2.0);
    assert_eq!(point.quantile_values[1].value, f64::INFINITY);

    let Some(metric::Data::Gauge(gauge)) = &metrics[3].data else {
        panic!("{:?}", metrics[3]);
    };
    assert_eq!(
        gauge.data_points[0].value,
        Some(number_data_point::Value::AsDouble(-40.0))
    );

    let request = Request::parse(Signal::Metrics, &bytes).unwrap();
    assert_eq!(tailgate_wire::item_count(&request), 2 + 1 + 1 + 1);
}

// --- the JSON we write -----------------------------------------------------------------------------

#[test]
fn written_traces_use_hex_ids_decimal_strings_and_integer_enums() {
    let bytes = hand_written_traces_expected().encode_to_vec();
    let json = to_json_value(Signal::Traces, &bytes);

    let mut keys = Vec::new();
    all_keys(&json, &mut keys);
    for key in &keys {
        assert!(!key.contains('_'), "key {key:?} is not lowerCamelCase");
    }
    assert!(keys.iter().any(|k| k == "resourceSpans"));
    assert!(keys.iter().any(|k| k == "scopeSpans"));

    let span = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(span["spanId"], "eee19b7ec3c1b174");
    assert_eq!(span["parentSpanId"], "eee19b7ec3c1b173");
    assert_eq!(span["startTimeUnixNano"], "1544712660123456789");
    assert_eq!(span["endTimeUnixNano"], "1544712661000000001");
    assert_eq!(span["kind"], 2);
    assert!(span["kind"].is_i64());
    assert_eq!(span["status"]["code"], 2);
    assert_eq!(span["status"]["message"], "upstream timeout");
    assert_eq!(span["flags"], 257);
    assert_eq!(span["events"][0]["timeUnixNano"], "1544712660500000000");
    assert_eq!(
        span["links"][0]["traceId"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(span["links"][0]["spanId"], "00f067aa0ba902b7");

    let attr = |key: &str| {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv["key"] == key)
            .unwrap_or_else(|| panic!("attribute {key}"))["value"]
            .clone()
    };
    // int64 is a decimal string; bytes (other than ids) are base64.
    assert_eq!(
        attr("http.status_code"),
        serde_json::json!({"intValue": "503"})
    );
    assert_eq!(
        attr("payload.digest"),
        serde_json::json!({"bytesValue": "3q2+7w=="})
    );
    assert_eq!(
        attr("http.method"),
        serde_json::json!({"stringValue": "GET"})
    );
    assert_eq!(attr("http.retry"), serde_json::json!({"boolValue": true}));
    assert_eq!(
        attr("sample.rate"),
        serde_json::json!({"doubleValue": 0.25})
    );
    assert_eq!(
        attr("http.route.parts")["arrayValue"]["values"][1],
        serde_json::json!({"intValue": "-7"})
    );
    assert_eq!(
        attr("http.request.header")["kvlistValue"]["values"][0],
        serde_json::json!({"key": "accept", "value": {"stringValue": "application/json"}})
    );

    let second = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][1];
    assert_eq!(second["kind"], 3);
    assert_eq!(second["startTimeUnixNano"], "1544712660300000007");
}

#[test]
fn written_metrics_and_logs_use_decimal_strings_and_integer_enums() {
    let json = to_json_value(Signal::Metrics, &every_metric_kind().encode_to_vec());
    let mut keys = Vec::new();
    all_keys(&json, &mut keys);
    assert!(keys.iter().all(|k| !k.contains('_')), "{keys:?}");

    let metrics = &json["resourceMetrics"][0]["scopeMetrics"][0]["metrics"];
    let gauge = &metrics[0]["gauge"]["dataPoints"];
    assert_eq!(gauge[0]["timeUnixNano"], "1700000000000000001");
    assert_eq!(gauge[1]["asInt"], "-3");
    assert_eq!(gauge[2]["asInt"], "-9223372036854775808");
    assert_eq!(gauge[2]["timeUnixNano"], "18446744073709551615");
    let sum = &metrics[1]["sum"];
    assert_eq!(sum["aggregationTemporality"], 2);
    assert_eq!(sum["isMonotonic"], true);
    let exemplar = &sum["dataPoints"][0]["exemplars"][0];
    assert_eq!(exemplar["traceId"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(exemplar["spanId"], "eee19b7ec3c1b174");
    assert_eq!(exemplar["asInt"], "1");
    let histogram = &metrics[2]["histogram"];
    assert_eq!(histogram["aggregationTemporality"], 1);
    assert_eq!(histogram["dataPoints"][0]["count"], "10");
    assert_eq!(
        histogram["dataPoints"][0]["bucketCounts"],
        serde_json::json!(["1", "2", "3", "4"])
    );
    assert_eq!(histogram["dataPoints"][1]["count"], "18446744073709551615");

    let exponential = &json["resourceMetrics"][0]["scopeMetrics"][1]["metrics"][0];
    let point = &exponential["exponentialHistogram"]["dataPoints"][0];
    assert_eq!(point["zeroCount"], "2");
    assert_eq!(point["scale"], -3);
    assert_eq!(
        point["negative"]["bucketCounts"],
        serde_json::json!(["18446744073709551608"])
    );

    let json = to_json_value(Signal::Logs, &some_logs().encode_to_vec());
    let record = &json["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    assert_eq!(record["severityNumber"], 13);
    assert_eq!(record["timeUnixNano"], "1700000000000000001");
    assert_eq!(record["observedTimeUnixNano"], "1700000000000000101");
    assert_eq!(record["traceId"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(record["spanId"], "eee19b7ec3c1b174");
    assert_eq!(
        record["body"],
        serde_json::json!({"stringValue": "card declined, retrying"})
    );
    let bytes_body = &json["resourceLogs"][0]["scopeLogs"][0]["logRecords"][2]["body"];
    assert_eq!(*bytes_body, serde_json::json!({"bytesValue": "AP8H"}));
}

// --- what the prost types alone get wrong ------------------------------------------------------------

#[test]
fn unknown_fields_are_ignored_even_when_they_reuse_known_names() {
    // A newer OTLP may add fields whose names this version uses elsewhere for enums (a link
    // `kind`, an event `code`); their values are not ours to judge.
    let span = single_span(
        r#"{"name":"s","kind":"SPAN_KIND_PRODUCER",
            "links":[{"spanId":"eee19b7ec3c1b174","kind":"LINK_KIND_FOLLOWS_FROM"}],
            "events":[{"name":"e","code":"EVENT_CODE_X","severityNumber":"LOUD"}],
            "futureSpanField":{"kind":"SPAN_KIND_NOPE","status":{"code":"STATUS_CODE_MAYBE"},
                               "flags":"not a number","bytesValue":"%%%"},
            "status":{"code":"STATUS_CODE_OK","kind":"ALSO_UNKNOWN"}}"#,
    );
    assert_eq!(span.kind, 4);
    assert_eq!(span.links[0].span_id, SPAN_ID);
    assert_eq!(span.events[0].name, "e");
    assert_eq!(span.status.unwrap().code, 1);

    let json = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m",
        "gauge":{"dataPoints":[{"asInt":"1"}],"aggregationTemporality":"AGGREGATION_TEMPORALITY_HOURLY"},
        "futureMetricField":{"aggregationTemporality":"X","severityNumber":"Y"}}]}]}],
        "futureTopLevel":{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"aggregationTemporality":"Z"}}]}]}]}}"#;
    let bytes = to_protobuf(Signal::Metrics, json.as_bytes()).expect("unknown fields ignored");
    let decoded = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded.resource_metrics.len(), 1);
    let Some(metric::Data::Gauge(gauge)) =
        &decoded.resource_metrics[0].scope_metrics[0].metrics[0].data
    else {
        panic!("{decoded:?}");
    };
    assert_eq!(
        gauge.data_points[0].value,
        Some(number_data_point::Value::AsInt(1))
    );
}

/// A metrics request with one metric whose data is `data`, as JSON.
fn metric_json(data: &str) -> String {
    format!(r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"m",{data}}}]}}]}}]}}"#)
}

#[test]
fn malformed_metric_data_is_an_error_not_a_metric_without_data() {
    // Each of these once decoded to a metric with no data, or a point with no value, and was
    // accepted: data points lost without a word.
    let cases = [
        r#""gauge":{"dataPoints":[{"asInt":"12x"}]}"#,
        r#""gauge":{"dataPoints":[{"asInt":1.5}]}"#,
        r#""gauge":{"dataPoints":[{"asDouble":"fast"}]}"#,
        r#""sum":{"dataPoints":[{"asInt":"1","timeUnixNano":"yesterday"}]}"#,
        r#""sum":{"dataPoints":[{"asInt":"1","attributes":[{"key":"k","value":{"intValue":"zz"}}]}]}"#,
        r#""sum":{"dataPoints":[{"asInt":"1","exemplars":[{"asInt":"one"}]}]}"#,
        r#""sum":{"dataPoints":[{"asInt":"1","exemplars":[{"asDouble":1,"spanId":"xyz"}]}]}"#,
        r#""histogram":{"dataPoints":[{"count":"-3"}]}"#,
        r#""histogram":{"dataPoints":[{"bucketCounts":["1","x"]}]}"#,
        r#""exponentialHistogram":{"dataPoints":[{"positive":{"bucketCounts":[-1]}}]}"#,
        r#""summary":{"dataPoints":[{"quantileValues":[{"quantile":"high"}]}]}"#,
        // Two members of the `data` oneof, and of a point's `value` oneof.
        r#""gauge":{"dataPoints":[]},"sum":{"dataPoints":[{"asInt":"1"}]}"#,
        r#""gauge":{"dataPoints":[{"asInt":"1","asDouble":1.0}]}"#,
    ];
    for data in cases {
        match to_protobuf(Signal::Metrics, metric_json(data).as_bytes()) {
            Err(err @ JsonError::Json(_)) => {
                assert!(err.to_string().starts_with("invalid OTLP/JSON"), "{err}");
            }
            Err(other) => panic!("{data}: unexpected error {other:?}"),
            Ok(bytes) => panic!(
                "{data}: accepted as {:?}",
                ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap()
            ),
        }
    }
    // The same shapes with good values still decode, with every point.
    let good = r#""sum":{"dataPoints":[{"asInt":"1","timeUnixNano":"9","exemplars":[{"asInt":"2"}]},
                                      {"asDouble":2.5}]}"#;
    let bytes = to_protobuf(Signal::Metrics, metric_json(good).as_bytes()).unwrap();
    let request = Request::parse(Signal::Metrics, &bytes).unwrap();
    assert_eq!(tailgate_wire::item_count(&request), 2);
}

#[test]
fn omitted_and_null_fields_take_their_defaults() {
    // protobuf's JSON mapping lets any field be omitted or null; the Collector omits empty
    // lists and empty strings when it writes OTLP/JSON.
    let span = single_span(
        r#"{"traceId":null,"spanId":"eee19b7ec3c1b174","name":null,"kind":null,"status":null,
            "startTimeUnixNano":null,"events":null,"flags":null,
            "attributes":[
                {"key":"empty.list","value":{"arrayValue":{}}},
                {"key":"empty.map","value":{"kvlistValue":{}}},
                {"key":"null.list","value":{"arrayValue":{"values":null}}},
                {"value":{"stringValue":"no key"}},
                {"key":"null.value","value":null},
                {"key":null,"value":{"boolValue":true}}
            ]}"#,
    );
    assert_eq!(span.trace_id, Vec::<u8>::new());
    assert_eq!(span.span_id, SPAN_ID);
    assert_eq!(
        (span.name.as_str(), span.kind, span.start_time_unix_nano),
        ("", 0, 0)
    );
    assert_eq!(span.status, None);
    assert!(span.events.is_empty());
    let empty_list = any_value::Value::ArrayValue(ArrayValue { values: vec![] });
    assert_eq!(
        span.attributes,
        vec![
            kv("empty.list", empty_list.clone()),
            kv(
                "empty.map",
                any_value::Value::KvlistValue(KeyValueList { values: vec![] })
            ),
            kv("null.list", empty_list),
            kv("", string("no key")),
            KeyValue {
                key: "null.value".into(),
                value: None,
                ..Default::default()
            },
            kv("", any_value::Value::BoolValue(true)),
        ]
    );

    let json =
        r#"{"resource_spans":[{"schemaUrl":null,"resource":{"entityRefs":[{"type":"service"}]}}]}"#;
    let bytes = to_protobuf(Signal::Traces, json.as_bytes()).unwrap();
    let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
    let entity = &decoded.resource_spans[0]
        .resource
        .as_ref()
        .unwrap()
        .entity_refs[0];
    assert_eq!(entity.r#type, "service");
    assert!(entity.id_keys.is_empty() && entity.schema_url.is_empty());
}

#[test]
fn bytes_in_url_safe_or_unpadded_base64() {
    let span = single_span(
        r#"{"attributes":[
            {"key":"standard","value":{"bytesValue":"3q2+7w=="}},
            {"key":"unpadded","value":{"bytesValue":"3q2+7w"}},
            {"key":"url-safe","value":{"bytesValue":"3q2-7w=="}},
            {"key":"url-safe-unpadded","value":{"bytesValue":"__8"}},
            {"key":"empty","value":{"bytesValue":""}}]}"#,
    );
    let bytes: Vec<_> = span
        .attributes
        .iter()
        .map(|a| match &a.value.as_ref().unwrap().value {
            Some(any_value::Value::BytesValue(b)) => b.clone(),
            other => panic!("{}: {other:?}", a.key),
        })
        .collect();
    let deadbeef = vec![0xde, 0xad, 0xbe, 0xef];
    assert_eq!(
        bytes,
        [
            deadbeef.clone(),
            deadbeef.clone(),
            deadbeef,
            vec![0xff, 0xff],
            vec![]
        ]
    );
    // Not base64 in any alphabet.
    let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[
        {"key":"bad","value":{"bytesValue":"3q2*7w=="}}]}]}]}]}"#;
    assert!(matches!(
        to_protobuf(Signal::Traces, json.as_bytes()),
        Err(JsonError::Json(_))
    ));
}
