//! The load generator against the sink, with the oracle: what the load says it sent and the sink
//! says it received agree, trace by trace, over each protocol and compression.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use tailgate_bench::load::{self, LoadArgs};
use tailgate_bench::sink::{Sink, SinkArgs, TRACKED_SPANS_DEFAULT};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tailgate-bench-{}-{name}", std::process::id()))
}

/// Runs `protocol` load into a sink for half a second and returns (load report, sink report).
fn run(
    name: &str,
    protocol: &str,
    compression: Option<&str>,
    policy: &str,
) -> (serde_json::Value, serde_json::Value) {
    let (grpc, http) = (free_addr(), free_addr());
    let expect = temp(&format!("{name}.expect"));
    let sink = Sink::start_expecting(
        SinkArgs {
            listen: grpc,
            http_listen: Some(http),
            report: PathBuf::from("/dev/null"),
            dump: None,
            cpu: 0,
            track_max: TRACKED_SPANS_DEFAULT,
        },
        false,
        expect.clone(),
    )
    .expect("start the sink");
    let endpoint = if protocol == "grpc" { grpc } else { http };
    let report = temp(&format!("{name}.json"));
    load::run(LoadArgs {
        endpoint: format!("http://{endpoint}"),
        protocol: protocol.into(),
        connections: 2,
        rate: "20000".into(),
        duration: 0.5,
        spans_per_request: 100,
        compression: compression.map(str::to_string),
        report: report.clone(),
        cpu: None,
        seed: 11,
        error_rate: 0.03,
        slow_rate: 0.02,
        trace_spread_ms: 50,
        oracle_policy: policy.into(),
        expect_out: Some(expect.clone()),
        quiet: true,
    })
    .expect("the load runs");
    let sink = sink.stop().expect("the sink stops").report;
    let load: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("load report")).unwrap();
    let _ = std::fs::remove_file(&report);
    let _ = std::fs::remove_file(&expect);
    (load, sink)
}

fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn the_sink_tells_kept_traces_from_dropped_ones() {
    let (load, sink) = run("grpc", "grpc", None, "errors,latency:500,probabilistic:5");
    assert!(u(&load, "spans_sent") > 5_000, "{load}");
    assert_eq!(u(&load, "spans_refused"), 0);
    assert_eq!(u(&sink, "spans_received"), u(&load, "spans_sent"));
    assert_eq!(u(&sink, "duplicates"), 0);
    // The sink received everything, so every kept trace is complete and every other trace is one
    // a tail-sampling gateway should have dropped.
    let (sent, kept) = (u(&load, "traces_sent"), u(&load, "traces_kept_expected"));
    assert!(kept > 0 && kept < sent / 4, "kept {kept} of {sent}");
    assert_eq!(u(&sink, "expected_traces_sent"), sent);
    assert_eq!(u(&sink, "expected_traces_kept"), kept);
    assert_eq!(u(&sink, "kept_traces_complete"), kept);
    assert_eq!(u(&sink, "kept_traces_partial"), 0);
    assert_eq!(u(&sink, "kept_traces_missing"), 0);
    assert_eq!(u(&sink, "traces_kept_wrongly"), sent - kept);
    assert_eq!(u(&sink, "traces_unknown"), 0);
    assert_eq!(sink["verified"], false);
}

#[test]
fn http_json_with_gzip_arrives_whole() {
    let (load, sink) = run("json", "http-json", Some("gzip"), "always");
    assert_eq!(load["compression"], "gzip");
    // Transcoding to JSON and gzip make this load slow on a busy machine (344 spans in one
    // run while compilers held both cores): a few requests' worth will do.
    assert!(u(&load, "spans_sent") >= 200, "{load}");
    assert_eq!(u(&load, "spans_accepted"), u(&load, "spans_sent"));
    assert_eq!(u(&sink, "spans_received"), u(&load, "spans_sent"));
    assert_eq!(u(&sink, "traces_received"), u(&load, "traces_sent"));
    assert_eq!(u(&sink, "kept_traces_complete"), u(&load, "traces_sent"));
    assert_eq!(sink["verified"], true, "{sink}");
}

#[test]
fn http_protobuf_with_zstd_arrives_whole() {
    let (load, sink) = run("zstd", "http-protobuf", Some("zstd"), "always");
    assert_eq!(u(&sink, "spans_received"), u(&load, "spans_sent"));
    assert_eq!(sink["verified"], true, "{sink}");
}
