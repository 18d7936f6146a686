//! OTLP/gRPC at the wire: what both ends of a gRPC call write and read, without the HTTP/2
//! connection (the gateway's receivers and exporters drive `h2` and call in here).
//!
//! - [`GrpcCode`]: the status codes, their values and names, the gRPC mappings from HTTP and
//!   HTTP/2 failures, and the OTLP table of which codes a client retries.
//! - Message framing: the 5-byte prefix before each message ([`message_prefix`]), read from a
//!   request's DATA frames as they come ([`MessageReader`]) or from a whole response
//!   ([`split_message`]).
//! - `google.rpc.Status` with its `RetryInfo` ([`encode_status`], [`decode_status`]).
//! - Header values: `grpc-message` percent-encoding and base64 binary headers such as
//!   `grpc-status-details-bin`.
//!
//! Lengths read off the network are checked before they are trusted: arithmetic on them is
//! checked or saturating, which clippy enforces here.

#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

mod code;
mod message;
mod metadata;
mod status;

pub use code::GrpcCode;
pub use message::{message_prefix, split_message, MessageError, MessageReader, PREFIX_BYTES};
pub use metadata::{
    decode_binary_header, decode_grpc_message, encode_binary_header, encode_grpc_message,
    percent_decode,
};
pub use status::{decode_status, encode_status, Status};
