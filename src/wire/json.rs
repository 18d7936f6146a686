//! OTLP/JSON ⇄ protobuf, for the HTTP receiver's `application/json` and JSON-speaking exporters.
//!
//! This is a cold path: JSON is decoded into the `opentelemetry-proto` prost types (whose serde
//! support implements the OTLP/JSON rules: lowerCamelCase keys, hex trace and span ids, 64-bit
//! integers as decimal strings or numbers, base64 bytes, unknown keys ignored) and encoded to
//! protobuf, after which the request takes the same zero-copy path as any other.
//!
//! Before the typed decode, the JSON tree is normalised for what the OTLP specification and the
//! Collector accept but the prost types do not: enum values given by name (`"SPAN_KIND_SERVER"`)
//! or as decimal strings, 32-bit integers given as strings, and the proto field names
//! (`trace_id`) that the protobuf JSON mapping lets parsers accept beside lowerCamelCase.

use std::fmt;

use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use prost::Message;
use serde_json::{Map, Value};

use super::envelope::Signal;

/// Why a JSON body could not be turned into protobuf, or protobuf into JSON.
#[derive(Debug)]
pub enum JsonError {
    /// Not JSON, or JSON that does not have the shape of the request.
    Json(serde_json::Error),
    /// An enum value that is neither a known name nor an integer.
    UnknownEnum { field: &'static str, value: String },
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
const MAX_JSON_DEPTH: usize = 128;

/// Decodes an OTLP/JSON export request of `signal` into protobuf bytes.
pub fn to_protobuf(signal: Signal, json: &[u8]) -> Result<Vec<u8>, JsonError> {
    let mut tree: Value = serde_json::from_slice(json).map_err(JsonError::Json)?;
    normalise(&mut tree, 0)?;
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

/// Enum fields (by lowerCamelCase key), their name prefix, and their values by name.
const ENUMS: &[(&str, &str, &[&str])] = &[
    (
        "kind",
        "SPAN_KIND_",
        &["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"],
    ),
    ("code", "STATUS_CODE_", &["UNSET", "OK", "ERROR"]),
    (
        "aggregationTemporality",
        "AGGREGATION_TEMPORALITY_",
        &["UNSPECIFIED", "DELTA", "CUMULATIVE"],
    ),
    (
        "severityNumber",
        "SEVERITY_NUMBER_",
        &[
            "UNSPECIFIED", "TRACE", "TRACE2", "TRACE3", "TRACE4", "DEBUG", "DEBUG2", "DEBUG3",
            "DEBUG4", "INFO", "INFO2", "INFO3", "INFO4", "WARN", "WARN2", "WARN3", "WARN4",
            "ERROR", "ERROR2", "ERROR3", "ERROR4", "FATAL", "FATAL2", "FATAL3", "FATAL4",
        ],
    ),
];

/// 32-bit integer fields, which protobuf's JSON mapping allows as strings and the prost types
/// read only as numbers.
const INT32_FIELDS: &[&str] = &[
    "droppedAttributesCount",
    "droppedEventsCount",
    "droppedLinksCount",
    "flags",
    "scale",
    "offset",
];

fn normalise(value: &mut Value, depth: usize) -> Result<(), JsonError> {
    if depth > MAX_JSON_DEPTH {
        // serde_json refuses deeper input before this is reached; stop rather than recurse.
        return Ok(());
    }
    match value {
        Value::Array(items) => items.iter_mut().try_for_each(|v| normalise(v, depth + 1)),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('_')) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (camel_case(&k), v))
                    .collect::<Map<_, _>>();
            }
            for (key, field) in map.iter_mut() {
                if let Some((name, prefix, names)) = ENUMS.iter().find(|e| e.0 == key) {
                    if let Value::String(s) = field {
                        let number = enum_number(s, prefix, names).ok_or_else(|| {
                            JsonError::UnknownEnum {
                                field: name,
                                value: s.clone(),
                            }
                        })?;
                        *field = Value::from(number);
                    }
                } else if INT32_FIELDS.contains(&key.as_str()) {
                    if let Value::String(s) = field {
                        if let Ok(n) = s.parse::<i64>() {
                            *field = Value::from(n);
                        }
                    }
                } else {
                    normalise(field, depth + 1)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
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
        let (_, prefix, names) = ENUMS[0];
        assert_eq!(enum_number("SPAN_KIND_SERVER", prefix, names), Some(2));
        assert_eq!(enum_number("3", prefix, names), Some(3));
        assert_eq!(enum_number("SERVER", prefix, names), None);
        let (_, prefix, names) = ENUMS[3];
        assert_eq!(enum_number("SEVERITY_NUMBER_FATAL4", prefix, names), Some(24));
    }
}
