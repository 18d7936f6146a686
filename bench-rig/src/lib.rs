//! `tailgate-bench`: the instruments tailgate's performance and correctness claims are made with.
//!
//! [`sink`] is an OTLP receiver (gRPC and HTTP) built from the gateway's own receivers, that
//! counts what arrives — spans, traces, duplicates, metric points, log records — by scanning, not
//! decoding, and can record every request it received for a test to inspect.

pub mod sink;
