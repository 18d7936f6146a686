//! Multi-tenant gateways through the real binary over real sockets: receivers that keep client
//! metadata (`include_metadata`), `batch` processors that batch each tenant apart
//! (`metadata_keys`) and bound how many tenants there are (`metadata_cardinality_limit`), and
//! the `headers_setter` extension passing each batch's tenant on as a header — to a peer that
//! records every request's headers (`tests/python/header_sink.py`), over OTLP/gRPC and
//! OTLP/HTTP. Clients: raw HTTP posts, grpcio, and the official Python SDK.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::gateway::{free_port, http_request, loopback, Gateway};
use common::grpc::{grpc_call_with, Payload};
use common::header_sink::{HeaderSink, Recorded};
use common::otlp::{logs_request, metrics_request, spans_request};
use common::python::try_send_spans;
use opentelemetry_proto::tonic::trace::v1::Span;

const TRACE_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// `spans` spans of service `service`, each of a trace of its own (so they reach every shard).
fn traces(service: &str, spans: u8, seed: u8) -> Vec<u8> {
    let spans = (0..spans)
        .map(|n| Span {
            trace_id: vec![seed, n, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
            span_id: vec![n.wrapping_add(1); 8],
            name: "op".into(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            ..Span::default()
        })
        .collect();
    spans_request(service, spans)
}

/// Posts `body` to `path` with `x-tenant: tenant` (none when empty): the status and body.
fn post(gateway: &Gateway, path: &str, tenant: &str, body: &[u8]) -> (u16, String) {
    let mut headers = vec![("Content-Type", "application/x-protobuf")];
    if !tenant.is_empty() {
        headers.push(("X-Tenant", tenant));
    }
    let (status, _, body) =
        http_request(gateway.http, "POST", path, &headers, body).expect("post to the gateway");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A gateway on `rest` (its configuration after the receivers, up to `service.telemetry`): an
/// OTLP receiver keeping client metadata over HTTP, and over gRPC with `grpc_metadata`, its
/// self-metrics on a free port, on one shard or, with `two_shards` on a machine of two CPUs
/// or more, two.
fn gateway_with(rest: &str, grpc_metadata: bool, two_shards: bool) -> Gateway {
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let grpc_metadata = if grpc_metadata {
        "        include_metadata: true\n"
    } else {
        ""
    };
    // Two shards on two CPUs where there are two; one shard on a machine of one.
    let two = two_shards && std::thread::available_parallelism().map_or(1, |n| n.get()) > 1;
    let cpus = if two { "[0, 1]" } else { "[0]" };
    let config = format!(
        "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
{grpc_metadata}      http:
        endpoint: {http}
        include_metadata: true
{rest}  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: {cpus}
"
    );
    Gateway::start_with_config(&config, grpc, http, admin)
}

/// The tenant gateway: traces batched by tenant, to both exporters, `limit` combinations at
/// most; metrics without a batch processor and logs with one without `metadata_keys`, to the
/// HTTP exporter; `headers_setter` on both.
fn start(sink: &HeaderSink, limit: u32) -> Gateway {
    let rest = format!(
        "processors:
  batch:
    timeout: 300ms
    metadata_keys: [X-Tenant]
    metadata_cardinality_limit: {limit}
  batch/plain:
    timeout: 100ms
extensions:
  headers_setter:
    headers:
      - key: X-Scope-OrgID
        from_context: x-tenant
        default_value: anonymous
      - key: X-Gateway
        value: tg-1
        action: insert
exporters:
  otlp:
    endpoint: {grpc_sink}
    tls:
      insecure: true
    compression: none
    auth:
      authenticator: headers_setter
  otlphttp:
    endpoint: http://{http_sink}
    compression: none
    auth:
      authenticator: headers_setter
service:
  extensions: [headers_setter]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp, otlphttp]
    metrics:
      receivers: [otlp]
      exporters: [otlphttp]
    logs:
      receivers: [otlp]
      processors: [batch/plain]
      exporters: [otlphttp]
",
        grpc_sink = sink.grpc,
        http_sink = sink.http,
    );
    gateway_with(&rest, true, true)
}

/// Items of `signal` the sink received, by the `x-scope-orgid` each request carried.
fn by_tenant(requests: &[Recorded], signal: &str, transport: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in requests
        .iter()
        .filter(|r| r.signal == signal && r.transport == transport)
    {
        let tenant = r.header("x-scope-orgid").unwrap_or("<none>").to_string();
        *out.entry(tenant).or_insert(0) += r.items;
    }
    out
}

#[test]
fn each_tenant_is_batched_apart_and_its_header_set_on_every_export() {
    let sink = HeaderSink::start();
    let gateway = start(&sink, 1000);
    // Raw posts, grpcio and the Python SDK, each tenant's spans named after it.
    for (tenant, seed) in [("acme", 1u8), ("globex", 2), ("acme", 3), ("", 4)] {
        let service = if tenant.is_empty() {
            "anonymous"
        } else {
            tenant
        };
        let (status, body) = post(&gateway, "/v1/traces", tenant, &traces(service, 5, seed));
        assert_eq!(status, 200, "{body}");
    }
    let request = traces("initech", 4, 9);
    let reply = grpc_call_with(
        gateway.grpc,
        TRACE_EXPORT,
        Payload::Bytes(&request),
        "none",
        &[("x-tenant", "initech")],
    );
    assert_eq!(reply.code, "OK", "{:?}", reply.details);
    let sdk = try_send_spans(
        "grpc",
        &format!("http://{}", gateway.grpc),
        3,
        2,
        11,
        0,
        "gzip",
        &["--timeout", "10", "--header", "x-tenant=umbrella"],
    )
    .expect("the SDK exports");
    assert_eq!(sdk.len(), 6);
    // Metrics: no batch processor, so each request's metadata goes on as it came; logs: a
    // batch processor without metadata_keys, which keeps none (as in the Collector).
    for tenant in ["acme", "globex"] {
        assert_eq!(
            post(&gateway, "/v1/metrics", tenant, &metrics_request(tenant, 1)).0,
            200
        );
        assert_eq!(
            post(&gateway, "/v1/logs", tenant, &logs_request(tenant, 1)).0,
            200
        );
    }
    // Traces reach both exporters: (5 * 4 + 4 + 6) * 2, and 2 points and 2 records.
    let expected = (5 * 4 + 4 + 6) * 2 + 2 + 2;
    assert!(
        sink.wait_for_items(expected, Duration::from_secs(30)),
        "{} of {expected} items at the sink:\n{}",
        sink.items(),
        gateway.stderr()
    );
    let requests = sink.requests();
    let spans_by_tenant: BTreeMap<String, u64> = [
        ("acme", 10),
        ("anonymous", 5),
        ("globex", 5),
        ("initech", 4),
        ("umbrella", 6),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_string(), n))
    .collect();
    for transport in ["grpc", "http"] {
        assert_eq!(
            by_tenant(&requests, "traces", transport),
            spans_by_tenant,
            "spans by tenant header over {transport}"
        );
    }
    for r in &requests {
        assert_eq!(r.header("x-gateway"), Some("tg-1"), "{r:?}");
        assert_eq!(r.headers["x-scope-orgid"].len(), 1, "one value: {r:?}");
        let tenant = r.header("x-scope-orgid").expect("set on every request");
        match r.signal.as_str() {
            // Never two tenants in one batch: every resource is the tenant's own, except the
            // SDK's (its own service name).
            "traces" if tenant != "umbrella" => {
                assert!(r.services.iter().all(|s| s == tenant), "{r:?}")
            }
            "traces" => {}
            "metrics" => assert_eq!(r.services, [tenant], "{r:?}"),
            "logs" => assert_eq!(tenant, "anonymous", "no metadata_keys, none kept: {r:?}"),
            other => panic!("unexpected signal {other}"),
        }
    }
    assert!(gateway.stop().success());
}

#[test]
fn one_combination_past_the_limit_is_refused_with_the_collectors_message() {
    let sink = HeaderSink::start();
    let gateway = start(&sink, 2);
    assert_eq!(post(&gateway, "/v1/traces", "a", &traces("a", 2, 1)).0, 200);
    assert_eq!(post(&gateway, "/v1/traces", "b", &traces("b", 2, 2)).0, 200);
    let (status, body) = post(&gateway, "/v1/traces", "c", &traces("c", 3, 3));
    assert_eq!(status, 500, "a permanent error, as the Collector answers");
    assert!(
        body.contains("too many batcher metadata-value combinations"),
        "{body}"
    );
    let request = traces("c", 1, 4);
    let reply = grpc_call_with(
        gateway.grpc,
        TRACE_EXPORT,
        Payload::Bytes(&request),
        "none",
        &[("x-tenant", "c")],
    );
    assert_eq!(reply.code, "INTERNAL", "{:?}", reply.details);
    // The admitted ones go on being admitted, and other signals have no limit here.
    assert_eq!(post(&gateway, "/v1/traces", "a", &traces("a", 2, 5)).0, 200);
    assert_eq!(
        post(&gateway, "/v1/logs", "c", &logs_request("c", 1)).0,
        200
    );
    assert_eq!(
        gateway.metric(
            "otelcol_receiver_refused_spans",
            &[("receiver", "otlp"), ("transport", "http")]
        ),
        3.0
    );
    assert!(sink.wait_for_items(2 * 6 + 1, Duration::from_secs(30)));
    let tenants: BTreeMap<String, u64> = by_tenant(&sink.requests(), "traces", "http");
    assert_eq!(
        tenants.into_iter().collect::<Vec<_>>(),
        [("a".to_string(), 4), ("b".to_string(), 2)]
    );
    assert!(gateway.stop().success());
}

/// The routing connector's `context: request`: each request to the pipeline its tenant names,
/// over gRPC (whose call metadata the Collector routes on, include_metadata or not) and over
/// HTTP with include_metadata.
#[test]
fn a_request_route_sends_each_tenant_to_its_pipeline() {
    let sink = HeaderSink::start();
    let rest = format!(
        "connectors:
  routing:
    default_pipelines: [traces/others]
    table:
      - context: request
        condition: request[\"X-Tenant\"] == \"acme\"
        pipelines: [traces/acme]
exporters:
  otlphttp/acme:
    endpoint: http://{sink}
    compression: none
    headers:
      X-Pipeline: acme
  otlphttp/others:
    endpoint: http://{sink}
    compression: none
    headers:
      X-Pipeline: others
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [routing]
    traces/acme:
      receivers: [routing]
      exporters: [otlphttp/acme]
    traces/others:
      receivers: [routing]
      exporters: [otlphttp/others]
",
        sink = sink.http,
    );
    let gateway = gateway_with(&rest, false, true);
    for (tenant, seed) in [("acme", 1u8), ("globex", 2), ("", 3)] {
        let service = if tenant.is_empty() { "none" } else { tenant };
        let (status, body) = post(&gateway, "/v1/traces", tenant, &traces(service, 2, seed));
        assert_eq!(status, 200, "{body}");
    }
    for (tenant, seed) in [("acme", 4u8), ("initech", 5)] {
        let request = traces(tenant, 3, seed);
        let reply = grpc_call_with(
            gateway.grpc,
            TRACE_EXPORT,
            Payload::Bytes(&request),
            "none",
            &[("x-tenant", tenant)],
        );
        assert_eq!(reply.code, "OK", "{:?}", reply.details);
    }
    assert!(
        sink.wait_for_items(2 * 3 + 3 * 2, Duration::from_secs(30)),
        "{}",
        gateway.stderr()
    );
    // Spans by pipeline and service: each request is one resource group of one service.
    let mut by_pipeline: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in sink.requests() {
        let pipeline = r.header("x-pipeline").expect("each exporter's header");
        assert_eq!(r.services.len(), 1, "{r:?}");
        *by_pipeline
            .entry((pipeline.to_string(), r.services[0].clone()))
            .or_default() += r.items;
    }
    let expected: BTreeMap<(String, String), u64> = [
        ("acme", "acme", 2 + 3),
        ("others", "globex", 2),
        ("others", "initech", 3),
        ("others", "none", 2),
    ]
    .into_iter()
    .map(|(p, s, n)| ((p.to_string(), s.to_string()), n))
    .collect();
    assert_eq!(by_pipeline, expected);
    assert!(gateway.stop().success());
}

/// What the receivers keep and the limits are set at start: a live reload that changes them is
/// refused with the reason, and the running configuration goes on serving. The limit counts
/// only requests otherwise accepted: one that does not decode takes no combination.
#[test]
fn a_reload_changing_the_kept_metadata_is_refused_and_bad_requests_take_no_combination() {
    let sink = HeaderSink::start();
    let gateway = start(&sink, 1);
    // Refused as undecodable, before the limit is asked: "a" is not admitted by it.
    let (status, _) = post(&gateway, "/v1/traces", "a", b"\x0a\xff\xff");
    assert_eq!(status, 400);
    assert_eq!(post(&gateway, "/v1/traces", "b", &traces("b", 1, 1)).0, 200);
    let config = std::fs::read_to_string(gateway.config_path()).expect("the config");
    let changed = config.replace(
        "metadata_keys: [X-Tenant]",
        "metadata_keys: [X-Tenant, region]",
    );
    assert_ne!(changed, config);
    std::fs::write(gateway.config_path(), changed).expect("write the config");
    // SAFETY: kill(2) on the gateway process this test spawned; no memory is involved.
    unsafe {
        libc::kill(gateway.pid() as i32, libc::SIGHUP);
    }
    assert!(
        common::gateway::wait_for(Duration::from_secs(20), || gateway
            .metric("tailgate_config_reload_failures", &[])
            == 1.0),
        "{}",
        gateway.stderr()
    );
    assert!(
        gateway
            .stderr()
            .contains("client metadata the receivers keep"),
        "{}",
        gateway.stderr()
    );
    // Still the start's: "b" admitted, one more refused.
    assert_eq!(post(&gateway, "/v1/traces", "b", &traces("b", 1, 2)).0, 200);
    assert_eq!(post(&gateway, "/v1/traces", "c", &traces("c", 1, 3)).0, 500);
    assert!(gateway.stop().success());
}

/// The `loadbalancing` exporter splits each tenant's batches over its backends by trace id,
/// and every part carries the tenant's header.
#[test]
fn a_load_balancer_keeps_each_parts_tenant() {
    let (one, two) = (HeaderSink::start(), HeaderSink::start());
    let rest = format!(
        "processors:
  batch:
    timeout: 200ms
    metadata_keys: [x-tenant]
extensions:
  headers_setter:
    headers:
      - key: X-Scope-OrgID
        from_context: x-tenant
exporters:
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        tls:
          insecure: true
        auth:
          authenticator: headers_setter
    resolver:
      static:
        hostnames: [\"{}\", \"{}\"]
service:
  extensions: [headers_setter]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [loadbalancing]
",
        one.grpc, two.grpc
    );
    let gateway = gateway_with(&rest, false, true);
    for (tenant, seed) in [("acme", 1u8), ("globex", 2), ("acme", 3)] {
        let (status, body) = post(&gateway, "/v1/traces", tenant, &traces(tenant, 20, seed));
        assert_eq!(status, 200, "{body}");
    }
    assert!(
        common::gateway::wait_for(Duration::from_secs(30), || one.items() + two.items() >= 60),
        "{} + {} of 60 spans:\n{}",
        one.items(),
        two.items(),
        gateway.stderr()
    );
    let mut spans: BTreeMap<String, u64> = BTreeMap::new();
    for sink in [&one, &two] {
        let requests = sink.requests();
        assert!(!requests.is_empty(), "each backend has a share");
        for r in requests {
            let tenant = r.header("x-scope-orgid").expect("the tenant's header");
            assert!(r.services.iter().all(|s| s == tenant), "{r:?}");
            *spans.entry(tenant.to_string()).or_default() += r.items;
        }
    }
    assert_eq!(spans["acme"], 40);
    assert_eq!(spans["globex"], 20);
    assert!(gateway.stop().success());
}

/// The Collector's `batch` processor families: batches sent full, batches sent by their
/// timeout, their sizes, and the metadata combinations being batched.
#[test]
fn the_batch_processor_families_count_triggers_sizes_and_combinations() {
    let sink = HeaderSink::start();
    let rest = format!(
        "processors:
  batch/tenants:
    send_batch_size: 4
    timeout: 1s
    metadata_keys: [x-tenant]
exporters:
  otlphttp:
    endpoint: http://{sink}
    compression: none
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch/tenants]
      exporters: [otlphttp]
",
        sink = sink.http,
    );
    let gateway = gateway_with(&rest, false, false);
    let labels = [("processor", "batch/tenants")];
    let metric = |name: &str| gateway.metric(name, &labels);
    assert_eq!(metric("otelcol_processor_batch_metadata_cardinality"), 1.0);
    assert_eq!(post(&gateway, "/v1/traces", "a", &traces("a", 4, 1)).0, 200);
    assert_eq!(
        metric("otelcol_processor_batch_batch_size_trigger_send"),
        1.0
    );
    assert_eq!(post(&gateway, "/v1/traces", "a", &traces("a", 1, 2)).0, 200);
    assert_eq!(post(&gateway, "/v1/traces", "b", &traces("b", 2, 3)).0, 200);
    assert_eq!(
        metric("otelcol_processor_batch_metadata_cardinality"),
        3.0,
        "the plain batcher and two tenants' batches"
    );
    assert!(
        common::gateway::wait_for(Duration::from_secs(10), || metric(
            "otelcol_processor_batch_timeout_trigger_send"
        ) == 2.0),
        "{}",
        gateway.metrics()
    );
    assert_eq!(
        metric("otelcol_processor_batch_batch_size_trigger_send"),
        1.0
    );
    assert_eq!(metric("otelcol_processor_batch_batch_send_size_count"), 3.0);
    assert_eq!(metric("otelcol_processor_batch_batch_send_size_sum"), 7.0);
    assert_eq!(metric("otelcol_processor_batch_metadata_cardinality"), 1.0);
    let page = gateway.metrics();
    assert!(
        page.contains("otelcol_processor_batch_batch_send_size_bucket{processor=\"batch/tenants\",shard=\"0\",le=\"10\"} 3"),
        "{page}"
    );
    assert!(sink.wait_for_items(7, Duration::from_secs(10)));
    assert!(gateway.stop().success());
}

/// Spans `(n, error)` of trace `trace` (seed 0xA0 makes its id), of service `service`.
fn trace_spans(service: &str, trace: u8, spans: &[(u8, bool)]) -> Vec<u8> {
    use opentelemetry_proto::tonic::trace::v1::{status, Status};
    let spans = spans
        .iter()
        .map(|&(n, error)| Span {
            trace_id: vec![
                0xA0, trace, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, trace,
            ],
            span_id: vec![n + 1, trace, 0, 0, 0, 0, 0, 1],
            name: format!("t{trace}-s{n}"),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            status: error.then(|| Status {
                code: status::StatusCode::Error as i32,
                ..Status::default()
            }),
            ..Span::default()
        })
        .collect();
    spans_request(service, spans)
}

/// Tail sampling keeps each span's tenant (the Collector's `tail_sampling` drops client
/// metadata): a kept trace's spans go out under the tenant of the request that brought each,
/// batched by tenant after the decision; late spans of a kept trace under their own request's
/// tenant; spans that came without one under the exporter's default. Over HTTP posts, grpcio
/// and the Python SDK, on two shards.
#[test]
fn tail_sampling_keeps_each_spans_tenant() {
    let sink = HeaderSink::start();
    let errors = "      - name: errors
        type: status_code
        status_code: {status_codes: [ERROR]}";
    let rest = common::header_sink::tenant_sampling(errors, sink.grpc);
    let gateway = gateway_with(&rest, true, true);
    let send = |tenant: &str, body: Vec<u8>| {
        let (status, text) = post(&gateway, "/v1/traces", tenant, &body);
        assert_eq!(status, 200, "{text}");
    };
    // Trace 1 (kept), acme's, in two requests; trace 2 (kept), globex's, over gRPC; trace 3
    // (not kept), acme's; trace 4 (kept), no tenant; trace 5 (kept), one span from each.
    send("acme", trace_spans("acme", 1, &[(0, false)]));
    let reply = grpc_call_with(
        gateway.grpc,
        TRACE_EXPORT,
        Payload::Bytes(&trace_spans("globex", 2, &[(0, true), (1, false)])),
        "none",
        &[("x-tenant", "globex")],
    );
    assert_eq!(reply.code, "OK", "{:?}", reply.details);
    send("acme", trace_spans("acme", 1, &[(1, true), (2, false)]));
    send("acme", trace_spans("acme", 3, &[(0, false), (1, false)]));
    send("", trace_spans("anonymous", 4, &[(0, true), (1, false)]));
    send("acme", trace_spans("acme", 5, &[(0, false)]));
    send("globex", trace_spans("globex", 5, &[(1, true)]));
    // The Python SDK, as tenant umbrella: 3 traces of 2 spans, every one an error trace.
    let sdk = try_send_spans(
        "grpc",
        &format!("http://{}", gateway.grpc),
        3,
        2,
        21,
        1,
        "gzip",
        &["--timeout", "10", "--header", "x-tenant=umbrella"],
    )
    .expect("the SDK exports");
    assert_eq!(sdk.len(), 6);
    assert!(
        sink.wait_for_items(15, Duration::from_secs(30)),
        "{} of 15 spans at the sink:\n{}",
        sink.items(),
        gateway.stderr()
    );
    // A late span of kept trace 1, from globex this time.
    send("globex", trace_spans("globex", 1, &[(3, false)]));
    assert!(
        sink.wait_for_items(16, Duration::from_secs(30)),
        "the late span:\n{}",
        gateway.stderr()
    );
    let requests = sink.requests();
    let expected: BTreeMap<String, u64> = [
        ("acme", 4),
        ("anonymous", 2),
        ("globex", 4),
        ("umbrella", 6),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_string(), n))
    .collect();
    assert_eq!(by_tenant(&requests, "traces", "grpc"), expected);
    for r in &requests {
        let tenant = r.header("x-scope-orgid").expect("set on every request");
        // Every resource is its tenant's own, but the SDK's (its own service name).
        if tenant != "umbrella" {
            assert!(r.services.iter().all(|s| s == tenant), "{r:?}");
        }
    }
    assert_eq!(sink.items(), 16, "trace 3 not kept");
    assert!(gateway.stop().success());
}
