//! Helpers shared by the integration tests; include with `mod common;`.

pub mod dns;
pub mod gateway;
pub mod grpc;
pub mod header_sink;
pub mod node;
pub mod otlp;
pub mod parity;
pub mod python;
pub mod spread;
