//! The `debug` exporter: prints what it is given to stdout, as the Collector's does.
//!
//! `basic` prints one summary line per batch, counting resource and scope groups with the wire
//! layer's scanner (a validation pass, which also proves the batch is a well-formed export
//! request); `normal` adds a line per span, metric or log record; `detailed` adds resources,
//! scopes and attributes. Each batch is rendered into one string and written with one call, so
//! lines from different shards do not interleave within a batch. Strings taken from the data
//! are cut at [`MAX_VALUE_CHARS`] and their control characters escaped, so a line stays a line.

use std::fmt::Write as _;
use std::io::Write as _;

use super::batch::Batch;
use super::error::SendError;
use super::settings::Verbosity;
use super::status::Delivered;
use tailgate_wire::{
    AnyValueView, KeyValues, LogRecordView, MetricView, Request, Signal, SpanView, WireError,
};

/// Longest string value printed before it is cut.
const MAX_VALUE_CHARS: usize = 128;

pub(crate) struct DebugPrinter {
    shard: usize,
    verbosity: Verbosity,
}

impl DebugPrinter {
    pub fn new(shard: usize, verbosity: Verbosity) -> Self {
        DebugPrinter { shard, verbosity }
    }

    /// Prints one batch.
    pub fn print(&self, batch: &Batch) -> Result<Delivered, SendError> {
        let text = render(self.shard, self.verbosity, batch).map_err(SendError::Invalid)?;
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes()).map_err(SendError::Io)?;
        out.flush().map_err(SendError::Io)?;
        Ok(Delivered::default())
    }
}

/// The text printed for `batch`.
pub(crate) fn render(
    shard: usize,
    verbosity: Verbosity,
    batch: &Batch,
) -> Result<String, WireError> {
    let request = Request::parse(batch.signal, &batch.bytes)?;
    let mut resource_groups = 0u64;
    let mut scope_groups = 0u64;
    let mut records = 0u64;
    for resource in request.resource_groups() {
        resource_groups += 1;
        for scope in resource.scope_groups() {
            scope_groups += 1;
            records += scope.items().count() as u64;
        }
    }
    let mut out = String::new();
    let signal = batch.signal.as_str();
    let _ = write!(
        out,
        "debug: {signal} shard={shard} resource_groups={resource_groups} scope_groups={scope_groups}"
    );
    let _ = match batch.signal {
        Signal::Traces => write!(out, " spans={}", batch.items),
        Signal::Metrics => write!(out, " metrics={records} data_points={}", batch.items),
        Signal::Logs => write!(out, " log_records={}", batch.items),
    };
    let _ = writeln!(out, " bytes={}", batch.bytes.len());
    if verbosity == Verbosity::Basic {
        return Ok(out);
    }
    let detailed = verbosity == Verbosity::Detailed;
    for resource in request.resource_groups() {
        if detailed {
            out.push_str("  resource");
            if let Some(view) = resource.resource() {
                attributes(&mut out, view.attributes());
            }
            out.push('\n');
        }
        for scope in resource.scope_groups() {
            if detailed {
                out.push_str("   scope");
                if let Some(view) = scope.scope() {
                    out.push_str(" name=");
                    text(&mut out, view.name());
                    out.push_str(" version=");
                    text(&mut out, view.version());
                }
                out.push('\n');
            }
            for item in scope.items() {
                match batch.signal {
                    Signal::Traces => span_line(&mut out, &SpanView::new(item), detailed),
                    Signal::Metrics => {
                        let metric = MetricView::new(item);
                        out.push_str("    metric name=");
                        text(&mut out, metric.name());
                        let _ = writeln!(out, " data_points={}", metric.data_point_count());
                    }
                    Signal::Logs => log_line(&mut out, &LogRecordView::new(item), detailed),
                }
            }
        }
    }
    Ok(out)
}

fn span_line(out: &mut String, span: &SpanView<'_>, detailed: bool) {
    out.push_str("    span trace_id=");
    hex(out, span.trace_id());
    out.push_str(" span_id=");
    hex(out, span.span_id());
    out.push_str(" name=");
    text(out, span.name());
    let duration_ns = span
        .end_time_unix_nano()
        .saturating_sub(span.start_time_unix_nano());
    let _ = write!(
        out,
        " kind={} status={} duration_ns={duration_ns}",
        span.kind(),
        span.status_code()
    );
    if detailed {
        attributes(out, span.attributes());
    }
    out.push('\n');
}

fn log_line(out: &mut String, record: &LogRecordView<'_>, detailed: bool) {
    let _ = write!(out, "    log severity={}", record.severity_number());
    if !record.trace_id().is_empty() {
        out.push_str(" trace_id=");
        hex(out, record.trace_id());
    }
    out.push_str(" body=");
    value(out, &record.body());
    if detailed {
        attributes(out, record.attributes());
    }
    out.push('\n');
}

fn attributes(out: &mut String, attributes: KeyValues<'_>) {
    for kv in attributes {
        out.push(' ');
        text(out, kv.key);
        out.push('=');
        value(out, &kv.value);
    }
}

fn value(out: &mut String, value: &AnyValueView<'_>) {
    let _ = match value {
        AnyValueView::Empty => write!(out, "<empty>"),
        AnyValueView::String(s) => {
            text(out, s);
            Ok(())
        }
        AnyValueView::Bool(b) => write!(out, "{b}"),
        AnyValueView::Int(i) => write!(out, "{i}"),
        AnyValueView::Double(d) => write!(out, "{d}"),
        AnyValueView::Bytes(b) => write!(out, "<{} bytes>", b.len()),
        AnyValueView::Array(_) => write!(out, "<array>"),
        AnyValueView::KvList(_) => write!(out, "<kvlist>"),
    };
}

/// Appends a string from the data, quoted, cut and escaped.
fn text(out: &mut String, bytes: &[u8]) {
    let s = String::from_utf8_lossy(bytes);
    out.push('"');
    let mut chars = s.chars();
    for c in chars.by_ref().take(MAX_VALUE_CHARS) {
        out.extend(c.escape_debug());
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out.push('"');
}

fn hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn request() -> Vec<u8> {
        let span = |name: &str| Span {
            trace_id: vec![0xab; 16],
            span_id: vec![1; 8],
            name: name.into(),
            start_time_unix_nano: 100,
            end_time_unix_nano: 350,
            attributes: vec![KeyValue {
                key: "http.route".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("/a\nb".into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource::default()),
                scope_spans: vec![
                    ScopeSpans {
                        spans: vec![span("one")],
                        ..Default::default()
                    },
                    ScopeSpans {
                        spans: vec![span("two")],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn basic_is_one_summary_line() {
        let bytes = request();
        let batch = Batch {
            signal: Signal::Traces,
            bytes: Bytes::from(bytes.clone()),
            items: 2,
        };
        assert_eq!(
            render(3, Verbosity::Basic, &batch).unwrap(),
            format!(
                "debug: traces shard=3 resource_groups=1 scope_groups=2 spans=2 bytes={}\n",
                bytes.len()
            )
        );
    }

    #[test]
    fn normal_and_detailed_add_lines_per_span() {
        let batch = Batch {
            signal: Signal::Traces,
            bytes: Bytes::from([request(), request()].concat()),
            items: 4,
        };
        let normal = render(0, Verbosity::Normal, &batch).unwrap();
        assert!(normal.starts_with("debug: traces shard=0 resource_groups=2 scope_groups=4"));
        assert_eq!(normal.lines().count(), 5);
        assert!(normal.contains(&format!(
            "    span trace_id={} span_id=0101010101010101 name=\"one\" kind=0 status=0 \
             duration_ns=250\n",
            "ab".repeat(16)
        )));
        let detailed = render(0, Verbosity::Detailed, &batch).unwrap();
        assert!(detailed.contains(" \"http.route\"=\"/a\\nb\""));
        assert_eq!(detailed.lines().count(), 1 + 2 + 4 + 4);
    }

    #[test]
    fn an_invalid_batch_is_refused() {
        let batch = Batch {
            signal: Signal::Logs,
            bytes: Bytes::from_static(&[0x0a, 0x05, 0x01]),
            items: 1,
        };
        assert!(render(0, Verbosity::Basic, &batch).is_err());
    }
}
