//! The OTLP message schemas, as tables, and the validator that walks them.
//!
//! Validation is what makes the zero-copy design safe: a request is checked once, completely,
//! before any of its bytes are routed or forwarded, so the views built afterwards never meet a
//! malformed field and a gateway never forwards bytes its upstream would refuse. The rules are
//! those of a strict protobuf decoder: every known field must carry the wire type its
//! declaration allows (a repeated scalar may be packed or not), varints are at most 10 bytes,
//! length prefixes stay inside their parent, nesting is bounded by [`MAX_NESTING_DEPTH`], and
//! unknown fields (groups included) are skipped and left in place. Strings are not checked for
//! UTF-8, as the Collector's decoder does not check them either.
//!
//! Field numbers are those of the `opentelemetry-proto` definitions.

use super::error::{WireError, WireErrorKind};
use super::proto::{Field, Reader, Value, WireType};
use super::MAX_NESTING_DEPTH;

/// How a declared field is encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// int32, int64, uint32, uint64, sint32, bool, enum.
    Varint,
    /// fixed64, sfixed64, double.
    I64,
    /// fixed32, float.
    I32,
    /// string or bytes.
    Bytes,
    /// A nested message, validated in turn.
    Message(&'static Schema),
    /// repeated fixed64/double: packed in one LEN field or one I64 field per element.
    PackedI64,
    /// repeated uint64: packed in one LEN field or one VARINT field per element.
    PackedVarint,
}

impl Kind {
    fn wire_type(self) -> WireType {
        match self {
            Kind::Varint => WireType::Varint,
            Kind::I64 => WireType::I64,
            Kind::I32 => WireType::I32,
            Kind::Bytes | Kind::Message(_) | Kind::PackedI64 | Kind::PackedVarint => WireType::Len,
        }
    }
}

/// One declared field.
#[derive(Debug)]
pub(crate) struct Decl {
    pub number: u32,
    pub name: &'static str,
    pub kind: Kind,
}

/// One message type: its name (for errors) and its declared fields.
#[derive(Debug)]
pub(crate) struct Schema {
    pub name: &'static str,
    pub fields: &'static [Decl],
}

impl Schema {
    #[inline]
    fn decl(&self, number: u32) -> Option<&Decl> {
        self.fields.iter().find(|d| d.number == number)
    }
}

const fn decl(number: u32, name: &'static str, kind: Kind) -> Decl {
    Decl { number, name, kind }
}

use Kind::{Bytes, Message as Msg, PackedI64, PackedVarint, Varint, I32, I64};

pub(crate) static ANY_VALUE: Schema = Schema {
    name: "AnyValue",
    fields: &[
        decl(1, "string_value", Bytes),
        decl(2, "bool_value", Varint),
        decl(3, "int_value", Varint),
        decl(4, "double_value", I64),
        decl(5, "array_value", Msg(&ARRAY_VALUE)),
        decl(6, "kvlist_value", Msg(&KEY_VALUE_LIST)),
        decl(7, "bytes_value", Bytes),
        decl(8, "string_value_strindex", Varint),
    ],
};
pub(crate) static ARRAY_VALUE: Schema = Schema {
    name: "ArrayValue",
    fields: &[decl(1, "values", Msg(&ANY_VALUE))],
};
pub(crate) static KEY_VALUE_LIST: Schema = Schema {
    name: "KeyValueList",
    fields: &[decl(1, "values", Msg(&KEY_VALUE))],
};
pub(crate) static KEY_VALUE: Schema = Schema {
    name: "KeyValue",
    fields: &[
        decl(1, "key", Bytes),
        decl(2, "value", Msg(&ANY_VALUE)),
        decl(3, "key_strindex", Varint),
    ],
};
pub(crate) static SCOPE: Schema = Schema {
    name: "InstrumentationScope",
    fields: &[
        decl(1, "name", Bytes),
        decl(2, "version", Bytes),
        decl(3, "attributes", Msg(&KEY_VALUE)),
        decl(4, "dropped_attributes_count", Varint),
    ],
};
static ENTITY_REF: Schema = Schema {
    name: "EntityRef",
    fields: &[
        decl(1, "schema_url", Bytes),
        decl(2, "type", Bytes),
        decl(3, "id_keys", Bytes),
        decl(4, "description_keys", Bytes),
    ],
};
pub(crate) static RESOURCE: Schema = Schema {
    name: "Resource",
    fields: &[
        decl(1, "attributes", Msg(&KEY_VALUE)),
        decl(2, "dropped_attributes_count", Varint),
        decl(3, "entity_refs", Msg(&ENTITY_REF)),
    ],
};

// --- traces ---------------------------------------------------------------------------------

static STATUS: Schema = Schema {
    name: "Status",
    fields: &[decl(2, "message", Bytes), decl(3, "code", Varint)],
};
static EVENT: Schema = Schema {
    name: "Span.Event",
    fields: &[
        decl(1, "time_unix_nano", I64),
        decl(2, "name", Bytes),
        decl(3, "attributes", Msg(&KEY_VALUE)),
        decl(4, "dropped_attributes_count", Varint),
    ],
};
static LINK: Schema = Schema {
    name: "Span.Link",
    fields: &[
        decl(1, "trace_id", Bytes),
        decl(2, "span_id", Bytes),
        decl(3, "trace_state", Bytes),
        decl(4, "attributes", Msg(&KEY_VALUE)),
        decl(5, "dropped_attributes_count", Varint),
        decl(6, "flags", I32),
    ],
};
pub(crate) static SPAN: Schema = Schema {
    name: "Span",
    fields: &[
        decl(1, "trace_id", Bytes),
        decl(2, "span_id", Bytes),
        decl(3, "trace_state", Bytes),
        decl(4, "parent_span_id", Bytes),
        decl(5, "name", Bytes),
        decl(6, "kind", Varint),
        decl(7, "start_time_unix_nano", I64),
        decl(8, "end_time_unix_nano", I64),
        decl(9, "attributes", Msg(&KEY_VALUE)),
        decl(10, "dropped_attributes_count", Varint),
        decl(11, "events", Msg(&EVENT)),
        decl(12, "dropped_events_count", Varint),
        decl(13, "links", Msg(&LINK)),
        decl(14, "dropped_links_count", Varint),
        decl(15, "status", Msg(&STATUS)),
        decl(16, "flags", I32),
    ],
};
static SCOPE_SPANS: Schema = Schema {
    name: "ScopeSpans",
    fields: &[
        decl(1, "scope", Msg(&SCOPE)),
        decl(2, "spans", Msg(&SPAN)),
        decl(3, "schema_url", Bytes),
    ],
};
static RESOURCE_SPANS: Schema = Schema {
    name: "ResourceSpans",
    fields: &[
        decl(1, "resource", Msg(&RESOURCE)),
        decl(2, "scope_spans", Msg(&SCOPE_SPANS)),
        decl(3, "schema_url", Bytes),
    ],
};
pub(crate) static TRACES_REQUEST: Schema = Schema {
    name: "ExportTraceServiceRequest",
    fields: &[decl(1, "resource_spans", Msg(&RESOURCE_SPANS))],
};

// --- metrics --------------------------------------------------------------------------------

static EXEMPLAR: Schema = Schema {
    name: "Exemplar",
    fields: &[
        decl(7, "filtered_attributes", Msg(&KEY_VALUE)),
        decl(2, "time_unix_nano", I64),
        decl(3, "as_double", I64),
        decl(6, "as_int", I64),
        decl(4, "span_id", Bytes),
        decl(5, "trace_id", Bytes),
    ],
};
static NUMBER_DATA_POINT: Schema = Schema {
    name: "NumberDataPoint",
    fields: &[
        decl(7, "attributes", Msg(&KEY_VALUE)),
        decl(2, "start_time_unix_nano", I64),
        decl(3, "time_unix_nano", I64),
        decl(4, "as_double", I64),
        decl(6, "as_int", I64),
        decl(5, "exemplars", Msg(&EXEMPLAR)),
        decl(8, "flags", Varint),
    ],
};
static HISTOGRAM_DATA_POINT: Schema = Schema {
    name: "HistogramDataPoint",
    fields: &[
        decl(9, "attributes", Msg(&KEY_VALUE)),
        decl(2, "start_time_unix_nano", I64),
        decl(3, "time_unix_nano", I64),
        decl(4, "count", I64),
        decl(5, "sum", I64),
        decl(6, "bucket_counts", PackedI64),
        decl(7, "explicit_bounds", PackedI64),
        decl(8, "exemplars", Msg(&EXEMPLAR)),
        decl(10, "flags", Varint),
        decl(11, "min", I64),
        decl(12, "max", I64),
    ],
};
static BUCKETS: Schema = Schema {
    name: "ExponentialHistogramDataPoint.Buckets",
    fields: &[
        decl(1, "offset", Varint),
        decl(2, "bucket_counts", PackedVarint),
    ],
};
static EXPONENTIAL_HISTOGRAM_DATA_POINT: Schema = Schema {
    name: "ExponentialHistogramDataPoint",
    fields: &[
        decl(1, "attributes", Msg(&KEY_VALUE)),
        decl(2, "start_time_unix_nano", I64),
        decl(3, "time_unix_nano", I64),
        decl(4, "count", I64),
        decl(5, "sum", I64),
        decl(6, "scale", Varint),
        decl(7, "zero_count", I64),
        decl(8, "positive", Msg(&BUCKETS)),
        decl(9, "negative", Msg(&BUCKETS)),
        decl(10, "flags", Varint),
        decl(11, "exemplars", Msg(&EXEMPLAR)),
        decl(12, "min", I64),
        decl(13, "max", I64),
        decl(14, "zero_threshold", I64),
    ],
};
static VALUE_AT_QUANTILE: Schema = Schema {
    name: "SummaryDataPoint.ValueAtQuantile",
    fields: &[decl(1, "quantile", I64), decl(2, "value", I64)],
};
static SUMMARY_DATA_POINT: Schema = Schema {
    name: "SummaryDataPoint",
    fields: &[
        decl(7, "attributes", Msg(&KEY_VALUE)),
        decl(2, "start_time_unix_nano", I64),
        decl(3, "time_unix_nano", I64),
        decl(4, "count", I64),
        decl(5, "sum", I64),
        decl(6, "quantile_values", Msg(&VALUE_AT_QUANTILE)),
        decl(8, "flags", Varint),
    ],
};
static GAUGE: Schema = Schema {
    name: "Gauge",
    fields: &[decl(1, "data_points", Msg(&NUMBER_DATA_POINT))],
};
static SUM: Schema = Schema {
    name: "Sum",
    fields: &[
        decl(1, "data_points", Msg(&NUMBER_DATA_POINT)),
        decl(2, "aggregation_temporality", Varint),
        decl(3, "is_monotonic", Varint),
    ],
};
static HISTOGRAM: Schema = Schema {
    name: "Histogram",
    fields: &[
        decl(1, "data_points", Msg(&HISTOGRAM_DATA_POINT)),
        decl(2, "aggregation_temporality", Varint),
    ],
};
static EXPONENTIAL_HISTOGRAM: Schema = Schema {
    name: "ExponentialHistogram",
    fields: &[
        decl(1, "data_points", Msg(&EXPONENTIAL_HISTOGRAM_DATA_POINT)),
        decl(2, "aggregation_temporality", Varint),
    ],
};
static SUMMARY: Schema = Schema {
    name: "Summary",
    fields: &[decl(1, "data_points", Msg(&SUMMARY_DATA_POINT))],
};
pub(crate) static METRIC: Schema = Schema {
    name: "Metric",
    fields: &[
        decl(1, "name", Bytes),
        decl(2, "description", Bytes),
        decl(3, "unit", Bytes),
        decl(5, "gauge", Msg(&GAUGE)),
        decl(7, "sum", Msg(&SUM)),
        decl(9, "histogram", Msg(&HISTOGRAM)),
        decl(10, "exponential_histogram", Msg(&EXPONENTIAL_HISTOGRAM)),
        decl(11, "summary", Msg(&SUMMARY)),
        decl(12, "metadata", Msg(&KEY_VALUE)),
    ],
};
static SCOPE_METRICS: Schema = Schema {
    name: "ScopeMetrics",
    fields: &[
        decl(1, "scope", Msg(&SCOPE)),
        decl(2, "metrics", Msg(&METRIC)),
        decl(3, "schema_url", Bytes),
    ],
};
static RESOURCE_METRICS: Schema = Schema {
    name: "ResourceMetrics",
    fields: &[
        decl(1, "resource", Msg(&RESOURCE)),
        decl(2, "scope_metrics", Msg(&SCOPE_METRICS)),
        decl(3, "schema_url", Bytes),
    ],
};
pub(crate) static METRICS_REQUEST: Schema = Schema {
    name: "ExportMetricsServiceRequest",
    fields: &[decl(1, "resource_metrics", Msg(&RESOURCE_METRICS))],
};

// --- logs -----------------------------------------------------------------------------------

static LOG_RECORD: Schema = Schema {
    name: "LogRecord",
    fields: &[
        decl(1, "time_unix_nano", I64),
        decl(11, "observed_time_unix_nano", I64),
        decl(2, "severity_number", Varint),
        decl(3, "severity_text", Bytes),
        decl(5, "body", Msg(&ANY_VALUE)),
        decl(6, "attributes", Msg(&KEY_VALUE)),
        decl(7, "dropped_attributes_count", Varint),
        decl(8, "flags", I32),
        decl(9, "trace_id", Bytes),
        decl(10, "span_id", Bytes),
        decl(12, "event_name", Bytes),
    ],
};
static SCOPE_LOGS: Schema = Schema {
    name: "ScopeLogs",
    fields: &[
        decl(1, "scope", Msg(&SCOPE)),
        decl(2, "log_records", Msg(&LOG_RECORD)),
        decl(3, "schema_url", Bytes),
    ],
};
static RESOURCE_LOGS: Schema = Schema {
    name: "ResourceLogs",
    fields: &[
        decl(1, "resource", Msg(&RESOURCE)),
        decl(2, "scope_logs", Msg(&SCOPE_LOGS)),
        decl(3, "schema_url", Bytes),
    ],
};
pub(crate) static LOGS_REQUEST: Schema = Schema {
    name: "ExportLogsServiceRequest",
    fields: &[decl(1, "resource_logs", Msg(&RESOURCE_LOGS))],
};

// --- the validator --------------------------------------------------------------------------

/// Checks that `bytes` (starting at absolute offset `base`) is a well-formed `schema` message,
/// nested messages included. `depth` counts the messages enclosing this one.
pub(crate) fn validate(
    schema: &Schema,
    bytes: &[u8],
    base: usize,
    depth: usize,
) -> Result<(), WireError> {
    if depth > MAX_NESTING_DEPTH {
        return Err(WireError::new(
            WireErrorKind::TooDeep {
                limit: MAX_NESTING_DEPTH,
            },
            base,
        ));
    }
    let mut reader = Reader::new(bytes, base);
    while let Some(field) = reader.next_field(depth)? {
        if let Some(decl) = schema.decl(field.number) {
            check_field(schema, decl, &field, depth)?;
        }
    }
    Ok(())
}

#[inline]
fn check_field(schema: &Schema, decl: &Decl, field: &Field<'_>, depth: usize) -> Result<(), WireError> {
    match (decl.kind, field.value) {
        (Kind::Varint, Value::Varint(_))
        | (Kind::I64, Value::I64(_))
        | (Kind::I32, Value::I32(_))
        | (Kind::Bytes, Value::Len(..))
        | (Kind::PackedI64, Value::I64(_))
        | (Kind::PackedVarint, Value::Varint(_)) => Ok(()),
        (Kind::Message(inner), Value::Len(payload, at)) => validate(inner, payload, at, depth + 1),
        (Kind::PackedI64, Value::Len(payload, at)) => {
            if payload.len() % 8 == 0 {
                Ok(())
            } else {
                Err(WireError::new(
                    WireErrorKind::Truncated,
                    at + payload.len() - payload.len() % 8,
                ))
            }
        }
        (Kind::PackedVarint, Value::Len(payload, at)) => {
            let mut reader = Reader::new(payload, at);
            while reader.offset() < at + payload.len() {
                reader.varint()?;
            }
            Ok(())
        }
        (kind, value) => Err(WireError::new(
            WireErrorKind::WrongWireType {
                message: schema.name,
                field: decl.name,
                number: decl.number,
                expected: kind.wire_type(),
                found: value.wire_type(),
            },
            field.start,
        )),
    }
}
