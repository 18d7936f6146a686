//! Reading what the upstream says back: export responses (partial success), gRPC status
//! details (`RetryInfo`) and error bodies, the latter two read by [`tailgate_wire::grpc`].
//!
//! A cold path: one small message per batch, decoded with prost. The response is declared here
//! rather than taken from `opentelemetry-proto` because the three `Export*ServiceResponse`s
//! share one shape: `partial_success` in field 1, whose `rejected_spans` /
//! `rejected_data_points` / `rejected_log_records` is field 1 and `error_message` field 2 — so
//! one declaration reads all three.

use std::time::Duration;

use prost::Message;
use serde_json::Value;
use tailgate_wire::grpc::{decode_binary_header, decode_grpc_message, decode_status};

/// The most of an upstream's error text kept for a log line.
const MESSAGE_BYTES_MAX: usize = 512;

/// `Export{Trace,Metrics,Logs}ServiceResponse`.
#[derive(Clone, PartialEq, Message)]
struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<ProtoPartialSuccess>,
}

/// `Export{Trace,Metrics,Logs}PartialSuccess`.
#[derive(Clone, PartialEq, Message)]
struct ProtoPartialSuccess {
    #[prost(int64, tag = "1")]
    rejected: i64,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// What a successful response said: how many items the upstream refused, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Delivered {
    pub rejected: u64,
    pub message: String,
}

/// Reads a protobuf `Export*ServiceResponse`. An empty body is a full success.
pub(crate) fn delivered_from_proto(body: &[u8]) -> Result<Delivered, prost::DecodeError> {
    let response = ExportResponse::decode(body)?;
    Ok(response
        .partial_success
        .map(|p| Delivered {
            rejected: p.rejected.max(0) as u64,
            message: truncate(p.error_message),
        })
        .unwrap_or_default())
}

/// Reads an OTLP/JSON `Export*ServiceResponse`; 64-bit counts may come as strings, and keys in
/// lowerCamelCase or as proto field names. An empty body is a full success.
pub(crate) fn delivered_from_json(body: &[u8]) -> Result<Delivered, serde_json::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Delivered::default());
    }
    let tree: Value = serde_json::from_slice(body)?;
    let Some(partial) = field(&tree, "partialSuccess", "partial_success") else {
        return Ok(Delivered::default());
    };
    let rejected = [
        ("rejectedSpans", "rejected_spans"),
        ("rejectedDataPoints", "rejected_data_points"),
        ("rejectedLogRecords", "rejected_log_records"),
    ]
    .iter()
    .find_map(|(camel, snake)| field(partial, camel, snake))
    .and_then(|v| match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    })
    .unwrap_or(0);
    let message = field(partial, "errorMessage", "error_message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(Delivered {
        rejected: rejected.max(0) as u64,
        message: truncate(message.to_string()),
    })
}

fn field<'a>(tree: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    tree.get(camel).or_else(|| tree.get(snake))
}

/// The retry delay in a `grpc-status-details-bin` value (base64 of a `google.rpc.Status`), if
/// the status carries a `RetryInfo`.
pub(crate) fn retry_delay_from_details(value: &[u8]) -> Option<Duration> {
    decode_status(&decode_binary_header(value)?)?.retry_delay
}

/// Decodes a `grpc-message` value, truncated for a log line.
pub(crate) fn grpc_message(value: &[u8]) -> String {
    truncate(decode_grpc_message(value))
}

/// The human part of an HTTP error body: the `message` of a `google.rpc.Status` (protobuf or
/// JSON, as OTLP/HTTP servers send it), or the body's text.
pub(crate) fn http_error_message(body: &[u8], json: bool) -> String {
    if body.is_empty() {
        return String::new();
    }
    if json {
        if let Ok(tree) = serde_json::from_slice::<Value>(body) {
            if let Some(message) = tree.get("message").and_then(Value::as_str) {
                return truncate(message.to_string());
            }
        }
    } else if let Some(status) = decode_status(body) {
        if !status.message.is_empty() {
            return truncate(status.message);
        }
    }
    truncate(String::from_utf8_lossy(body).into_owned())
}

fn truncate(mut message: String) -> String {
    if message.len() > MESSAGE_BYTES_MAX {
        let mut end = MESSAGE_BYTES_MAX;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    use tailgate_wire::grpc::{encode_binary_header, encode_status, GrpcCode};

    /// A `grpc-status-details-bin` value asking for `delay`.
    fn details_with_retry_info(delay: Duration) -> String {
        let status = encode_status(GrpcCode::ResourceExhausted, "slow down", Some(delay));
        encode_binary_header(&status)
    }

    #[test]
    fn reads_retry_info_padded_or_not() {
        let value = details_with_retry_info(Duration::from_millis(1500));
        assert_eq!(
            retry_delay_from_details(value.as_bytes()),
            Some(Duration::from_millis(1500))
        );
        let padded = format!("{value}{}", "=".repeat((4 - value.len() % 4) % 4));
        assert_eq!(
            retry_delay_from_details(padded.as_bytes()),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn status_without_retry_info_has_no_delay() {
        let status = encode_status(GrpcCode::ResourceExhausted, "full", None);
        let value = encode_binary_header(&status);
        assert_eq!(retry_delay_from_details(value.as_bytes()), None);
        assert_eq!(retry_delay_from_details(b"!!not base64"), None);
    }

    #[test]
    fn reads_partial_success_from_the_real_message() {
        let response = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "bad span".into(),
            }),
        };
        assert_eq!(
            delivered_from_proto(&response.encode_to_vec()).unwrap(),
            Delivered {
                rejected: 3,
                message: "bad span".into()
            }
        );
        assert_eq!(delivered_from_proto(&[]).unwrap(), Delivered::default());
    }

    #[test]
    fn reads_partial_success_from_json() {
        let body = br#"{"partialSuccess":{"rejectedLogRecords":"4","errorMessage":"x"}}"#;
        assert_eq!(
            delivered_from_json(body).unwrap(),
            Delivered {
                rejected: 4,
                message: "x".into()
            }
        );
        let body = br#"{"partial_success":{"rejected_data_points":2}}"#;
        assert_eq!(delivered_from_json(body).unwrap().rejected, 2);
        assert_eq!(delivered_from_json(b"{}").unwrap(), Delivered::default());
        assert_eq!(delivered_from_json(b"").unwrap(), Delivered::default());
    }

    #[test]
    fn decodes_grpc_message() {
        assert_eq!(
            grpc_message(b"bad%20request%3A%20%E2%9C%93"),
            "bad request: ✓"
        );
        assert_eq!(grpc_message(b"100%"), "100%");
        assert_eq!(
            grpc_message(&[b'a'; 2000]).len(),
            MESSAGE_BYTES_MAX + '…'.len_utf8()
        );
    }

    #[test]
    fn error_bodies() {
        let status = encode_status(GrpcCode::InvalidArgument, "invalid trace id", None);
        assert_eq!(http_error_message(&status, false), "invalid trace id");
        assert_eq!(
            http_error_message(br#"{"code":3,"message":"nope"}"#, true),
            "nope"
        );
        assert_eq!(http_error_message(b"plain text", true), "plain text");
    }
}
