//! The persistent sending queue through the real binary: spans accepted while the central is
//! down survive a `kill -9` and a restart and all arrive (duplicates possible, none missing); a
//! damaged segment is read back up to and past the damage, its loss counted; a disk cap that is
//! reached, and a disk that is full, push back on the clients without a crash; a graceful
//! shutdown during an outage leaves the backlog on disk and exits 0.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::gateway::{free_port, http_request, loopback, received_spans, wait_for, Gateway};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tailgate_bench::sink::Sink;

/// A fresh directory for a test's queue.
fn queue_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tailgate-pq-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A gateway configuration with `shards` shards exporting to `upstream` through a persistent
/// queue in `dir`; `queue_extra` and `storage_extra` go under `sending_queue` and the
/// `file_storage` extension.
fn config(
    upstream: SocketAddr,
    shards: usize,
    dir: &Path,
    queue_extra: &str,
    storage_extra: &str,
) -> (String, SocketAddr, SocketAddr, SocketAddr) {
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, shards, "", "");
    let retry = "    retry_on_failure:\n      initial_interval: 100ms\n";
    assert!(config.contains(retry));
    let config = config.replace(
        retry,
        &format!(
            "    timeout: 500ms\n{retry}      max_interval: 500ms\n    sending_queue:\n      \
             storage: file_storage/queue\n{queue_extra}"
        ),
    );
    let config = config.replace(
        "service:\n  pipelines:",
        &format!(
            "extensions:\n  file_storage/queue:\n    directory: {}\n    create_directory: \
             true\n{storage_extra}service:\n  extensions: [file_storage/queue]\n  pipelines:",
            dir.display()
        ),
    );
    (config, grpc, http, admin)
}

/// A traces request of `spans` spans of trace `trace`, ids from `first_id`, each with a
/// `payload_bytes` attribute so a test can fill a disk quickly.
fn request(trace: u64, first_id: u64, spans: u64, payload_bytes: usize) -> Vec<u8> {
    let payload = "x".repeat(payload_bytes);
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                spans: (first_id..first_id + spans)
                    .map(|id| Span {
                        // Never all zeros (an invalid trace id, dropped on arrival).
                        trace_id: [(trace + 1).to_be_bytes(), (trace + 1).to_be_bytes()].concat(),
                        // Ids from 1: an all-zero span id is invalid.
                        span_id: (id + 1).to_be_bytes().to_vec(),
                        name: "persisted".into(),
                        start_time_unix_nano: 1,
                        end_time_unix_nano: 2,
                        attributes: vec![KeyValue {
                            key: "payload".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(payload.clone())),
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Posts `body` over OTLP/HTTP; the status.
fn post(gateway: &Gateway, body: &[u8]) -> u16 {
    http_request(
        gateway.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        body,
    )
    .map(|(status, _, _)| status)
    .unwrap_or(0)
}

/// Sends `requests` requests of `per_request` spans (ids 0.. in order), every one accepted.
fn send_accepted(gateway: &Gateway, requests: u64, per_request: u64) {
    for r in 0..requests {
        let status = post(gateway, &request(r, r * per_request, per_request, 16));
        assert_eq!(status, 200, "request {r}:\n{}", gateway.stderr());
    }
}

fn sum(gateway: &Gateway, name: &str, labels: &[(&str, &str)]) -> f64 {
    gateway.metric(name, labels)
}

fn kill_9(gateway: Gateway) {
    let pid = gateway.pid() as i32;
    // SAFETY: kill takes a pid and a signal number, no pointers.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let mut gateway = gateway;
    assert!(gateway.wait_exit(Duration::from_secs(10)).is_some());
}

/// How many times the sink received each span id.
fn received_ids(sink: Sink) -> BTreeMap<u64, u32> {
    let result = sink.stop().expect("sink result");
    let mut ids = BTreeMap::new();
    for (_, span) in received_spans(&result) {
        let id = u64::from_be_bytes(span.span_id.as_slice().try_into().unwrap()) - 1;
        *ids.entry(id).or_insert(0) += 1;
    }
    ids
}

/// Waits until the queues hold `spans` spans on disk.
fn wait_on_disk(gateway: &Gateway, spans: f64) {
    assert!(
        wait_for(Duration::from_secs(20), || sum(
            gateway,
            "tailgate_exporter_queue_disk_items",
            &[]
        ) == spans),
        "on disk: {}\n{}\n{}",
        sum(gateway, "tailgate_exporter_queue_disk_items", &[]),
        gateway
            .metrics()
            .lines()
            .filter(|l| l.contains("exporter") && !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n"),
        gateway.stderr()
    );
}

#[test]
fn spans_accepted_during_an_outage_survive_kill_9_and_all_arrive_after_the_restart() {
    let dir = queue_dir("kill");
    let upstream = loopback(free_port());
    let (config, grpc, http, admin) = config(upstream, 2, &dir, "", "");
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    const REQUESTS: u64 = 40;
    const PER_REQUEST: u64 = 25;
    const SPANS: u64 = REQUESTS * PER_REQUEST;
    send_accepted(&gateway, REQUESTS, PER_REQUEST);
    wait_on_disk(&gateway, SPANS as f64);
    assert!(sum(&gateway, "tailgate_exporter_queue_disk_bytes", &[]) > 0.0);
    kill_9(gateway);

    // The central comes back; a new gateway process on the same directory sends the backlog.
    let sink = common::gateway::start_sink_at(upstream);
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    assert!(
        wait_for(Duration::from_secs(30), || sink.spans_received() >= SPANS),
        "received {} of {SPANS}\n{}",
        sink.spans_received(),
        gateway.stderr()
    );
    assert_eq!(
        sum(&gateway, "tailgate_exporter_queue_recovered_spans", &[]),
        SPANS as f64
    );
    assert!(
        wait_for(Duration::from_secs(10), || sum(
            &gateway,
            "tailgate_exporter_queue_disk_items",
            &[]
        ) == 0.0),
        "the backlog is settled on disk too"
    );
    assert!(gateway
        .stderr()
        .contains("recovered what an earlier run left"));
    let (status, log) = gateway.stop_with_log();
    assert!(status.success(), "{log}");
    let ids = received_ids(sink);
    let missing: Vec<u64> = (0..SPANS).filter(|id| !ids.contains_key(id)).collect();
    assert!(missing.is_empty(), "missing span ids: {missing:?}");
    let duplicates: u32 = ids.values().map(|n| n - 1).sum();
    eprintln!("{SPANS} spans delivered after kill -9, {duplicates} duplicates");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_shutdown_during_an_outage_leaves_the_backlog_on_disk_and_exits_0() {
    let dir = queue_dir("graceful");
    let upstream = loopback(free_port());
    let (config, grpc, http, admin) = config(upstream, 1, &dir, "", "");
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    send_accepted(&gateway, 10, 10);
    wait_on_disk(&gateway, 100.0);
    let (status, log) = gateway.stop_with_log();
    assert!(status.success(), "nothing was lost: exit 0\n{log}");
    assert!(log.contains("waits in the persistent queues"), "{log}");

    let sink = common::gateway::start_sink_at(upstream);
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    assert!(
        wait_for(Duration::from_secs(30), || sink.spans_received() >= 100),
        "{}",
        gateway.stderr()
    );
    let (status, log) = gateway.stop_with_log();
    assert!(status.success(), "{log}");
    let ids = received_ids(sink);
    assert!((0..100).all(|id| ids.contains_key(&id)));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The segment files of the queue in `dir`.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for exporter in std::fs::read_dir(dir).unwrap() {
        for shard in std::fs::read_dir(exporter.unwrap().path()).unwrap() {
            let shard = shard.unwrap().path();
            if !shard.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&shard).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|e| e == "seg") {
                    found.push(path);
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_damaged_segment_is_read_past_the_damage_and_the_loss_is_counted() {
    let dir = queue_dir("damaged");
    let upstream = loopback(free_port());
    let (config, grpc, http, admin) = config(upstream, 1, &dir, "", "");
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    const SPANS: u64 = 200;
    // One request per batch (the batcher's 50 ms timeout): several records.
    for r in 0..20 {
        assert_eq!(post(&gateway, &request(r, r * 10, 10, 16)), 200);
        std::thread::sleep(Duration::from_millis(60));
    }
    wait_on_disk(&gateway, SPANS as f64);
    kill_9(gateway);

    // Change bytes in the middle of the segment, as a bad disk would: inside a record's
    // body, so its header still says what it held (a destroyed header costs the same records,
    // counted in bytes only).
    let segment = segments(&dir).pop().expect("a segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2 + 200;
    for b in &mut bytes[middle..middle + 8] {
        *b ^= 0x5a;
    }
    std::fs::write(&segment, &bytes).unwrap();

    let sink = common::gateway::start_sink_at(upstream);
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let lost = || {
        sum(
            &gateway,
            "tailgate_dropped_spans",
            &[("reason", "queue_damaged")],
        )
    };
    assert!(
        wait_for(Duration::from_secs(30), || lost() > 0.0
            && sink.spans_received() as f64 + lost() >= SPANS as f64),
        "received {}, lost {}\n{}",
        sink.spans_received(),
        lost(),
        gateway.stderr()
    );
    assert!(sum(&gateway, "tailgate_exporter_queue_damaged_bytes", &[]) > 0.0);
    assert!(gateway.stderr().contains("a damaged stretch"));
    let lost = lost();
    let (status, log) = gateway.stop_with_log();
    assert!(status.success(), "{log}");
    let ids = received_ids(sink);
    assert_eq!(
        ids.len() as f64 + lost,
        SPANS as f64,
        "every span arrived or is counted lost"
    );
    assert!(lost <= 20.0, "the damage cost at most two records: {lost}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends requests of large spans until the gateway refuses one: how many it accepted first,
/// and the refusal's status. A request the gateway holds (its hand-off waits for room) is left
/// waiting in its own thread while the next ones are sent: those are the ones refused.
fn fill_until_refused(gateway: &Gateway, limit: u64) -> (u64, u16) {
    let mut accepted = 0;
    for r in 0..limit {
        let body = request(r, r * 10, 10, 8 * 1024);
        let http = gateway.http;
        let (done, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let status = http_request(
                http,
                "POST",
                "/v1/traces",
                &[("Content-Type", "application/x-protobuf")],
                &body,
            )
            .map(|(status, _, _)| status)
            .unwrap_or(0);
            let _ = done.send(status);
        });
        match answer.recv_timeout(Duration::from_secs(2)) {
            Ok(200) => accepted += 1,
            Ok(status) => return (accepted, status),
            Err(_) => {} // Held while the queue has no room.
        }
    }
    panic!(
        "{limit} requests of 80 KiB and none refused\n{}",
        gateway.stderr()
    );
}

#[test]
fn a_queue_at_its_disk_cap_pushes_back_and_the_gateway_keeps_serving() {
    let dir = queue_dir("cap");
    let upstream = loopback(free_port());
    let (config, grpc, http, admin) = config(
        upstream,
        1,
        &dir,
        "      queue_size: 100000\n",
        "    max_size: 16777216\n",
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let (accepted, status) = fill_until_refused(&gateway, 800);
    assert!(accepted >= 100, "{accepted} accepted before a refusal");
    assert!(
        status == 503 || status == 429,
        "a retryable refusal, not {status}"
    );
    let on_disk = sum(&gateway, "tailgate_exporter_queue_disk_bytes", &[]);
    assert!(
        on_disk <= 16_777_216.0,
        "{on_disk} bytes on disk\n{}",
        gateway.stderr()
    );
    assert!(!gateway.stderr().contains("panicked"));
    assert_eq!(
        common::gateway::http_get(gateway.admin, "/healthz")
            .unwrap()
            .0,
        200
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_disk_means_refusals_a_log_line_and_a_metric_never_a_crash() {
    let dir = queue_dir("tmpfs");
    std::fs::create_dir_all(&dir).unwrap();
    let upstream = loopback(free_port());
    let (config, grpc, http, admin) = config(
        upstream,
        1,
        &dir,
        "      queue_size: 4\n      num_consumers: 1\n",
        "",
    );
    let mount_dir = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    let gateway = Gateway::start_customised(&config, grpc, http, admin, move |command| {
        // SAFETY: runs in the child between fork and exec; unshare and mount take constant
        // C strings that live until the closure returns, and nothing is allocated.
        unsafe {
            command.pre_exec(move || {
                let none = c"none".as_ptr();
                if libc::unshare(libc::CLONE_NEWNS) != 0
                    || libc::mount(
                        none,
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ) != 0
                    || libc::mount(
                        c"tmpfs".as_ptr(),
                        mount_dir.as_ptr(),
                        c"tmpfs".as_ptr(),
                        0,
                        c"size=1m".as_ptr().cast(),
                    ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let (accepted, status) = fill_until_refused(&gateway, 800);
    assert!(accepted >= 10, "{accepted} accepted before a refusal");
    assert!(status == 503 || status == 429, "retryable, not {status}");
    assert!(
        sum(
            &gateway,
            "tailgate_exporter_queue_disk_errors",
            &[("operation", "write")]
        ) > 0.0,
        "{}",
        gateway.metrics()
    );
    let log = gateway.stderr();
    assert!(log.contains("the disk refused an operation"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(
        common::gateway::http_get(gateway.admin, "/healthz")
            .unwrap()
            .0,
        200
    );
    // The central comes back: what the disk refused was held in memory and is sent too.
    let sink = common::gateway::start_sink_at(upstream);
    assert!(
        wait_for(Duration::from_secs(30), || sink.spans_received()
            >= accepted * 10),
        "received {} of {}\n{}",
        sink.spans_received(),
        accepted * 10,
        gateway.stderr()
    );
    let (status, log) = gateway.stop_with_log();
    assert!(status.success(), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reload_hands_the_open_queue_to_the_new_exporter_and_loses_nothing() {
    let dir = queue_dir("reload");
    let upstream = loopback(free_port());
    let (config, grpc, http, admin) = config(upstream, 2, &dir, "", "");
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    send_accepted(&gateway, 10, 10);
    wait_on_disk(&gateway, 100.0);

    // A reload that changes the pipeline (the batch timeout): the retiring exporters hold the
    // queues open while their successors start on the same directories.
    std::fs::write(
        gateway.config_path(),
        config.replace("    timeout: 50ms\n", "    timeout: 80ms\n"),
    )
    .unwrap();
    // SAFETY: kill(2) on the gateway process this test spawned; no memory is involved.
    unsafe {
        libc::kill(gateway.pid() as i32, libc::SIGHUP);
    }
    assert!(
        wait_for(Duration::from_secs(20), || gateway
            .metric("tailgate_config_reloads", &[])
            == 1.0),
        "{}",
        gateway.stderr()
    );
    assert_eq!(
        gateway.metric("tailgate_config_reload_failures", &[]),
        0.0,
        "{}",
        gateway.stderr()
    );
    // More data after the reload, then the central comes back: both arrive.
    for r in 10..20 {
        assert_eq!(post(&gateway, &request(r, r * 10, 10, 16)), 200);
    }
    wait_on_disk(&gateway, 200.0);
    let sink = common::gateway::start_sink_at(upstream);
    assert!(
        wait_for(Duration::from_secs(30), || sink.spans_received() >= 200),
        "received {}\n{}",
        sink.spans_received(),
        gateway.stderr()
    );
    let (status, log) = gateway.stop_with_log();
    assert!(status.success(), "{log}");
    let ids = received_ids(sink);
    let missing: Vec<u64> = (0..200).filter(|id| !ids.contains_key(id)).collect();
    assert!(missing.is_empty(), "missing {missing:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn drop_oldest_on_overflow_keeps_the_newest_and_counts_the_rest() {
    let dir = queue_dir("oldest");
    let upstream = loopback(free_port());
    let (config, grpc, http, admin) = config(
        upstream,
        1,
        &dir,
        "      queue_size: 3\n      num_consumers: 1\n      block_on_overflow: false\n      \
         drop_oldest_on_overflow: true\n",
        "",
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    // One batch per request (the batcher's 50 ms timeout passes between them).
    for r in 0..10 {
        assert_eq!(post(&gateway, &request(r, r * 10, 10, 16)), 200);
        let flushed = wait_for(Duration::from_secs(5), || {
            sum(&gateway, "tailgate_exporter_queue_disk_items", &[])
                + sum(
                    &gateway,
                    "tailgate_dropped_spans",
                    &[("reason", "queue_full")],
                )
                == ((r + 1) * 10) as f64
        });
        assert!(flushed, "{}", gateway.metrics());
    }
    let dropped = sum(
        &gateway,
        "tailgate_dropped_spans",
        &[("reason", "queue_full")],
    );
    // Three queued and one in its consumer's hands: the other six batches were dropped.
    assert_eq!(dropped, 60.0, "{}", gateway.stderr());
    let sink = common::gateway::start_sink_at(upstream);
    assert!(wait_for(Duration::from_secs(30), || sink.spans_received() >= 40));
    let (status, log) = gateway.stop_with_log();
    assert!(status.success(), "{log}");
    let ids = received_ids(sink);
    // The batch in flight when the queue filled (the first) and the newest three.
    let expected: Vec<u64> = (0..10).chain(70..100).collect();
    assert_eq!(ids.keys().copied().collect::<Vec<_>>(), expected);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fan_out_with_one_central_down_sends_everything_to_the_other_and_spools_the_rest() {
    let dir = queue_dir("fanout");
    let (up, up_grpc, _) = common::gateway::start_sink();
    let down = loopback(free_port());
    let (config, grpc, http, admin) = Gateway::standard_config(up_grpc, 1, "", "");
    // A second exporter to a central that is down, its queue on disk; the pipelines send to both.
    let config = config
        .replace(
            "service:\n  pipelines:",
            &format!(
                "  otlp/down:\n    endpoint: {down}\n    tls:\n      insecure: true\n    \
                 timeout: 500ms\n    retry_on_failure:\n      initial_interval: 100ms\n      \
                 max_interval: 500ms\n    sending_queue:\n      storage: file_storage\n\
                 extensions:\n  file_storage:\n    directory: {}\n    create_directory: true\n\
                 service:\n  extensions: [file_storage]\n  pipelines:",
                dir.display()
            ),
        )
        .replace(
            "    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlp]\n",
            "    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlp, otlp/down]\n",
        );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    const REQUESTS: u64 = 50;
    send_accepted(&gateway, REQUESTS, 20);
    let spans = REQUESTS * 20;
    // The central that is up gets everything at once, whatever the other does.
    assert!(
        wait_for(Duration::from_secs(20), || up.spans_received() >= spans),
        "the central that is up received {} of {spans}\n{}",
        up.spans_received(),
        gateway.stderr()
    );
    // The other's copy waits on disk, and arrives when its central comes back.
    assert!(
        wait_for(Duration::from_secs(20), || sum(
            &gateway,
            "tailgate_exporter_queue_disk_items",
            &[("exporter", "otlp/down")]
        ) == spans as f64),
        "{}",
        gateway.metrics()
    );
    let late = common::gateway::start_sink_at(down);
    assert!(
        wait_for(Duration::from_secs(30), || late.spans_received() >= spans),
        "{}",
        gateway.stderr()
    );
    let (status, log) = gateway.stop_with_log();
    assert!(status.success(), "{log}");
    assert_eq!(received_ids(late).len() as u64, spans);
    assert_eq!(received_ids(up).len() as u64, spans);
    let _ = std::fs::remove_dir_all(&dir);
}
