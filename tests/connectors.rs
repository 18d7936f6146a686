//! The Collector's `routing` and `failover` connectors through the real binary, over real
//! sockets, into real sinks: resource groups routed by a resource attribute to two sinks and
//! the default; a failover to a backup when the primary stops, and back when it returns, with
//! every span delivered once and no data tried on a primary whose health service is down; OTTL outside the subset refused at start, naming the expression.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tailgate_bench::sink::{Sink, SinkArgs};

use common::gateway::{
    free_port, http_request, loopback, received_spans, start_sink, wait_for, Gateway,
};

const WAIT: Duration = Duration::from_secs(20);

/// A resource group of spans `ids` (each its own trace, so they spread over shards) under a
/// resource whose `tenant` is `tenant` (none: no such attribute).
fn group(tenant: Option<&str>, ids: &[u64]) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: tenant
                .map(|t| KeyValue {
                    key: "tenant".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(t.into())),
                    }),
                    ..Default::default()
                })
                .into_iter()
                .chain(std::iter::once(KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("checkout".into())),
                    }),
                    ..Default::default()
                }))
                .collect(),
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: ids
                .iter()
                .map(|&id| Span {
                    trace_id: [id.to_be_bytes(), 7u64.to_be_bytes()].concat(),
                    span_id: id.to_be_bytes().to_vec(),
                    name: format!("span-{id}"),
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn post(gateway: &Gateway, groups: Vec<ResourceSpans>) {
    let body = ExportTraceServiceRequest {
        resource_spans: groups,
    }
    .encode_to_vec();
    let (status, _, _) = http_request(
        gateway.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &body,
    )
    .expect("post");
    assert_eq!(status, 200);
}

/// The `tenant` of a received resource.
fn tenant(resource: &Option<Resource>) -> Option<String> {
    resource.as_ref()?.attributes.iter().find_map(|kv| {
        (kv.key == "tenant").then(|| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })?
    })
}

/// Every span a sink received, by name, with its resource's tenant.
fn spans_by_name(sink: Sink) -> BTreeMap<String, Option<String>> {
    let result = sink.stop().expect("stop the sink");
    let mut out = BTreeMap::new();
    for (resource, span) in received_spans(&result) {
        let previous = out.insert(span.name.clone(), tenant(&resource));
        assert!(previous.is_none(), "{} arrived twice", span.name);
    }
    out
}

/// A gateway config on fresh ports: `connectors` and `service_pipelines` as given, `exporters`
/// added to the exporters section.
fn config(
    shards: &str,
    exporters: &str,
    connectors: &str,
    pipelines: &str,
) -> (String, SocketAddr, SocketAddr, SocketAddr) {
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let config = format!(
        "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        endpoint: {http}
processors:
  batch:
    timeout: 50ms
exporters:
{exporters}
connectors:
{connectors}
service:
  pipelines:
{pipelines}
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [{shards}]
"
    );
    (config, grpc, http, admin)
}

/// An OTLP/gRPC exporter `name` to `to`, with `extra` lines (indented by 4).
fn otlp(name: &str, to: SocketAddr, extra: &str) -> String {
    format!("  {name}:\n    endpoint: {to}\n    tls:\n      insecure: true\n{extra}")
}

#[test]
fn resource_groups_are_routed_by_tenant_to_two_sinks_and_the_default() {
    let (acme, acme_addr, _) = start_sink();
    let (ecorp, ecorp_addr, _) = start_sink();
    let (other, other_addr, _) = start_sink();
    let exporters = [
        otlp("otlp/acme", acme_addr, ""),
        otlp("otlp/ecorp", ecorp_addr, ""),
        otlp("otlp/other", other_addr, ""),
    ]
    .concat();
    let (config, grpc, http, admin) = config(
        "0, 1",
        &exporters,
        "  routing:
    default_pipelines: [traces/other]
    table:
      - condition: attributes[\"tenant\"] == \"acme\"
        pipelines: [traces/acme]
      - statement: route() where IsMatch(resource.attributes[\"tenant\"], \"^ecorp-\")
        pipelines: [traces/ecorp]
",
        "    traces/in:
      receivers: [otlp]
      exporters: [routing]
    traces/acme:
      receivers: [routing]
      processors: [batch]
      exporters: [otlp/acme]
    traces/ecorp:
      receivers: [routing]
      exporters: [otlp/ecorp]
    traces/other:
      receivers: [routing]
      processors: [batch]
      exporters: [otlp/other]
",
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    // One request whose groups go three ways (and whose traces spread over both shards), and
    // one that goes one way whole.
    post(
        &gateway,
        vec![
            group(Some("acme"), &[1, 2, 3]),
            group(Some("ecorp-eu"), &[4, 5]),
            group(None, &[6]),
            group(Some("initech"), &[7]),
            group(Some("acme"), &[8]),
        ],
    );
    post(&gateway, vec![group(Some("ecorp-us"), &[9, 10])]);
    assert!(
        wait_for(WAIT, || acme.spans_received() == 4
            && ecorp.spans_received() == 4
            && other.spans_received() == 2),
        "acme {}, ecorp {}, other {}\n{}",
        acme.spans_received(),
        ecorp.spans_received(),
        other.spans_received(),
        gateway.stderr()
    );
    for reason in ["unrouted", "routing_error"] {
        assert_eq!(
            gateway.metric("tailgate_dropped_spans", &[("reason", reason)]),
            0.0
        );
    }
    let status = gateway.stop();
    assert!(status.success(), "{status}");

    let name = |ids: &[u64]| ids.iter().map(|i| format!("span-{i}")).collect::<Vec<_>>();
    let acme = spans_by_name(acme);
    assert_eq!(acme.keys().cloned().collect::<Vec<_>>(), {
        let mut n = name(&[1, 2, 3, 8]);
        n.sort();
        n
    });
    assert!(acme.values().all(|t| t.as_deref() == Some("acme")));
    let ecorp = spans_by_name(ecorp);
    assert_eq!(ecorp.keys().cloned().collect::<Vec<_>>(), {
        let mut n = name(&[4, 5, 9, 10]);
        n.sort();
        n
    });
    assert!(ecorp
        .values()
        .all(|t| t.as_deref().is_some_and(|t| t.starts_with("ecorp-"))));
    let other = spans_by_name(other);
    assert_eq!(other.get("span-6"), Some(&None));
    assert_eq!(other.get("span-7"), Some(&Some("initech".to_string())));
    assert_eq!(other.len(), 2);
}

#[test]
fn a_sampled_pipeline_behind_the_router_sees_whole_traces() {
    let (acme, acme_addr, _) = start_sink();
    let (other, other_addr, _) = start_sink();
    let exporters = [
        otlp("otlp/acme", acme_addr, ""),
        otlp("otlp/other", other_addr, ""),
    ]
    .concat();
    let (config, grpc, http, admin) = config(
        "0, 1",
        &exporters,
        "  routing:
    default_pipelines: [traces/other]
    table:
      - condition: attributes[\"tenant\"] == \"acme\"
        pipelines: [traces/acme]
",
        "    traces/in:
      receivers: [otlp]
      exporters: [routing]
    traces/acme:
      receivers: [routing]
      processors: [tail_sampling]
      exporters: [otlp/acme]
    traces/other:
      receivers: [routing]
      exporters: [otlp/other]
",
    );
    let config = config.replace(
        "processors:\n",
        "processors:\n  tail_sampling:\n    decision_wait: 1s\n    policies:\n      - name: errors\n        type: status_code\n        status_code:\n          status_codes: [ERROR]\n",
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    // Two acme traces whose spans come in separate requests, mixed with another tenant's: the
    // trace with an error span is kept whole, the other is not kept.
    let span = |trace: u8, id: u64, error: bool| Span {
        trace_id: vec![trace; 16],
        span_id: id.to_be_bytes().to_vec(),
        name: format!("span-{id}"),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        status: error.then(|| opentelemetry_proto::tonic::trace::v1::Status {
            code: 2,
            ..Default::default()
        }),
        ..Default::default()
    };
    let with = |tenant: &str, spans: Vec<Span>| {
        let mut g = group(Some(tenant), &[]);
        g.scope_spans[0].spans = spans;
        g
    };
    for (id, error) in [(1, false), (2, true), (3, false)] {
        post(
            &gateway,
            vec![
                with(
                    "acme",
                    vec![span(0xa1, id, error), span(0xb2, 10 + id, false)],
                ),
                with("initech", vec![span(0xa1, 20 + id, false)]),
            ],
        );
    }
    assert!(
        wait_for(WAIT, || acme.spans_received() == 3
            && other.spans_received() == 3),
        "acme {}, other {}\n{}",
        acme.spans_received(),
        other.spans_received(),
        gateway.stderr()
    );
    let status = gateway.stop();
    assert!(status.success(), "{status}");
    let acme = spans_by_name(acme);
    assert_eq!(
        acme.keys().cloned().collect::<Vec<_>>(),
        ["span-1", "span-2", "span-3"]
    );
    assert_eq!(spans_by_name(other).len(), 3);
}

#[test]
fn failover_moves_to_the_backup_when_the_primary_stops_and_back_when_it_returns() {
    let primary_addr = loopback(free_port());
    let start_primary = || {
        Sink::start(
            SinkArgs {
                listen: primary_addr,
                http_listen: None,
                report: "/dev/null".into(),
                dump: None,
                cpu: 0,
                cpus: Vec::new(),
                track_max: tailgate_bench::sink::TRACKED_SPANS_DEFAULT,
            },
            true,
        )
        .expect("start the primary sink")
    };
    let primary = start_primary();
    let (backup, backup_addr, _) = start_sink();
    // The primary gives up on a batch at its first failed attempt, so the failover connector
    // hears of it at once; the backup keeps the defaults.
    let exporters = [
        otlp(
            "otlp/primary",
            primary_addr,
            "    timeout: 2s\n    retry_on_failure:\n      enabled: false\n",
        ),
        otlp("otlp/backup", backup_addr, ""),
    ]
    .concat();
    let (config, grpc, http, admin) = config(
        "0",
        &exporters,
        "  failover:
    priority_levels:
      - [traces/primary]
      - [traces/backup]
    retry_interval: 1s
    retry_gap: 200ms
    max_retries: 0
",
        "    traces:
      receivers: [otlp]
      exporters: [failover]
    traces/primary:
      receivers: [failover]
      exporters: [otlp/primary]
    traces/backup:
      receivers: [failover]
      exporters: [otlp/backup]
",
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let level = || {
        gateway.metric(
            "tailgate_connector_failover_level",
            &[("connector", "failover")],
        )
    };
    let mut sent = 0u64;
    let mut send = |gateway: &Gateway| {
        sent += 1;
        post(gateway, vec![group(Some("acme"), &[sent])]);
        sent
    };

    send(&gateway);
    assert!(wait_for(WAIT, || primary.spans_received() == 1));
    assert_eq!(level(), 0.0);
    let first = spans_by_name(primary);

    // The primary stops: what it fails goes to the backup, and so does what comes after.
    send(&gateway);
    send(&gateway);
    assert!(
        wait_for(WAIT, || backup.spans_received() == 2),
        "backup {}\n{}",
        backup.spans_received(),
        gateway.stderr()
    );
    assert_eq!(level(), 1.0);
    let log = gateway.stderr();
    assert_eq!(
        log.matches("priority level 0 (traces/primary) failed")
            .count(),
        1,
        "{log}"
    );
    let failures = || {
        gateway.metric(
            "otelcol_connector_failover_count",
            &[("connector", "failover"), ("level", "0")],
        )
    };
    assert!(failures() >= 1.0);

    // While it is down, the retries ask its grpc.health.v1 first and get no answer: no data is
    // tried on it, everything goes to the backup.
    let primary_failed = || {
        gateway.metric(
            "otelcol_exporter_send_failed_spans",
            &[("exporter", "otlp/primary")],
        )
    };
    let failed_before = primary_failed();
    assert!(
        wait_for(WAIT, || {
            send(&gateway);
            failures() >= 3.0
        }),
        "{}",
        gateway.stderr()
    );
    assert!(gateway
        .stderr()
        .contains("priority level 0 (traces/primary) does not serve (grpc.health.v1)"));
    assert_eq!(primary_failed(), failed_before);
    assert_eq!(level(), 1.0);

    // The primary returns: a retry finds it serving, and data goes there again.
    let primary = start_primary();
    assert!(
        wait_for(Duration::from_secs(60), || {
            send(&gateway);
            primary.spans_received() > 0 && level() == 0.0
        }),
        "{}",
        gateway.stderr()
    );
    let last = send(&gateway);
    assert!(
        wait_for(WAIT, || primary.spans_received() + backup.spans_received()
            == last - 1),
        "primary {}, backup {}, sent {last}\n{}",
        primary.spans_received(),
        backup.spans_received(),
        gateway.stderr()
    );
    assert!(gateway
        .stderr()
        .contains("priority level 0 (traces/primary) works again"));
    for reason in ["export_failed", "failover_exhausted", "shutdown"] {
        assert_eq!(
            gateway.metric("tailgate_dropped_spans", &[("reason", reason)]),
            0.0,
            "{reason}"
        );
    }
    let status = gateway.stop();
    assert!(status.success(), "{status}");

    // Every span arrived once, at one of the two.
    let mut all = first;
    for (name, tenant) in spans_by_name(primary)
        .into_iter()
        .chain(spans_by_name(backup))
    {
        assert!(all.insert(name.clone(), tenant).is_none(), "{name} twice");
    }
    assert_eq!(all.len() as u64, last);
}

#[test]
fn a_routing_condition_outside_the_ottl_subset_is_refused_at_start_naming_it() {
    let (config, _, _, _) = config(
        "0",
        "  debug:\n",
        "  routing:
    table:
      - condition: Concat([attributes[\"tenant\"], \"x\"], \"\") == \"acmex\"
        pipelines: [traces/acme]
",
        "    traces/in:
      receivers: [otlp]
      exporters: [routing]
    traces/acme:
      receivers: [routing]
      exporters: [debug]
",
    );
    let path = common::grpc::temp_path("connectors-bad-ottl.yaml");
    std::fs::write(&path, &config).expect("write config");
    for args in [
        vec!["--config".to_string(), path.display().to_string()],
        vec!["check-config".to_string(), path.display().to_string()],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tailgate"))
            .args(&args)
            .output()
            .expect("run tailgate");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("connectors.routing.table[0].condition"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(r#"Concat([attributes["tenant"], "x"], "") == "acmex""#),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("converter `Concat`"), "{args:?}: {stderr}");
        let line = config
            .lines()
            .position(|l| l.contains("- condition"))
            .expect("the condition's line")
            + 1;
        assert!(
            stderr.contains(&format!(":{line}:")),
            "{args:?}: line {line}: {stderr}"
        );
    }
}

/// `context: span`: each span routed on its own (by name here), a resource route in the same
/// table, the rest to the default; every span reaches its pipeline's sink once, under the
/// resource it came with.
#[test]
fn spans_are_routed_one_by_one_with_the_span_context() {
    let (first, first_addr, _) = start_sink();
    let (ecorp, ecorp_addr, _) = start_sink();
    let (other, other_addr, _) = start_sink();
    let exporters = [
        otlp("otlp/first", first_addr, ""),
        otlp("otlp/ecorp", ecorp_addr, ""),
        otlp("otlp/other", other_addr, ""),
    ]
    .concat();
    let (config, grpc, http, admin) = config(
        "0, 1",
        &exporters,
        "  routing:
    default_pipelines: [traces/other]
    table:
      - context: span
        condition: IsMatch(name, \"-[123]$\")
        pipelines: [traces/first]
      - condition: attributes[\"tenant\"] == \"ecorp\"
        pipelines: [traces/ecorp]
",
        "    traces/in:
      receivers: [otlp]
      exporters: [routing]
    traces/first:
      receivers: [routing]
      processors: [batch]
      exporters: [otlp/first]
    traces/ecorp:
      receivers: [routing]
      exporters: [otlp/ecorp]
    traces/other:
      receivers: [routing]
      exporters: [otlp/other]
",
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    post(
        &gateway,
        vec![
            group(Some("ecorp"), &[1, 4, 5]),
            group(None, &[2, 6]),
            group(Some("initech"), &[3, 7]),
        ],
    );
    // A request all of whose spans go one way.
    post(&gateway, vec![group(Some("ecorp"), &[8, 9])]);
    assert!(
        wait_for(WAIT, || first.spans_received() == 3
            && ecorp.spans_received() == 4
            && other.spans_received() == 2),
        "first {}, ecorp {}, other {}\n{}",
        first.spans_received(),
        ecorp.spans_received(),
        other.spans_received(),
        gateway.stderr()
    );
    assert_eq!(
        gateway.metric("tailgate_dropped_spans", &[("reason", "unrouted")]),
        0.0
    );
    assert!(gateway.stop().success());
    let first = spans_by_name(first);
    let expected: BTreeMap<String, Option<String>> = [
        ("span-1", Some("ecorp")),
        ("span-2", None),
        ("span-3", Some("initech")),
    ]
    .into_iter()
    .map(|(name, tenant)| (name.to_string(), tenant.map(String::from)))
    .collect();
    assert_eq!(first, expected);
    let ecorp = spans_by_name(ecorp);
    assert_eq!(
        ecorp.keys().map(String::as_str).collect::<Vec<_>>(),
        ["span-4", "span-5", "span-8", "span-9"]
    );
    assert!(ecorp.values().all(|t| t.as_deref() == Some("ecorp")));
    let other = spans_by_name(other);
    assert_eq!(other.get("span-6"), Some(&None));
    assert_eq!(other.get("span-7"), Some(&Some("initech".to_string())));
    assert_eq!(other.len(), 2);
}

/// `context: log`: each log record routed on its own, by severity, to a peer that records
/// every request; the rest to the default. Each record reaches its pipeline once, under the
/// resource it came with.
#[test]
fn log_records_are_routed_one_by_one_with_the_log_context() {
    use common::header_sink::HeaderSink;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    let (errors, rest) = (HeaderSink::start(), HeaderSink::start());
    let exporters = format!(
        "  otlphttp/errors:\n    endpoint: http://{}\n    compression: none\n  otlphttp/rest:\n    endpoint: http://{}\n    compression: none\n",
        errors.http, rest.http
    );
    let (config, grpc, http, admin) = config(
        "0",
        &exporters,
        "  routing:
    default_pipelines: [logs/rest]
    table:
      - context: log
        condition: severity_number >= SEVERITY_NUMBER_ERROR
        pipelines: [logs/errors]
",
        "    logs/in:
      receivers: [otlp]
      exporters: [routing]
    logs/errors:
      receivers: [routing]
      processors: [batch]
      exporters: [otlphttp/errors]
    logs/rest:
      receivers: [routing]
      exporters: [otlphttp/rest]
",
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let group = common::otlp::log_group;
    // INFO, ERROR, WARN, FATAL from checkout; ERROR from billing.
    let body = ExportLogsServiceRequest {
        resource_logs: vec![group("checkout", &[9, 17, 13, 21]), group("billing", &[17])],
    }
    .encode_to_vec();
    let (status, _, reply) = http_request(
        gateway.http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/x-protobuf")],
        &body,
    )
    .expect("post");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    assert!(
        wait_for(WAIT, || errors.items() == 3 && rest.items() == 2),
        "errors {}, rest {}\n{}",
        errors.items(),
        rest.items(),
        gateway.stderr()
    );
    // Each sink's resources: errors from both services, the rest from checkout alone.
    let services = |sink: &HeaderSink| {
        let mut all: Vec<String> = sink
            .requests()
            .into_iter()
            .inspect(|r| assert_eq!(r.signal, "logs"))
            .flat_map(|r| r.services)
            .collect();
        all.sort();
        all.dedup();
        all
    };
    assert_eq!(services(&errors), ["billing", "checkout"]);
    assert_eq!(services(&rest), ["checkout"]);
    assert!(gateway.stop().success());
}

/// `context: metric`: each metric routed on its own, by type, with its data points counted
/// where it goes.
#[test]
fn metrics_are_routed_one_by_one_with_the_metric_context() {
    use common::header_sink::HeaderSink;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, Sum,
    };
    let (histograms, rest) = (HeaderSink::start(), HeaderSink::start());
    let exporters = format!(
        "  otlphttp/histograms:\n    endpoint: http://{}\n    compression: none\n  otlphttp/rest:\n    endpoint: http://{}\n    compression: none\n",
        histograms.http, rest.http
    );
    let (config, grpc, http, admin) = config(
        "0",
        &exporters,
        "  routing:
    default_pipelines: [metrics/rest]
    table:
      - context: metric
        condition: type == METRIC_DATA_TYPE_HISTOGRAM or IsMatch(name, \"duration$\")
        pipelines: [metrics/histograms]
",
        "    metrics/in:
      receivers: [otlp]
      exporters: [routing]
    metrics/histograms:
      receivers: [routing]
      exporters: [otlphttp/histograms]
    metrics/rest:
      receivers: [routing]
      processors: [batch]
      exporters: [otlphttp/rest]
",
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let point = NumberDataPoint {
        time_unix_nano: 1,
        ..NumberDataPoint::default()
    };
    let metric = |name: &str, data| Metric {
        name: name.to_string(),
        data: Some(data),
        ..Metric::default()
    };
    let body = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: common::otlp::resource("checkout"),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric(
                        "requests",
                        metric::Data::Sum(Sum {
                            data_points: vec![point.clone(), point.clone()],
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "latency",
                        metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint::default(); 3],
                            aggregation_temporality: 2,
                        }),
                    ),
                    metric(
                        "memory",
                        metric::Data::Gauge(Gauge {
                            data_points: vec![point.clone()],
                        }),
                    ),
                    metric(
                        "queue.duration",
                        metric::Data::Gauge(Gauge {
                            data_points: vec![point],
                        }),
                    ),
                ],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
    .encode_to_vec();
    let (status, _, reply) = http_request(
        gateway.http,
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/x-protobuf")],
        &body,
    )
    .expect("post");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    // The histogram's 3 points and the duration gauge's 1; the sum's 2 and the memory gauge's 1.
    assert!(
        wait_for(WAIT, || histograms.items() == 4 && rest.items() == 3),
        "histograms {}, rest {}\n{}",
        histograms.items(),
        rest.items(),
        gateway.stderr()
    );
    for sink in [&histograms, &rest] {
        for r in sink.requests() {
            assert_eq!(
                (r.signal.as_str(), r.services.as_slice()),
                ("metrics", &["checkout".to_string()][..])
            );
        }
    }
    assert_eq!(
        gateway.metric("otelcol_receiver_accepted_metric_points", &[]),
        7.0
    );
    assert!(gateway.stop().success());
}
