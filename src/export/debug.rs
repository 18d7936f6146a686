//! The `debug` exporter: prints what it is given to stdout (or, with `use_internal_logger: true`
//! or `output_paths: [stderr]`, to stderr, the log's stream).
//!
//! `basic` prints one summary line per batch, counting resource and scope groups with the wire
//! layer's scanner (a validation pass, which also proves the batch is a well-formed export
//! request); `normal` adds a line per span, metric or log record; `detailed` adds resources,
//! scopes and attributes. Each batch is rendered into one string and written with one call, so
//! lines from different shards do not interleave within a batch. Strings taken from the data
//! are cut at [`VALUE_CHARS_MAX`] and their control characters escaped, so a line stays a line.
//!
//! Printing is sampled as the Collector samples its debug exporter's log lines (zap's sampler):
//! in each one-second window the first `sampling_initial` batches are printed, then one in
//! every `sampling_thereafter`. A batch not printed is still exported (the debug exporter's
//! export is the printing, and skipping it loses nothing upstream), so it counts as sent.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant};

use super::batch::Batch;
use super::error::SendError;
use super::settings::{DebugSettings, Verbosity};
use super::status::Delivered;
use tailgate_wire::{
    AnyValueView, KeyValues, LogRecordView, MetricView, Request, Signal, SpanView, WireError,
};

/// Longest string value printed before it is cut.
const VALUE_CHARS_MAX: usize = 128;

/// The window [`PrintSampling`] counts batches in.
const SAMPLING_WINDOW: Duration = Duration::from_secs(1);

pub(crate) struct DebugPrinter {
    shard: usize,
    verbosity: Verbosity,
    sampling: PrintSampling,
    to_stderr: bool,
}

impl DebugPrinter {
    pub fn new(shard: usize, settings: &DebugSettings) -> Self {
        DebugPrinter {
            shard,
            verbosity: settings.verbosity,
            sampling: PrintSampling::new(settings.sampling_initial, settings.sampling_thereafter),
            to_stderr: settings.to_stderr,
        }
    }

    /// Prints one batch, unless sampling passes over it.
    pub fn print(&self, batch: &Batch) -> Result<Delivered, SendError> {
        if !self.sampling.admit(Instant::now()) {
            return Ok(Delivered::default());
        }
        let text = render(self.shard, self.verbosity, batch).map_err(SendError::Invalid)?;
        let written = if self.to_stderr {
            emit(std::io::stderr().lock(), &text)
        } else {
            emit(std::io::stdout().lock(), &text)
        };
        written.map_err(SendError::Io)?;
        Ok(Delivered::default())
    }
}

/// Writes `text` to `out` whole, then flushes it.
fn emit(mut out: impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Which batches are printed: see the module documentation. Owned by one shard's exporter.
struct PrintSampling {
    initial: u64,
    thereafter: u64,
    window_start: Cell<Option<Instant>>,
    seen_in_window: Cell<u64>,
}

impl PrintSampling {
    fn new(initial: u64, thereafter: u64) -> Self {
        PrintSampling {
            initial: initial.max(1),
            thereafter: thereafter.max(1),
            window_start: Cell::new(None),
            seen_in_window: Cell::new(0),
        }
    }

    /// Counts one batch at `now`; whether it is printed.
    fn admit(&self, now: Instant) -> bool {
        let fresh = self
            .window_start
            .get()
            .is_none_or(|start| now.saturating_duration_since(start) >= SAMPLING_WINDOW);
        if fresh {
            self.window_start.set(Some(now));
            self.seen_in_window.set(0);
        }
        let n = self.seen_in_window.get().saturating_add(1);
        self.seen_in_window.set(n);
        n <= self.initial || (n - self.initial).is_multiple_of(self.thereafter)
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
    for c in chars.by_ref().take(VALUE_CHARS_MAX) {
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
            metadata: Default::default(),
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
            metadata: Default::default(),
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
    fn sampling_prints_the_first_batches_of_each_second_then_one_in_n() {
        let sampling = PrintSampling::new(2, 3);
        let start = Instant::now();
        let printed: Vec<bool> = (0..9).map(|_| sampling.admit(start)).collect();
        assert_eq!(
            printed,
            [true, true, false, false, true, false, false, true, false]
        );
        // A new second starts a new count.
        let next = start + SAMPLING_WINDOW;
        assert!(sampling.admit(next));
        assert!(sampling.admit(next));
        assert!(!sampling.admit(next + Duration::from_millis(999)));
    }

    #[test]
    fn the_default_sampling_prints_every_batch() {
        let defaults = DebugSettings::default();
        let sampling = PrintSampling::new(defaults.sampling_initial, defaults.sampling_thereafter);
        let now = Instant::now();
        assert!((0..100).all(|_| sampling.admit(now)));
    }

    #[test]
    fn an_invalid_batch_is_refused() {
        let batch = Batch {
            signal: Signal::Logs,
            bytes: Bytes::from_static(&[0x0a, 0x05, 0x01]),
            items: 1,
            metadata: Default::default(),
        };
        assert!(render(0, Verbosity::Basic, &batch).is_err());
    }
}
