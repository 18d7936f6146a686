//! Why one attempt to send a batch failed, and whether the OTLP rules allow another.
//!
//! Every transport error becomes a [`SendError`]; [`SendError::is_retryable`] is the one place
//! the OTLP specification's table of retryable responses is applied:
//!
//! - gRPC: `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE`,
//!   `DATA_LOSS` are retryable; `RESOURCE_EXHAUSTED` only when the status carries a
//!   `google.rpc.RetryInfo` (the server is throttling and says when to come back; without it
//!   the server is out of a resource that retrying will not bring back). Everything else is
//!   permanent.
//! - HTTP: 429, 502, 503, 504 are retryable, honouring `Retry-After`; every other status is
//!   permanent.
//! - Failing to connect, a connection lost mid-request and an attempt that runs past `timeout`
//!   are retryable, as a gRPC client reports them `UNAVAILABLE` or `DEADLINE_EXCEEDED`.

use std::fmt;
use std::io;
use std::time::Duration;

use tailgate_wire::json::JsonError;
use tailgate_wire::WireError;

/// gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcCode {
    Ok,
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

impl GrpcCode {
    /// The code for a `grpc-status` value; unknown values are `UNKNOWN`, as gRPC says.
    pub fn from_i32(code: i32) -> GrpcCode {
        use GrpcCode::*;
        match code {
            0 => Ok,
            1 => Cancelled,
            3 => InvalidArgument,
            4 => DeadlineExceeded,
            5 => NotFound,
            6 => AlreadyExists,
            7 => PermissionDenied,
            8 => ResourceExhausted,
            9 => FailedPrecondition,
            10 => Aborted,
            11 => OutOfRange,
            12 => Unimplemented,
            13 => Internal,
            14 => Unavailable,
            15 => DataLoss,
            16 => Unauthenticated,
            _ => Unknown,
        }
    }

    /// The code gRPC assigns to a non-200 HTTP status on a gRPC call (gRPC's
    /// "HTTP to gRPC status code mapping").
    pub fn from_http_status(status: u16) -> GrpcCode {
        match status {
            400 => GrpcCode::Internal,
            401 => GrpcCode::Unauthenticated,
            403 => GrpcCode::PermissionDenied,
            404 => GrpcCode::Unimplemented,
            429 | 502 | 503 | 504 => GrpcCode::Unavailable,
            _ => GrpcCode::Unknown,
        }
    }

    /// The code gRPC assigns to an HTTP/2 `RST_STREAM` or `GOAWAY` error code.
    pub fn from_h2_reason(reason: h2::Reason) -> GrpcCode {
        match reason {
            h2::Reason::REFUSED_STREAM => GrpcCode::Unavailable,
            h2::Reason::CANCEL => GrpcCode::Cancelled,
            h2::Reason::ENHANCE_YOUR_CALM => GrpcCode::ResourceExhausted,
            h2::Reason::INADEQUATE_SECURITY => GrpcCode::PermissionDenied,
            _ => GrpcCode::Internal,
        }
    }

    /// The code's name as gRPC spells it.
    pub fn name(self) -> &'static str {
        use GrpcCode::*;
        match self {
            Ok => "OK",
            Cancelled => "CANCELLED",
            Unknown => "UNKNOWN",
            InvalidArgument => "INVALID_ARGUMENT",
            DeadlineExceeded => "DEADLINE_EXCEEDED",
            NotFound => "NOT_FOUND",
            AlreadyExists => "ALREADY_EXISTS",
            PermissionDenied => "PERMISSION_DENIED",
            ResourceExhausted => "RESOURCE_EXHAUSTED",
            FailedPrecondition => "FAILED_PRECONDITION",
            Aborted => "ABORTED",
            OutOfRange => "OUT_OF_RANGE",
            Unimplemented => "UNIMPLEMENTED",
            Internal => "INTERNAL",
            Unavailable => "UNAVAILABLE",
            DataLoss => "DATA_LOSS",
            Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The OTLP table: whether a status with this code may be retried, given whether it
    /// carried `RetryInfo`.
    pub fn is_retryable(self, has_retry_info: bool) -> bool {
        use GrpcCode::*;
        match self {
            Cancelled | DeadlineExceeded | Aborted | OutOfRange | Unavailable | DataLoss => true,
            ResourceExhausted => has_retry_info,
            _ => false,
        }
    }
}

/// Why one attempt to send a batch failed.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made to `endpoint`.
    Connect { endpoint: String, source: io::Error },
    /// The connection failed while the request was sent or the response read.
    Io(io::Error),
    /// HTTP/2 failed, as the gRPC code that error maps to.
    Http2 { code: GrpcCode, source: h2::Error },
    /// The attempt ran past the exporter's `timeout`.
    Timeout { after: Duration },
    /// The upstream answered with a gRPC status other than OK.
    Grpc {
        code: GrpcCode,
        message: String,
        /// The delay a `google.rpc.RetryInfo` in `grpc-status-details-bin` asked for.
        retry_delay: Option<Duration>,
    },
    /// The upstream answered with an HTTP status other than 2xx.
    Http {
        status: u16,
        message: String,
        /// From `Retry-After`, on the statuses where it means "retry then".
        retry_after: Option<Duration>,
    },
    /// The response broke the protocol (no `grpc-status`, an unreadable HTTP head, a body past
    /// [`super::RESPONSE_BYTES_MAX`], ...).
    Protocol(String),
    /// The batch could not be encoded for the wire (JSON, compression).
    Encode(String),
    /// The batch is not a valid export request (only the debug exporter reads it).
    Invalid(WireError),
}

impl SendError {
    /// Whether the OTLP rules allow another attempt (see the module documentation).
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Connect { .. } | SendError::Io(_) | SendError::Timeout { .. } => true,
            SendError::Http2 { code, .. } => code.is_retryable(false),
            SendError::Grpc {
                code, retry_delay, ..
            } => code.is_retryable(retry_delay.is_some()),
            SendError::Http { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            SendError::Protocol(_) | SendError::Encode(_) | SendError::Invalid(_) => false,
        }
    }

    /// The delay the upstream asked for before the next attempt, if it asked.
    pub fn retry_delay(&self) -> Option<Duration> {
        match self {
            SendError::Grpc { retry_delay, .. } => *retry_delay,
            SendError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn from_h2(source: h2::Error) -> SendError {
        let code = if source.is_io() || source.is_go_away() {
            // A lost or closing connection: the request may be resent on a new one.
            GrpcCode::Unavailable
        } else {
            source
                .reason()
                .map_or(GrpcCode::Internal, GrpcCode::from_h2_reason)
        };
        SendError::Http2 { code, source }
    }

    /// Whether the connection this error came from should be dropped rather than reused.
    pub(crate) fn breaks_connection(&self) -> bool {
        match self {
            SendError::Io(_) | SendError::Timeout { .. } | SendError::Protocol(_) => true,
            SendError::Http2 { source, .. } => source.is_io() || source.is_go_away(),
            _ => false,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Connect { endpoint, source } => {
                write!(f, "cannot connect to {endpoint}: {source}")
            }
            SendError::Io(err) => write!(f, "connection failed: {err}"),
            SendError::Http2 { code, source } => {
                write!(f, "HTTP/2 error ({}): {source}", code.name())
            }
            SendError::Timeout { after } => write!(f, "no response within {after:?}"),
            SendError::Grpc {
                code,
                message,
                retry_delay,
            } => {
                write!(f, "upstream answered {}", code.name())?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                if let Some(delay) = retry_delay {
                    write!(f, " (retry in {delay:?})")?;
                }
                Ok(())
            }
            SendError::Http {
                status,
                message,
                retry_after,
            } => {
                write!(f, "upstream answered HTTP {status}")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                if let Some(delay) = retry_after {
                    write!(f, " (retry in {delay:?})")?;
                }
                Ok(())
            }
            SendError::Protocol(what) => write!(f, "protocol error: {what}"),
            SendError::Encode(what) => write!(f, "cannot encode the batch: {what}"),
            SendError::Invalid(err) => write!(f, "invalid batch: {err}"),
        }
    }
}

impl std::error::Error for SendError {}

impl From<JsonError> for SendError {
    fn from(err: JsonError) -> Self {
        SendError::Encode(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_retryable_grpc_codes() {
        let retryable: Vec<_> = (0..18)
            .map(GrpcCode::from_i32)
            .filter(|c| c.is_retryable(false))
            .map(GrpcCode::name)
            .collect();
        assert_eq!(
            retryable,
            [
                "CANCELLED",
                "DEADLINE_EXCEEDED",
                "ABORTED",
                "OUT_OF_RANGE",
                "UNAVAILABLE",
                "DATA_LOSS"
            ]
        );
        assert!(!GrpcCode::ResourceExhausted.is_retryable(false));
        assert!(GrpcCode::ResourceExhausted.is_retryable(true));
        assert!(!GrpcCode::InvalidArgument.is_retryable(true));
    }

    #[test]
    fn otlp_retryable_http_statuses() {
        let retryable: Vec<u16> = (100..600)
            .filter(|&status| {
                SendError::Http {
                    status,
                    message: String::new(),
                    retry_after: None,
                }
                .is_retryable()
            })
            .collect();
        assert_eq!(retryable, [429, 502, 503, 504]);
    }

    #[test]
    fn resource_exhausted_is_retryable_only_with_retry_info() {
        let status = |retry_delay| SendError::Grpc {
            code: GrpcCode::ResourceExhausted,
            message: String::new(),
            retry_delay,
        };
        assert!(!status(None).is_retryable());
        let with = status(Some(Duration::from_millis(10)));
        assert!(with.is_retryable());
        assert_eq!(with.retry_delay(), Some(Duration::from_millis(10)));
    }

    #[test]
    fn http_statuses_map_to_grpc_codes() {
        assert_eq!(GrpcCode::from_http_status(503), GrpcCode::Unavailable);
        assert_eq!(GrpcCode::from_http_status(400), GrpcCode::Internal);
        assert_eq!(GrpcCode::from_http_status(418), GrpcCode::Unknown);
    }
}
