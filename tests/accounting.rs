//! The accounting an operator can check on /metrics, through the real binary: every span
//! accepted is sent, decided out, dropped with a reason, or still held — in a trace buffer, a
//! batcher, or an exporter's queue (in memory or on disk) — during an outage and after it.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::gateway::{free_port, http_request, loopback, wait_for, Gateway};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// Two shards sampling half the traces by id, exporting to `upstream`, through a persistent
/// queue in `dir` if given.
fn start(upstream: SocketAddr, dir: Option<&PathBuf>) -> Gateway {
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 2, "", "");
    let config = config.replace(
        "processors:\n  batch:\n    timeout: 50ms\n",
        "processors:\n  batch:\n    timeout: 50ms\n  tail_sampling:\n    decision_wait: 300ms\n    \
         policies:\n      - name: half\n        type: probabilistic\n        probabilistic:\n          \
         sampling_percentage: 50\n",
    );
    let config = config.replace(
        "    traces:\n      receivers: [otlp]\n      processors: [batch]\n",
        "    traces:\n      receivers: [otlp]\n      processors: [tail_sampling, batch]\n",
    );
    let config = match dir {
        None => config,
        Some(dir) => config
            .replace(
                "      initial_interval: 100ms\n",
                "      initial_interval: 100ms\n    sending_queue:\n      storage: file_storage\n",
            )
            .replace(
                "service:\n  pipelines:",
                &format!(
                    "extensions:\n  file_storage:\n    directory: {}\n    create_directory: \
                     true\nservice:\n  extensions: [file_storage]\n  pipelines:",
                    dir.display()
                ),
            ),
    };
    Gateway::start_with_config(&config, grpc, http, admin)
}

/// A request of `traces` traces of 3 spans, trace ids from `first` (never 0).
fn request(first: u64, traces: u64) -> Vec<u8> {
    let spans = (first..first + traces)
        .flat_map(|t| {
            (1..=3u64).map(move |s| Span {
                trace_id: [t.to_be_bytes(), (t * 7919).to_be_bytes()].concat(),
                span_id: (t * 4 + s).to_be_bytes().to_vec(),
                name: "accounted".into(),
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                ..Default::default()
            })
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// The accounting's terms, summed over shards.
struct Terms {
    accepted: f64,
    sent: f64,
    decided_out: f64,
    dropped: f64,
    held: f64,
    pending: f64,
}

fn terms(g: &Gateway) -> Terms {
    let page = g.metrics();
    let m =
        |name: &str, labels: &[(&str, &str)]| common::gateway::metric_value(&page, name, labels);
    let pending = m("tailgate_exporter_pending_spans", &[]);
    Terms {
        accepted: m("otelcol_receiver_accepted_spans", &[]),
        sent: m("otelcol_exporter_sent_spans", &[]),
        decided_out: m("tailgate_decided_spans", &[("decision", "not_sampled")])
            + m("tailgate_decided_spans", &[("decision", "dropped")])
            + m(
                "tailgate_sampling_late_spans",
                &[("decision", "not_sampled")],
            )
            + m(
                "tailgate_sampling_stress_relief_spans",
                &[("decision", "not_sampled")],
            ),
        dropped: m("tailgate_dropped_spans", &[]),
        held: m("tailgate_shard_buffered_spans", &[])
            + m("tailgate_shard_batching_spans", &[])
            + pending,
        pending,
    }
}

fn balances(t: &Terms) -> bool {
    t.accepted == t.sent + t.decided_out + t.dropped + t.held
}

fn describe(t: &Terms) -> String {
    format!(
        "accepted {} = sent {} + decided out {} + dropped {} + held {} (pending in exporters {})",
        t.accepted, t.sent, t.decided_out, t.dropped, t.held, t.pending
    )
}

/// Load during an outage, then the central back: the books balance at each quiet point, with
/// what the exporters hold as their "still queued" term.
fn the_books_balance(dir: Option<PathBuf>) {
    let upstream = loopback(free_port());
    let gateway = start(upstream, dir.as_ref());
    for r in 0..20u64 {
        let (status, _, _) = http_request(
            gateway.http,
            "POST",
            "/v1/traces",
            &[("Content-Type", "application/x-protobuf")],
            &request(1 + r * 10, 10),
        )
        .unwrap();
        assert_eq!(status, 200);
    }
    // Every trace decided and every batch handed to the exporter, which cannot send.
    assert!(
        wait_for(Duration::from_secs(20), || {
            // Nothing left in a trace buffer or a batcher: all of it decided and handed over.
            let t = terms(&gateway);
            t.accepted == 600.0 && t.pending > 0.0 && t.held == t.pending && balances(&t)
        }),
        "{}\n{}",
        describe(&terms(&gateway)),
        gateway.metrics()
    );
    let during = terms(&gateway);
    assert_eq!(during.sent, 0.0);
    assert!(during.decided_out > 0.0, "{}", describe(&during));

    let sink = common::gateway::start_sink_at(upstream);
    assert!(
        wait_for(Duration::from_secs(30), || {
            let t = terms(&gateway);
            t.pending == 0.0 && balances(&t)
        }),
        "{}",
        describe(&terms(&gateway))
    );
    let after = terms(&gateway);
    assert_eq!(after.sent, during.pending, "{}", describe(&after));
    assert_eq!(sink.spans_received() as f64, after.sent);
    assert!(gateway.stop().success());
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn the_books_balance_with_a_memory_queue() {
    the_books_balance(None);
}

#[test]
fn the_books_balance_with_a_persistent_queue() {
    let dir = std::env::temp_dir().join(format!(
        "tailgate-accounting-{}-{}",
        std::process::id(),
        free_port()
    ));
    the_books_balance(Some(dir));
}
