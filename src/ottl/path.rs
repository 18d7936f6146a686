//! Paths: resolving `span.attributes["k"]`, `status.code`, `resource.attributes["k"]`… as the
//! Collector's span, spanevent, resource, log and metric contexts resolve them, and reading them from a [`Subject`].
//!
//! A path is dot-separated lowercase names, each optionally indexed (`attributes["k"]`). As in
//! the Collector with path context names on (how `tail_sampling` parses its conditions), a
//! first name followed by a dot and naming a context (`span`, `spanevent`, `resource`, `scope`,
//! `instrumentation_scope`) picks what is read; otherwise the condition's own context is
//! meant: `status.code` in the span context is `span.status.code`, `name` in the spanevent
//! context is the event's name.

use tailgate_wire::{LogRecordView, MetricView, ResourceView, ScopeView, SpanView};

use super::value::Value;
use super::{ContextKind, ParseError, ParseErrorKind, Subject};
use crate::sampling::trace_state;

/// A resolved path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Path {
    Span(SpanField),
    Event(EventField),
    Resource(ResourceField),
    Scope(ScopeField),
    Log(LogField),
    Metric(MetricField),
}

/// What a path reads from the metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum MetricField {
    Name,
    Description,
    Unit,
    Type,
    AggregationTemporality,
    IsMonotonic,
}

/// What a path reads from the log record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LogField {
    Body,
    SeverityNumber,
    SeverityText,
    Attribute(Box<[u8]>),
    TimeUnixNano,
    ObservedTimeUnixNano,
    Flags,
    DroppedAttributesCount,
    EventName,
}

/// What a path reads from the span.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SpanField {
    Name,
    Kind,
    StatusCode,
    StatusMessage,
    Attribute(Box<[u8]>),
    TraceState,
    TraceStateKey(Box<[u8]>),
    StartTimeUnixNano,
    EndTimeUnixNano,
    Flags,
    DroppedAttributesCount,
    DroppedEventsCount,
    DroppedLinksCount,
}

/// What a path reads from the span event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EventField {
    Name,
    Attribute(Box<[u8]>),
    TimeUnixNano,
    DroppedAttributesCount,
}

/// What a path reads from the resource.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ResourceField {
    Attribute(Box<[u8]>),
    DroppedAttributesCount,
}

/// What a path reads from the instrumentation scope.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ScopeField {
    Name,
    Version,
    Attribute(Box<[u8]>),
    DroppedAttributesCount,
}

/// One name of a path as written, with its indexes.
#[derive(Debug)]
pub(crate) struct Segment<'s> {
    pub(crate) name: &'s str,
    pub(crate) keys: Vec<Key>,
    /// Byte offset of the name in the condition.
    pub(crate) at: usize,
}

/// An index as written.
#[derive(Debug)]
pub(crate) enum Key {
    /// `["k"]`, unquoted.
    Str(String),
    /// Anything else (`[0]`, `[attributes["k"]]`); refused.
    Other,
}

impl Path {
    /// Whether the path reads the instrumentation scope.
    pub(crate) fn reads_scope(&self) -> bool {
        matches!(self, Path::Scope(_))
    }

    /// The value at this path for `subject`.
    pub(crate) fn read<'a>(&self, subject: &Subject<'a>) -> Value<'a> {
        match self {
            Path::Span(field) => match &subject.span {
                Some(span) => read_span(field, span),
                None => {
                    debug_assert!(false, "a span path read without a span");
                    Value::Nil
                }
            },
            Path::Event(field) => match &subject.event {
                Some(event) => match field {
                    EventField::Name => Value::Str(event.name()),
                    EventField::Attribute(key) => attribute(event.attributes().get(key)),
                    EventField::TimeUnixNano => Value::Int(event.time_unix_nano() as i64),
                    EventField::DroppedAttributesCount => {
                        Value::Int(i64::from(event.dropped_attributes_count()))
                    }
                },
                None => {
                    debug_assert!(false, "a span event path read without an event");
                    Value::Nil
                }
            },
            Path::Log(field) => match &subject.log {
                Some(log) => read_log(field, log),
                None => {
                    debug_assert!(false, "a log path read without a log record");
                    Value::Nil
                }
            },
            Path::Metric(field) => match &subject.metric {
                Some(metric) => read_metric(*field, metric),
                None => {
                    debug_assert!(false, "a metric path read without a metric");
                    Value::Nil
                }
            },
            Path::Resource(field) => read_resource(field, subject.resource.as_ref()),
            Path::Scope(field) => read_scope(field, subject.scope.as_ref()),
        }
    }
}

fn attribute(value: Option<tailgate_wire::AnyValueView<'_>>) -> Value<'_> {
    value.map_or(Value::Nil, Value::from_any)
}

fn read_span<'a>(field: &SpanField, span: &SpanView<'a>) -> Value<'a> {
    match field {
        SpanField::Name => Value::Str(span.name()),
        SpanField::Kind => Value::Int(i64::from(span.kind())),
        SpanField::StatusCode => Value::Int(i64::from(span.status_code())),
        SpanField::StatusMessage => Value::Str(span.status_message()),
        SpanField::Attribute(key) => attribute(span.attributes().get(key)),
        SpanField::TraceState => Value::Str(span.trace_state()),
        // OpenTelemetry-Go's `ParseTraceState(…).Get(key)`: nil when the trace state does not
        // parse, "" when the key is absent.
        SpanField::TraceStateKey(key) => match trace_state::parse_get(span.trace_state(), key) {
            Ok(value) => Value::Str(value.unwrap_or_default()),
            Err(trace_state::Unparsable) => Value::Nil,
        },
        // pdata's `AsTime().UnixNano()`: the nanoseconds read as `int64`.
        SpanField::StartTimeUnixNano => Value::Int(span.start_time_unix_nano() as i64),
        SpanField::EndTimeUnixNano => Value::Int(span.end_time_unix_nano() as i64),
        SpanField::Flags => Value::Int(i64::from(span.flags())),
        SpanField::DroppedAttributesCount => Value::Int(i64::from(span.dropped_attributes_count())),
        SpanField::DroppedEventsCount => Value::Int(i64::from(span.dropped_events_count())),
        SpanField::DroppedLinksCount => Value::Int(i64::from(span.dropped_links_count())),
    }
}

fn read_log<'a>(field: &LogField, log: &LogRecordView<'a>) -> Value<'a> {
    match field {
        LogField::Body => Value::from_any(log.body()),
        LogField::SeverityNumber => Value::Int(i64::from(log.severity_number())),
        LogField::SeverityText => Value::Str(log.severity_text()),
        LogField::Attribute(key) => attribute(log.attributes().get(key)),
        LogField::TimeUnixNano => Value::Int(log.time_unix_nano() as i64),
        LogField::ObservedTimeUnixNano => Value::Int(log.observed_time_unix_nano() as i64),
        LogField::Flags => Value::Int(i64::from(log.flags())),
        LogField::DroppedAttributesCount => Value::Int(i64::from(log.dropped_attributes_count())),
        LogField::EventName => Value::Str(log.event_name()),
    }
}

/// pdata's getters: the temporality of a sum or a histogram, the monotonicity of a sum, nil
/// for the kinds without.
fn read_metric<'a>(field: MetricField, metric: &MetricView<'a>) -> Value<'a> {
    match field {
        MetricField::Name => Value::Str(metric.name()),
        MetricField::Description => Value::Str(metric.description()),
        MetricField::Unit => Value::Str(metric.unit()),
        MetricField::Type => Value::Int(i64::from(metric.data_type())),
        MetricField::AggregationTemporality => metric
            .aggregation_temporality()
            .map_or(Value::Nil, |t| Value::Int(i64::from(t))),
        MetricField::IsMonotonic => metric.is_monotonic().map_or(Value::Nil, Value::Bool),
    }
}

/// A span group without a `Resource` reads as an empty one, as in pdata.
fn read_resource<'a>(field: &ResourceField, resource: Option<&ResourceView<'a>>) -> Value<'a> {
    match field {
        ResourceField::Attribute(key) => attribute(resource.and_then(|r| r.attributes().get(key))),
        ResourceField::DroppedAttributesCount => {
            Value::Int(resource.map_or(0, |r| i64::from(r.dropped_attributes_count())))
        }
    }
}

/// A scope group without a scope reads as an empty one, as in pdata.
fn read_scope<'a>(field: &ScopeField, scope: Option<&ScopeView<'a>>) -> Value<'a> {
    match field {
        ScopeField::Name => Value::Str(scope.map_or(&[][..], |s| s.name())),
        ScopeField::Version => Value::Str(scope.map_or(&[][..], |s| s.version())),
        ScopeField::Attribute(key) => attribute(scope.and_then(|s| s.attributes().get(key))),
        ScopeField::DroppedAttributesCount => {
            Value::Int(scope.map_or(0, |s| i64::from(s.dropped_attributes_count())))
        }
    }
}

/// The context names a condition of `context` may start a path with.
fn context_names(context: ContextKind) -> &'static [&'static str] {
    match context {
        ContextKind::Span => &[
            "span",
            "resource",
            "scope",
            "instrumentation_scope",
            "otelcol",
        ],
        ContextKind::SpanEvent => &[
            "spanevent",
            "span",
            "resource",
            "scope",
            "instrumentation_scope",
            "otelcol",
        ],
        ContextKind::Resource => &["resource", "otelcol"],
        ContextKind::Metric => &[
            "metric",
            "resource",
            "scope",
            "instrumentation_scope",
            "otelcol",
        ],
        ContextKind::Log => &[
            "log",
            "resource",
            "scope",
            "instrumentation_scope",
            "otelcol",
        ],
    }
}

/// Resolves the segments of a path written in a condition of `context`.
pub(crate) fn resolve(
    segments: Vec<Segment<'_>>,
    context: ContextKind,
) -> Result<Path, ParseError> {
    let at = segments[0].at;
    let (named, fields) = match segments.split_first() {
        Some((first, rest))
            if !rest.is_empty()
                && first.keys.is_empty()
                && context_names(context).contains(&first.name) =>
        {
            (first.name, rest)
        }
        _ => (
            match context {
                ContextKind::Span => "span",
                ContextKind::SpanEvent => "spanevent",
                ContextKind::Resource => "resource",
                ContextKind::Log => "log",
                ContextKind::Metric => "metric",
            },
            &segments[..],
        ),
    };
    let written = written(&segments);
    let resolver = Resolver {
        context: named,
        written: &written,
        at,
    };
    let (first, rest) = fields.split_first().expect("a path has a name");
    if first.name == "cache" {
        return Err(resolver.unsupported("the `cache` map"));
    }
    let path = match named {
        "span" => Path::Span(resolver.span(first, rest)?),
        "spanevent" => Path::Event(resolver.event(first, rest)?),
        "resource" => Path::Resource(resolver.resource(first, rest)?),
        "log" => Path::Log(resolver.log(first, rest)?),
        "metric" => Path::Metric(resolver.metric(first, rest)?),
        "otelcol" => return Err(resolver.unsupported("`otelcol` paths")),
        _ => Path::Scope(resolver.scope(first, rest)?),
    };
    Ok(path)
}

/// The path as the user wrote it, for messages.
fn written(segments: &[Segment<'_>]) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(s.name);
        for key in &s.keys {
            match key {
                Key::Str(k) => out.push_str(&format!("[{k:?}]")),
                Key::Other => out.push_str("[…]"),
            }
        }
    }
    out
}

struct Resolver<'r> {
    context: &'r str,
    written: &'r str,
    at: usize,
}

impl Resolver<'_> {
    fn unsupported(&self, what: &str) -> ParseError {
        ParseError::new(
            self.at,
            ParseErrorKind::Unsupported(format!("path `{}`: {what}", self.written)),
        )
    }

    fn invalid(&self, why: String) -> ParseError {
        ParseError::new(
            self.at,
            ParseErrorKind::Invalid(format!("path `{}`: {why}", self.written)),
        )
    }

    /// A field that takes neither indexes nor further names.
    fn plain<T>(
        &self,
        field: &Segment<'_>,
        rest: &[Segment<'_>],
        value: T,
    ) -> Result<T, ParseError> {
        if !field.keys.is_empty() {
            return Err(self.invalid(format!("`{}` cannot be indexed", field.name)));
        }
        if let Some(extra) = rest.first() {
            return Err(self.invalid(format!(
                "`{}` has no `{}` (extra path sections)",
                field.name, extra.name
            )));
        }
        Ok(value)
    }

    /// The string key of `attributes["k"]`.
    fn attribute_key(
        &self,
        field: &Segment<'_>,
        rest: &[Segment<'_>],
    ) -> Result<Box<[u8]>, ParseError> {
        if let Some(extra) = rest.first() {
            return Err(self.invalid(format!(
                "`{}` has no `{}` (extra path sections)",
                field.name, extra.name
            )));
        }
        match field.keys.as_slice() {
            [] => {
                Err(self.unsupported("a whole map; index it with a string (`attributes[\"key\"]`)"))
            }
            [Key::Str(k)] => Ok(k.as_bytes().into()),
            [Key::Other] => {
                Err(self.unsupported("an index that is not a string literal; write `[\"key\"]`"))
            }
            _ => Err(self.unsupported("indexing into a map or list value (more than one index)")),
        }
    }

    fn unknown(&self, field: &Segment<'_>) -> ParseError {
        self.invalid(format!(
            "the {} context has no `{}`",
            self.context, field.name
        ))
    }

    fn span(&self, field: &Segment<'_>, rest: &[Segment<'_>]) -> Result<SpanField, ParseError> {
        let plain = |value| self.plain(field, rest, value);
        match field.name {
            "name" => plain(SpanField::Name),
            "kind" => match rest.first().map(|s| s.name) {
                Some("string" | "deprecated_string") => {
                    Err(self.unsupported("the kind as a string; compare `kind` with SPAN_KIND_*"))
                }
                _ => plain(SpanField::Kind),
            },
            "status" => match rest {
                [] => {
                    Err(self.unsupported("the whole status; use `status.code` or `status.message`"))
                }
                [sub, more @ ..] => {
                    if !field.keys.is_empty() {
                        return Err(self.invalid("`status` cannot be indexed".to_string()));
                    }
                    match sub.name {
                        "code" => self.plain(sub, more, SpanField::StatusCode),
                        "message" => self.plain(sub, more, SpanField::StatusMessage),
                        _ => Err(self.invalid(format!("`status` has no `{}`", sub.name))),
                    }
                }
            },
            "attributes" => Ok(SpanField::Attribute(self.attribute_key(field, rest)?)),
            "trace_state" => {
                if let Some(extra) = rest.first() {
                    return Err(self.invalid(format!(
                        "`trace_state` has no `{}` (extra path sections)",
                        extra.name
                    )));
                }
                match field.keys.as_slice() {
                    [] => Ok(SpanField::TraceState),
                    [Key::Str(k)] => Ok(SpanField::TraceStateKey(k.as_bytes().into())),
                    [Key::Other] => Err(self
                        .unsupported("an index that is not a string literal; write `[\"key\"]`")),
                    _ => Err(self.invalid("trace_state takes exactly one key".to_string())),
                }
            }
            "start_time_unix_nano" => plain(SpanField::StartTimeUnixNano),
            "end_time_unix_nano" => plain(SpanField::EndTimeUnixNano),
            "flags" => plain(SpanField::Flags),
            "dropped_attributes_count" => plain(SpanField::DroppedAttributesCount),
            "dropped_events_count" => plain(SpanField::DroppedEventsCount),
            "dropped_links_count" => plain(SpanField::DroppedLinksCount),
            "trace_id" | "span_id" | "parent_span_id" => {
                Err(self.unsupported("ids; use IsRootSpan() for `parent_span_id`"))
            }
            "start_time" | "end_time" => Err(self.unsupported(
                "times as time values; compare `start_time_unix_nano` or `end_time_unix_nano`",
            )),
            "events" | "links" => {
                Err(self
                    .unsupported("lists of events or links; use `spanevent` conditions for events"))
            }
            _ => Err(self.unknown(field)),
        }
    }

    fn event(&self, field: &Segment<'_>, rest: &[Segment<'_>]) -> Result<EventField, ParseError> {
        let plain = |value| self.plain(field, rest, value);
        match field.name {
            "name" => plain(EventField::Name),
            "attributes" => Ok(EventField::Attribute(self.attribute_key(field, rest)?)),
            "time_unix_nano" => plain(EventField::TimeUnixNano),
            "dropped_attributes_count" => plain(EventField::DroppedAttributesCount),
            "time" => Err(self.unsupported("the time as a time value; compare `time_unix_nano`")),
            "event_index" => Err(self.unsupported("the event's index")),
            _ => Err(self.unknown(field)),
        }
    }

    fn log(&self, field: &Segment<'_>, rest: &[Segment<'_>]) -> Result<LogField, ParseError> {
        let plain = |value| self.plain(field, rest, value);
        match field.name {
            "body" => match rest.first().map(|s| s.name) {
                Some("string") => Err(self.unsupported(
                    "the body rendered as a string; compare `body` (a string body compares as \
                     one) or match it with IsMatch(body, …)",
                )),
                _ if !field.keys.is_empty() => {
                    Err(self.unsupported("indexing into the body (a map or list body)"))
                }
                _ => plain(LogField::Body),
            },
            "severity_number" => plain(LogField::SeverityNumber),
            "severity_text" => plain(LogField::SeverityText),
            "attributes" => Ok(LogField::Attribute(self.attribute_key(field, rest)?)),
            "time_unix_nano" => plain(LogField::TimeUnixNano),
            "observed_time_unix_nano" => plain(LogField::ObservedTimeUnixNano),
            "flags" => plain(LogField::Flags),
            "dropped_attributes_count" => plain(LogField::DroppedAttributesCount),
            "event_name" => plain(LogField::EventName),
            "trace_id" | "span_id" => Err(self.unsupported("ids")),
            "time" | "observed_time" => Err(self.unsupported(
                "times as time values; compare `time_unix_nano` or `observed_time_unix_nano`",
            )),
            _ => Err(self.unknown(field)),
        }
    }

    fn metric(&self, field: &Segment<'_>, rest: &[Segment<'_>]) -> Result<MetricField, ParseError> {
        let plain = |value| self.plain(field, rest, value);
        match field.name {
            "name" => plain(MetricField::Name),
            "description" => plain(MetricField::Description),
            "unit" => plain(MetricField::Unit),
            "type" => plain(MetricField::Type),
            "aggregation_temporality" => plain(MetricField::AggregationTemporality),
            "is_monotonic" => plain(MetricField::IsMonotonic),
            "data_points" => Err(self.unsupported(
                "the data points; route whole metrics by their name, type and temporality",
            )),
            "metadata" => Err(self.unsupported("the metric's metadata")),
            _ => Err(self.unknown(field)),
        }
    }

    fn resource(
        &self,
        field: &Segment<'_>,
        rest: &[Segment<'_>],
    ) -> Result<ResourceField, ParseError> {
        match field.name {
            "attributes" => Ok(ResourceField::Attribute(self.attribute_key(field, rest)?)),
            "dropped_attributes_count" => {
                self.plain(field, rest, ResourceField::DroppedAttributesCount)
            }
            "schema_url" => Err(self.unsupported("schema URLs")),
            _ => Err(self.unknown(field)),
        }
    }

    fn scope(&self, field: &Segment<'_>, rest: &[Segment<'_>]) -> Result<ScopeField, ParseError> {
        let plain = |value| self.plain(field, rest, value);
        match field.name {
            "name" => plain(ScopeField::Name),
            "version" => plain(ScopeField::Version),
            "attributes" => Ok(ScopeField::Attribute(self.attribute_key(field, rest)?)),
            "dropped_attributes_count" => plain(ScopeField::DroppedAttributesCount),
            "schema_url" => Err(self.unsupported("schema URLs")),
            _ => Err(self.unknown(field)),
        }
    }
}
