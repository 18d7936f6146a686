//! tailgate: a thread-per-core OTLP gateway with trace-consistent tail sampling.
//!
//! The crate follows a span's path: the `tailgate-wire` crate validates and reads OTLP requests
//! in place and frames new ones from their bytes; routing by trace id lives in the
//! `tailgate-shards` crate; [`ingest`] receives, [`sampling`] decides and [`export`] sends.

pub mod config;
pub mod export;
pub mod gateway;
pub mod host;
pub mod ingest;
pub mod io;
pub mod lifecycle;
pub mod memory;
mod plan;
pub mod sampling;
mod shard;
pub mod telemetry;
