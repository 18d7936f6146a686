//! OTLP/JSON ⇄ protobuf, for the HTTP receiver's `application/json` and JSON-speaking exporters.
//!
//! This is a cold path: JSON is decoded into the `opentelemetry-proto` prost types (whose serde
//! support implements the OTLP/JSON rules: lowerCamelCase keys, hex trace and span ids, 64-bit
//! integers as decimal strings or numbers, base64 bytes, unknown keys ignored) and encoded to
//! protobuf, after which the request takes the same zero-copy path as any other.
//!
//! Before the typed decode, the JSON tree is normalised for what the OTLP specification, the
//! protobuf JSON mapping and the Collector accept but the prost types do not: enum values given
//! by name (`"SPAN_KIND_SERVER"`) or as decimal strings, 32-bit integers given as strings, the
//! proto field names (`trace_id`) that the mapping lets parsers accept beside lowerCamelCase,
//! `null` for a field's default, fields omitted where the prost types insist on them
//! (`"arrayValue": {}`), and URL-safe or unpadded base64.
//!
//! The normaliser walks the tree along a table of the requests' shapes (`Shape`), so it only
//! touches fields it knows: a key the table does not list is an unknown field, which OTLP/JSON
//! receivers must ignore, so nothing under it is converted or refused (a future message with its
//! own `kind` must not be read as a span kind). The walk also makes up for one weakness of the
//! prost types: their `oneof`s are flattened `Option`s, which serde reads as `None`, silently,
//! when the member's content is malformed; the members are decoded on their own first so that
//! the error surfaces instead of a metric losing its data points.

use std::fmt;

use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, number_data_point, ExponentialHistogram, Gauge, Histogram, Sum, Summary,
};
use prost::Message;
use serde::de::{DeserializeOwned, Error as _};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::envelope::Signal;

/// Why a JSON body could not be turned into protobuf, or protobuf into JSON.
#[derive(Debug)]
pub enum JsonError {
    /// Not JSON, or JSON that does not have the shape of the request.
    Json(serde_json::Error),
    /// An enum value that is neither a known name nor an integer.
    UnknownEnum {
        /// The JSON key of the enum field.
        field: &'static str,
        /// The value found there.
        value: String,
    },
    /// The protobuf bytes to encode as JSON did not decode.
    Protobuf(prost::DecodeError),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Json(err) => write!(f, "invalid OTLP/JSON: {err}"),
            JsonError::UnknownEnum { field, value } => {
                write!(f, "invalid OTLP/JSON: unknown {field} value {value:?}")
            }
            JsonError::Protobuf(err) => write!(f, "invalid OTLP protobuf: {err}"),
        }
    }
}

impl std::error::Error for JsonError {}

/// How deep the normaliser follows nested JSON; serde_json's own parser stops at 128 levels.
const JSON_DEPTH_MAX: usize = 128;

/// Decodes an OTLP/JSON export request of `signal` into protobuf bytes.
pub fn to_protobuf(signal: Signal, json: &[u8]) -> Result<Vec<u8>, JsonError> {
    let mut tree: Value = serde_json::from_slice(json).map_err(JsonError::Json)?;
    let shape = match signal {
        Signal::Traces => &TRACES_REQUEST,
        Signal::Metrics => &METRICS_REQUEST,
        Signal::Logs => &LOGS_REQUEST,
    };
    normalise_field(&mut tree, shape, 0)?;
    fn encode<T: Message + serde::de::DeserializeOwned>(tree: Value) -> Result<Vec<u8>, JsonError> {
        let message: T = serde_json::from_value(tree).map_err(JsonError::Json)?;
        Ok(message.encode_to_vec())
    }
    match signal {
        Signal::Traces => encode::<ExportTraceServiceRequest>(tree),
        Signal::Metrics => encode::<ExportMetricsServiceRequest>(tree),
        Signal::Logs => encode::<ExportLogsServiceRequest>(tree),
    }
}

/// Encodes a protobuf export request of `signal` as OTLP/JSON.
pub fn from_protobuf(signal: Signal, bytes: &[u8]) -> Result<Vec<u8>, JsonError> {
    fn encode<T: Message + Default + serde::Serialize>(bytes: &[u8]) -> Result<Vec<u8>, JsonError> {
        let message = T::decode(bytes).map_err(JsonError::Protobuf)?;
        serde_json::to_vec(&message).map_err(JsonError::Json)
    }
    match signal {
        Signal::Traces => encode::<ExportTraceServiceRequest>(bytes),
        Signal::Metrics => encode::<ExportMetricsServiceRequest>(bytes),
        Signal::Logs => encode::<ExportLogsServiceRequest>(bytes),
    }
}

/// An OTLP enum: the prefix of its value names, and the names by value.
#[derive(Debug)]
struct Enum {
    prefix: &'static str,
    names: &'static [&'static str],
}

static SPAN_KIND: Enum = Enum {
    prefix: "SPAN_KIND_",
    names: &[
        "UNSPECIFIED",
        "INTERNAL",
        "SERVER",
        "CLIENT",
        "PRODUCER",
        "CONSUMER",
    ],
};
static STATUS_CODE: Enum = Enum {
    prefix: "STATUS_CODE_",
    names: &["UNSET", "OK", "ERROR"],
};
static AGGREGATION_TEMPORALITY: Enum = Enum {
    prefix: "AGGREGATION_TEMPORALITY_",
    names: &["UNSPECIFIED", "DELTA", "CUMULATIVE"],
};
static SEVERITY_NUMBER: Enum = Enum {
    prefix: "SEVERITY_NUMBER_",
    names: &[
        "UNSPECIFIED",
        "TRACE",
        "TRACE2",
        "TRACE3",
        "TRACE4",
        "DEBUG",
        "DEBUG2",
        "DEBUG3",
        "DEBUG4",
        "INFO",
        "INFO2",
        "INFO3",
        "INFO4",
        "WARN",
        "WARN2",
        "WARN3",
        "WARN4",
        "ERROR",
        "ERROR2",
        "ERROR3",
        "ERROR4",
        "FATAL",
        "FATAL2",
        "FATAL3",
        "FATAL4",
    ],
};

/// The value to fill in for a field the prost types require but protobuf lets be omitted.
#[derive(Debug, Clone, Copy)]
enum Empty {
    String,
    List,
}

/// Checks a message for what a flattened `oneof` of the prost types would drop silently.
type Check = fn(&Map<String, Value>) -> Result<(), serde_json::Error>;

/// What the normaliser knows of one message's JSON form, by lowerCamelCase key. Keys not listed
/// are unknown fields and are left alone.
struct Shape {
    /// Fields holding a message, or a list of messages, of the given shape.
    messages: &'static [(&'static str, &'static Shape)],
    /// Enum fields, which may be given by name or as a decimal string.
    enums: &'static [(&'static str, &'static Enum)],
    /// 32-bit integer fields, which the protobuf JSON mapping allows as strings and the prost
    /// types read only as numbers.
    int32s: &'static [&'static str],
    /// `bytes` fields (other than ids, which are hex), in base64.
    base64s: &'static [&'static str],
    /// Fields the prost types fail without (they lack `#[serde(default)]`).
    required: &'static [(&'static str, Empty)],
    check: Option<Check>,
}

/// A message with nothing to convert but its keys' spelling.
const LEAF: Shape = Shape {
    messages: &[],
    enums: &[],
    int32s: &[],
    base64s: &[],
    required: &[],
    check: None,
};

// --- common ----------------------------------------------------------------------------------

static ANY_VALUE: Shape = Shape {
    messages: &[
        ("arrayValue", &ARRAY_VALUE),
        ("kvlistValue", &KEY_VALUE_LIST),
    ],
    int32s: &["stringValueStrindex"],
    base64s: &["bytesValue"],
    ..LEAF
};
static ARRAY_VALUE: Shape = Shape {
    messages: &[("values", &ANY_VALUE)],
    required: &[("values", Empty::List)],
    ..LEAF
};
static KEY_VALUE_LIST: Shape = Shape {
    messages: &[("values", &KEY_VALUE)],
    required: &[("values", Empty::List)],
    ..LEAF
};
static KEY_VALUE: Shape = Shape {
    messages: &[("value", &ANY_VALUE)],
    int32s: &["keyStrindex"],
    required: &[("key", Empty::String)],
    ..LEAF
};
static ENTITY_REF: Shape = Shape {
    required: &[
        ("schemaUrl", Empty::String),
        ("type", Empty::String),
        ("idKeys", Empty::List),
        ("descriptionKeys", Empty::List),
    ],
    ..LEAF
};
static RESOURCE: Shape = Shape {
    messages: &[("attributes", &KEY_VALUE), ("entityRefs", &ENTITY_REF)],
    int32s: &["droppedAttributesCount"],
    ..LEAF
};
static SCOPE: Shape = Shape {
    messages: &[("attributes", &KEY_VALUE)],
    int32s: &["droppedAttributesCount"],
    ..LEAF
};

// --- traces ----------------------------------------------------------------------------------

static TRACES_REQUEST: Shape = Shape {
    messages: &[("resourceSpans", &RESOURCE_SPANS)],
    ..LEAF
};
static RESOURCE_SPANS: Shape = Shape {
    messages: &[("resource", &RESOURCE), ("scopeSpans", &SCOPE_SPANS)],
    ..LEAF
};
static SCOPE_SPANS: Shape = Shape {
    messages: &[("scope", &SCOPE), ("spans", &SPAN)],
    ..LEAF
};
static SPAN: Shape = Shape {
    messages: &[
        ("attributes", &KEY_VALUE),
        ("events", &EVENT),
        ("links", &LINK),
        ("status", &STATUS),
    ],
    enums: &[("kind", &SPAN_KIND)],
    int32s: &[
        "droppedAttributesCount",
        "droppedEventsCount",
        "droppedLinksCount",
        "flags",
    ],
    ..LEAF
};
static EVENT: Shape = Shape {
    messages: &[("attributes", &KEY_VALUE)],
    int32s: &["droppedAttributesCount"],
    ..LEAF
};
static LINK: Shape = Shape {
    messages: &[("attributes", &KEY_VALUE)],
    int32s: &["droppedAttributesCount", "flags"],
    ..LEAF
};
static STATUS: Shape = Shape {
    enums: &[("code", &STATUS_CODE)],
    ..LEAF
};

// --- metrics ---------------------------------------------------------------------------------

static METRICS_REQUEST: Shape = Shape {
    messages: &[("resourceMetrics", &RESOURCE_METRICS)],
    ..LEAF
};
static RESOURCE_METRICS: Shape = Shape {
    messages: &[("resource", &RESOURCE), ("scopeMetrics", &SCOPE_METRICS)],
    ..LEAF
};
static SCOPE_METRICS: Shape = Shape {
    messages: &[("scope", &SCOPE), ("metrics", &METRIC)],
    ..LEAF
};
static METRIC: Shape = Shape {
    messages: &[
        ("metadata", &KEY_VALUE),
        ("gauge", &GAUGE),
        ("sum", &SUM),
        ("histogram", &HISTOGRAM),
        ("exponentialHistogram", &EXPONENTIAL_HISTOGRAM),
        ("summary", &SUMMARY),
    ],
    check: Some(check_metric_data),
    ..LEAF
};
static GAUGE: Shape = Shape {
    messages: &[("dataPoints", &NUMBER_DATA_POINT)],
    ..LEAF
};
static SUM: Shape = Shape {
    messages: &[("dataPoints", &NUMBER_DATA_POINT)],
    enums: &[("aggregationTemporality", &AGGREGATION_TEMPORALITY)],
    ..LEAF
};
static HISTOGRAM: Shape = Shape {
    messages: &[("dataPoints", &HISTOGRAM_DATA_POINT)],
    enums: &[("aggregationTemporality", &AGGREGATION_TEMPORALITY)],
    ..LEAF
};
static EXPONENTIAL_HISTOGRAM: Shape = Shape {
    messages: &[("dataPoints", &EXPONENTIAL_HISTOGRAM_DATA_POINT)],
    enums: &[("aggregationTemporality", &AGGREGATION_TEMPORALITY)],
    ..LEAF
};
static SUMMARY: Shape = Shape {
    messages: &[("dataPoints", &SUMMARY_DATA_POINT)],
    ..LEAF
};
static NUMBER_DATA_POINT: Shape = Shape {
    messages: &[("attributes", &KEY_VALUE), ("exemplars", &EXEMPLAR)],
    int32s: &["flags"],
    check: Some(check_oneof::<number_data_point::Value>),
    ..LEAF
};
static HISTOGRAM_DATA_POINT: Shape = Shape {
    messages: &[("attributes", &KEY_VALUE), ("exemplars", &EXEMPLAR)],
    int32s: &["flags"],
    ..LEAF
};
static EXPONENTIAL_HISTOGRAM_DATA_POINT: Shape = Shape {
    messages: &[
        ("attributes", &KEY_VALUE),
        ("exemplars", &EXEMPLAR),
        ("positive", &BUCKETS),
        ("negative", &BUCKETS),
    ],
    int32s: &["flags", "scale"],
    ..LEAF
};
static BUCKETS: Shape = Shape {
    int32s: &["offset"],
    ..LEAF
};
static SUMMARY_DATA_POINT: Shape = Shape {
    messages: &[("attributes", &KEY_VALUE), ("quantileValues", &LEAF)],
    int32s: &["flags"],
    ..LEAF
};
static EXEMPLAR: Shape = Shape {
    messages: &[("filteredAttributes", &KEY_VALUE)],
    check: Some(check_oneof::<exemplar::Value>),
    ..LEAF
};

// --- logs ------------------------------------------------------------------------------------

static LOGS_REQUEST: Shape = Shape {
    messages: &[("resourceLogs", &RESOURCE_LOGS)],
    ..LEAF
};
static RESOURCE_LOGS: Shape = Shape {
    messages: &[("resource", &RESOURCE), ("scopeLogs", &SCOPE_LOGS)],
    ..LEAF
};
static SCOPE_LOGS: Shape = Shape {
    messages: &[("scope", &SCOPE), ("logRecords", &LOG_RECORD)],
    ..LEAF
};
static LOG_RECORD: Shape = Shape {
    messages: &[("body", &ANY_VALUE), ("attributes", &KEY_VALUE)],
    enums: &[("severityNumber", &SEVERITY_NUMBER)],
    int32s: &["droppedAttributesCount", "flags"],
    ..LEAF
};

/// Normalises a field of message type: one message, or a list of them. Anything else is left
/// for the typed decode to refuse with its own message.
fn normalise_field(value: &mut Value, shape: &Shape, depth: usize) -> Result<(), JsonError> {
    match value {
        Value::Object(map) => normalise_message(map, shape, depth),
        Value::Array(items) => items.iter_mut().try_for_each(|item| match item {
            Value::Object(map) => normalise_message(map, shape, depth + 1),
            _ => Ok(()),
        }),
        _ => Ok(()),
    }
}

fn normalise_message(
    map: &mut Map<String, Value>,
    shape: &Shape,
    depth: usize,
) -> Result<(), JsonError> {
    if depth > JSON_DEPTH_MAX {
        // serde_json refuses deeper input before this is reached; stop rather than recurse.
        return Ok(());
    }
    if map.keys().any(|k| k.contains('_')) {
        *map = std::mem::take(map)
            .into_iter()
            .map(|(k, v)| (camel_case(&k), v))
            .collect::<Map<_, _>>();
    }
    // In protobuf's JSON mapping `null` is the field's default; the prost types refuse it for
    // most fields, and absence means the same.
    map.retain(|_, v| !v.is_null());
    for &(key, empty) in shape.required {
        map.entry(key).or_insert_with(|| match empty {
            Empty::String => Value::String(String::new()),
            Empty::List => Value::Array(Vec::new()),
        });
    }
    for (key, field) in map.iter_mut() {
        if let Some((name, e)) = shape.enums.iter().find(|e| e.0 == key) {
            if let Value::String(s) = field {
                let number =
                    enum_number(s, e.prefix, e.names).ok_or_else(|| JsonError::UnknownEnum {
                        field: name,
                        value: s.clone(),
                    })?;
                *field = Value::from(number);
            }
        } else if shape.int32s.contains(&key.as_str()) {
            if let Value::String(s) = field {
                if let Ok(n) = s.parse::<i64>() {
                    *field = Value::from(n);
                }
            }
        } else if shape.base64s.contains(&key.as_str()) {
            if let Value::String(s) = field {
                standard_base64(s);
            }
        } else if let Some((_, child)) = shape.messages.iter().find(|m| m.0 == key) {
            normalise_field(field, child, depth + 1)?;
        }
    }
    match shape.check {
        Some(check) => check(map).map_err(JsonError::Json),
        None => Ok(()),
    }
}

/// `Metric.data` is a flattened `oneof`: serde would read a metric whose data fails to decode
/// as a metric without data and carry on. Decoding the member on its own surfaces the error
/// (at the cost of decoding metric data twice, on a cold path). Two members set is an error in
/// protobuf's JSON mapping.
fn check_metric_data(map: &Map<String, Value>) -> Result<(), serde_json::Error> {
    let mut set = None;
    for (key, value) in map {
        match key.as_str() {
            "gauge" => Gauge::deserialize(value).map(drop),
            "sum" => Sum::deserialize(value).map(drop),
            "histogram" => Histogram::deserialize(value).map(drop),
            "exponentialHistogram" => ExponentialHistogram::deserialize(value).map(drop),
            "summary" => Summary::deserialize(value).map(drop),
            _ => continue,
        }
        .map_err(|err| serde_json::Error::custom(format!("metric {key}: {err}")))?;
        if let Some(first) = set.replace(key) {
            return Err(serde_json::Error::custom(format!(
                "metric has both {first} and {key}, members of one oneof"
            )));
        }
    }
    Ok(())
}

/// The `value` oneof of number data points and exemplars (`asDouble`, `asInt`), flattened like
/// `Metric.data`: a bad value would leave the point without one.
fn check_oneof<T: DeserializeOwned>(map: &Map<String, Value>) -> Result<(), serde_json::Error> {
    let mut set = None;
    for key in ["asDouble", "asInt"] {
        if let Some(value) = map.get(key) {
            let member = Value::Object(Map::from_iter([(key.to_owned(), value.clone())]));
            T::deserialize(member)
                .map_err(|err| serde_json::Error::custom(format!("{key}: {err}")))?;
            if let Some(first) = set.replace(key) {
                return Err(serde_json::Error::custom(format!(
                    "data point has both {first} and {key}, members of one oneof"
                )));
            }
        }
    }
    Ok(())
}

/// Rewrites URL-safe or unpadded base64, which protobuf's JSON mapping lets parsers accept, as
/// the standard padded form, the only one the prost types read.
fn standard_base64(s: &mut String) {
    if s.contains(['-', '_']) {
        *s = s.replace('-', "+").replace('_', "/");
    }
    let partial = s.len() % 4;
    if partial != 0 && !s.ends_with('=') {
        s.extend(std::iter::repeat_n('=', 4 - partial));
    }
}

fn enum_number(s: &str, prefix: &str, names: &[&str]) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let bare = s.strip_prefix(prefix)?;
    names.iter().position(|n| *n == bare).map(|i| i as i64)
}

fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_lower_camel_case() {
        assert_eq!(camel_case("trace_id"), "traceId");
        assert_eq!(camel_case("start_time_unix_nano"), "startTimeUnixNano");
        assert_eq!(camel_case("traceId"), "traceId");
    }

    #[test]
    fn enums_by_name_or_number() {
        let Enum { prefix, names } = &SPAN_KIND;
        assert_eq!(enum_number("SPAN_KIND_SERVER", prefix, names), Some(2));
        assert_eq!(enum_number("3", prefix, names), Some(3));
        assert_eq!(enum_number("SERVER", prefix, names), None);
        let Enum { prefix, names } = &SEVERITY_NUMBER;
        assert_eq!(
            enum_number("SEVERITY_NUMBER_FATAL4", prefix, names),
            Some(24)
        );
    }

    #[test]
    fn base64_is_made_standard_and_padded() {
        for (given, standard) in [
            ("3q2+7w==", "3q2+7w=="),
            ("3q2+7w", "3q2+7w=="),
            ("3q2-7w", "3q2+7w=="),
            ("__8", "//8="),
            ("", ""),
        ] {
            let mut s = given.to_owned();
            standard_base64(&mut s);
            assert_eq!(s, standard, "{given}");
        }
    }
}
