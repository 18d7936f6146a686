//! Self-metrics, with the OpenTelemetry Collector's names, and the admin HTTP endpoint that
//! serves them.
//!
//! # Who owns what, which thread
//!
//! The gateway runs one single-threaded shard per CPU. Each shard owns its metric cells
//! ([`Counter`], [`Gauge`], [`Histogram`]) and is their only writer: an update is a relaxed load
//! and a relaxed store to a cell nobody else writes, so the data path takes no lock and executes
//! no contended read-modify-write instruction. The cells are registered once, at start-up, in a
//! [`RegistryBuilder`]; [`RegistryBuilder::build`] freezes the set of families and series into a
//! [`Registry`], shared read-only as an `Arc`, and each shard keeps clones of its own cell
//! handles (a clone is an `Arc` bump, done at start-up).
//!
//! The admin endpoint ([`AdminServer`]) runs on its own plain std thread. At scrape time it walks
//! the registry and loads every cell (relaxed loads). It sums nothing: every shard is its own
//! series with a `shard` label, so a dashboard aggregates with `sum by (...)` and a hot or stuck
//! shard stays visible. [`Health`] is the one piece of shared mutable state the shards write
//! outside their cells; it changes on start-up, shutdown and shard loss only.
//!
//! A scrape sees each cell at some moment during the scrape, not all cells at one instant:
//! counters are monotonic per series and Prometheus computes rates per series, so this is the
//! same guarantee every Prometheus client library gives.
//!
//! # Names, and the `_total` suffix
//!
//! Where the gateway does what a Collector component does, the family has the Collector's name,
//! label names and help text (`otelcol_receiver_accepted_spans{receiver,transport}`,
//! `otelcol_exporter_queue_size{exporter,data_type}`,
//! `otelcol_processor_tail_sampling_sampling_decision_latency{policy}`, ...), so existing
//! dashboards and alerts keep working; tailgate's own concepts are `tailgate_*` families. Every
//! series also carries `shard`.
//!
//! What the Collector puts on its Prometheus endpoint for a counter changed over its history:
//!
//! - Up to v0.118 the sample name had no suffix (`otelcol_receiver_accepted_spans`): the OpenCensus
//!   exporter never added one, and when the Collector moved its own metrics to the OTel SDK it
//!   turned the SDK's `_total` suffix off on purpose to stay compatible (collector PR #8965).
//! - From v0.119/v0.120, a Prometheus reader written out in `service::telemetry::metrics::readers`
//!   got the OTel config package's default `without_type_suffix: false`, so counters gained
//!   `_total` (collector issue #12458, documented as a breaking change in PR #12500); the
//!   implicit default reader kept the bare names (collector issue #13867). Some dashboards were
//!   rewritten for `_total` then (the OpenShift dashboards of the operator, PR #3994).
//! - Collector PR #15027 made an explicitly configured reader default to `without_type_suffix`,
//!   `without_units` and `without_scope_info` `true` as well, so a current Collector again serves
//!   `otelcol_receiver_accepted_spans` unless the user asks for `without_type_suffix: false`
//!   (opentelemetry.io issue #11160 tracks the stale docs page).
//!
//! So the bare name is what the Collector serves by default before and after that episode, what
//! its documentation's metric tables list, and what most dashboards query: it is our default
//! ([`CounterSuffix::None`]). A fleet whose dashboards were moved to `_total` picks
//! [`CounterSuffix::Total`] with the Collector's own key, a Prometheus reader's
//! `without_type_suffix: false` (`service.telemetry.metrics.readers`); the choice is made once
//! for the whole registry, as the Collector makes it per reader. Unit suffixes
//! (`without_units: false`, which briefly produced names like `..._spans__total`) are never
//! added, and neither are the OTel SDK's `otel_scope_*` labels, which no Collector dashboard
//! filters on.
//!
//! One knowing difference from the Collector: its `sampling_decision_latency` is in microseconds
//! with bucket bounds from 1 to 50 000; [`SamplingMetrics`] keeps that unit and those bounds, so
//! a dashboard's `le` thresholds mean the same thing on both.

mod admin;
mod auth;
mod balancer;
mod batch;
mod cell;
mod connections;
mod connectors;
mod drops;
mod exposition;
mod filter;
mod health;
mod health_check;
pub mod log_export;
mod memory_limiter;
pub(crate) mod otlp;
mod pipeline;
mod process;
mod push;
mod registry;
mod sampling;
mod shard;
mod tier;

pub use admin::{AdminServer, ADMIN_CONNECTIONS_MAX, ADMIN_HEADER_BYTES_MAX};
pub use auth::AuthMetrics;
pub use balancer::{BackendMetrics, LoadBalancerMetrics, BACKEND_LATENCY_MS_BOUNDS};
pub use batch::{BatchMetrics, BATCH_SEND_SIZE_BOUNDS};
pub use cell::{Counter, Gauge, Histogram};
pub use connections::{ConnectionMetrics, TlsMetrics, TLS_FAILURE_REASONS};
pub use connectors::FailoverMetrics;
pub use drops::{DropMetrics, DropReason};
pub use filter::FilterMetrics;
pub use health::{Health, NotReady};
pub use memory_limiter::MemoryLimiterMetrics;
pub use pipeline::{
    ExporterMetrics, ExporterSignalMetrics, ReceiverMetrics, ReceiverSignalMetrics,
    QUEUE_DISK_OPERATIONS,
};
pub use push::{MetricsPusher, PushTarget, Pushers};
pub use registry::{
    CounterSuffix, HistogramPart, LateFamily, MetricType, PublishedRegistry, Registry,
    RegistryBuilder,
};
pub use sampling::{Decision, EarlyReason, SamplingMetrics};
pub use shard::ShardMetrics;
pub use tier::TierMetrics;
