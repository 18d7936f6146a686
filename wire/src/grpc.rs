//! OTLP/gRPC at the wire: what both ends of a gRPC call write and read, without the HTTP/2
//! connection (the gateway's receivers and exporters drive `h2` and call in here).
//!
//! - [`GrpcCode`]: the status codes, their values and names, the gRPC mappings from HTTP and
//!   HTTP/2 failures, and the OTLP table of which codes a client retries.
//! - Message framing: the 5-byte prefix before each message ([`message_prefix`]), read from a
//!   request's DATA frames as they come ([`MessageReader`]) or from a whole response
//!   ([`split_message`]).
//!
//! Lengths read off the network are checked before they are trusted: arithmetic on them is
//! checked or saturating, which clippy enforces here.

#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

mod code;
mod message;

pub use code::GrpcCode;
pub use message::{message_prefix, split_message, MessageError, MessageReader, PREFIX_BYTES};
