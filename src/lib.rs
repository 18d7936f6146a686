//! tailgate: a thread-per-core OTLP gateway with trace-consistent tail sampling.
//!
//! The crate follows a span's path: [`wire`] validates and reads OTLP requests in place and
//! frames new ones from their bytes; routing by trace id lives in the `tailgate-shards` crate.

pub mod config;
pub mod export;
pub mod gateway;
pub mod host;
pub mod ingest;
pub mod io;
pub mod lifecycle;
pub mod memory;
pub mod sampling;
pub mod telemetry;
pub mod wire;
