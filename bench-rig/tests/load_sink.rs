//! The load generator against the sink, with the oracle: what the load says it sent and the sink
//! says it received agree, trace by trace, over each protocol and compression.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use tailgate_bench::load::{self, LoadArgs};
use tailgate_bench::run::process::allowed_cpus;
use tailgate_bench::sink::{Sink, SinkArgs, TRACKED_SPANS_DEFAULT};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tailgate-bench-{}-{name}", std::process::id()))
}

/// Runs `protocol` load (its arguments changed by `adjust`) into a sink for half a second and
/// returns (load report, sink report).
fn run(
    name: &str,
    protocol: &str,
    compression: Option<&str>,
    policy: &str,
    adjust: impl FnOnce(&mut LoadArgs),
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
            cpus: Vec::new(),
            track_max: TRACKED_SPANS_DEFAULT,
        },
        false,
        expect.clone(),
    )
    .expect("start the sink");
    let endpoint = if protocol == "grpc" { grpc } else { http };
    let report = temp(&format!("{name}.json"));
    let mut args = LoadArgs {
        protocol: protocol.into(),
        connections: 2,
        rate: "20000".into(),
        duration: 0.5,
        spans_per_request: 100,
        compression: compression.map(str::to_string),
        seed: 11,
        error_rate: 0.03,
        trace_spread_ms: 50,
        oracle_policy: policy.into(),
        expect_out: Some(expect.clone()),
        quiet: true,
        ..LoadArgs::new(&format!("http://{endpoint}"), &report)
    };
    adjust(&mut args);
    load::run(args).expect("the load runs");
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
    let (load, sink) = run(
        "grpc",
        "grpc",
        None,
        "errors,latency:500,probabilistic:5",
        |_| {},
    );
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
    let (load, sink) = run("json", "http-json", Some("gzip"), "always", |_| {});
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
    let (load, sink) = run("zstd", "http-protobuf", Some("zstd"), "always", |_| {});
    assert_eq!(u(&sink, "spans_received"), u(&load, "spans_sent"));
    assert_eq!(sink["verified"], true, "{sink}");
}

#[test]
fn threads_on_two_cpus_send_disjoint_traces_and_the_sink_verifies_their_union() {
    // The first two CPUs this test may use (one thread only where it may use one).
    let cpus: Vec<usize> = allowed_cpus()
        .expect("this process's CPUs")
        .into_iter()
        .take(2)
        .collect();
    let (load, sink) = run("cpus", "grpc", None, "always", |args| {
        args.cpus = Some(cpus.clone());
    });
    assert_eq!(u(&load, "threads"), cpus.len() as u64);
    assert_eq!(
        load["generator_thread_cpu_s"].as_array().unwrap().len(),
        cpus.len()
    );
    assert!(u(&load, "spans_sent") > 2_000, "{load}");
    assert_eq!(u(&load, "spans_accepted"), u(&load, "spans_sent"));
    assert_eq!(u(&sink, "spans_received"), u(&load, "spans_sent"));
    assert_eq!(u(&sink, "duplicates"), 0);
    // Every trace any thread started arrived whole, and the merged expectation knew each one.
    assert_eq!(u(&sink, "expected_traces_sent"), u(&load, "traces_sent"));
    assert_eq!(u(&sink, "traces_received"), u(&load, "traces_sent"));
    assert_eq!(u(&sink, "kept_traces_complete"), u(&load, "traces_sent"));
    assert_eq!(u(&sink, "traces_unknown"), 0);
    assert_eq!(sink["verified"], true, "{sink}");
}

#[test]
fn unpinned_threads_split_the_rate_and_the_oracle_judges_every_trace() {
    let (load, sink) = run("threads", "grpc", None, "errors,probabilistic:10", |args| {
        args.threads = Some(3);
        args.connections = 4;
    });
    assert_eq!(u(&load, "threads"), 3);
    assert_eq!(load["cpus"], serde_json::Value::Null);
    // 20,000 spans/s in all, not each: half a second's schedule and the waves still owed after
    // it stay well under what three threads at the full rate would send.
    let sent = u(&load, "spans_sent");
    assert!(sent > 2_000 && sent < 15_000, "{load}");
    assert_eq!(u(&sink, "spans_received"), sent);
    assert_eq!(u(&sink, "duplicates"), 0);
    let (traces, kept) = (u(&load, "traces_sent"), u(&load, "traces_kept_expected"));
    assert!(kept > 0 && kept < traces / 4, "kept {kept} of {traces}");
    assert_eq!(u(&sink, "expected_traces_kept"), kept);
    assert_eq!(u(&sink, "kept_traces_complete"), kept);
    assert_eq!(u(&sink, "traces_kept_wrongly"), traces - kept);
    assert_eq!(u(&sink, "traces_unknown"), 0);
}

fn f(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// A compressed load of semantic spans from its pool, in 16 KiB DATA frames, into the sink:
/// every span arrives once, every trace started is whole (the deadline, not the pool, ends a
/// fixed-rate run, so the owed waves are composed after it and the oracle forgets the pooled
/// traces not started), the frames arrive as sent, and the wire carries less than it decodes to.
/// With several threads, each builds and sends its own pool of its own traces.
fn pooled_16k_frames(compression: &str, threads: usize) {
    let (load, sink) = run(compression, "grpc", Some(compression), "always", |args| {
        args.corpus = "semantic".into();
        args.frame_size = Some(16_384);
        args.spans_per_request = 500;
        args.threads = Some(threads);
        args.connections = 2 * threads;
    });
    assert_eq!(u(&load, "threads"), threads as u64);
    assert_eq!(load["compression"], compression);
    let pool = &load["pool"];
    assert!(u(pool, "spans") > 10_000, "{load}");
    assert_eq!(
        load["pool_exhausted_at_s"],
        serde_json::Value::Null,
        "{load}"
    );
    let sent = u(&load, "spans_sent");
    assert!(sent > 5_000 && sent < u(pool, "spans"), "{load}");
    assert_eq!(u(&load, "spans_accepted"), sent);
    assert_eq!(u(&sink, "spans_received"), sent);
    assert_eq!(u(&sink, "duplicates"), 0);
    assert_eq!(u(&sink, "traces_received"), u(&load, "traces_sent"));
    assert_eq!(u(&sink, "kept_traces_complete"), u(&load, "traces_sent"));
    assert_eq!(sink["verified"], true, "{sink}");
    // 500 semantic spans compress to about 28 KB: two or more frames a request, none over 16 KiB.
    let frames = u(&sink, "data_frames");
    assert!(frames > u(&sink, "requests_received"), "{sink}");
    let largest = u(&sink, "data_frame_bytes_max");
    assert!(largest > 0 && largest <= 16_384, "{sink}");
    let (wire, decoded) = (
        f(&sink, "wire_bytes_per_span"),
        f(&sink, "decoded_bytes_per_span"),
    );
    assert!(wire > 0.0 && wire * 3.0 < decoded, "{sink}");
}

#[test]
fn pooled_gzip_in_16k_frames_arrives_whole() {
    pooled_16k_frames("gzip", 1);
}

#[test]
fn pooled_zstd_in_16k_frames_from_two_threads_arrives_whole() {
    pooled_16k_frames("zstd", 2);
}

#[test]
fn a_pool_that_runs_dry_ends_the_run_and_says_so() {
    let (load, sink) = run(
        "dry",
        "grpc",
        Some("gzip"),
        "errors,probabilistic:10",
        |args| {
            args.pool_spans = 2_000;
        },
    );
    // Half a second at 20,000 spans/s wants 10,000 spans; the pool holds about 2,000 and every
    // one of its traces whole, sent once.
    let exhausted = f(&load, "pool_exhausted_at_s");
    assert!(exhausted < 0.5, "{load}");
    let pooled = u(&load["pool"], "spans");
    assert!((2_000..2_000 + 500).contains(&pooled), "{load}");
    assert_eq!(u(&load, "spans_sent"), pooled);
    assert_eq!(u(&sink, "spans_received"), pooled);
    assert_eq!(u(&sink, "duplicates"), 0);
    let (traces, kept) = (u(&load, "traces_sent"), u(&load, "traces_kept_expected"));
    assert!(kept > 0, "{load}");
    assert_eq!(u(&sink, "kept_traces_complete"), kept);
    assert_eq!(u(&sink, "traces_kept_wrongly"), traces - kept);
    assert_eq!(u(&sink, "traces_unknown"), 0);
}

#[test]
fn sixty_four_connections_from_one_thread() {
    let (load, sink) = run("64", "grpc", Some("gzip"), "always", |args| {
        args.connections = 64;
        args.threads = Some(1);
        args.frame_size = Some(16_384);
    });
    assert_eq!(u(&load, "threads"), 1);
    // Each connection's schedule starts with a request, and the pool holds them all.
    assert_eq!(
        load["pool_exhausted_at_s"],
        serde_json::Value::Null,
        "{load}"
    );
    // Each connection sends its first request at once: all 64 are open together.
    assert_eq!(u(&sink, "grpc_connections"), 64, "{sink}");
    assert_eq!(u(&sink, "grpc_connections_open_max"), 64, "{sink}");
    assert!(u(&load, "requests_sent") >= 64, "{load}");
    assert_eq!(u(&load, "spans_refused"), 0);
    assert_eq!(u(&sink, "spans_received"), u(&load, "spans_sent"));
    assert_eq!(sink["verified"], true, "{sink}");
}
