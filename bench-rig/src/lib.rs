//! `tailgate-bench`: the instruments tailgate's performance and correctness claims are made with.
//!
//! [`sink`] is an OTLP receiver (gRPC and HTTP, one shard per CPU) that counts what arrives —
//! spans, traces, duplicates, metric points, log records — by scanning, not decoding, and can
//! record every request it received for a test to inspect. [`load`] sends OTLP load at a fixed
//! rate or at the maximum and reports what was accepted and how fast.
//! [`floor`] measures what only reading the load's bytes from a loopback socket costs per span.
//! `traces` draws the traces the load sends, their attributes from a [`corpus`], and `oracle` says which a tail-sampling gateway
//! must keep; [`verify`] is how the sink checks. [`run`] drives whole scenarios from YAML, and
//! [`peers`] builds the Collector and telemetrygen for the tests that run them. [`tls`] gives the
//! load, the sink and the handshake benchmark their rustls configurations (aws-lc-rs), from the
//! PEM files [`certs`] writes or the operator's own; [`handshakes`] measures what full TLS
//! handshakes cost a server.
//!
//! The rig measures the gateway, so it shares none of the gateway's code: the sink's receivers
//! and the load's client are its own (`h2` and `httparse` directly), and it depends only on the
//! wire crate, the shards runtime and published crates. Its system calls that Rust cannot
//! check live in one private module, `sys`, the only place in the crate allowed `unsafe`.

#![deny(unsafe_code)]

pub mod certs;
pub mod corpus;
pub mod floor;
pub mod generate;
pub mod handshakes;
pub mod load;
mod net;
pub(crate) mod oracle;
pub mod peers;
pub mod run;
pub mod sink;
#[allow(unsafe_code)]
mod sys;
pub mod tls;
pub(crate) mod traces;
pub mod verify;
