//! `google.rpc.Status`: the error detail a gRPC server sends in `grpc-status-details-bin` and an
//! OTLP/HTTP server in an error body, with a `google.rpc.RetryInfo` when the client should come
//! back after a delay.
//!
//! Written by hand ([`encode_status`], a handful of fields). Read with prost ([`decode_status`]):
//! a cold path, one small message per failed export, and what comes from an upstream is checked
//! field by field as any protobuf decoder does. The messages are declared here because
//! `opentelemetry-proto` does not carry `google.rpc`.

use std::time::Duration;

use prost::Message;

use super::GrpcCode;
use crate::encode::{put_bytes_field, put_varint_field};

/// The `type_url` of a `google.rpc.RetryInfo` packed in a `google.protobuf.Any`.
const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// Encodes a `google.rpc.Status`: `code`, `message`, and a `RetryInfo` detail asking for
/// `retry_delay` when given.
pub fn encode_status(code: GrpcCode, message: &str, retry_delay: Option<Duration>) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint_field(&mut out, 1, u64::from(code.value()));
    put_bytes_field(&mut out, 2, message.as_bytes());
    if let Some(delay) = retry_delay {
        // google.protobuf.Duration { seconds = 1, nanos = 2 }
        let mut duration = Vec::new();
        put_varint_field(&mut duration, 1, delay.as_secs());
        put_varint_field(&mut duration, 2, u64::from(delay.subsec_nanos()));
        // google.rpc.RetryInfo { retry_delay = 1 }
        let mut retry_info = Vec::new();
        put_bytes_field(&mut retry_info, 1, &duration);
        // google.protobuf.Any { type_url = 1, value = 2 }
        let mut any = Vec::new();
        put_bytes_field(&mut any, 1, RETRY_INFO_TYPE.as_bytes());
        put_bytes_field(&mut any, 2, &retry_info);
        put_bytes_field(&mut out, 3, &any);
    }
    out
}

/// What a `google.rpc.Status` says, as far as a client acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The status code (unknown values read as `UNKNOWN`).
    pub code: GrpcCode,
    /// The developer-facing message.
    pub message: String,
    /// The delay of the first `RetryInfo` detail, when there is one and it is readable.
    pub retry_delay: Option<Duration>,
}

/// Reads a `google.rpc.Status`; `None` when the bytes are not one.
pub fn decode_status(bytes: &[u8]) -> Option<Status> {
    let status = RpcStatus::decode(bytes).ok()?;
    let retry_delay = status
        .details
        .iter()
        .find(|any| any.type_url == RETRY_INFO_TYPE)
        .and_then(|any| RetryInfo::decode(&any.value[..]).ok()?.retry_delay)
        .map(|delay| {
            let secs = u64::try_from(delay.seconds).unwrap_or(0);
            let nanos = u32::try_from(delay.nanos).unwrap_or(0).min(999_999_999);
            Duration::new(secs, nanos)
        });
    Some(Status {
        code: GrpcCode::from_i32(status.code),
        message: status.message,
        retry_delay,
    })
}

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_back_as_written() {
        let delay = Duration::from_millis(1500);
        let bytes = encode_status(GrpcCode::ResourceExhausted, "slow down", Some(delay));
        assert_eq!(
            decode_status(&bytes),
            Some(Status {
                code: GrpcCode::ResourceExhausted,
                message: "slow down".into(),
                retry_delay: Some(delay),
            })
        );
        let bytes = encode_status(GrpcCode::InvalidArgument, "bad id", None);
        let status = decode_status(&bytes).unwrap();
        assert_eq!(status.code, GrpcCode::InvalidArgument);
        assert_eq!(status.retry_delay, None);
    }

    #[test]
    fn the_encoding_is_what_prost_reads() {
        let bytes = encode_status(GrpcCode::Unavailable, "draining", Some(Duration::new(2, 5)));
        let status = RpcStatus::decode(&bytes[..]).unwrap();
        assert_eq!((status.code, &status.message[..]), (14, "draining"));
        assert_eq!(status.details[0].type_url, RETRY_INFO_TYPE);
        let delay = RetryInfo::decode(&status.details[0].value[..])
            .unwrap()
            .retry_delay
            .unwrap();
        assert_eq!((delay.seconds, delay.nanos), (2, 5));
    }

    #[test]
    fn status_without_retry_info_has_no_delay() {
        let status = RpcStatus {
            code: 8,
            message: "full".into(),
            details: vec![ProtoAny {
                type_url: "type.googleapis.com/google.rpc.DebugInfo".into(),
                value: vec![],
            }],
        };
        let status = decode_status(&status.encode_to_vec()).unwrap();
        assert_eq!(status.code, GrpcCode::ResourceExhausted);
        assert_eq!(status.retry_delay, None);
        assert_eq!(decode_status(&[0xff]), None);
    }
}
