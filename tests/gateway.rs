//! The gateway end to end: the real binary on loopback ports, real clients — the project's own
//! OTLP exporter and the official OpenTelemetry Python SDK over gRPC, HTTP/protobuf and
//! HTTP/JSON — and `tailgate-bench`'s sink as the upstream that checks what arrives.

mod common;

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::gateway::{received_spans, start_sink, Gateway};
use common::python::{send_spans, SentSpan};
use glommio::{LocalExecutorBuilder, Placement};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tailgate::export::{
    Batch, ExportObserver, Exporter, ExporterSettings, OtlpGrpcSettings, QueueSettings,
    RetrySettings,
};
use tailgate_shards::route::Router;
use tailgate_wire::Signal;

/// Counts what an exporter reports.
#[derive(Default)]
struct Counts {
    sent: Cell<u64>,
    failed: Cell<u64>,
}

impl ExportObserver for Counts {
    fn sent(&self, _: Signal, items: u64) {
        self.sent.set(self.sent.get() + items);
    }
    fn send_failed(&self, _: Signal, items: u64, _: &'static str) {
        self.failed.set(self.failed.get() + items);
    }
    fn queue_len(&self, _: usize) {}
}

/// Sends each request on its own connection with the project's own OTLP/gRPC exporter;
/// returns (items sent, items failed).
fn send_with_own_client(endpoint: SocketAddr, requests: Vec<(Vec<u8>, u64)>) -> (u64, u64) {
    LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            let counts = Rc::new(Counts::default());
            for (bytes, items) in requests {
                let exporter = Exporter::new(
                    "otlp/test-client",
                    0,
                    ExporterSettings::Otlp(OtlpGrpcSettings {
                        endpoint: endpoint.to_string(),
                        retry: RetrySettings {
                            enabled: false,
                            ..RetrySettings::default()
                        },
                        queue: QueueSettings {
                            enabled: false,
                            ..QueueSettings::default()
                        },
                        ..OtlpGrpcSettings::default()
                    }),
                    counts.clone(),
                )
                .expect("client settings");
                exporter
                    .submit(Batch {
                        signal: Signal::Traces,
                        bytes: Bytes::from(bytes),
                        items,
                        metadata: Default::default(),
                    })
                    .await
                    .expect("submit");
                exporter
                    .shutdown(Vec::new(), Instant::now() + Duration::from_secs(10))
                    .await;
            }
            (counts.sent.get(), counts.failed.get())
        })
        .expect("client executor")
        .join()
        .expect("client thread")
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// One trace of `spans` spans, cut into `parts` requests.
fn one_trace(trace_id: [u8; 16], spans: usize, parts: usize) -> Vec<(Vec<u8>, u64)> {
    let all: Vec<Span> = (0..spans)
        .map(|i| Span {
            trace_id: trace_id.to_vec(),
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            parent_span_id: if i == 0 {
                vec![]
            } else {
                1u64.to_be_bytes().to_vec()
            },
            name: format!("op-{i}"),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            end_time_unix_nano: 1_700_000_000_000_100_000 + i as u64,
            attributes: vec![string_attribute("http.route", &format!("/r/{i}"))],
            events: vec![span::Event {
                time_unix_nano: 1_700_000_000_000_050_000,
                name: "retry".into(),
                ..Default::default()
            }],
            status: Some(Status {
                message: if i == 3 { "boom".into() } else { String::new() },
                code: if i == 3 { 2 } else { 0 },
            }),
            ..Default::default()
        })
        .collect();
    all.chunks(spans.div_ceil(parts))
        .map(|chunk| {
            let request = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![string_attribute("service.name", "own-client")],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans: chunk.to_vec(),
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
            };
            (request.encode_to_vec(), chunk.len() as u64)
        })
        .collect()
}

/// The cuts a client's HTTP/2 frames may make in one gRPC message: all in one frame, the
/// prefix alone, the prefix itself cut, the message cut in odd places. Every way must read the
/// same message (one frame is kept as it came, the others gathered).
const FRAME_CUTS: [&[usize]; 5] = [&[], &[5], &[3], &[2, 5, 105], &[5, 6, 1000, 1001]];

/// Sends `message` as one gRPC call on `connection`, its prefix and bytes cut into DATA frames
/// at `cuts`; returns the HTTP status and the `grpc-status` trailer.
async fn call_in_frames(
    client: &mut h2::client::SendRequest<Bytes>,
    message: &[u8],
    cuts: &[usize],
) -> (u16, String) {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    let request = http::Request::post(
        "http://gateway/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    )
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    let (response, mut body) = client.send_request(request, false).expect("send");
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&framed.len())) {
        body.reserve_capacity(cut - at);
        body.send_data(
            Bytes::copy_from_slice(&framed[at..cut]),
            cut == framed.len(),
        )
        .expect("send_data");
        at = cut;
    }
    let response = response.await.expect("response");
    let status = response.status().as_u16();
    let mut answer = response.into_body();
    while let Some(chunk) = answer.data().await {
        let chunk = chunk.expect("response body");
        let _ = answer.flow_control().release_capacity(chunk.len());
    }
    let trailers = answer
        .trailers()
        .await
        .expect("trailers")
        .unwrap_or_default();
    let grpc_status = trailers
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, grpc_status)
}

#[test]
fn a_grpc_message_is_read_whole_however_its_frames_cut_it() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let requests: Vec<(Vec<u8>, u64)> = (0..FRAME_CUTS.len())
        .map(|n| {
            one_trace(
                [0x5a, n as u8 + 1, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 9],
                12,
                1,
            )
        })
        .map(|mut parts| parts.remove(0))
        .collect();
    let sent: Vec<Vec<u8>> = requests.iter().map(|(bytes, _)| bytes.clone()).collect();
    let target = gateway.grpc;
    LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            let stream = glommio::net::TcpStream::connect(target)
                .await
                .expect("connect");
            let (mut client, connection) = h2::client::Builder::new()
                .handshake::<_, Bytes>(tailgate::io::Stream::socket(stream))
                .await
                .expect("handshake");
            let driver = glommio::spawn_local(async move {
                let _ = connection.await;
            })
            .detach();
            for (message, cuts) in sent.iter().zip(FRAME_CUTS) {
                let answer = call_in_frames(&mut client, message, cuts).await;
                assert_eq!(answer, (200, "0".to_string()), "cut at {cuts:?}");
            }
            drop(client);
            driver.cancel();
        })
        .expect("client executor")
        .join()
        .expect("client thread");

    assert!(gateway.stop().success());
    let result = sink.stop().expect("sink");
    let mut received: Vec<Vec<u8>> = received_spans(&result)
        .into_iter()
        .map(|(_, span)| span.encode_to_vec())
        .collect();
    let mut expected: Vec<Vec<u8>> = requests
        .iter()
        .flat_map(|(bytes, _)| {
            ExportTraceServiceRequest::decode(bytes.as_slice())
                .unwrap()
                .resource_spans[0]
                .scope_spans[0]
                .spans
                .iter()
                .map(Message::encode_to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    received.sort();
    expected.sort();
    assert_eq!(received.len(), 12 * FRAME_CUTS.len());
    assert!(received == expected, "the spans arrive as sent, each once");
}

#[test]
fn a_trace_sent_over_many_connections_meets_at_its_owner_shard() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let trace_id = *b"\x4b\xf9\x2f\x35\x77\xb3\x4d\xa6\xa3\xce\x92\x9d\x0e\x0e\x47\x36";
    let requests = one_trace(trace_id, 40, 8);
    let sent: Vec<Span> = requests
        .iter()
        .flat_map(|(bytes, _)| {
            ExportTraceServiceRequest::decode(bytes.as_slice())
                .unwrap()
                .resource_spans
                .into_iter()
                .flat_map(|rs| rs.scope_spans)
                .flat_map(|ss| ss.spans)
        })
        .collect();

    let (ok, failed) = send_with_own_client(gateway.grpc, requests);
    assert_eq!((ok, failed), (40, 0), "the gateway accepted every span");

    let owner = Router::new(2).owner(&trace_id);
    // A client is answered once its spans are in the owner's channel; the owner counts them
    // when it drains the channel, a moment later. Wait (bounded) for the count to settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = gateway.metrics();
        let total = common::gateway::metric_value(&metrics, "tailgate_shard_owned_spans", &[]);
        if total >= 40.0 || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let owned = |shard: usize| {
        common::gateway::metric_value(
            &metrics,
            "tailgate_shard_owned_spans",
            &[("shard", &shard.to_string())],
        )
    };
    assert_eq!(
        owned(owner),
        40.0,
        "all spans of the trace at its owner:\n{metrics}"
    );
    assert_eq!(owned(1 - owner), 0.0, "none at the other shard:\n{metrics}");
    assert_eq!(
        common::gateway::metric_value(
            &metrics,
            "otelcol_receiver_accepted_spans",
            &[("transport", "grpc")]
        ),
        40.0
    );

    let status = gateway.stop();
    assert!(status.success(), "exit status {status}");
    let result = sink.stop().expect("sink");
    let mut received: Vec<Vec<u8>> = received_spans(&result)
        .into_iter()
        .map(|(resource, span)| {
            let service = resource.expect("resource kept").attributes[0].clone();
            assert_eq!(service, string_attribute("service.name", "own-client"));
            span.encode_to_vec()
        })
        .collect();
    let mut expected: Vec<Vec<u8>> = sent.iter().map(Message::encode_to_vec).collect();
    received.sort();
    expected.sort();
    assert_eq!(
        received, expected,
        "every span upstream exactly once, unchanged"
    );
}

/// Runs the Python SDK over `protocol` through a gateway and checks every span arrived upstream
/// once, intact.
fn python_sdk_round_trip(protocol: &str, compression: &str) {
    python_sdk_round_trip_exporting(protocol, compression, "")
}

/// [`python_sdk_round_trip`] with `exporter_keys` (indented by 4) added to the gateway's `otlp`
/// exporter.
fn python_sdk_round_trip_exporting(protocol: &str, compression: &str, exporter_keys: &str) {
    let (sink, sink_grpc, _) = start_sink();
    let (config, grpc, http, admin) = Gateway::standard_config(sink_grpc, 2, "", "");
    let config = config.replacen("    tls:\n", &format!("{exporter_keys}    tls:\n"), 1);
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let endpoint = match protocol {
        "grpc" => format!("http://{}", gateway.grpc),
        _ => format!("http://{}", gateway.http),
    };
    let sent = send_spans(protocol, &endpoint, 12, 6, 7, 4, compression);
    assert_eq!(sent.len(), 72);
    let status = gateway.stop();
    assert!(status.success(), "exit status {status}");
    let result = sink.stop().expect("sink");
    let received = received_spans(&result);
    assert_eq!(result.report["duplicates"], 0);

    type Received = Vec<(Option<Resource>, Span)>;
    let mut by_id: HashMap<(Vec<u8>, Vec<u8>), Received> = HashMap::new();
    for (resource, span) in received {
        by_id
            .entry((span.trace_id.clone(), span.span_id.clone()))
            .or_default()
            .push((resource, span));
    }
    assert_eq!(
        by_id.len(),
        sent.len(),
        "as many distinct spans upstream as sent"
    );
    for expected in &sent {
        let found = by_id
            .get(&(expected.trace_id.to_vec(), expected.span_id.to_vec()))
            .unwrap_or_else(|| panic!("span {} missing upstream", expected.name));
        assert_eq!(
            found.len(),
            1,
            "span {} arrived {} times",
            expected.name,
            found.len()
        );
        check_span(expected, &found[0].0, &found[0].1);
    }
}

fn check_span(expected: &SentSpan, resource: &Option<Resource>, span: &Span) {
    assert_eq!(span.name, expected.name);
    assert_eq!(span.kind, expected.kind, "{}", expected.name);
    assert_eq!(
        span.parent_span_id, expected.parent_span_id,
        "{}",
        expected.name
    );
    let status = span.status.clone().unwrap_or_default();
    assert_eq!(status.code, expected.status_code, "{}", expected.name);
    assert_eq!(status.message, expected.status_message, "{}", expected.name);
    assert_eq!(
        span.attributes.len(),
        expected.attributes.len(),
        "{}",
        expected.name
    );
    for (key, value) in &expected.attributes {
        let got = span
            .attributes
            .iter()
            .find(|kv| &kv.key == key)
            .and_then(|kv| kv.value.clone())
            .unwrap_or_else(|| panic!("{}: attribute {key} missing", expected.name));
        assert!(
            same_value(value, &got),
            "{}: {key}: sent {value}, got {got:?}",
            expected.name
        );
    }
    assert_eq!(
        span.events.len(),
        expected.events.len(),
        "{}",
        expected.name
    );
    for (event, (name, attributes)) in span.events.iter().zip(&expected.events) {
        assert_eq!(&event.name, name);
        assert_eq!(event.attributes.len(), attributes.len());
    }
    let service = resource
        .as_ref()
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.clone());
    assert!(
        service.is_some_and(|v| same_value(
            &serde_json::Value::from(expected.service_name.clone()),
            &v
        )),
        "{}: resource service.name",
        expected.name
    );
}

fn same_value(expected: &serde_json::Value, got: &AnyValue) -> bool {
    use any_value::Value as V;
    match (expected, got.value.as_ref()) {
        (serde_json::Value::String(s), Some(V::StringValue(g))) => s == g,
        (serde_json::Value::Bool(b), Some(V::BoolValue(g))) => b == g,
        (serde_json::Value::Number(n), Some(V::IntValue(g))) => n.as_i64() == Some(*g),
        (serde_json::Value::Number(n), Some(V::DoubleValue(g))) => n.as_f64() == Some(*g),
        (serde_json::Value::Array(items), Some(V::ArrayValue(array))) => {
            items.len() == array.values.len()
                && items
                    .iter()
                    .zip(&array.values)
                    .all(|(e, g)| same_value(e, g))
        }
        _ => false,
    }
}

#[test]
fn python_sdk_over_grpc_arrives_intact() {
    python_sdk_round_trip("grpc", "gzip");
}

#[test]
fn python_sdk_over_http_protobuf_arrives_intact() {
    python_sdk_round_trip("http/protobuf", "none");
}

#[test]
fn python_sdk_over_http_json_arrives_intact() {
    python_sdk_round_trip("http/json", "gzip");
}

/// `deflate`, the SDK's other compression (`OTEL_EXPORTER_OTLP_COMPRESSION=deflate`): a zlib
/// stream under `Content-Encoding: deflate` over HTTP, and grpcio's deflate codec under
/// `grpc-encoding: deflate` over gRPC.
#[test]
fn python_sdk_with_deflate_arrives_intact_over_grpc_and_http() {
    python_sdk_round_trip("grpc", "deflate");
    python_sdk_round_trip("http/protobuf", "deflate");
    python_sdk_round_trip("http/json", "deflate");
}

#[test]
fn exports_at_the_configured_compression_levels_arrive_intact() {
    // gzip at the fastest level, and zstd at a high one (any zstd level is taken, as the
    // Collector takes it).
    python_sdk_round_trip_exporting(
        "grpc",
        "gzip",
        "    compression: gzip\n    compression_params:\n      level: 1\n",
    );
    python_sdk_round_trip_exporting(
        "http/protobuf",
        "gzip",
        "    compression: zstd\n    compression_params:\n      level: 19\n",
    );
}

/// `service.telemetry.resource` and `logs.initial_fields`, as the Collector's documentation
/// writes them: the resource is served as `target_info` (label names made Prometheus names,
/// `null` removing a default), and every log line carries the initial fields.
#[test]
fn the_telemetry_resource_is_target_info_and_initial_fields_are_on_every_log_line() {
    let (sink, upstream, _) = start_sink();
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 1, "", "");
    let config = config.replacen(
        "  telemetry:\n    metrics:\n",
        "  telemetry:\n    resource:\n      service.name: edge-gateway\n      service.version: null\n      deployment.environment: prod\n      k8s.pod.uid: 42\n    logs:\n      initial_fields:\n        node: gw-1\n    metrics:\n",
        1,
    );
    assert!(config.contains("initial_fields"));
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let page = gateway.metrics();
    let line = page
        .lines()
        .find(|l| l.starts_with("target_info{"))
        .unwrap_or_else(|| panic!("no target_info in:\n{page}"));
    // service.instance.id is this process's random UUID, as the Collector sets it.
    let (before, after) = line
        .split_once(",service_instance_id=\"")
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(
        before,
        "target_info{deployment_environment=\"prod\",k8s_pod_uid=\"42\""
    );
    let (uuid, rest) = after.split_once('"').unwrap();
    assert_eq!((uuid.len(), uuid.as_bytes()[14]), (36, b'4'), "{uuid}");
    assert_eq!(rest, ",service_name=\"edge-gateway\"} 1");
    // The start-up lines (listening, shards up) are logged before the gateway is ready.
    let log = gateway.stderr();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        assert!(line.ends_with(" node=\"gw-1\""), "{line}");
    }
    assert!(gateway.stop().success());
    sink.stop().expect("sink");
}

/// The debug exporter prints to standard output, or to standard error (the log's stream) with
/// `use_internal_logger: true`, as the Collector's prints through its logger.
#[test]
fn the_debug_exporter_prints_where_use_internal_logger_says() {
    let (config, grpc, http, admin) = common::gateway::pipeline_config(
        "traces",
        false,
        "  debug/out:\n  debug/log:\n    use_internal_logger: true\n",
        "debug/out, debug/log",
    );
    let stdout = std::env::temp_dir().join(format!("tailgate-debug-out-{}", std::process::id()));
    let file = std::fs::File::create(&stdout).unwrap();
    let gateway = Gateway::start_customised(&config, grpc, http, admin, |command| {
        command.stdout(file);
    });
    let (status, _, _) = common::gateway::http_request(
        http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &common::gateway::one_span_request(7, 1, "printed"),
    )
    .expect("post");
    assert_eq!(status, 200);
    let printed = |text: &str| text.lines().filter(|l| l.contains("spans=1")).count();
    assert!(
        common::gateway::wait_for(Duration::from_secs(10), || {
            printed(&std::fs::read_to_string(&stdout).unwrap_or_default()) == 1
                && printed(&gateway.stderr()) == 1
        }),
        "stdout:\n{}\nstderr:\n{}",
        std::fs::read_to_string(&stdout).unwrap_or_default(),
        gateway.stderr()
    );
    assert!(gateway.stop().success());
    let _ = std::fs::remove_file(&stdout);
}

/// An `otlphttp` exporter with a URL for logs only (no `endpoint`, no `traces_endpoint`), as
/// the Collector takes it: it starts, and the logs reach that URL.
#[test]
fn an_otlphttp_exporter_with_only_a_logs_url_sends_logs_there() {
    let (sink, _, sink_http) = start_sink();
    let (config, grpc, http, admin) = common::gateway::pipeline_config(
        "logs",
        false,
        &format!(
            "  otlphttp:\n    logs_endpoint: http://{sink_http}/v1/logs\n    compression: none\n"
        ),
        "otlphttp",
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let request = opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
        resource_logs: vec![opentelemetry_proto::tonic::logs::v1::ResourceLogs {
            scope_logs: vec![opentelemetry_proto::tonic::logs::v1::ScopeLogs {
                log_records: vec![opentelemetry_proto::tonic::logs::v1::LogRecord {
                    time_unix_nano: 1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (status, _, body) = common::gateway::http_request(
        http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/x-protobuf")],
        &prost::Message::encode_to_vec(&request),
    )
    .expect("post logs");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        common::gateway::wait_for(Duration::from_secs(10), || gateway.metric(
            "otelcol_exporter_sent_log_records",
            &[("exporter", "otlphttp")]
        ) == 1.0),
        "{}",
        gateway.stderr()
    );
    assert!(gateway.stop().success());
    let report = sink.stop().expect("sink").report;
    assert_eq!(report["log_records_received"], 1, "{report}");
}

/// `service.telemetry.logs` as the Collector's configurations write it: `encoding: json` gives
/// one JSON object a line, with zap's `level`, `ts` and `msg` and the initial fields; zap's
/// other keys are taken where they change nothing here.
#[test]
fn json_log_lines_with_the_collectors_log_keys() {
    let (sink, upstream, _) = start_sink();
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 1, "", "");
    let config = config.replacen(
        "  telemetry:\n    metrics:\n",
        "  telemetry:\n    logs:\n      level: info\n      encoding: json\n      development: false\n      disable_caller: true\n      disable_stacktrace: true\n      output_paths: [stderr]\n      error_output_paths: [stderr]\n      sampling:\n        enabled: false\n      initial_fields:\n        node: gw-1\n    metrics:\n",
        1,
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let log = gateway.stderr();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        assert!(object["level"].is_string(), "{line}");
        assert!(
            object["ts"].as_str().is_some_and(|t| t.starts_with("20")),
            "{line}"
        );
        assert!(object["msg"].is_string(), "{line}");
        assert_eq!(object["node"], "gw-1", "{line}");
    }
    assert!(gateway.stop().success());
    sink.stop().expect("sink");
}

/// An otlp exporter whose endpoint is a grpc-go `dns:///` target, as configgrpc takes it: the
/// host:port is resolved and dialled, and spans arrive.
#[test]
fn an_otlp_exporter_dials_a_dns_resolver_target() {
    let (sink, sink_grpc, _) = start_sink();
    let (config, grpc, http, admin) = Gateway::standard_config(sink_grpc, 1, "", "");
    let upstream = format!("endpoint: {sink_grpc}\n");
    assert!(config.contains(&upstream));
    let config = config.replacen(
        &upstream,
        &format!("endpoint: dns:///localhost:{}\n", sink_grpc.port()),
        1,
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let (status, _, _) = common::gateway::http_request(
        http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &common::gateway::one_span_request(5, 1, "via dns:///"),
    )
    .expect("post");
    assert_eq!(status, 200);
    assert!(
        common::gateway::wait_for(Duration::from_secs(20), || sink.spans_received() == 1),
        "{}",
        gateway.stderr()
    );
    assert!(gateway.stop().success());
    sink.stop().expect("sink");
}
