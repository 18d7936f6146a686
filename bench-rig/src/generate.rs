//! SDK-shaped OTLP requests, generated deterministically from a seed.
//!
//! The shape is the OpenTelemetry SDK benchmark specification's: every span has 10 attributes
//! with 20-character keys and values (or, in [`request_of`], the attributes of another
//! [`Corpus`]) and one event, spans come in traces of
//! [`SPANS_PER_TRACE`], one span in twenty has an error status. The wire benchmark and tests use
//! it: one self-contained request. The load generator and the floor send the trace stream of
//! `traces` instead (same span shape; traces of varied size reported in waves).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use crate::corpus::{Corpus, OPERATIONS};

/// Spans per trace in generated requests.
pub const SPANS_PER_TRACE: usize = 10;

/// splitmix64: a deterministic stream for ids and choices.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `len` random lowercase letters.
    pub fn text(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| (b'a' + (self.next_u64() % 26) as u8) as char)
            .collect()
    }
}

/// A string attribute.
pub(crate) fn string_kv(key: String, value: String) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// One request of `count` SDK-shaped spans, from `rng`.
pub fn sdk_shaped_request(rng: &mut Rng, count: usize) -> Vec<u8> {
    request_of(Corpus::Benchmark, rng, count)
}

/// One request of `count` spans whose attributes come from `corpus`: with
/// [`Corpus::Benchmark`], exactly what [`sdk_shaped_request`] gives.
pub fn request_of(corpus: Corpus, rng: &mut Rng, count: usize) -> Vec<u8> {
    let base_ns = 1_700_000_000_000_000_000u64;
    let mut spans = Vec::with_capacity(count);
    let mut trace_id = Vec::new();
    for i in 0..count {
        if i % SPANS_PER_TRACE == 0 {
            trace_id = [rng.next_u64().to_le_bytes(), rng.next_u64().to_le_bytes()].concat();
        }
        let start = base_ns + rng.next_u64() % 1_000_000_000;
        let end = start + 1_000 + rng.next_u64() % 50_000_000;
        let span_id = rng.next_u64().to_le_bytes().to_vec();
        let parent_span_id = rng.next_u64().to_le_bytes().to_vec();
        let (name, attributes) = match corpus {
            Corpus::Benchmark => {
                let name = format!("GET /api/v1/{}", rng.text(8));
                (name, corpus.attributes(rng, 0))
            }
            Corpus::Semantic => {
                let operation = (rng.next_u64() % OPERATIONS.len() as u64) as usize;
                (
                    OPERATIONS[operation].to_string(),
                    corpus.attributes(rng, operation),
                )
            }
        };
        spans.push(Span {
            trace_id: trace_id.clone(),
            span_id,
            parent_span_id,
            name,
            kind: 2,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            events: vec![span::Event {
                time_unix_nano: start + 500,
                name: "message".into(),
                attributes: vec![string_kv("message.type".into(), "SENT".into())],
                dropped_attributes_count: 0,
            }],
            status: Some(Status {
                message: String::new(),
                code: if rng.next_u64().is_multiple_of(20) {
                    2
                } else {
                    0
                },
            }),
            flags: 0x301,
            ..Default::default()
        });
    }
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    string_kv("service.name".into(), "checkout".into()),
                    string_kv("service.version".into(), "1.4.2".into()),
                    string_kv("host.name".into(), "ip-10-0-12-34".into()),
                    string_kv("cloud.provider".into(), "aws".into()),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.http".into(),
                    version: "1.30.0".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
            }],
            schema_url: String::new(),
        }],
    };
    request.encode_to_vec()
}
