//! tailgate: a thread-per-core OTLP gateway with trace-consistent tail sampling.
//!
//! The crate follows a span's path: the `tailgate-wire` crate validates and reads OTLP requests
//! in place and frames new ones from their bytes; routing by trace id lives in the
//! `tailgate-shards` crate; [`ingest`] receives, [`sampling`] decides (reading `ottl_condition`
//! policies through [`ottl`]) and [`export`] sends.
//! The few system calls Rust cannot check live in one private module, `sys`, the only place
//! in the crate allowed `unsafe`.

#![deny(unsafe_code)]

pub mod auth;
pub(crate) mod bell;
pub mod config;
pub mod doctor;
pub mod export;
pub mod gateway;
pub(crate) mod host;
pub mod ingest;
pub mod io;
pub mod lifecycle;
pub(crate) mod memory;
pub mod metadata;
pub mod notify;
pub mod ottl;
mod plan;
pub mod processors;
pub mod sampling;
mod shard;
#[allow(unsafe_code)]
mod sys;
pub mod telemetry;
pub(crate) mod tier;
pub mod tls;
pub mod tuning;
