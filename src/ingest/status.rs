//! What went wrong with a request, and how each receiver says so.
//!
//! Every refusal is an [`IngestError`]; this module is the one place that maps it to a gRPC
//! status code and to an HTTP status, following the OTLP specification: undecodable data is a
//! permanent error (INVALID_ARGUMENT / 400), an oversized message is RESOURCE_EXHAUSTED / 413,
//! an unknown method UNIMPLEMENTED / 404, pressure is a retryable refusal (RESOURCE_EXHAUSTED
//! with `RetryInfo` / 429 with `Retry-After`), draining is UNAVAILABLE / 503 with
//! `Retry-After`, and missing or wrong credentials are UNAUTHENTICATED / 401 with
//! `WWW-Authenticate` where a scheme applies.

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::auth::Refusal;

use tailgate_wire::grpc::GrpcCode;
use tailgate_wire::WireError;

/// How long a client is asked to wait before retrying a request refused while the gateway is
/// shutting down.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a request was refused.
#[derive(Debug)]
pub enum IngestError {
    /// The body is not a valid export request.
    Decode(WireError),
    /// The body is not valid OTLP/JSON.
    Json(String),
    /// A compressed body is corrupt.
    Corrupt(String),
    /// The message exceeds the receiver's size limit (after decompression too).
    TooLarge { limit: usize },
    /// An encoding or content type the receiver does not accept.
    Unsupported(String),
    /// No such method or path.
    UnknownMethod(String),
    /// The gateway is shutting down; the client should retry after the delay (elsewhere).
    Unavailable {
        reason: &'static str,
        retry_after: Duration,
    },
    /// The shard is under pressure (its hand-offs are waiting on full queues): the request, of
    /// `items` items, is refused whole and the client should retry after the delay.
    Overloaded { items: u64, retry_after: Duration },
    /// A shard the request would reach holds its share of the memory budget (the
    /// `memory_limiter`): the request, of `items` items, is refused whole and the client
    /// should retry after the delay.
    OverMemory { items: u64, retry_after: Duration },
    /// The receiver's authenticator refused the request's credentials; `challenge` is the
    /// `WWW-Authenticate` value an HTTP answer carries, where one applies.
    Unauthenticated {
        refusal: Refusal,
        challenge: Option<Rc<str>>,
    },
    /// The request's client metadata would make one combination more than a `batch`
    /// processor's `metadata_cardinality_limit` allows: refused permanently, as the Collector
    /// refuses it (see [`crate::metadata`]).
    Metadata {
        /// What the limit refused.
        why: crate::metadata::TooManyCombinations,
        /// The request's items, counted refused.
        items: u64,
    },
}

impl IngestError {
    /// The gRPC status code for OTLP/gRPC (and the `code` of OTLP/HTTP error bodies).
    pub fn grpc_code(&self) -> GrpcCode {
        match self {
            IngestError::Decode(_) | IngestError::Json(_) | IngestError::Corrupt(_) => {
                GrpcCode::InvalidArgument
            }
            IngestError::TooLarge { .. }
            | IngestError::Overloaded { .. }
            | IngestError::OverMemory { .. } => GrpcCode::ResourceExhausted,
            IngestError::Unsupported(_) | IngestError::UnknownMethod(_) => GrpcCode::Unimplemented,
            IngestError::Unavailable { .. } => GrpcCode::Unavailable,
            IngestError::Unauthenticated { .. } => GrpcCode::Unauthenticated,
            // The Collector's answer to a permanent error without a status of its own.
            IngestError::Metadata { .. } => GrpcCode::Internal,
        }
    }

    /// The HTTP status for OTLP/HTTP.
    pub fn http_status(&self) -> u16 {
        match self {
            IngestError::Decode(_) | IngestError::Json(_) | IngestError::Corrupt(_) => 400,
            IngestError::TooLarge { .. } => 413,
            IngestError::Unsupported(_) => 415,
            IngestError::UnknownMethod(_) => 404,
            IngestError::Unavailable { .. } => 503,
            IngestError::Overloaded { .. } | IngestError::OverMemory { .. } => 429,
            IngestError::Unauthenticated { .. } => 401,
            IngestError::Metadata { .. } => 500,
        }
    }

    /// How long a client should wait before retrying, for retryable refusals.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            IngestError::Unavailable { retry_after, .. }
            | IngestError::Overloaded { retry_after, .. }
            | IngestError::OverMemory { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The `WWW-Authenticate` challenge of an HTTP refusal, where one applies.
    pub fn challenge(&self) -> Option<Rc<str>> {
        match self {
            IngestError::Unauthenticated { challenge, .. } => challenge.clone(),
            _ => None,
        }
    }
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IngestError::Decode(err) => write!(f, "invalid OTLP protobuf: {err}"),
            IngestError::Json(err) => f.write_str(err),
            IngestError::Corrupt(err) => write!(f, "corrupt compressed body: {err}"),
            IngestError::TooLarge { limit } => {
                write!(f, "message larger than the limit of {limit} bytes")
            }
            IngestError::Unsupported(what) => write!(f, "unsupported {what}"),
            IngestError::UnknownMethod(path) => write!(f, "unknown method {path}"),
            IngestError::Unavailable { reason, .. } => write!(f, "{reason}; retry later"),
            IngestError::Overloaded { items, .. } => write!(
                f,
                "the gateway is under pressure; {items} item(s) refused, retry later"
            ),
            IngestError::OverMemory { items, .. } => write!(
                f,
                "the gateway's memory limit is reached (memory_limiter); {items} item(s) \
                 refused, retry later"
            ),
            IngestError::Unauthenticated { refusal, .. } => write!(f, "unauthenticated: {refusal}"),
            IngestError::Metadata { why, .. } => write!(
                f,
                "{why} (the batch processor's metadata_cardinality_limit); this request's \
                 client metadata is refused"
            ),
        }
    }
}
