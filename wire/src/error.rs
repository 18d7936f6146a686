//! Errors of the wire layer.
//!
//! A [`WireError`] rejects a whole request: the bytes are not a well-formed OTLP message, and the
//! error says what was wrong and at which byte offset of the request it was found. A
//! [`SpanDefect`] rejects one span of an otherwise well-formed request, so a receiver can answer
//! with partial success (the count of rejected spans and a message) and forward the rest.

use std::fmt;

use super::proto::WireType;

/// The first thing wrong with a request's bytes, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// What was wrong.
    pub kind: WireErrorKind,
    /// Byte offset from the start of the request where the bad element begins.
    pub offset: usize,
}

/// What made a request undecodable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireErrorKind {
    /// The input ended inside a tag, varint, fixed-width value or length-delimited payload.
    Truncated,
    /// A varint ran on for more than 10 bytes.
    VarintTooLong,
    /// A 10-byte varint whose last byte carries bits beyond the 64th.
    VarintOverflow,
    /// A length prefix claims more bytes than its enclosing message has left.
    LengthOverrun {
        /// The length the prefix claims.
        len: u64,
        /// The bytes left in the enclosing message.
        available: usize,
    },
    /// A tag with field number 0 or one that does not fit in 29 bits.
    InvalidFieldNumber(u64),
    /// Wire type 6 or 7, which protobuf does not define.
    InvalidWireType(u8),
    /// An end-group marker with no matching start group.
    UnexpectedEndGroup {
        /// The marker's field number.
        field: u32,
    },
    /// A known field encoded with a wire type its declaration does not allow.
    WrongWireType {
        /// The message being read.
        message: &'static str,
        /// The field's name in that message.
        field: &'static str,
        /// The field's number.
        number: u32,
        /// The wire type the field is declared with.
        expected: WireType,
        /// The wire type the request used.
        found: WireType,
    },
    /// Messages (or groups) nested deeper than [`super::NESTING_DEPTH_MAX`].
    TooDeep {
        /// The nesting depth allowed.
        limit: usize,
    },
    /// A request over 4 GiB, which offsets in the wire layer cannot address.
    TooLarge {
        /// The request's length in bytes.
        len: usize,
    },
}

impl WireError {
    pub(crate) fn new(kind: WireErrorKind, offset: usize) -> Self {
        WireError { kind, offset }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            WireErrorKind::Truncated => write!(f, "input ends inside a field"),
            WireErrorKind::VarintTooLong => write!(f, "varint longer than 10 bytes"),
            WireErrorKind::VarintOverflow => write!(f, "varint overflows 64 bits"),
            WireErrorKind::LengthOverrun { len, available } => write!(
                f,
                "length prefix {len} overruns its message ({available} bytes left)"
            ),
            WireErrorKind::InvalidFieldNumber(n) => write!(f, "invalid field number {n}"),
            WireErrorKind::InvalidWireType(t) => write!(f, "invalid wire type {t}"),
            WireErrorKind::UnexpectedEndGroup { field } => {
                write!(
                    f,
                    "end-group marker for field {field} without a start group"
                )
            }
            WireErrorKind::WrongWireType {
                message,
                field,
                number,
                expected,
                found,
            } => write!(
                f,
                "{message}.{field} (field {number}) has wire type {found}, expected {expected}"
            ),
            WireErrorKind::TooDeep { limit } => {
                write!(f, "messages nested deeper than {limit} levels")
            }
            WireErrorKind::TooLarge { len } => write!(f, "request of {len} bytes exceeds 4 GiB"),
        }?;
        write!(f, " at byte {}", self.offset)
    }
}

impl std::error::Error for WireError {}

/// Why one span was rejected while the rest of its request was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanDefect {
    /// `trace_id` is not 16 bytes long (0 when it is absent).
    TraceIdLength(usize),
    /// `trace_id` is 16 zero bytes.
    TraceIdZero,
    /// `span_id` is not 8 bytes long (0 when it is absent).
    SpanIdLength(usize),
    /// `span_id` is 8 zero bytes.
    SpanIdZero,
    /// `parent_span_id` is present but not 8 bytes long.
    ParentSpanIdLength(usize),
    /// A link's `trace_id` is present but not 16 bytes long.
    LinkTraceIdLength(usize),
    /// A link's `span_id` is present but not 8 bytes long.
    LinkSpanIdLength(usize),
}

impl fmt::Display for SpanDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpanDefect::TraceIdLength(n) => write!(f, "trace_id is {n} bytes, must be 16"),
            SpanDefect::TraceIdZero => write!(f, "trace_id is all zero"),
            SpanDefect::SpanIdLength(n) => write!(f, "span_id is {n} bytes, must be 8"),
            SpanDefect::SpanIdZero => write!(f, "span_id is all zero"),
            SpanDefect::ParentSpanIdLength(n) => {
                write!(f, "parent_span_id is {n} bytes, must be 0 or 8")
            }
            SpanDefect::LinkTraceIdLength(n) => {
                write!(f, "link trace_id is {n} bytes, must be 16")
            }
            SpanDefect::LinkSpanIdLength(n) => write!(f, "link span_id is {n} bytes, must be 8"),
        }
    }
}
