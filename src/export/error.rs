//! Why one attempt to send a batch failed, and whether the OTLP rules allow another.
//!
//! Every transport error becomes a [`SendError`]; [`SendError::is_retryable`] is the one place
//! the OTLP specification's table of retryable responses is applied (its gRPC half is
//! [`GrpcCode::is_retryable`], beside the codes in the wire crate):
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

use tailgate_wire::grpc::GrpcCode;
use tailgate_wire::json::JsonError;
use tailgate_wire::WireError;

/// Why one attempt to send a batch failed.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made to `endpoint`.
    Connect {
        /// The endpoint's `host:port`.
        endpoint: String,
        /// Why: the name did not resolve, or the last address tried refused.
        source: io::Error,
    },
    /// The TLS handshake with `endpoint` failed: its certificate was not trusted, or no
    /// version, suite or protocol was shared, or the upstream refused the gateway's own.
    Tls {
        /// The endpoint's `host:port`.
        endpoint: String,
        /// Why, as a metric label would say it (`certificate_unknown_issuer`, ...).
        reason: &'static str,
        /// What rustls said.
        source: io::Error,
    },
    /// The connection failed while the request was sent or the response read.
    Io(io::Error),
    /// HTTP/2 failed, as the gRPC code that error maps to.
    Http2 {
        /// The gRPC code the HTTP/2 error maps to.
        code: GrpcCode,
        /// The HTTP/2 error.
        source: h2::Error,
    },
    /// The attempt ran past the exporter's `timeout`.
    Timeout {
        /// The exporter's `timeout`, which the attempt ran past.
        after: Duration,
    },
    /// The upstream answered with a gRPC status other than OK.
    Grpc {
        /// `grpc-status`.
        code: GrpcCode,
        /// `grpc-message`, decoded (or a note on what stood in for a missing `grpc-status`).
        message: String,
        /// The delay a `google.rpc.RetryInfo` in `grpc-status-details-bin` asked for.
        retry_delay: Option<Duration>,
    },
    /// The upstream answered with an HTTP status other than 2xx.
    Http {
        /// The HTTP status code.
        status: u16,
        /// The body's `google.rpc.Status` message, or the body's text.
        message: String,
        /// From `Retry-After`, on the statuses where it means "retry then".
        retry_after: Option<Duration>,
    },
    /// The response broke the protocol (no `grpc-status`, an unreadable HTTP head, a body past
    /// `RESPONSE_BYTES_MAX`, ...).
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
            // A certificate may be fixed on the upstream's side (renewed, or its CA rolled out),
            // so a failed handshake is retried like a refused connection.
            SendError::Connect { .. }
            | SendError::Tls { .. }
            | SendError::Io(_)
            | SendError::Timeout { .. } => true,
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
            source.reason().map_or(GrpcCode::Internal, |reason| {
                GrpcCode::from_http2_error_code(reason.into())
            })
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
            SendError::Tls {
                endpoint,
                reason,
                source,
            } => write!(f, "TLS with {endpoint} failed ({reason}): {source}"),
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
}
