//! The OTLP wire layer: requests are validated and read in place, never decoded into owned
//! structures on the data path.
//!
//! The path of a request through this module:
//!
//! 1. [`Request::parse`] (or [`TracesRequest::parse`]) validates the whole request once against
//!    the OTLP schemas (the `schema` tables): wrong wire types, truncation, bad varints,
//!    overrunning lengths and excessive nesting are request errors ([`WireError`]) carrying the
//!    byte offset.
//! 2. Views ([`SpanView`], [`ResourceView`], [`ScopeView`], [`KeyValueView`], ...) borrow from the
//!    validated bytes; a span view reads the span's top-level fields, everything else is lazy.
//!    A span with bad ids is rejected on its own ([`SpanDefect`]).
//! 3. [`Split`] routes spans to the shard owning their trace, as byte ranges.
//! 4. [`Framer`] writes new requests from those ranges, copying bytes and writing new length
//!    prefixes; group headers (resource, scope, schema URL, unknown fields) travel as received.
//!
//! [`json`] converts OTLP/JSON to protobuf bytes (which then take the same path) and back; that,
//! and [`grpc`]'s reading of an upstream's `google.rpc.Status`, are the places prost types are
//! used outside tests. [`grpc`] holds the rest of OTLP/gRPC at the wire: status codes, message
//! framing, status details and header encodings.

#![forbid(unsafe_code)]

mod common;
pub mod encode;
mod envelope;
mod error;
mod fields;
mod frame;
pub mod grpc;
pub mod json;
mod logs;
mod metrics;
mod proto;
mod rewrite;
mod schema;
mod split;
mod trace;

pub use common::{
    AnyValueView, ArrayView, KeyValueView, KeyValues, RawKeyValue, ResourceView, ScopeView,
};
pub use envelope::{item_count, Header, Item, Request, ResourceGroup, ScopeGroup, Signal};
pub use error::{SpanDefect, WireError, WireErrorKind};
pub use frame::{Framer, Piece};
pub use logs::LogRecordView;
pub use metrics::MetricView;
pub use proto::WireType;
pub use rewrite::{
    attributes_of, data_points, group_with_resource_attributes, metric_with_data_points,
    request_with_items, span_with_trace_state, span_without_events, with_attributes, DataPoint,
    LOG_RECORD_ATTRIBUTES, SPAN_ATTRIBUTES,
};
pub use split::{SpanRef, Split};
pub use trace::{EventView, LinkView, SpanFacts, SpanView, TracesRequest, STATUS_CODE_ERROR};

/// How deep messages (and groups in unknown fields) may nest before a request is refused. A
/// span attribute sits at depth 5 (request, resource group, scope group, span, key-value); the
/// bound leaves room for deeply nested attribute values while keeping the validator's recursion,
/// and so its stack use, bounded.
pub const NESTING_DEPTH_MAX: usize = 64;
