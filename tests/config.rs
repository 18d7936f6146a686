//! The config layer against Collector YAML: real gateway configs load with every field where
//! expected, and every class of mistake is an error naming the key path and the line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tailgate::config::*;
use tailgate_wire::Signal;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(name)
}

/// Parses `yaml` (a leading newline is dropped, so line 1 is the first line written).
fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(yaml.strip_prefix('\n').unwrap_or(yaml), "test.yaml")
}

fn error(yaml: &str) -> ConfigError {
    match parse(yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(err) => err,
    }
}

/// Asserts the error is at `line`, names `path`, and says `needle`.
#[track_caller]
fn assert_error(err: &ConfigError, line: usize, path: &str, needle: &str) {
    let text = err.to_string();
    assert_eq!(err.line(), Some(line), "wrong line: {text}");
    assert_eq!(err.path(), Some(path), "wrong path: {text}");
    assert!(
        text.starts_with(&format!("test.yaml:{line}:")),
        "no file:line prefix: {text}"
    );
    assert!(
        text.contains(&format!(": {path}: ")),
        "path not shown: {text}"
    );
    assert!(text.contains(needle), "`{needle}` not in: {text}");
}

fn id(text: &str) -> ComponentId {
    ComponentId::parse(text).unwrap()
}

fn ids(texts: &[&str]) -> Vec<ComponentId> {
    texts.iter().map(|t| id(t)).collect()
}

fn tail_sampling(config: &Config, name: &str) -> TailSampling {
    match config.processors.get(&id(name)) {
        Some(Processor::TailSampling(ts)) => ts.clone(),
        other => panic!("{name} is not tail_sampling: {other:?}"),
    }
}

const MINIMAL_SERVICE: &str = "
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
";

// ---------------------------------------------------------------------------------------------
// Configs that load.

#[test]
fn gateway_config_loads_with_every_field_in_place() {
    let config = Config::load(&fixture("gateway.yaml")).unwrap();
    assert!(config.source.ends_with("gateway.yaml"));

    // Receivers.
    let Some(Receiver::Otlp(otlp)) = config.receivers.get(&id("otlp")) else {
        panic!("no otlp receiver");
    };
    let grpc = otlp.grpc.as_ref().unwrap();
    assert_eq!(grpc.endpoint, Endpoint::parse("0.0.0.0:4317").unwrap());
    assert_eq!(grpc.max_recv_msg_size_mib, 16);
    assert_eq!(grpc.max_concurrent_streams, 200);
    let http = otlp.http.as_ref().unwrap();
    assert_eq!(http.endpoint.port, 4318);
    assert_eq!(http.max_request_body_size, 10_485_760);
    assert_eq!(
        (
            http.traces_url_path.as_str(),
            http.metrics_url_path.as_str(),
            http.logs_url_path.as_str()
        ),
        ("/v1/traces", "/v1/metrics", "/v1/logs")
    );
    let Some(Receiver::Otlp(internal)) = config.receivers.get(&id("otlp/internal")) else {
        panic!("no otlp/internal receiver");
    };
    let grpc = internal.grpc.as_ref().unwrap();
    assert_eq!(
        (grpc.endpoint.host.as_str(), grpc.endpoint.port),
        ("::1", 14317)
    );
    assert_eq!(grpc.max_recv_msg_size_mib, MAX_RECV_MSG_SIZE_MIB_DEFAULT);
    assert!(internal.http.is_none());

    // Processors.
    assert_eq!(
        config.processors.get(&id("memory_limiter")),
        Some(&Processor::MemoryLimiter(MemoryLimiter {
            check_interval: Duration::from_secs(1),
            limit: MemoryLimit::Mib {
                limit_mib: 4000,
                spike_limit_mib: 800
            },
        }))
    );
    assert_eq!(
        config.processors.get(&id("batch")),
        Some(&Processor::Batch(BatchProcessor {
            send_batch_size: 10_000,
            send_batch_max_size: Some(11_000),
            timeout: Duration::from_secs(10),
            metadata_keys: Vec::new(),
            metadata_cardinality_limit: 1000,
        }))
    );
    assert_eq!(
        config.processors.get(&id("batch/metrics")),
        Some(&Processor::Batch(BatchProcessor {
            send_batch_size: SEND_BATCH_SIZE_DEFAULT,
            send_batch_max_size: None,
            timeout: BATCH_TIMEOUT_DEFAULT,
            metadata_keys: Vec::new(),
            metadata_cardinality_limit: 1000,
        }))
    );

    // Tail sampling: the top level...
    let ts = tail_sampling(&config, "tail_sampling");
    assert_eq!(ts.decision_wait, Duration::from_secs(10));
    assert_eq!(ts.decision_wait_after_root_received, None);
    assert_eq!(ts.num_traces, 100);
    assert_eq!(ts.expected_new_traces_per_sec, 10);
    assert_eq!(
        ts.decision_cache,
        DecisionCache {
            sampled_cache_size: 100_000,
            non_sampled_cache_size: 100_000
        }
    );
    assert!(ts.sample_on_first_match);
    assert!(ts.drop_pending_traces_on_shutdown);
    assert!(!ts.block_on_overflow);
    assert_eq!(ts.maximum_trace_size_bytes, None);

    // ...and every policy type.
    let names: Vec<&str> = ts.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), 17);
    assert_eq!(names[0], "test-policy-1");
    assert_eq!(names[16], "composite-policy-1");
    let kinds: Vec<&PolicyKind> = ts.policies.iter().map(|p| &p.kind).collect();
    assert_eq!(kinds[0], &PolicyKind::AlwaysSample);
    assert_eq!(
        kinds[1],
        &PolicyKind::Latency(LatencyPolicy {
            threshold_ms: 5000,
            upper_threshold_ms: Some(10_000)
        })
    );
    assert_eq!(
        kinds[2],
        &PolicyKind::NumericAttribute(NumericAttributePolicy {
            key: "key1".into(),
            min_value: Some(50),
            max_value: Some(100),
            invert_match: false,
        })
    );
    assert_eq!(
        kinds[3],
        &PolicyKind::Probabilistic(ProbabilisticPolicy {
            hash_salt: "custom-salt".into(),
            sampling_percentage: 10.0,
        })
    );
    assert_eq!(
        kinds[4],
        &PolicyKind::StatusCode(StatusCodePolicy {
            status_codes: vec![StatusCode::Error, StatusCode::Unset]
        })
    );
    assert_eq!(
        kinds[5],
        &PolicyKind::StringAttribute(StringAttributePolicy {
            key: "key2".into(),
            values: vec!["value1".into(), "value2".into()],
            enabled_regex_matching: false,
            cache_max_size: REGEX_CACHE_SIZE_DEFAULT,
            invert_match: false,
        })
    );
    assert_eq!(
        kinds[6],
        &PolicyKind::StringAttribute(StringAttributePolicy {
            key: "key2".into(),
            values: vec!["value1".into(), "val*".into()],
            enabled_regex_matching: true,
            cache_max_size: 10,
            invert_match: false,
        })
    );
    assert_eq!(
        kinds[7],
        &PolicyKind::RateLimiting(RateLimitingPolicy {
            spans_per_second: 35,
            burst_capacity: 50,
        })
    );
    assert_eq!(
        kinds[8],
        &PolicyKind::SpanCount(SpanCountPolicy {
            min_spans: 2,
            max_spans: Some(20)
        })
    );
    assert_eq!(
        kinds[9],
        &PolicyKind::TraceState(TraceStatePolicy {
            key: "key3".into(),
            values: vec!["value1".into(), "value2".into()],
        })
    );
    assert_eq!(
        kinds[10],
        &PolicyKind::BooleanAttribute(BooleanAttributePolicy {
            key: "key4".into(),
            value: true,
            invert_match: false,
        })
    );
    assert_eq!(
        kinds[11],
        &PolicyKind::BytesLimiting(BytesLimitingPolicy {
            bytes_per_second: 1_048_576,
            burst_capacity: 4_194_304,
        })
    );
    assert_eq!(kinds[12], &PolicyKind::TraceFlags);
    let PolicyKind::And(and) = kinds[13] else {
        panic!("not an and policy: {:?}", kinds[13]);
    };
    assert_eq!(and.len(), 2);
    assert_eq!(and[0].name, "test-and-policy-1");
    assert!(matches!(and[1].kind, PolicyKind::StringAttribute(_)));
    let PolicyKind::Drop(drop) = kinds[14] else {
        panic!("not a drop policy: {:?}", kinds[14]);
    };
    let PolicyKind::StringAttribute(health) = &drop[0].kind else {
        panic!("not a string_attribute sub-policy");
    };
    assert_eq!(health.values, vec!["\\/health", "\\/metrics"]);
    assert!(health.enabled_regex_matching);
    let PolicyKind::Not(not) = kinds[15] else {
        panic!("not a not policy: {:?}", kinds[15]);
    };
    assert_eq!(
        not.kind,
        PolicyKind::BooleanAttribute(BooleanAttributePolicy {
            key: "app.do_not_sample".into(),
            value: true,
            invert_match: true,
        })
    );
    let PolicyKind::Composite(composite) = kinds[16] else {
        panic!("not a composite policy: {:?}", kinds[16]);
    };
    assert_eq!(composite.max_total_spans_per_second, 1000);
    assert_eq!(
        composite.policy_order,
        vec![
            "test-composite-policy-1",
            "test-composite-policy-2",
            "test-composite-policy-3"
        ]
    );
    assert_eq!(composite.sub_policies.len(), 3);
    assert_eq!(
        composite.sub_policies[0].kind,
        PolicyKind::NumericAttribute(NumericAttributePolicy {
            key: "key1".into(),
            min_value: Some(50),
            max_value: None,
            invert_match: false,
        })
    );
    assert_eq!(composite.sub_policies[2].kind, PolicyKind::AlwaysSample);
    assert_eq!(
        composite.rate_allocation,
        vec![
            RateAllocation {
                policy: "test-composite-policy-1".into(),
                percent: 50
            },
            RateAllocation {
                policy: "test-composite-policy-2".into(),
                percent: 25
            },
        ]
    );

    // Exporters.
    let Some(Exporter::Otlp(central)) = config.exporters.get(&id("otlp/central")) else {
        panic!("no otlp/central exporter");
    };
    assert_eq!(
        central.endpoint,
        Endpoint::parse("central.example.internal:4317").unwrap()
    );
    assert_eq!(
        central.headers.get("x-tenant").map(String::as_str),
        Some("platform")
    );
    assert_eq!(central.compression, Compression::Zstd);
    assert_eq!(central.timeout, Duration::from_secs(15));
    assert_eq!(
        central.retry_on_failure,
        RetryOnFailure {
            enabled: true,
            initial_interval: Duration::from_secs(1),
            randomization_factor: 0.5,
            multiplier: 1.5,
            max_interval: Duration::from_secs(20),
            max_elapsed_time: Some(Duration::from_secs(600)),
        }
    );
    assert_eq!(
        central.sending_queue,
        SendingQueue {
            enabled: true,
            num_consumers: 20,
            queue_size: 5000,
            sizer: QueueSizer::Requests,
            block_on_overflow: true,
            drop_oldest_on_overflow: false,
            storage: None,
            batch: None,
        }
    );
    let Some(Exporter::OtlpHttp(archive)) = config.exporters.get(&id("otlphttp/archive")) else {
        panic!("no otlphttp/archive exporter");
    };
    assert_eq!(
        archive.url(Signal::Traces).unwrap().to_string(),
        "http://archive.example.internal:4318/otlp/v1/traces"
    );
    assert_eq!(
        archive.url(Signal::Metrics).unwrap().to_string(),
        "http://archive.example.internal:4318/otlp/v1/metrics"
    );
    assert_eq!(
        archive.url(Signal::Logs).unwrap().to_string(),
        "http://logs.example.internal:9000/ingest"
    );
    assert_eq!(archive.encoding, Encoding::Json);
    assert_eq!(archive.compression, Compression::None);
    assert_eq!(archive.timeout, EXPORT_TIMEOUT_DEFAULT);
    assert_eq!(archive.retry_on_failure, RetryOnFailure::default());
    assert_eq!(archive.sending_queue, SendingQueue::default());
    assert_eq!(
        config.exporters.get(&id("debug")),
        Some(&Exporter::Debug(DebugExporter {
            verbosity: Verbosity::Detailed,
            sampling_initial: 2,
            sampling_thereafter: 1,
            to_stderr: false,
        }))
    );

    // Service.
    let pipelines = &config.service.pipelines;
    assert_eq!(pipelines.len(), 3);
    let traces = config
        .service
        .pipeline(&PipelineId {
            signal: Signal::Traces,
            name: None,
        })
        .unwrap();
    assert_eq!(traces.receivers, ids(&["otlp", "otlp/internal"]));
    assert_eq!(
        traces.processors,
        ids(&["memory_limiter", "tail_sampling", "batch"])
    );
    assert_eq!(traces.exporters, ids(&["otlp/central", "otlphttp/archive"]));
    assert_eq!(pipelines[1].id.signal, Signal::Metrics);
    assert_eq!(pipelines[2].id.to_string(), "logs/archive");
    assert_eq!(pipelines[2].exporters, ids(&["otlphttp/archive", "debug"]));
    let telemetry = &config.service.telemetry;
    assert_eq!(
        telemetry.metrics.address,
        Endpoint::parse("0.0.0.0:8888").unwrap()
    );
    assert_eq!(telemetry.metrics.level, MetricsLevel::None);
    assert_eq!(telemetry.logs.level, LogLevel::Warn);

    // Shards.
    assert_eq!(
        config.shards,
        Shards {
            cpus: Cpus::List(vec![2, 3, 4, 5]),
            channel_capacity: 128,
            ..Shards::default()
        }
    );
}

#[test]
fn readme_practical_example_loads_in_block_style() {
    let config = Config::load(&fixture("practical_example.yaml")).unwrap();
    let ts = tail_sampling(&config, "tail_sampling");
    assert_eq!(ts.policies.len(), 5);
    let PolicyKind::And(probe) = &ts.policies[1].kind else {
        panic!("not an and policy");
    };
    assert_eq!(
        probe[2].kind,
        PolicyKind::Probabilistic(ProbabilisticPolicy {
            hash_salt: HASH_SALT_DEFAULT.into(),
            sampling_percentage: 0.1,
        })
    );
    let Some(Exporter::Otlp(otlp)) = config.exporters.get(&id("otlp")) else {
        panic!("no otlp exporter");
    };
    assert_eq!(
        otlp.endpoint,
        Endpoint::parse("tempo.observability.svc:4317").unwrap()
    );
}

#[test]
fn embedded_default_listens_on_localhost_and_keeps_errors_slow_and_ten_percent() {
    let config = Config::embedded_default();
    assert_eq!(config.source, EMBEDDED_SOURCE);
    let Some(Receiver::Otlp(otlp)) = config.receivers.get(&id("otlp")) else {
        panic!("no otlp receiver");
    };
    assert_eq!(
        otlp.grpc.as_ref().unwrap().endpoint,
        Endpoint::parse("127.0.0.1:4317").unwrap()
    );
    assert_eq!(
        otlp.http.as_ref().unwrap().endpoint,
        Endpoint::parse("127.0.0.1:4318").unwrap()
    );
    let ts = tail_sampling(&config, "tail_sampling");
    assert_eq!(ts.decision_wait, DECISION_WAIT_DEFAULT);
    let kinds: Vec<&PolicyKind> = ts.policies.iter().map(|p| &p.kind).collect();
    assert_eq!(
        kinds,
        vec![
            &PolicyKind::StatusCode(StatusCodePolicy {
                status_codes: vec![StatusCode::Error]
            }),
            &PolicyKind::Latency(LatencyPolicy {
                threshold_ms: 1000,
                upper_threshold_ms: None
            }),
            &PolicyKind::Probabilistic(ProbabilisticPolicy {
                hash_salt: HASH_SALT_DEFAULT.into(),
                sampling_percentage: 10.0
            }),
        ]
    );
    assert!(matches!(
        config.exporters.get(&id("debug")),
        Some(Exporter::Debug(_))
    ));
    let pipeline = |signal, processors: &[&str]| Pipeline {
        id: PipelineId { signal, name: None },
        receivers: ids(&["otlp"]),
        processors: ids(processors),
        exporters: ids(&["debug"]),
    };
    assert_eq!(
        config.service.pipelines,
        vec![
            pipeline(Signal::Traces, &["tail_sampling", "batch"]),
            pipeline(Signal::Metrics, &["batch"]),
            pipeline(Signal::Logs, &["batch"]),
        ]
    );
    assert_eq!(
        config.service.telemetry.metrics.address,
        Endpoint::parse(TELEMETRY_ADDRESS_DEFAULT).unwrap()
    );
    assert_eq!(config.shards, Shards::default());
}

#[test]
fn a_protocol_key_without_value_is_enabled_with_defaults() {
    let config = parse(&format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
{MINIMAL_SERVICE}"
    ))
    .unwrap();
    let Some(Receiver::Otlp(otlp)) = config.receivers.get(&id("otlp")) else {
        panic!("no otlp receiver");
    };
    assert_eq!(
        otlp.grpc,
        Some(GrpcReceiver {
            endpoint: Endpoint::parse(GRPC_ENDPOINT_DEFAULT).unwrap(),
            auth: None,
            max_recv_msg_size_mib: 4,
            max_concurrent_streams: MAX_CONCURRENT_STREAMS_DEFAULT,
            keepalive: tailgate::ingest::keepalive::Keepalive::default(),
            tls: None,
            include_metadata: false,
        })
    );
    assert_eq!(otlp.http, None);
}

#[test]
fn grpc_keepalive_and_http_timeouts_take_the_collectors_keys() {
    let config = parse(&format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        keepalive:
          server_parameters:
            max_connection_idle: 11s
            max_connection_age: 12s
            max_connection_age_grace: 13s
            time: 30s
            timeout: 5s
          enforcement_policy:
            min_time: 10s
            permit_without_stream: true
      http:
        read_timeout: 7s
        read_header_timeout: 2s
        write_timeout: 3s
        idle_timeout: 1m
{MINIMAL_SERVICE}"
    ))
    .unwrap();
    let Some(Receiver::Otlp(otlp)) = config.receivers.get(&id("otlp")) else {
        panic!("no otlp receiver");
    };
    let keepalive = otlp.grpc.as_ref().unwrap().keepalive;
    assert_eq!(
        keepalive,
        tailgate::ingest::keepalive::Keepalive {
            max_connection_idle: Some(Duration::from_secs(11)),
            max_connection_age: Some(Duration::from_secs(12)),
            max_connection_age_grace: Some(Duration::from_secs(13)),
            time: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            min_time: Duration::from_secs(10),
            permit_without_stream: true,
        }
    );
    let timeouts = otlp.http.as_ref().unwrap().timeouts;
    assert_eq!(
        (
            timeouts.read,
            timeouts.read_header,
            timeouts.write,
            timeouts.idle
        ),
        (
            Duration::from_secs(7),
            Duration::from_secs(2),
            Duration::from_secs(3),
            Duration::from_secs(60)
        )
    );
    // 0 is gRPC's "unbounded" for the connection's idle time and age; HTTP timeouts must be
    // above 0; unknown keys are named.
    let unbounded = parse(&format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        keepalive:
          server_parameters:
            max_connection_idle: 0s
{MINIMAL_SERVICE}"
    ))
    .unwrap();
    let Some(Receiver::Otlp(otlp)) = unbounded.receivers.get(&id("otlp")) else {
        panic!("no otlp receiver");
    };
    assert_eq!(
        otlp.grpc.as_ref().unwrap().keepalive.max_connection_idle,
        None
    );
    let err = error(&format!(
        "
receivers:
  otlp:
    protocols:
      http:
        idle_timeout: 0s
{MINIMAL_SERVICE}"
    ));
    assert!(err.to_string().contains("idle_timeout"), "{err}");
    let err = error(&format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        keepalive:
          server_parameters:
            max_idle: 1s
{MINIMAL_SERVICE}"
    ));
    assert!(err.to_string().contains("max_idle"), "{err}");
}

#[test]
fn defaults_follow_the_collector() {
    let config = parse(
        "
receivers:
  otlp:
    protocols:
      http:
processors:
  batch:
  memory_limiter:
    check_interval: 5s
    limit_percentage: 80
  tail_sampling:
    policies: [{name: all, type: always_sample}]
exporters:
  otlp:
    endpoint: http://backend:4317
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch, tail_sampling]
      exporters: [otlp]
",
    )
    .unwrap();
    let Some(Receiver::Otlp(otlp)) = config.receivers.get(&id("otlp")) else {
        panic!("no otlp receiver");
    };
    let http = otlp.http.as_ref().unwrap();
    assert_eq!(
        http.endpoint,
        Endpoint::parse(HTTP_ENDPOINT_DEFAULT).unwrap()
    );
    assert_eq!(http.max_request_body_size, 20_971_520);
    assert_eq!(
        config.processors.get(&id("batch")),
        Some(&Processor::Batch(BatchProcessor {
            send_batch_size: 8192,
            send_batch_max_size: None,
            timeout: Duration::from_millis(200),
            metadata_keys: Vec::new(),
            metadata_cardinality_limit: 1000,
        }))
    );
    assert_eq!(
        config.processors.get(&id("memory_limiter")),
        Some(&Processor::MemoryLimiter(MemoryLimiter {
            check_interval: Duration::from_secs(5),
            limit: MemoryLimit::Percentage {
                limit_percentage: 80,
                spike_limit_percentage: 16
            },
        }))
    );
    let ts = tail_sampling(&config, "tail_sampling");
    assert_eq!(ts.decision_wait, Duration::from_secs(30));
    assert_eq!(ts.num_traces, 50_000);
    assert_eq!(ts.expected_new_traces_per_sec, 0);
    assert_eq!(ts.decision_cache, DecisionCache::default());
    assert!(!ts.sample_on_first_match && !ts.drop_pending_traces_on_shutdown);
    // tailgate's own key: off unless asked for.
    assert_eq!(ts.stress_relief.mode, StressReliefMode::Never);
    let Some(Exporter::Otlp(exporter)) = config.exporters.get(&id("otlp")) else {
        panic!("no otlp exporter");
    };
    assert_eq!(exporter.compression, Compression::Gzip);
    assert_eq!(exporter.timeout, Duration::from_secs(5));
    assert_eq!(
        exporter.retry_on_failure,
        RetryOnFailure {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            randomization_factor: 0.5,
            multiplier: 1.5,
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Some(Duration::from_secs(300)),
        }
    );
    assert_eq!(
        exporter.sending_queue,
        SendingQueue {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
            sizer: QueueSizer::Requests,
            block_on_overflow: true,
            drop_oldest_on_overflow: false,
            storage: None,
            batch: None,
        }
    );
    let telemetry = &config.service.telemetry;
    assert_eq!(telemetry.metrics.address.to_string(), "127.0.0.1:8888");
    assert_eq!(telemetry.metrics.level, MetricsLevel::Normal);
    assert_eq!(telemetry.logs.level, LogLevel::Info);
    assert_eq!(config.shards.cpus, Cpus::All);
    assert_eq!(config.shards.channel_capacity, 64);
}

#[test]
fn otlphttp_signal_urls_are_composed_like_the_collector() {
    let config = parse(
        "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  otlphttp:
    endpoint: http://collector:4318/
  otlphttp/traces-only:
    traces_endpoint: http://traces:8080/api/traces
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp, otlphttp/traces-only]
",
    )
    .unwrap();
    let Some(Exporter::OtlpHttp(base)) = config.exporters.get(&id("otlphttp")) else {
        panic!("no otlphttp exporter");
    };
    assert_eq!(
        base.url(Signal::Logs).unwrap().to_string(),
        "http://collector:4318/v1/logs"
    );
    let Some(Exporter::OtlpHttp(only)) = config.exporters.get(&id("otlphttp/traces-only")) else {
        panic!("no otlphttp/traces-only exporter");
    };
    assert_eq!(
        only.url(Signal::Traces).unwrap().path,
        "/api/traces".to_string()
    );
    assert_eq!(only.url(Signal::Metrics), None);
}

#[test]
fn compression_levels_are_checked_as_the_collector_checks_them() {
    let config = |exporter: &str| {
        format!(
            "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
{exporter}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
"
        )
    };
    let level = |yaml: &str| {
        let config = parse(yaml).unwrap();
        match config.exporters.get(&id("otlp")) {
            Some(Exporter::Otlp(otlp)) => (otlp.compression, otlp.compression_level),
            _ => panic!("no otlp exporter"),
        }
    };
    let otlp = |body: &str| {
        config(&format!(
            "  otlp:\n    endpoint: http://central:4317\n{body}"
        ))
    };
    assert_eq!(level(&otlp("")), (Compression::Gzip, None));
    assert_eq!(
        level(&otlp("    compression_params:\n      level: 1\n")),
        (Compression::Gzip, Some(1))
    );
    assert_eq!(
        level(&otlp(
            "    compression: zstd\n    compression_params:\n      level: 11\n"
        )),
        (Compression::Zstd, Some(11))
    );
    assert_eq!(
        level(&otlp("    compression_params: {level: -1}\n")),
        (Compression::Gzip, Some(-1))
    );
    assert_error(
        &error(&otlp("    compression_params:\n      level: 12\n")),
        9,
        "exporters.otlp.compression_params.level",
        "1 to 9",
    );
    assert_error(
        &error(&otlp("    compression_params:\n      level: -2\n")),
        9,
        "exporters.otlp.compression_params.level",
        "Huffman-only",
    );
    assert_eq!(
        level(&otlp("    compression: snappy\n")),
        (Compression::Snappy, None)
    );
    assert_error(
        &error(&otlp(
            "    compression: snappy\n    compression_params:\n      level: 1\n",
        )),
        10,
        "exporters.otlp.compression_params.level",
        "snappy has no levels",
    );
    assert_error(
        &error(&otlp(
            "    compression: none\n    compression_params:\n      level: 3\n",
        )),
        10,
        "exporters.otlp.compression_params.level",
        "needs a compression",
    );
    // zlib, deflate and lz4 over HTTP, as confighttp takes them; zlib and deflate at gzip's
    // levels, lz4 at none.
    let http_level = |yaml: &str| {
        let config = parse(yaml).unwrap();
        match config.exporters.get(&id("otlphttp")) {
            Some(Exporter::OtlpHttp(http)) => (http.compression, http.compression_level),
            _ => panic!("no otlphttp exporter"),
        }
    };
    let otlphttp = |body: &str| {
        config(&format!(
            "  otlp:\n    endpoint: http://central:4317\n  otlphttp:\n    endpoint: \
             http://central:4318\n{body}"
        ))
    };
    for (name, compression) in [
        ("zlib", Compression::Zlib),
        ("deflate", Compression::Deflate),
        ("lz4", Compression::Lz4),
    ] {
        assert_eq!(
            http_level(&otlphttp(&format!("    compression: {name}\n"))),
            (compression, None)
        );
    }
    assert_eq!(
        http_level(&otlphttp(
            "    compression: deflate\n    compression_params: {level: 9}\n"
        )),
        (Compression::Deflate, Some(9))
    );
    assert_error(
        &error(&otlphttp(
            "    compression: zlib\n    compression_params: {level: 10}\n",
        )),
        11,
        "exporters.otlphttp.compression_params.level",
        "10 is not a zlib level",
    );
    assert_error(
        &error(&otlphttp(
            "    compression: lz4\n    compression_params: {level: 1}\n",
        )),
        11,
        "exporters.otlphttp.compression_params.level",
        "lz4 has no levels",
    );
    assert_error(
        &error(&otlp("    compression_params:\n      speed: 3\n")),
        9,
        "exporters.otlp.compression_params.speed",
        "unknown",
    );
}

// ---------------------------------------------------------------------------------------------
// Unknown keys and component types.

#[test]
fn unknown_key_names_the_full_path_and_line() {
    let err = error(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
        endpoit: 0.0.0.0:4317
",
    );
    assert_error(
        &err,
        6,
        "receivers.otlp.protocols.grpc.endpoit",
        "unknown key `endpoit`",
    );
    assert!(err.to_string().contains("`endpoint`"), "{err}");
    assert!(matches!(err.kind(), ConfigErrorKind::UnknownKey { .. }));
    assert_eq!(err.column(), Some(9));
}

#[test]
fn unknown_key_in_a_flow_style_policy_block() {
    let err = error(
        "
processors:
  tail_sampling:
    policies:
      [
        {name: a, type: always_sample},
        {name: slow, type: latency, latency: {threshold_ms: 10, lower_ms: 1}},
      ]
",
    );
    assert_error(
        &err,
        6,
        "processors.tail_sampling.policies[1].latency.lower_ms",
        "unknown key `lower_ms`",
    );
}

#[test]
fn unknown_key_from_a_file_names_the_file() {
    let path = fixture("unknown_key.yaml");
    let err = Config::load(&path).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:6:9: ", path.display())),
        "{text}"
    );
    assert_eq!(err.path(), Some("receivers.otlp.protocols.grpc.keepalives"));
}

#[test]
fn unknown_top_level_key() {
    let err = error(
        "
receivers: {}
recievers: {}
",
    );
    assert_error(&err, 2, "recievers", "unknown key `recievers`");
}

#[test]
fn unknown_component_types_name_the_supported_ones() {
    let err = error(
        "
receivers:
  otlp:
    protocols: {grpc: }
  kafka/in:
    brokers: [a]
",
    );
    assert_error(
        &err,
        4,
        "receivers.kafka/in",
        "unknown receiver type `kafka`",
    );
    assert!(err.to_string().contains("tailgate has `otlp`"), "{err}");

    let err = error(
        "
processors:
  transform:
    trace_statements: []
",
    );
    assert_error(
        &err,
        2,
        "processors.transform",
        "unknown processor type `transform`",
    );
    assert!(
        err.to_string().contains(
            "`attributes`, `batch`, `filter`, `memory_limiter`, `resource` and `tail_sampling`"
        ),
        "{err}"
    );

    let err = error(
        "
exporters:
  debug:
  kafka:
    brokers: [a]
",
    );
    assert_error(&err, 3, "exporters.kafka", "unknown exporter type `kafka`");
    assert!(
        err.to_string()
            .contains("`otlp`, `otlp_grpc`, `otlphttp`, `otlp_http`, `debug`, `loadbalancing` and `load_balancing`"),
        "{err}"
    );
}

#[test]
fn malformed_component_ids_are_errors() {
    let err = error(
        "
exporters:
  debug/:
",
    );
    assert_error(&err, 2, "exporters.debug/", "name after `/` is empty");
}

// ---------------------------------------------------------------------------------------------
// Bad values.

#[test]
fn negative_sizes_are_errors() {
    let err = error(
        "
processors:
  batch:
    send_batch_size: -1
",
    );
    assert_error(
        &err,
        3,
        "processors.batch.send_batch_size",
        "must not be negative",
    );
}

#[test]
fn zero_where_not_allowed() {
    let err = error(
        "
processors:
  tail_sampling:
    num_traces: 0
    policies: [{name: a, type: always_sample}]
",
    );
    assert_error(
        &err,
        3,
        "processors.tail_sampling.num_traces",
        "0 is out of range; allowed: 1 to",
    );

    let err = error(
        "
receivers:
  otlp:
    protocols:
      grpc:
        max_recv_msg_size_mib: 0
",
    );
    assert_error(
        &err,
        5,
        "receivers.otlp.protocols.grpc.max_recv_msg_size_mib",
        "allowed: 1 to 1024",
    );

    let err = error(&format!(
        "
receivers:
  otlp:
    protocols: {{grpc: }}
{}
shards:
  channel_capacity: 0
",
        MINIMAL_SERVICE.trim()
    ));
    assert_error(&err, 12, "shards.channel_capacity", "allowed: 1 to 65536");

    let err = error(
        "
exporters:
  otlp:
    endpoint: http://backend:4317
    timeout: 0s
",
    );
    assert_error(&err, 4, "exporters.otlp.timeout", "must be above 0");
}

#[test]
fn malformed_durations_name_the_key() {
    let err = error(
        "
processors:
  batch:
    timeout: 5 parsecs
",
    );
    assert_error(
        &err,
        3,
        "processors.batch.timeout",
        "`5 parsecs` is not a duration",
    );

    // Go would read a bare number as nanoseconds; here it needs a unit.
    let err = error(
        "
processors:
  tail_sampling:
    decision_wait: 10
",
    );
    assert_error(
        &err,
        3,
        "processors.tail_sampling.decision_wait",
        "a number has no unit",
    );
}

#[test]
fn wrong_types_are_reported_in_yaml_terms() {
    let err = error(
        "
processors:
  batch: 5
",
    );
    assert_error(
        &err,
        2,
        "processors.batch",
        "expected a mapping of settings",
    );
    assert!(!err.to_string().contains("Raw"), "{err}");

    let err = error(
        "
processors:
  tail_sampling:
    sample_on_first_match: yes please
",
    );
    assert_error(
        &err,
        3,
        "processors.tail_sampling.sample_on_first_match",
        "expected a boolean",
    );
}

#[test]
fn percentages_outside_0_to_100() {
    let err = error(
        "
processors:
  tail_sampling:
    policies:
      - name: some
        type: probabilistic
        probabilistic:
          sampling_percentage: 150
",
    );
    assert_error(
        &err,
        7,
        "processors.tail_sampling.policies[0].probabilistic.sampling_percentage",
        "150 is not a percentage",
    );

    let err = error(
        "
processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: 101
",
    );
    assert_error(
        &err,
        4,
        "processors.memory_limiter.limit_percentage",
        "allowed: 1 to 100",
    );
}

#[test]
fn endpoints_must_be_host_port() {
    let err = error(
        "
receivers:
  otlp:
    protocols:
      http:
        endpoint: localhost
",
    );
    assert_error(
        &err,
        5,
        "receivers.otlp.protocols.http.endpoint",
        "`localhost` is not host:port",
    );

    let err = error(
        "
exporters:
  otlp:
    endpoint: http://central
",
    );
    assert_error(&err, 3, "exporters.otlp.endpoint", "the port is missing");

    let err = error(
        "
exporters:
  otlp:
    tls: {insecure: true}
",
    );
    assert_error(
        &err,
        2,
        "exporters.otlp.endpoint",
        "missing required key `endpoint`",
    );
}

#[test]
fn batch_max_below_batch_size() {
    let err = error(
        "
processors:
  batch:
    send_batch_size: 1000
    send_batch_max_size: 500
",
    );
    assert_error(
        &err,
        4,
        "processors.batch.send_batch_max_size",
        "500 is below send_batch_size (1000)",
    );
}

#[test]
fn memory_limiter_rules() {
    let err = error(
        "
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 1000
    spike_limit_mib: 1000
",
    );
    assert_error(
        &err,
        5,
        "processors.memory_limiter.spike_limit_mib",
        "must be below limit_mib (1000)",
    );

    let err = error(
        "
processors:
  memory_limiter:
    limit_mib: 1000
",
    );
    assert_error(
        &err,
        2,
        "processors.memory_limiter.check_interval",
        "missing required key `check_interval`",
    );
}

// ---------------------------------------------------------------------------------------------
// Tail sampling policies.

#[test]
fn bad_regex_names_the_policy_and_the_key() {
    let err = error(
        r"
processors:
  tail_sampling:
    policies:
      - name: routes
        type: string_attribute
        string_attribute:
          key: http.route
          values: [/api/.*, /v1/(users]
          enabled_regex_matching: true
",
    );
    assert_error(
        &err,
        8,
        "processors.tail_sampling.policies[0].string_attribute.values[1]",
        "policy `routes`, attribute `http.route`: `/v1/(users` is not a valid regular expression",
    );
}

/// A config whose traces pipeline runs `tail_sampling` with these policies (YAML list items
/// indented by 6).
fn with_policies(policies: &str) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
processors:
  tail_sampling:
    policies:
{policies}
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [debug]
"
    )
}

#[test]
fn ottl_condition_loads_wherever_the_collector_allows_it() {
    let config = parse(&with_policies(
        r#"      - name: errors
        type: ottl_condition
        ottl_condition:
          error_mode: IGNORE
          span: ['status.code == STATUS_CODE_ERROR', 'IsMatch(attributes["http.route"], "^/pay/")']
          spanevent: ['name == "exception"']
      - name: events-only
        type: ottl_condition
        ottl_condition: {spanevent: ['attributes["exception.type"] != nil']}
      - name: and
        type: and
        and:
          and_sub_policy:
            - {name: o, type: ottl_condition, ottl_condition: {span: ['kind == SPAN_KIND_SERVER']}}
            - {name: p, type: ottl_condition, ottl_condition: {span: ['flags == 1']}}
      - name: not
        type: not
        not:
          not_sub_policy: {name: o, type: ottl_condition, ottl_condition: {span: ['IsRootSpan()']}}
      - name: drop
        type: drop
        drop:
          drop_sub_policy:
            - {name: o, type: ottl_condition, ottl_condition: {error_mode: propagate, span: ['name == "health"']}}
      - name: c
        type: composite
        composite:
          max_total_spans_per_second: 100
          policy_order: [o]
          composite_sub_policy:
            - {name: o, type: ottl_condition, ottl_condition: {error_mode: silent, span: ['resource.attributes["tier"] == "gold"']}}
"#,
    ))
    .unwrap_or_else(|err| panic!("{err}"));
    let ts = tail_sampling(&config, "tail_sampling");
    let PolicyKind::OttlCondition(errors) = &ts.policies[0].kind else {
        panic!("{:?}", ts.policies[0].kind);
    };
    assert_eq!(errors.error_mode, ErrorMode::Ignore);
    let texts = |list: &[tailgate::ottl::Condition]| -> Vec<String> {
        list.iter().map(|c| c.text().to_string()).collect()
    };
    assert_eq!(
        texts(&errors.span),
        [
            "status.code == STATUS_CODE_ERROR",
            r#"IsMatch(attributes["http.route"], "^/pay/")"#
        ]
    );
    assert_eq!(texts(&errors.spanevent), [r#"name == "exception""#]);
    let PolicyKind::OttlCondition(events) = &ts.policies[1].kind else {
        panic!("{:?}", ts.policies[1].kind);
    };
    // Left out, the mode behaves as the Collector's empty one: silent.
    assert_eq!(events.error_mode, ErrorMode::Silent);
    assert!(events.span.is_empty() && events.spanevent.len() == 1);
    let PolicyKind::Drop(drop) = &ts.policies[4].kind else {
        panic!("{:?}", ts.policies[4].kind);
    };
    assert!(matches!(
        &drop[0].kind,
        PolicyKind::OttlCondition(p) if p.error_mode == ErrorMode::Propagate
    ));
}

#[test]
fn ottl_conditions_outside_the_subset_are_refused_naming_policy_and_condition() {
    let err = error(&with_policies(
        r#"      - name: slow
        type: ottl_condition
        ottl_condition:
          span:
            - 'name == "a"'
            - 'attributes["n"] * 2 > 10'
"#,
    ));
    assert_error(
        &err,
        13,
        "processors.tail_sampling.policies[0].ottl_condition.span[1]",
        "policy `slow`: the OTTL condition `attributes[\"n\"] * 2 > 10`, at character 17: \
         tailgate's OTTL subset does not support arithmetic",
    );
    assert!(matches!(err.kind(), ConfigErrorKind::Unsupported(_)));

    // What the Collector refuses too is an invalid value, not an unsupported one.
    let err = error(&with_policies(
        r#"      - name: typo
        type: ottl_condition
        ottl_condition: {spanevent: ['span.stauts.code == 2']}
"#,
    ));
    assert_error(
        &err,
        10,
        "processors.tail_sampling.policies[0].ottl_condition.spanevent[0]",
        "policy `typo`: the OTTL condition `span.stauts.code == 2`, at character 1: path \
         `span.stauts.code`: the span context has no `stauts`",
    );
    assert!(matches!(err.kind(), ConfigErrorKind::InvalidValue(_)));

    // Inside a compound policy, with its full path.
    let err = error(&with_policies(
        r#"      - name: both
        type: and
        and:
          and_sub_policy:
            - {name: o, type: ottl_condition, ottl_condition: {span: ['Concat(["a"], "") == name']}}
"#,
    ));
    assert_error(
        &err,
        12,
        "processors.tail_sampling.policies[0].and.and_sub_policy[0].ottl_condition.span[0]",
        "does not support the converter `Concat`",
    );
}

#[test]
fn ottl_condition_settings_are_checked() {
    let err = error(&with_policies(
        r#"      - name: o
        type: ottl_condition
        ottl_condition: {error_mode: loud, span: ['name == "a"']}
"#,
    ));
    assert_error(
        &err,
        10,
        "processors.tail_sampling.policies[0].ottl_condition.error_mode",
        "`loud` is not an error mode; use propagate, ignore or silent",
    );
    let err = error(&with_policies(
        r#"      - name: o
        type: ottl_condition
        ottl_condition: {error_mode: ignore, span: []}
"#,
    ));
    assert_error(
        &err,
        10,
        "processors.tail_sampling.policies[0].ottl_condition",
        "missing required key `span` or `spanevent`",
    );
    let many = vec!["'true'"; OTTL_CONDITIONS_MAX + 1].join(", ");
    let err = error(&with_policies(&format!(
        "      - name: o
        type: ottl_condition
        ottl_condition: {{span: [{many}]}}
"
    )));
    assert_error(
        &err,
        10,
        "processors.tail_sampling.policies[0].ottl_condition.span",
        "65 conditions; at most 64 are allowed",
    );
    // Scope paths are read from the scope each buffered span arrived under.
    parse(&with_policies(
        r#"      - name: lib
        type: ottl_condition
        ottl_condition: {span: ['instrumentation_scope.name == "okhttp"']}
"#,
    ))
    .unwrap();
}

#[test]
fn unknown_policy_type() {
    let err = error(
        "
processors:
  tail_sampling:
    policies: [{name: x, type: sometimes_sample}]
",
    );
    assert_error(
        &err,
        3,
        "processors.tail_sampling.policies[0].type",
        "unknown policy type `sometimes_sample`",
    );
}

#[test]
fn a_block_of_another_type_is_an_error() {
    let err = error(
        "
processors:
  tail_sampling:
    policies:
      - name: flag
        type: boolean_attribute
        boolean_attribute: {key: a, value: true}
        string_attribute: {key: a, values: [b]}
",
    );
    assert_error(
        &err,
        7,
        "processors.tail_sampling.policies[0].string_attribute",
        "a `string_attribute` block does not belong here",
    );
}

#[test]
fn required_policy_settings() {
    let err = error(
        "
processors:
  tail_sampling:
    policies:
      - name: slow
        type: latency
        latency: {upper_threshold_ms: 10}
",
    );
    assert_error(
        &err,
        6,
        "processors.tail_sampling.policies[0].latency.threshold_ms",
        "missing required key `threshold_ms`",
    );

    let err = error(
        "
processors:
  tail_sampling:
    policies:
      - type: always_sample
",
    );
    assert_error(
        &err,
        4,
        "processors.tail_sampling.policies[0].name",
        "missing required key `name`",
    );

    let err = error(
        "
processors:
  tail_sampling:
    decision_wait: 5s
",
    );
    assert_error(
        &err,
        2,
        "processors.tail_sampling.policies",
        "missing required key `policies`",
    );
}

#[test]
fn policy_names_are_unique_among_siblings() {
    let err = error(
        "
processors:
  tail_sampling:
    policies:
      - {name: keep, type: always_sample}
      - {name: keep, type: trace_flags}
",
    );
    assert_error(
        &err,
        5,
        "processors.tail_sampling.policies[1].name",
        "policy name `keep` is used twice",
    );
}

#[test]
fn compound_policies_nest_as_in_the_collector() {
    let err = error(
        "
processors:
  tail_sampling:
    policies:
      - name: both
        type: and
        and:
          and_sub_policy:
            - {name: inner, type: drop, drop: {drop_sub_policy: [{name: x, type: always_sample}]}}
",
    );
    assert_error(
        &err,
        8,
        "processors.tail_sampling.policies[0].and.and_sub_policy[0].type",
        "type `drop` cannot be an `and` or `drop` sub-policy",
    );
    // `not` may sit in `and` and `drop` (the Collector's AndSubPolicyCfg), but holds a simple
    // policy only.
    let config = parse(
        "
processors:
  tail_sampling:
    policies:
      - name: both
        type: and
        and:
          and_sub_policy:
            - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
            - {name: not-health, type: not, not: {not_sub_policy: {name: h, type: string_attribute, string_attribute: {key: service.name, values: [health]}}}}
      - name: quiet
        type: drop
        drop:
          drop_sub_policy:
            - {name: not-errors, type: not, not: {not_sub_policy: {name: e, type: status_code, status_code: {status_codes: [ERROR]}}}}
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  debug:
service:
  pipelines:
    traces: {receivers: [otlp], processors: [tail_sampling], exporters: [debug]}
",
    )
    .unwrap();
    let sampling = tail_sampling(&config, "tail_sampling");
    assert!(
        matches!(&sampling.policies[0].kind, PolicyKind::And(subs) if matches!(subs[1].kind, PolicyKind::Not(_)))
    );
    let err = error(
        "
processors:
  tail_sampling:
    policies:
      - name: n
        type: not
        not:
          not_sub_policy: {name: inner, type: not, not: {not_sub_policy: {name: a, type: always_sample}}}
",
    );
    assert_error(
        &err,
        7,
        "processors.tail_sampling.policies[0].not.not_sub_policy.type",
        "type `not` cannot be a `not` sub-policy",
    );
}

#[test]
fn composite_references_and_allocations() {
    let err = error(
        "
processors:
  tail_sampling:
    policies:
      - name: tiers
        type: composite
        composite:
          max_total_spans_per_second: 100
          policy_order: [errors, rest]
          composite_sub_policy:
            - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
            - {name: others, type: always_sample}
",
    );
    assert_error(
        &err,
        8,
        "processors.tail_sampling.policies[0].composite.policy_order[1]",
        "`rest` is not the name of a composite_sub_policy",
    );

    let err = error(
        "
processors:
  tail_sampling:
    policies:
      - name: tiers
        type: composite
        composite:
          max_total_spans_per_second: 100
          policy_order: [errors, others]
          composite_sub_policy:
            - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
            - {name: others, type: always_sample}
          rate_allocation:
            - {policy: errors, percent: 80}
            - {policy: others, percent: 30}
",
    );
    assert_error(
        &err,
        14,
        "processors.tail_sampling.policies[0].composite.rate_allocation[1].percent",
        "brings the allocations to 110 %",
    );
}

#[test]
fn numeric_attribute_bounds() {
    let err = error(
        "
processors:
  tail_sampling:
    policies:
      - name: codes
        type: numeric_attribute
        numeric_attribute:
          key: http.status_code
          min_value: 500
          max_value: 400
",
    );
    assert_error(
        &err,
        8,
        "processors.tail_sampling.policies[0].numeric_attribute.min_value",
        "500 is above max_value (400)",
    );
}

#[test]
fn status_codes_are_the_collectors() {
    let err = error(
        "
processors:
  tail_sampling:
    policies:
      - name: errors
        type: status_code
        status_code: {status_codes: [ERROR, error]}
",
    );
    assert_error(
        &err,
        6,
        "processors.tail_sampling.policies[0].status_code.status_codes[1]",
        "`error` is not a status code; use OK, ERROR or UNSET",
    );
}

// ---------------------------------------------------------------------------------------------
// Settings tailgate does not support yet.

#[test]
fn receiver_auth_must_name_a_defined_authenticator_and_cors_is_checked() {
    let err = error(
        "
receivers:
  otlp:
    protocols:
      http:
        auth:
          authenticator: bearertokenauth
",
    );
    assert_error(
        &err,
        6,
        "receivers.otlp.protocols.http.auth.authenticator",
        "authenticator `bearertokenauth` is not defined under `extensions` (no extensions are \
         defined)",
    );

    let cors = |body: &str| http_keys_config(&format!("        cors:\n{body}"));
    let parsed = |body: &str| http_receiver(&format!("        cors:\n{body}")).cors;
    assert_eq!(
        parsed(
            "          allowed_origins: [https://*.example.com]\n          allowed_headers: \
             [X-Tenant]\n          max_age: 7200"
        ),
        Some(Cors {
            allowed_origins: vec!["https://*.example.com".into()],
            allowed_headers: vec!["X-Tenant".into()],
            exposed_headers: Vec::new(),
            max_age: Some(7200),
        })
    );
    assert_eq!(
        parsed("          allowed_origins: [\"*\"]\n          exposed_headers: [X-Custom-Header]")
            .map(|cors| cors.exposed_headers),
        Some(vec!["X-Custom-Header".to_string()])
    );
    assert_error(
        &error(&cors(
            "          allowed_origins: [\"*\"]\n          exposed_headers: [\"bad header\"]",
        )),
        7,
        "receivers.otlp.protocols.http.cors.exposed_headers",
        "not an HTTP header name",
    );
    assert_eq!(
        parsed("          allowed_headers: [X-Tenant]"),
        None,
        "no origin: off, as in the Collector"
    );
    assert_error(
        &error(&cors(
            "          allowed_origins: [\"https://*.*.example.com\"]",
        )),
        6,
        "receivers.otlp.protocols.http.cors.allowed_origins",
        "more than one `*`",
    );
    assert_error(
        &error(&cors(
            "          allowed_origins: [\"*\"]\n          max_age: 100000",
        )),
        7,
        "receivers.otlp.protocols.http.cors.max_age",
        "86400",
    );
}

#[test]
fn exporters_choose_tls_as_the_collector_does() {
    let exporter = |yaml: &str| {
        let config = parse(&format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n{yaml}\nservice:\n  \
             pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp]\n"
        ))
        .unwrap();
        match config.exporters.get(&id("otlp")) {
            Some(Exporter::Otlp(otlp)) => otlp.tls.clone(),
            other => panic!("{other:?}"),
        }
    };
    // https://, and a bare host:port without `insecure: true`, are TLS; http:// is not.
    assert!(exporter("  otlp:\n    endpoint: https://central:4317").is_some());
    assert!(exporter("  otlp:\n    endpoint: central:4317").is_some());
    let tls = exporter(
        "  otlp:\n    endpoint: central:4317\n    tls:\n      ca_file: /etc/ca.pem\n      \
         server_name_override: central.example\n      min_version: \"1.3\"",
    )
    .unwrap();
    assert_eq!(tls.common.ca, Some(Pem::File("/etc/ca.pem".into())));
    assert_eq!(tls.server_name_override.as_deref(), Some("central.example"));
    assert_eq!(tls.common.min_version, TlsVersion::V1_3);
    assert!(exporter("  otlp:\n    endpoint: http://central:4317").is_none());
    assert!(
        exporter("  otlp:\n    endpoint: central:4317\n    tls:\n      insecure: true").is_none()
    );

    // TLS keys on an exporter that sends plaintext would be silently unused: refused.
    let err = error(
        "
exporters:
  otlphttp:
    endpoint: http://central:4318
    tls:
      ca_file: /etc/ca.pem
",
    );
    assert_error(
        &err,
        5,
        "exporters.otlphttp.tls.ca_file",
        "`ca_file` configures TLS, but the endpoint is plaintext (http://)",
    );
    let err = error(
        "
exporters:
  otlp:
    endpoint: central:4317
    tls:
      insecure: true
      cert_file: /etc/client.pem
      key_file: /etc/client-key.pem
",
    );
    assert_error(
        &err,
        6,
        "exporters.otlp.tls.cert_file",
        "but tls.insecure is true",
    );
    // One otlphttp exporter is TLS or plaintext, not both.
    let err = error(
        "
exporters:
  otlphttp:
    endpoint: https://central
    logs_endpoint: http://other:4318/v1/logs
",
    );
    assert_error(
        &err,
        4,
        "exporters.otlphttp.logs_endpoint",
        "mixes http and https",
    );
}

#[test]
fn tls_keys_are_checked_as_configtls_reads_them() {
    let receiver = |tls: &str| {
        parse(&format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        tls:\n{tls}\n\
             exporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: \
             [otlp]\n      exporters: [debug]\n"
        ))
    };
    let config = receiver(
        "          cert_file: /etc/tls/server.crt\n          key_file: /etc/tls/server.key\n          \
         client_ca_file: /etc/tls/ca.crt\n          reload_interval: 1h\n          \
         cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n          \
         curve_preferences: [X25519, P256]",
    )
    .unwrap();
    let Some(Receiver::Otlp(otlp)) = config.receivers.get(&id("otlp")) else {
        panic!("no otlp receiver");
    };
    let tls = otlp.grpc.as_ref().unwrap().tls.as_ref().unwrap();
    assert_eq!(tls.client_ca, Some(Pem::File("/etc/tls/ca.crt".into())));
    assert_eq!(tls.common.reload_interval, Some(Duration::from_secs(3600)));
    assert_eq!(tls.common.min_version, TlsVersion::V1_2);

    let refused = |tls: &str, at: &str, says: &str| {
        let err = receiver(tls).unwrap_err();
        assert!(
            err.to_string().contains(at) && err.to_string().contains(says),
            "{tls}: {err}"
        );
    };
    let pair = "          cert_file: /c\n          key_file: /k\n";
    refused(
        "          key_file: /k",
        "receivers.otlp.protocols.grpc.tls.cert_file",
        "missing",
    );
    refused(
        &format!("{pair}          cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]"),
        "tls.cipher_suites[0]",
        "CBC",
    );
    refused(
        &format!("{pair}          curve_preferences: [P521]"),
        "tls.curve_preferences[0]",
        "P521 is not implemented",
    );
    refused(
        &format!("{pair}          max_version: \"1.1\""),
        "tls.max_version",
        "rustls does not implement it",
    );
    refused(
        &format!("{pair}          min_version: \"1.3\"\n          max_version: \"1.2\""),
        "tls.min_version",
        "above max_version",
    );
    refused(
        &format!("{pair}          insecure_skip_verify: true"),
        "tls.insecure_skip_verify",
        "exporter's (client) setting",
    );
    refused(
        &format!("{pair}          cert_pem: x"),
        "tls.cert_pem",
        "not both",
    );
    refused(
        &format!("{pair}          tpm: {{enabled: true}}"),
        "tls.tpm",
        "TPM",
    );
    // A typo in a TLS key is a typo.
    refused(
        "          cert: /etc/tls/server.crt",
        "receivers.otlp.protocols.grpc.tls.cert",
        "unknown key `cert`",
    );
}

/// A configuration whose OTLP receiver serves HTTP with `keys` (lines indented as its keys),
/// one traces pipeline around it.
fn http_keys_config(keys: &str) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      http:
{keys}
exporters:
  otlp:
    endpoint: http://central:4317
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
"
    )
}

/// The HTTP receiver [`http_keys_config`] of `keys` parses to.
fn http_receiver(keys: &str) -> HttpReceiver {
    match parse(&http_keys_config(keys))
        .unwrap()
        .receivers
        .get(&id("otlp"))
    {
        Some(Receiver::Otlp(otlp)) => otlp.http.clone().expect("an HTTP receiver"),
        _ => panic!("no otlp receiver"),
    }
}

#[test]
fn http_compression_algorithms_are_the_collectors_names() {
    let config = |list: &str| http_keys_config(&format!("        compression_algorithms: {list}"));
    let algorithms = |list: &str| {
        http_receiver(&format!("        compression_algorithms: {list}")).compression_algorithms
    };
    assert_eq!(
        algorithms("[\"\", gzip, zstd, gzip]"),
        Some(vec!["".to_string(), "gzip".to_string(), "zstd".to_string()]),
        "in order, once each"
    );
    assert_eq!(algorithms("[]"), Some(vec![]));
    assert_error(
        &error(&config("[gzip, brotli]")),
        5,
        "receivers.otlp.protocols.http.compression_algorithms",
        "`brotli` is not a compression algorithm",
    );
}

#[test]
fn exporter_enumerations() {
    let err = error(
        "
exporters:
  otlp:
    endpoint: http://central:4317
    compression: lz4
",
    );
    assert_error(
        &err,
        4,
        "exporters.otlp.compression",
        "`lz4` compression is not supported over gRPC (the Collector's gRPC client refuses it \
         too); use gzip, zstd, snappy or none, or `lz4` on an otlphttp exporter",
    );
    let err = error(
        "
exporters:
  otlphttp:
    endpoint: http://central:4318
    compression: br
",
    );
    assert_error(
        &err,
        4,
        "exporters.otlphttp.compression",
        "`br` is not a compression; use gzip, zstd, snappy, zlib, deflate, lz4 or none",
    );

    let err = error(
        "
exporters:
  debug:
    verbosity: loud
",
    );
    assert_error(
        &err,
        3,
        "exporters.debug.verbosity",
        "`loud` is not a verbosity; use basic, normal or detailed",
    );

    let err = error(
        "
exporters:
  otlp:
    endpoint: http://central:4317
    sending_queue:
      storage: file_storage
",
    );
    assert_error(
        &err,
        5,
        "exporters.otlp.sending_queue.storage",
        "storage `file_storage` is not defined under `extensions`",
    );
}

#[test]
fn a_sending_queue_is_bounded_in_the_sizer_it_names() {
    let queue = |body: &str| {
        format!(
            "
receivers:
  otlp:
    protocols: {{grpc: }}
exporters:
  otlp:
    endpoint: http://central:4317
    sending_queue:
{body}service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp]}}
"
        )
    };
    let config = parse(&queue("      sizer: bytes\n      queue_size: 536870912\n")).unwrap();
    let Some(Exporter::Otlp(otlp)) = config.exporters.get(&id("otlp")) else {
        panic!("no otlp exporter");
    };
    assert_eq!(otlp.sending_queue.sizer, QueueSizer::Bytes);
    assert_eq!(otlp.sending_queue.queue_size, 512 << 20);
    let config = parse(&queue("      sizer: items\n      queue_size: 200000\n")).unwrap();
    let Some(Exporter::Otlp(otlp)) = config.exporters.get(&id("otlp")) else {
        panic!("no otlp exporter");
    };
    assert_eq!(otlp.sending_queue.sizer, QueueSizer::Items);
    assert!(
        otlp.sending_queue.block_on_overflow,
        "tailgate waits by default"
    );
    let config = parse(&queue("      block_on_overflow: false\n")).unwrap();
    let Some(Exporter::Otlp(otlp)) = config.exporters.get(&id("otlp")) else {
        panic!("no otlp exporter");
    };
    assert!(!otlp.sending_queue.block_on_overflow);

    let err = error(&queue("      sizer: pages\n      queue_size: 10\n"));
    assert_error(
        &err,
        8,
        "exporters.otlp.sending_queue.sizer",
        "`pages` is not a sizer; use requests, items or bytes",
    );
    // Left out, the Collector's 1000 whatever the sizer (with a warning: it holds about one
    // batch at a time in items or bytes).
    let config = parse(&queue("      sizer: bytes\n")).unwrap();
    let Some(Exporter::Otlp(otlp)) = config.exporters.get(&id("otlp")) else {
        panic!("no otlp exporter");
    };
    assert_eq!(
        (otlp.sending_queue.sizer, otlp.sending_queue.queue_size),
        (QueueSizer::Bytes, 1000)
    );
    let err = error(&queue("      queue_size: 2000000\n"));
    assert_error(
        &err,
        8,
        "exporters.otlp.sending_queue.queue_size",
        "allowed: 1 to 1000000",
    );
}

#[test]
fn extensions_other_than_authenticators_and_health_check_are_refused() {
    let err = error(
        "
extensions:
  oauth2client:
",
    );
    assert_error(
        &err,
        2,
        "extensions.oauth2client",
        "extension type `oauth2client` is not supported; tailgate has the authenticators \
         `bearertokenauth` and `basicauth`, `headers_setter` for exporters' headers, \
         `health_check`, and `file_storage`",
    );

    let err = error(&format!(
        "
receivers:
  otlp:
    protocols: {{grpc: }}
{}
  extensions: [pprof]
",
        MINIMAL_SERVICE.trim()
    ));
    assert_error(
        &err,
        11,
        "service.extensions[0]",
        "extension `pprof` is not defined under `extensions` (no extensions are defined)",
    );

    // Empty is fine.
    parse(&format!(
        "
extensions: {{}}
receivers:
  otlp:
    protocols: {{grpc: }}
{}
  extensions: []
",
        MINIMAL_SERVICE.trim()
    ))
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Pipelines.

const COMPONENTS: &str = "
receivers:
  otlp:
    protocols: {grpc: }
processors:
  batch:
  tail_sampling:
    policies: [{name: all, type: always_sample}]
exporters:
  debug:
  otlphttp/traces:
    traces_endpoint: http://traces:4318/v1/traces
";

#[test]
fn pipelines_must_name_defined_components() {
    let err = error(&format!(
        "{COMPONENTS}service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug, otlp/backup]
"
    ));
    assert_error(
        &err,
        17,
        "service.pipelines.traces.exporters[1]",
        "pipeline `traces` uses exporter `otlp/backup`, which is not defined under `exporters`",
    );
    assert!(matches!(err.kind(), ConfigErrorKind::Reference(_)));

    let err = error(&format!(
        "{COMPONENTS}service:
  pipelines:
    logs/audit:
      receivers: [otlp/other]
      exporters: [debug]
"
    ));
    assert_error(
        &err,
        15,
        "service.pipelines.logs/audit.receivers[0]",
        "pipeline `logs/audit` uses receiver `otlp/other`",
    );
}

#[test]
fn pipelines_need_a_receiver_and_an_exporter() {
    let err = error(&format!(
        "{COMPONENTS}service:
  pipelines:
    metrics:
      receivers: [otlp]
"
    ));
    assert_error(
        &err,
        14,
        "service.pipelines.metrics",
        "pipeline `metrics` needs at least one exporter",
    );

    let err = error(&format!(
        "{COMPONENTS}service:
  pipelines: {{}}
"
    ));
    assert_error(
        &err,
        13,
        "service.pipelines",
        "at least one pipeline is needed",
    );
}

#[test]
fn tail_sampling_only_in_traces_pipelines() {
    let err = error(&format!(
        "{COMPONENTS}service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [debug]
    metrics:
      receivers: [otlp]
      processors: [batch, tail_sampling]
      exporters: [debug]
"
    ));
    assert_error(
        &err,
        20,
        "service.pipelines.metrics.processors[1]",
        "tail_sampling works on traces only",
    );
}

#[test]
fn pipeline_lists_have_no_repeats() {
    let err = error(&format!(
        "{COMPONENTS}service:
  pipelines:
    traces:
      receivers: [otlp, otlp]
      exporters: [debug]
"
    ));
    assert_error(
        &err,
        15,
        "service.pipelines.traces.receivers[1]",
        "lists receiver `otlp` twice",
    );
}

#[test]
fn otlphttp_needs_a_url_for_each_signal_it_serves() {
    let err = error(&format!(
        "{COMPONENTS}service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlphttp/traces]
"
    ));
    assert_error(
        &err,
        16,
        "service.pipelines.logs.exporters[0]",
        "has neither `endpoint` nor `logs_endpoint`",
    );
}

#[test]
fn unknown_signal_and_missing_service() {
    let err = error(&format!(
        "{COMPONENTS}service:
  pipelines:
    spans:
      receivers: [otlp]
      exporters: [debug]
"
    ));
    assert_error(
        &err,
        14,
        "service.pipelines.spans",
        "`spans` is not a signal",
    );

    let err = error(COMPONENTS);
    assert_eq!(err.path(), Some("service"));
    assert!(
        err.to_string().contains("missing required key `service`"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Shards.

#[test]
fn shard_cpus_are_checked() {
    let base = format!(
        "
receivers:
  otlp:
    protocols: {{grpc: }}
{}
shards:
",
        MINIMAL_SERVICE.trim()
    );
    let err = error(&format!("{base}  cpus: [0, 1, 1]\n"));
    assert_error(&err, 12, "shards.cpus[2]", "CPU 1 is listed twice");
    let err = error(&format!("{base}  cpus: [0, 4096]\n"));
    assert_error(&err, 12, "shards.cpus[1]", "allowed: 0 to 4095");
    let err = error(&format!("{base}  cpus: some\n"));
    assert_error(
        &err,
        12,
        "shards.cpus",
        "expected `all` or a list of CPU ids",
    );
    let config = parse(&format!("{base}  cpus: all\n")).unwrap();
    assert_eq!(config.shards.cpus, Cpus::All);
}

#[test]
fn shard_tuning_keys_are_read_and_bounded() {
    let base = format!(
        "
receivers:
  otlp:
    protocols: {{grpc: }}
{}
shards:
",
        MINIMAL_SERVICE.trim()
    );
    let config = parse(&format!(
        "{base}  cpus: [2, 3]\n  irq_cpus: [0, 1]\n  numa_bind: true\n  memory_per_shard_mib: 512\n  \
         ring_depth: 256\n  spin_before_park_us: 50\n  socket_receive_buffer_bytes: 4194304\n  \
         socket_send_buffer_bytes: 1048576\n  incoming_cpu: true\n  \
         memory_budget_whole_process: false\n"
    ))
    .unwrap();
    assert_eq!(
        config.shards,
        Shards {
            profile: None,
            cpus: Cpus::List(vec![2, 3]),
            irq_cpus: vec![0, 1],
            numa_bind: true,
            memory_per_shard_mib: Some(512),
            memory_budget_whole_process: false,
            ring_depth: 256,
            spin_before_park: Duration::from_micros(50),
            socket_receive_buffer_bytes: 4 << 20,
            socket_send_buffer_bytes: 1 << 20,
            incoming_cpu: true,
            channel_capacity: 64,
        }
    );
    let err = error(&format!("{base}  ring_depth: 100\n"));
    assert_error(&err, 12, "shards.ring_depth", "not a power of two");
    let err = error(&format!("{base}  ring_depth: 65536\n"));
    assert_error(&err, 12, "shards.ring_depth", "allowed: 8 to 32768");
    let err = error(&format!("{base}  spin_before_park_us: 20000\n"));
    assert_error(
        &err,
        12,
        "shards.spin_before_park_us",
        "allowed: 0 to 10000",
    );
    let err = error(&format!("{base}  irq_cpus: [0, 0]\n"));
    assert_error(&err, 12, "shards.irq_cpus[1]", "CPU 0 is listed twice");
    let err = error(&format!("{base}  cpus: [0, 1]\n  irq_cpus: [1]\n"));
    assert_error(
        &err,
        12,
        "shards.cpus",
        "CPU 1 is both a shard's and in irq_cpus",
    );
    let err = error(&format!("{base}  memory_per_shard_mib: 0\n"));
    assert_error(&err, 12, "shards.memory_per_shard_mib", "allowed: 1 to");
}

/// A configuration `gateway.yaml` and a profile `profile.yaml` in a fresh folder.
fn with_profile(name: &str, config_shards: &str, profile: &str) -> Result<Config, ConfigError> {
    let dir = std::env::temp_dir().join(format!("tailgate-profile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(dir.join("tuning")).unwrap();
    std::fs::write(dir.join("tuning/profile.yaml"), profile).unwrap();
    let config = format!(
        "receivers:\n  otlp:\n    protocols: {{grpc: }}\n{}\nshards:\n  profile: \
         tuning/profile.yaml\n{config_shards}",
        MINIMAL_SERVICE.trim()
    );
    std::fs::write(dir.join("gateway.yaml"), config).unwrap();
    let loaded = Config::load(&dir.join("gateway.yaml"));
    std::fs::remove_dir_all(&dir).unwrap();
    loaded
}

#[test]
fn a_profile_fills_in_the_shards_section_and_the_configuration_wins() {
    let profile = "# a 16-core server\nshards:\n  cpus: [2, 3, 4]\n  irq_cpus: [0, 1]\n  \
                   ring_depth: 256\n  spin_before_park_us: 50\n  numa_bind: true\n";
    let config = with_profile("fills", "  spin_before_park_us: 0\n", profile).unwrap();
    let shards = &config.shards;
    assert!(shards
        .profile
        .as_ref()
        .unwrap()
        .ends_with("tuning/profile.yaml"));
    assert_eq!(shards.cpus, Cpus::List(vec![2, 3, 4]));
    assert_eq!(shards.irq_cpus, vec![0, 1]);
    assert_eq!(shards.ring_depth, 256);
    assert!(shards.numa_bind);
    assert_eq!(
        shards.spin_before_park,
        Duration::ZERO,
        "the configuration's key wins"
    );
    assert_eq!(shards.channel_capacity, 64);

    // A profile's mistake is reported at the profile's own line and key.
    let err = with_profile("bad", "", "shards:\n  cpus: [0]\n  ring_depth: 3\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("profile.yaml:3:"), "{text}");
    assert_eq!(err.path(), Some("shards.ring_depth"), "{text}");
    let err = with_profile("unknown", "", "shards:\n  rings: 3\n").unwrap_err();
    assert!(err.to_string().contains("profile.yaml:2:"), "{err}");
    let err = with_profile("nested", "", "shards:\n  profile: other.yaml\n").unwrap_err();
    assert!(
        err.to_string().contains("cannot name another profile"),
        "{err}"
    );
    let err = with_profile("top", "", "receivers: {}\nshards: {}\n").unwrap_err();
    assert!(err.to_string().contains("profile.yaml:1:"), "{err}");
    // An overlap across the two documents is the configuration's, naming the profile.
    let err = with_profile("overlap", "  cpus: [0, 5]\n", profile).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("CPU 0 is both"), "{text}");
    assert!(text.contains("profile.yaml"), "{text}");
}

#[test]
fn a_missing_profile_is_an_error_at_the_profile_key() {
    let text = format!(
        "receivers:\n  otlp:\n    protocols: {{grpc: }}\n{}\nshards:\n  profile: /nonexistent/p.yaml\n",
        MINIMAL_SERVICE.trim()
    );
    let err = Config::from_yaml(&text, "test.yaml").unwrap_err();
    assert_eq!(err.path(), Some("shards.profile"), "{err}");
    assert!(
        err.to_string()
            .contains("/nonexistent/p.yaml cannot be used"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// YAML itself.

#[test]
fn duplicate_keys_are_errors() {
    let err = error(
        "
processors:
  batch:
    timeout: 1s
    send_batch_size: 10
    timeout: 2s
",
    );
    assert_error(&err, 5, "processors.batch.timeout", "appears twice");
    assert!(err.to_string().contains("first on line 3"), "{err}");
}

#[test]
fn syntax_errors_have_a_line() {
    let err = error(
        "
receivers:
  otlp:
    protocols: [grpc
exporters:
",
    );
    assert!(matches!(err.kind(), ConfigErrorKind::Syntax(_)), "{err}");
    assert_eq!(err.line(), Some(4), "{err}");
    assert!(err.to_string().starts_with("test.yaml:4:"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Environment substitution.

#[test]
fn env_references_are_substituted() {
    // Names unique to this test: tests run in parallel in one process.
    std::env::set_var("TAILGATE_CFG_TEST_GRPC_PORT", "14317");
    std::env::set_var("TAILGATE_CFG_TEST_TOKEN", "s3cr\"t");
    std::env::set_var("TAILGATE_CFG_TEST_PCT", "25");
    let config = parse(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:${env:TAILGATE_CFG_TEST_GRPC_PORT}
      http:
        endpoint: ${env:TAILGATE_CFG_TEST_UNSET_HTTP:-127.0.0.1:24318}
        traces_url_path: /cost$$/v1/traces   # ${env:NOT_EXPANDED_IN_COMMENTS}
processors:
  tail_sampling:
    policies:
      - name: some
        type: probabilistic
        probabilistic: {sampling_percentage: ${env:TAILGATE_CFG_TEST_PCT}}
exporters:
  otlp:
    endpoint: http://backend:4317
    headers:
      authorization: "Bearer ${env:TAILGATE_CFG_TEST_TOKEN}"
      x-literal: $${env:TAILGATE_CFG_TEST_TOKEN}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [otlp]
"#,
    )
    .unwrap();
    let Some(Receiver::Otlp(otlp)) = config.receivers.get(&id("otlp")) else {
        panic!("no otlp receiver");
    };
    assert_eq!(otlp.grpc.as_ref().unwrap().endpoint.port, 14317);
    let http = otlp.http.as_ref().unwrap();
    assert_eq!(http.endpoint.to_string(), "127.0.0.1:24318");
    assert_eq!(http.traces_url_path, "/cost$/v1/traces");
    let ts = tail_sampling(&config, "tail_sampling");
    assert_eq!(
        ts.policies[0].kind,
        PolicyKind::Probabilistic(ProbabilisticPolicy {
            hash_salt: HASH_SALT_DEFAULT.into(),
            sampling_percentage: 25.0
        })
    );
    let Some(Exporter::Otlp(exporter)) = config.exporters.get(&id("otlp")) else {
        panic!("no otlp exporter");
    };
    assert_eq!(exporter.headers["authorization"], "Bearer s3cr\"t");
    assert_eq!(
        exporter.headers["x-literal"],
        "${env:TAILGATE_CFG_TEST_TOKEN}"
    );
}

#[test]
fn unset_env_variable_names_the_variable_and_line() {
    let err = error(
        "
exporters:
  otlp:
    endpoint: ${env:TAILGATE_CFG_TEST_SURELY_UNSET}
",
    );
    assert_eq!((err.line(), err.column()), (Some(3), Some(15)), "{err}");
    assert!(matches!(err.kind(), ConfigErrorKind::Substitution(_)));
    let text = err.to_string();
    assert!(text.starts_with("test.yaml:3:15: "), "{text}");
    assert!(
        text.contains("environment variable TAILGATE_CFG_TEST_SURELY_UNSET is not set"),
        "{text}"
    );
}

/// `${VAR}` is `${env:VAR}` (the Collector's distributions set `DefaultScheme: env`), and
/// `${file:PATH}` is a one-line file's content, as the Collector's file provider gives a secret
/// kept in a file; other providers are refused with the reason.
#[test]
fn env_references_without_a_provider_and_file_references() {
    std::env::set_var("TAILGATE_CFG_TEST_BACKEND", "central.example.com:4317");
    let token = std::env::temp_dir().join(format!("tailgate-cfg-token-{}", std::process::id()));
    std::fs::write(&token, "Bearer s3cr3t\n").unwrap();
    let config = parse(&format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  otlp:
    endpoint: ${{TAILGATE_CFG_TEST_BACKEND}}
    headers:
      authorization: ${{file:{}}}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
",
        token.display()
    ))
    .unwrap();
    let _ = std::fs::remove_file(&token);
    let Some(Exporter::Otlp(otlp)) = config.exporters.get(&id("otlp")) else {
        panic!("no otlp exporter");
    };
    assert_eq!(otlp.endpoint.to_string(), "central.example.com:4317");
    assert_eq!(
        otlp.headers.get("authorization").map(String::as_str),
        Some("Bearer s3cr3t")
    );

    let err = error(
        "
exporters:
  otlp:
    endpoint: ${TAILGATE_CFG_TEST_SURELY_UNSET_TOO}
",
    );
    assert_eq!(err.line(), Some(3), "{err}");
    assert!(
        err.to_string()
            .contains("TAILGATE_CFG_TEST_SURELY_UNSET_TOO is not set"),
        "{err}"
    );
    let err = error(
        "
exporters:
  otlp:
    endpoint: ${http:example.com/backend}
",
    );
    assert!(err.to_string().contains("`http` provider"), "{err}");
}

#[test]
fn columns_after_substitution_point_into_the_file() {
    std::env::set_var(
        "TAILGATE_CFG_TEST_LONG_HOST",
        "a-rather-long-host-name.example.com",
    );
    let err = error(
        "
receivers:
  otlp:
    protocols:
      grpc: {endpoint: '${env:TAILGATE_CFG_TEST_LONG_HOST}:4317', transport: unix}
",
    );
    // `unix` is at column 78 of the file, whatever the length of the substituted host.
    assert_error(
        &err,
        4,
        "receivers.otlp.protocols.grpc.transport",
        "transport `unix` is not supported",
    );
    assert_eq!(err.column(), Some(78), "{err}");
}

#[test]
fn load_reports_unreadable_files() {
    let err = Config::load(&fixture("does-not-exist.yaml")).unwrap_err();
    assert!(matches!(err.kind(), ConfigErrorKind::Read(_)), "{err}");
    assert!(
        err.to_string()
            .contains("does-not-exist.yaml: cannot read the file"),
        "{err}"
    );
}

#[test]
fn metrics_levels_basic_and_detailed_are_read_as_normal() {
    for level in ["basic", "detailed", "Detailed"] {
        let config = parse(&format!(
            "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
  telemetry:
    metrics:
      level: {level}
"
        ))
        .unwrap_or_else(|err| panic!("{level}: {err}"));
        assert_eq!(
            config.service.telemetry.metrics.level,
            MetricsLevel::Normal,
            "{level}"
        );
    }
    let config = parse(
        "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
  telemetry:
    metrics:
      level: None
",
    )
    .unwrap();
    assert_eq!(config.service.telemetry.metrics.level, MetricsLevel::None);
}

#[test]
fn pipelines_of_one_signal_must_take_the_same_receivers() {
    let err = error(
        "
receivers:
  otlp:
    protocols:
      grpc:
  otlp/internal:
    protocols:
      http:
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
    traces/internal:
      receivers: [otlp/internal]
      exporters: [debug]
",
    );
    assert_error(
        &err,
        16,
        "service.pipelines.traces/internal.receivers",
        "all traces pipelines must list the same receivers",
    );
    // The same receivers in another order, and other signals with other receivers, are fine.
    parse(
        "
receivers:
  otlp:
    protocols:
      grpc:
  otlp/internal:
    protocols:
      http:
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp, otlp/internal]
      exporters: [debug]
    traces/copy:
      receivers: [otlp/internal, otlp]
      exporters: [debug]
    logs:
      receivers: [otlp/internal]
      exporters: [debug]
",
    )
    .unwrap();
}

#[test]
fn one_pipeline_at_most_may_use_tail_sampling() {
    let err = error(
        "
receivers:
  otlp:
    protocols:
      grpc:
processors:
  batch:
  tail_sampling:
    policies: [{name: all, type: always_sample}]
  tail_sampling/errors:
    policies: [{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}]
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [debug]
    traces/errors:
      receivers: [otlp]
      processors: [batch, tail_sampling/errors]
      exporters: [debug]
",
    );
    assert_error(
        &err,
        21,
        "service.pipelines.traces/errors.processors[1]",
        "so does `traces`",
    );
}

#[test]
fn string_attribute_patterns_must_compile_together() {
    // Each pattern fits the regex crate's size limit alone; two of them as one set do not.
    let values: Vec<String> = (0..2).map(|i| format!("\"\\\\w{{200}}{i}\"")).collect();
    let err = error(&format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
processors:
  tail_sampling:
    policies:
      - name: long
        type: string_attribute
        string_attribute:
          key: http.route
          enabled_regex_matching: true
          values: [{}]
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [debug]
",
        values.join(", ")
    ));
    assert!(err.to_string().contains("do not compile together"), "{err}");
    assert_eq!(err.line(), Some(13), "{err}");
}

#[test]
fn sampling_strategy_num_shards_and_tail_storage_are_read_as_the_collector_defines_them() {
    let config = parse(
        r#"
processors:
  tail_sampling:
    sampling_strategy: span-ingest
    num_shards: 8
    policies:
      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: slow, type: latency, latency: {threshold_ms: 500}}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [tail_sampling], exporters: [debug]}
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  debug:
"#,
    )
    .unwrap();
    let sampling = tail_sampling(&config, "tail_sampling");
    assert_eq!(sampling.sampling_strategy, SamplingStrategy::SpanIngest);
    assert_eq!(sampling.num_shards, 8);

    let err = error(
        r#"
processors:
  tail_sampling:
    sampling_strategy: span-ingest
    policies:
      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: rate, type: rate_limiting, rate_limiting: {spans_per_second: 10}}
"#,
    );
    assert_error(
        &err,
        6,
        "processors.tail_sampling.policies[1]",
        "requires all policies to be stateless, but policy `rate` is stateful",
    );
    let err = error(
        "
processors:
  tail_sampling:
    sampling_strategy: span_ingest
    policies: [{name: a, type: always_sample}]
",
    );
    assert_error(
        &err,
        3,
        "processors.tail_sampling.sampling_strategy",
        "expected `trace-complete` or `span-ingest`",
    );
    let err = error(
        "
processors:
  tail_sampling:
    num_shards: 257
    policies: [{name: a, type: always_sample}]
",
    );
    assert_error(&err, 3, "processors.tail_sampling.num_shards", "256");
    let err = error(
        "
processors:
  tail_sampling:
    tail_storage: file_storage/traces
    policies: [{name: a, type: always_sample}]
",
    );
    assert_error(
        &err,
        3,
        "processors.tail_sampling.tail_storage",
        "no tail storage extensions",
    );
    assert!(matches!(err.kind(), ConfigErrorKind::Unsupported(_)));
}

/// `tail_sampling.stress_relief` (tailgate's own): its defaults, and each bad value an error
/// naming the key, with the reason a user can act on.
#[test]
fn stress_relief_takes_bounded_levels_below_refusing() {
    let with = |block: &str| {
        format!(
            "
processors:
  tail_sampling:
    policies: [{{name: a, type: always_sample}}]
    stress_relief:
{block}"
        )
    };
    let whole = |block: &str| {
        format!(
            "{}receivers:\n  otlp:\n    protocols: {{grpc: }}\n{}",
            with(block),
            MINIMAL_SERVICE.trim_start()
        )
    };
    let config = parse(&whole(
        "      mode: monitor\n      sampling_percentage: 5\n",
    ))
    .unwrap();
    assert_eq!(
        tail_sampling(&config, "tail_sampling").stress_relief,
        StressRelief {
            mode: StressReliefMode::Monitor,
            activation_level: ACTIVATION_LEVEL_DEFAULT,
            deactivation_level: DEACTIVATION_LEVEL_DEFAULT,
            sampling_percentage: 5.0,
            minimum_activation_duration: MINIMUM_ACTIVATION_DURATION_DEFAULT,
        }
    );
    assert_eq!(
        (ACTIVATION_LEVEL_DEFAULT, DEACTIVATION_LEVEL_DEFAULT),
        (90.0, 75.0)
    );
    let config = parse(&whole(
        "      mode: always
      activation_level: 60
      deactivation_level: 40.5
      sampling_percentage: 12.5
      minimum_activation_duration: 1m
",
    ))
    .unwrap();
    let relief = tail_sampling(&config, "tail_sampling").stress_relief;
    assert_eq!(relief.mode, StressReliefMode::Always);
    assert_eq!(
        (relief.activation_level, relief.deactivation_level),
        (60.0, 40.5)
    );
    assert_eq!(relief.minimum_activation_duration, Duration::from_secs(60));

    let key = |k: &str| format!("processors.tail_sampling.stress_relief.{k}");
    let err = error(&with("      mode: sometimes\n"));
    assert_error(&err, 5, &key("mode"), "use never, monitor or always");
    let err = error(&with("      mode: monitor\n"));
    assert_error(&err, 4, &key("sampling_percentage"), "sampling_percentage");
    // At 100 % of its budget a shard refuses: stress relief must start before that.
    let err = error(&with(
        "      mode: monitor\n      sampling_percentage: 5\n      activation_level: 100\n",
    ));
    assert_error(
        &err,
        7,
        &key("activation_level"),
        "a shard refuses new data at 100 % of its memory budget",
    );
    let err = error(&with(
        "      activation_level: 80\n      deactivation_level: 80\n",
    ));
    assert_error(
        &err,
        6,
        &key("deactivation_level"),
        "below activation_level (80)",
    );
    // An activation level under the default deactivation level needs one of its own.
    let err = error(&with("      activation_level: 70\n"));
    assert_error(
        &err,
        5,
        &key("activation_level"),
        "set deactivation_level below it",
    );
    let err = error(&with("      sampling_percentage: 101\n"));
    assert_error(&err, 5, &key("sampling_percentage"), "allowed: 0 to 100");
    let err = error(&with("      minimum_activation_duration: 2h\n"));
    assert_error(&err, 5, &key("minimum_activation_duration"), "at most 1h");
    let err = error(&with("      activation: 80\n"));
    assert!(
        err.to_string().contains("activation"),
        "unknown key named: {err}"
    );
}

#[test]
fn the_collectors_readers_layout_places_the_metrics_endpoint() {
    let with = |telemetry: &str| {
        parse(&format!(
            "receivers:
  otlp:
    protocols:
      grpc:
exporters:
  debug:
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [debug]}}
  telemetry:
    metrics:
{telemetry}"
        ))
    };
    let config = with(
        "      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: 0.0.0.0
                port: 9464
",
    )
    .unwrap();
    assert_eq!(
        config.service.telemetry.metrics.address.to_string(),
        "0.0.0.0:9464"
    );
    let config = with("      readers: [{pull: {exporter: {prometheus: {}}}}]\n").unwrap();
    assert_eq!(
        config.service.telemetry.metrics.address.to_string(),
        "localhost:8888"
    );

    let err = with(
        "      address: 127.0.0.1:8888
      readers: [{pull: {exporter: {prometheus: {port: 8888}}}}]
",
    )
    .unwrap_err();
    assert_eq!(err.path(), Some("service.telemetry.metrics.readers"));
    assert!(err.to_string().contains("not both"), "{err}");
    // A periodic reader loads (periodic_readers_read_as_otelconf_reads_them has the rest); a
    // second pull reader does not.
    let config = with(
        "      readers: [{periodic: {exporter: {otlp: {protocol: grpc, endpoint: http://x:4317}}}}]\n",
    )
    .unwrap();
    assert_eq!(config.service.telemetry.metrics.pushes.len(), 1);
    let err = with(
        "      readers: [{pull: {exporter: {prometheus: {}}}}, {pull: {exporter: {prometheus: {port: 9999}}}}]\n",
    )
    .unwrap_err();
    assert_eq!(err.path(), Some("service.telemetry.metrics.readers[1]"));
    assert!(err.to_string().contains("a second pull reader"), "{err}");
    // `without_type_suffix: false` turns `_total` on; the unit suffixes and scope labels stay
    // off.
    let config = with(
        "      readers: [{pull: {exporter: {prometheus: {port: 8888, without_type_suffix: false}}}}]\n",
    )
    .unwrap();
    assert!(config.service.telemetry.metrics.counter_total);
    let config = with("      readers: [{pull: {exporter: {prometheus: {without_type_suffix: true, without_units: true}}}}]\n").unwrap();
    assert!(!config.service.telemetry.metrics.counter_total);
    let err = with(
        "      readers: [{pull: {exporter: {prometheus: {port: 8888, without_units: false}}}}]\n",
    )
    .unwrap_err();
    assert_eq!(
        err.path(),
        Some("service.telemetry.metrics.readers[0].pull.exporter.prometheus.without_units")
    );
    let err = with(
        "      readers: [{pull: {exporter: {prometheus: {port: 8888, translation_strategy: x}}}}]\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("translation_strategy"), "{err}");
}

fn loadbalancing(exporter: &str, signal: &str) -> String {
    format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  loadbalancing:\n{exporter}service:\n  pipelines:\n    {signal}:\n      receivers: [otlp]\n      exporters: [loadbalancing]\n"
    )
}

#[test]
fn loadbalancing_takes_the_collectors_layout() {
    let config = parse(&loadbalancing(
        "    routing_key: service\n    protocol:\n      otlp:\n        timeout: 2s\n        tls:\n          insecure: true\n        sending_queue:\n          queue_size: 50\n    resolver:\n      static:\n        hostnames: [backend-1, \"backend-2:4318\", \"[::1]:4319\"]\n",
        "traces",
    ))
    .expect("valid");
    let Some(Exporter::LoadBalancing(lb)) = config.exporters.get(&id("loadbalancing")) else {
        panic!("a loadbalancing exporter");
    };
    assert_eq!(lb.routing_key, Some(RoutingKey::Service));
    assert_eq!(lb.protocol.timeout, Duration::from_secs(2));
    assert_eq!(lb.protocol.tls, None, "insecure: plaintext");
    assert_eq!(lb.protocol.sending_queue.queue_size, 50);
    let BackendResolver::Static { hostnames } = &lb.resolver else {
        panic!("static");
    };
    let written: Vec<String> = hostnames.iter().map(ToString::to_string).collect();
    assert_eq!(written, ["backend-1:4317", "backend-2:4318", "[::1]:4319"]);

    let config = parse(&loadbalancing(
        "    protocol:\n      otlp: {}\n    resolver:\n      dns:\n        hostname: tier.svc\n        interval: 2s\n",
        "logs",
    ))
    .expect("valid");
    let Some(Exporter::LoadBalancing(lb)) = config.exporters.get(&id("loadbalancing")) else {
        panic!("a loadbalancing exporter");
    };
    assert!(
        lb.protocol.tls.is_some(),
        "a bare backend is dialled with TLS, as the Collector"
    );
    assert_eq!(
        lb.resolver,
        BackendResolver::Dns {
            hostname: "tier.svc".into(),
            port: 4317,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
        }
    );
    // Logs by service unless told otherwise, as the Collector (v0.161.0) routes them.
    assert_eq!(lb.routing_key(Signal::Logs), Some(RoutingKey::Service));
    assert_eq!(lb.routing_key(Signal::Metrics), Some(RoutingKey::Service));
    for key in ["traceID", "service", "resource"] {
        let config = parse(&loadbalancing(
            &format!("    routing_key: {key}\n    protocol:\n      otlp: {{}}\n    resolver:\n      static:\n        hostnames: [a]\n"),
            "logs",
        ))
        .expect("logs route by any of them");
        let Some(Exporter::LoadBalancing(lb)) = config.exporters.get(&id("loadbalancing")) else {
            panic!("a loadbalancing exporter");
        };
        assert_eq!(
            lb.routing_key(Signal::Logs).map(RoutingKey::as_str),
            Some(key)
        );
    }
}

#[test]
fn loadbalancing_mistakes_name_the_key_and_line() {
    let static_ = "    resolver:\n      static:\n        hostnames: [a]\n";
    let err = error(&loadbalancing(
        &format!("    protocol:\n      otlp:\n        endpoint: x:4317\n{static_}"),
        "traces",
    ));
    assert_error(
        &err,
        9,
        "exporters.loadbalancing.protocol.otlp.endpoint",
        "comes from the resolver",
    );
    let err = error(&loadbalancing(
        &format!("    routing_key: spanID\n    protocol:\n      otlp: {{}}\n{static_}"),
        "traces",
    ));
    assert_error(
        &err,
        7,
        "exporters.loadbalancing.routing_key",
        "not a routing key",
    );
    let err = error(&loadbalancing(
        &format!(
            "    sending_queue:\n      enabled: true\n    protocol:\n      otlp: {{}}\n{static_}"
        ),
        "traces",
    ));
    assert_error(
        &err,
        7,
        "exporters.loadbalancing.sending_queue",
        "per backend",
    );
    assert!(matches!(err.kind(), ConfigErrorKind::Unsupported(_)));
    let err = error(&loadbalancing(
        "    protocol:\n      otlp: {}\n    resolver:\n      k8s:\n        service: lb\n",
        "traces",
    ));
    assert_error(
        &err,
        10,
        "exporters.loadbalancing.resolver.k8s",
        "not supported",
    );
    let err = error(&loadbalancing(
        "    protocol:\n      otlp: {}\n    resolver:\n      static:\n        hostnames: [a, \"a:4317\"]\n",
        "traces",
    ));
    assert_error(
        &err,
        11,
        "exporters.loadbalancing.resolver.static.hostnames[1]",
        "listed twice",
    );
    let err = error(&loadbalancing(
        "    protocol:\n      otlp: {}\n    resolver:\n      dns:\n        port: 4317\n",
        "traces",
    ));
    assert_error(
        &err,
        10,
        "exporters.loadbalancing.resolver.dns.hostname",
        "hostname",
    );
    let err = error(&loadbalancing(
        &format!("    routing_key: resource\n    protocol:\n      otlp: {{}}\n{static_}"),
        "traces",
    ));
    assert!(matches!(err.kind(), ConfigErrorKind::Reference(_)), "{err}");
    assert!(err.to_string().contains("does not route traces"), "{err}");
    let err = error(&loadbalancing(
        "    protocol:\n      otlp:\n        tls:\n          insecure: true\n          ca_file: /x\n    resolver:\n      static:\n        hostnames: [a]\n",
        "traces",
    ));
    assert_error(
        &err,
        11,
        "exporters.loadbalancing.protocol.otlp.tls.ca_file",
        "configures TLS",
    );
}

/// The `tier` section: the resolver and `protocol.otlp` checked as the loadbalancing
/// exporter's are; `self` an address; storage and auth refused with what to do instead.
#[test]
fn the_tier_section_is_checked_where_it_is_written() {
    let base = "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
tier:
";
    let config = parse(&format!(
        "{base}  resolver:\n    dns:\n      hostname: tailgates.example\n  self: 10.0.0.5:4317\n  protocol:\n    otlp:\n      compression: zstd\n"
    ))
    .expect("a valid tier");
    let tier = config.tier.expect("a tier");
    assert_eq!(tier.self_address, Some("10.0.0.5:4317".parse().unwrap()));
    assert!(matches!(
        tier.resolver,
        tailgate::config::BackendResolver::Dns { port: 4317, .. }
    ));
    assert!(parse(base.trim_end_matches("tier:\n"))
        .unwrap()
        .tier
        .is_none());
    // Compression as written; left out, zstd at its first fast level (not the otlp
    // exporter's gzip), at the level given or -1.
    assert_eq!(
        (tier.protocol.compression, tier.protocol.compression_level),
        (Compression::Zstd, None)
    );
    let protocol = |otlp: &str| {
        parse(&format!(
            "{base}  resolver:\n    static:\n      hostnames: [a:4317]\n  protocol:\n    otlp:\n{otlp}"
        ))
        .expect("a valid tier")
        .tier
        .expect("a tier")
        .protocol
    };
    let fast = protocol("      tls: {insecure: true}\n");
    assert_eq!(
        (fast.compression, fast.compression_level),
        (Compression::Zstd, Some(-1))
    );
    let none = protocol("      compression: none\n");
    assert_eq!(
        (none.compression, none.compression_level),
        (Compression::None, None)
    );
    let zstd_5 = protocol("      compression: zstd\n      compression_params: {level: -5}\n");
    assert_eq!(zstd_5.compression_level, Some(-5));

    let err = error(&format!(
        "{base}  resolver:\n    static:\n      hostnames: [a:4317]\n  self: node-a\n  protocol:\n    otlp: {{}}\n"
    ));
    assert_error(&err, 17, "tier.self", "not an IP address and port");
    let err = error(&format!("{base}  protocol:\n    otlp: {{}}\n"));
    assert_error(&err, 13, "tier.resolver", "missing");
    let err = error(&format!(
        "{base}  resolver:\n    static:\n      hostnames: [a:4317]\n  protocol:\n    otlp:\n      sending_queue:\n        storage: file_storage\n"
    ));
    assert_error(
        &err,
        20,
        "tier.protocol.otlp.sending_queue.storage",
        "held in memory",
    );
    let err = error(&format!(
        "{base}  resolver:\n    static:\n      hostnames: [a:4317]\n  protocol:\n    otlp:\n      endpoint: a:4317\n"
    ));
    assert_error(&err, 19, "tier.protocol.otlp.endpoint", "from the resolver");
}

/// The Collector (v0.161.0) names its OTLP exporters `otlp_grpc` and `otlp_http` and its load
/// balancer `load_balancing`, keeping the older names as aliases; its `headers` are a map or a
/// list of `name`/`value` pairs (configopaque.MapList). Configurations written either way load.
#[test]
fn the_collectors_current_exporter_names_and_header_lists_load() {
    let config = parse(
        "
receivers:
  otlp:
    protocols:
      grpc:
        read_buffer_size: 524288
        write_buffer_size: 524288
exporters:
  otlp_grpc/central:
    endpoint: central.example.com:4317
    headers:
      - name: x-tenant
        value: blue
      - name: authorization
        value: Bearer t
  otlp_http:
    endpoint: https://central.example.com:4318
    profiles_endpoint: https://central.example.com:4318/v1development/profiles
    read_buffer_size: 123
    write_buffer_size: 345
    headers:
      x-tenant: green
  load_balancing:
    routing_key: traceID
    protocol:
      otlp:
        tls:
          insecure: true
        headers:
          - name: x-tier
            value: front
    resolver:
      static:
        hostnames: [127.0.0.2:4317, 127.0.0.3:4317]
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_grpc/central, otlp_http, load_balancing]
",
    )
    .unwrap();
    let Some(Exporter::Otlp(grpc)) = config.exporters.get(&id("otlp_grpc/central")) else {
        panic!("otlp_grpc is the otlp exporter");
    };
    assert_eq!(grpc.headers["x-tenant"], "blue");
    assert_eq!(grpc.headers["authorization"], "Bearer t");
    let Some(Exporter::OtlpHttp(http)) = config.exporters.get(&id("otlp_http")) else {
        panic!("otlp_http is the otlphttp exporter");
    };
    assert_eq!(http.headers["x-tenant"], "green");
    assert!(matches!(
        config.exporters.get(&id("load_balancing")),
        Some(Exporter::LoadBalancing(_))
    ));

    // A name given twice in the list form, and a pair without a name, are refused.
    let err = error(
        "
exporters:
  otlp_grpc:
    endpoint: central.example.com:4317
    headers:
      - name: x-tenant
        value: a
      - name: x-tenant
        value: b
",
    );
    assert!(
        err.to_string().contains("`x-tenant` is given twice"),
        "{err}"
    );
    let err = error(
        "
exporters:
  otlp_grpc:
    endpoint: central.example.com:4317
    headers:
      - value: a
",
    );
    assert!(
        err.to_string().contains("is not an HTTP header name"),
        "{err}"
    );
    let err = error("exporters:\n  kafka:\n");
    assert!(err.to_string().contains("`otlp_grpc`"), "{err}");

    // Batching in the exporter's queue loads under the v0.161.0 names too
    // (sending_queue_batch_reads_as_exporterhelper_checks_it has the rules).
    let config = parse(
        "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  otlp_grpc:
    endpoint: central.example.com:4317
    sending_queue:
      batch:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_grpc]
",
    )
    .unwrap();
    assert!(matches!(
        config.exporters.get(&id("otlp_grpc")),
        Some(Exporter::Otlp(otlp)) if otlp.sending_queue.batch.is_some()
    ));
    // grpc-go's resolver targets on an otlp exporter, as configgrpc passes them on; and a
    // load balancer's static backends written with a scheme, which must agree with its TLS.
    let exporter = |block: &str, name: &str| {
        parse(&format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n{block}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [{name}]\n"
        ))
    };
    for target in [
        "dns:///central.example.com:4317",
        "dns://8.8.8.8/central.example.com:4317",
        "passthrough:///central.example.com:4317",
    ] {
        let config = exporter(
            &format!("  otlp_grpc:\n    endpoint: {target}\n"),
            "otlp_grpc",
        )
        .unwrap_or_else(|err| panic!("{target}: {err}"));
        let Some(Exporter::Otlp(otlp)) = config.exporters.get(&id("otlp_grpc")) else {
            panic!("an otlp exporter");
        };
        assert_eq!(
            otlp.endpoint.to_string(),
            "central.example.com:4317",
            "{target}"
        );
        assert!(otlp.tls.is_some(), "TLS as for a bare host:port: {target}");
    }
    assert!(exporter("  otlp_grpc:\n    endpoint: xds:///svc:4317\n", "otlp_grpc").is_err());
    let lb = |tls: &str, host: &str| {
        exporter(
            &format!("  load_balancing:\n    protocol:\n      otlp:\n{tls}    resolver:\n      static:\n        hostnames: [\"{host}\"]\n"),
            "load_balancing",
        )
    };
    let insecure = "        tls:\n          insecure: true\n";
    assert!(lb(insecure, "http://127.0.0.2:4320").is_ok());
    assert!(lb("", "https://backend.example.com:4317").is_ok());
    // Every backend `http://` and no `tls` block: plaintext, as configgrpc dials them.
    let config = lb("", "http://127.0.0.2:4320").unwrap();
    let Some(Exporter::LoadBalancing(balancer)) = config.exporters.get(&id("load_balancing"))
    else {
        panic!("a load balancer");
    };
    assert!(balancer.protocol.tls.is_none());
    let err = lb(
        "        tls:\n          insecure: false\n",
        "http://127.0.0.2:4320",
    )
    .unwrap_err();
    assert!(err.to_string().contains("says plaintext"), "{err}");
    let err = lb(insecure, "https://backend.example.com:4317").unwrap_err();
    assert!(err.to_string().contains("says TLS"), "{err}");

    // The HTTP receiver's `transport`: `tcp`, as confignet's.
    let http = |transport: &str| {
        parse(&format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        transport: {transport}\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
        ))
    };
    assert!(http("tcp").is_ok());
    let err = http("udp").unwrap_err();
    assert!(
        err.to_string().contains("transport `udp` is not supported"),
        "{err}"
    );

    // Receivers' `middlewares`: an empty list is no middleware; an entry is refused, named.
    let middlewares = |protocol: &str, list: &str| {
        parse(&format!(
            "receivers:\n  otlp:\n    protocols:\n      {protocol}:\n        middlewares: {list}\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
        ))
    };
    for protocol in ["grpc", "http"] {
        assert!(middlewares(protocol, "[]").is_ok());
        let err = middlewares(protocol, "[{id: limitermiddleware}]").unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains(&format!("receivers.otlp.protocols.{protocol}.middlewares")),
            "{err}"
        );
        assert!(
            err.contains("middleware extensions (`limitermiddleware`) are not supported"),
            "{err}"
        );
    }

    // The debug exporter's `use_internal_logger` and `output_paths`.
    let debug = |keys: &str| {
        parse(&format!(
            "exporters:\n  debug:\n{keys}receivers:\n  otlp:\n    protocols:\n      grpc:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
        ))
        .map(|config| match config.exporters.get(&id("debug")) {
            Some(Exporter::Debug(debug)) => debug.to_stderr,
            _ => panic!("a debug exporter"),
        })
    };
    assert!(!debug("").unwrap());
    assert!(debug("    use_internal_logger: true\n").unwrap());
    assert!(!debug("    use_internal_logger: false\n").unwrap());
    assert!(debug("    use_internal_logger: false\n    output_paths: [stderr]\n").unwrap());
    let err = debug("    use_internal_logger: false\n    output_paths: [/var/log/debug.log]\n")
        .unwrap_err();
    assert!(err.to_string().contains("files are not supported"), "{err}");

    // `protocol.otlp` empty, or `protocol` left out: the otlp exporter's defaults, as the
    // Collector's factory fills them in (a bare backend dialled with TLS).
    for protocol in ["    protocol:\n      otlp:\n", ""] {
        let config = parse(&format!(
            "exporters:\n  load_balancing:\n{protocol}    resolver:\n      static:\n        hostnames: [a]\nreceivers:\n  otlp:\n    protocols:\n      grpc:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [load_balancing]\n"
        ))
        .unwrap_or_else(|err| panic!("{protocol:?}: {err}"));
        let Some(Exporter::LoadBalancing(lb)) = config.exporters.get(&id("load_balancing")) else {
            panic!("a load balancer");
        };
        assert!(lb.protocol.tls.is_some(), "{protocol:?}");
    }
}

/// `service.telemetry.logs`: zap's keys the Collector takes, and what tailgate refuses of them.
#[test]
fn the_collectors_log_keys_are_taken_or_refused_naming_the_key() {
    let logs = |keys: &str| {
        parse(&format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n  telemetry:\n    logs:\n{keys}"
        ))
    };
    let config = logs("      encoding: json\n      output_paths: [stdout]\n      sampling:\n        enabled: false\n        initial: 10\n").unwrap();
    let telemetry = &config.service.telemetry.logs;
    assert!(telemetry.json && telemetry.to_stdout);
    for (keys, path, says) in [
        (
            "      encoding: logfmt\n",
            "service.telemetry.logs.encoding",
            "not a log encoding",
        ),
        (
            "      output_paths: [/var/log/tailgate.log]\n",
            "service.telemetry.logs.output_paths",
            "files are not supported",
        ),
        (
            "      sampling:\n        initial: 5\n",
            "service.telemetry.logs.sampling",
            "does not sample",
        ),
    ] {
        let err = logs(keys).expect_err(keys);
        assert_eq!(err.path(), Some(path), "{err}");
        assert!(err.to_string().contains(says), "{err}");
    }
}

/// `service.telemetry.resource` in both of the Collector's forms: the map, and the declarative
/// configuration's `attributes` list (and `attributes_list`), over the defaults.
#[test]
fn the_telemetry_resource_takes_both_forms() {
    let resource = |block: &str| {
        parse(&format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n  telemetry:\n    resource:\n{block}"
        ))
        .map(|config| config.service.telemetry.resource_attributes())
    };
    let attributes = resource(
        "      attributes:\n        - name: service.name\n          value: gateway-a\n        - name: replicas\n          value: 3\n          type: int\n      attributes_list: \"team=obs, zone=eu-1\"\n      schema_url: https://opentelemetry.io/schemas/1.26.0\n",
    )
    .unwrap();
    let get = |name: &str| {
        attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("service.name"), Some("gateway-a"));
    assert_eq!(get("replicas"), Some("3"));
    assert_eq!(get("team"), Some("obs"));
    assert_eq!(get("zone"), Some("eu-1"));
    assert!(get("service.version").is_some(), "a default kept");
    let legacy = resource(
        "      service.name: gateway-b\n      service.version: null\n      \
         service.instance.id: gw-b-1\n",
    )
    .unwrap();
    assert_eq!(
        legacy,
        vec![
            ("service.instance.id".to_string(), "gw-b-1".to_string()),
            ("service.name".to_string(), "gateway-b".to_string())
        ]
    );
    // Left alone, the instance id is a random UUID, the same for the whole process.
    let default = resource("      team: obs\n").unwrap();
    let id = default
        .iter()
        .find(|(n, _)| n == "service.instance.id")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(resource("      team: obs\n").unwrap(), default);
    let err = resource("      detection/development:\n        detectors: [host]\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("resource detectors are not supported"),
        "{err}"
    );
}

#[test]
fn grpc_client_keys_read_as_configgrpc_and_grpc_go_read_them() {
    let exporter = |keys: &str| {
        let yaml = format!(
            "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  otlp:
    endpoint: central:4317
{keys}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
"
        );
        match parse(&yaml).map(|c| c.exporters.get(&id("otlp")).cloned()) {
            Ok(Some(Exporter::Otlp(otlp))) => Ok(otlp),
            Ok(other) => panic!("not an otlp exporter: {other:?}"),
            Err(err) => Err(err),
        }
    };
    // Left out: the Collector's defaults.
    let otlp = exporter("").unwrap();
    assert_eq!(otlp.keepalive, Some(ClientKeepalive::default()));
    assert_eq!(
        otlp.keepalive
            .map(|k| (k.time, k.timeout, k.permit_without_stream)),
        Some((Duration::from_secs(10), Duration::from_secs(10), false))
    );
    assert_eq!(otlp.balancer, Balancer::RoundRobin);
    assert_eq!((otlp.authority, otlp.wait_for_ready), (None, false));

    // grpc-go raises a `time` below 10 s to 10 s, and reads a `timeout` of 0 as 20 s.
    let otlp = exporter(
        "    keepalive:\n      time: 1s\n      timeout: 0s\n      permit_without_stream: true\n    \
         balancer_name: pick_first\n    authority: central.example:443\n    wait_for_ready: true",
    )
    .unwrap();
    let keepalive = otlp.keepalive.unwrap();
    assert_eq!(keepalive.time, Duration::from_secs(10));
    assert_eq!(keepalive.timeout, Duration::from_secs(20));
    assert!(keepalive.permit_without_stream);
    assert_eq!(otlp.balancer, Balancer::PickFirst);
    assert_eq!(otlp.authority.as_deref(), Some("central.example:443"));
    assert!(otlp.wait_for_ready);

    // An optional section turned off; a null section is the default.
    let otlp = exporter("    keepalive:\n      enabled: false\n      time: 30s").unwrap();
    assert_eq!(otlp.keepalive, None);
    let otlp = exporter("    keepalive:").unwrap();
    assert_eq!(otlp.keepalive, Some(ClientKeepalive::default()));
    // grpc-go's own default balancer is the empty name; configgrpc's empty authority is none.
    let otlp = exporter("    balancer_name: \"\"\n    authority: \"\"").unwrap();
    assert_eq!((otlp.balancer, otlp.authority), (Balancer::PickFirst, None));

    let err = exporter("    balancer_name: least_request_experimental").unwrap_err();
    assert_error(
        &err,
        8,
        "exporters.otlp.balancer_name",
        "use round_robin or pick_first",
    );
    let err = exporter("    authority: user@central:4317").unwrap_err();
    assert_error(&err, 8, "exporters.otlp.authority", "is not an authority");
    let err = exporter("    keepalive:\n      timeout: 48h").unwrap_err();
    assert_error(&err, 9, "exporters.otlp.keepalive.timeout", "at most 24h");
}

#[test]
fn http_keepalive_and_response_headers_read_as_confighttp_reads_them() {
    let receiver = |keys: &str| {
        let yaml = format!(
            "
receivers:
  otlp:
    protocols:
      http:
{keys}
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
"
        );
        match parse(&yaml).map(|c| c.receivers.get(&id("otlp")).cloned()) {
            Ok(Some(Receiver::Otlp(otlp))) => Ok(otlp.http.unwrap()),
            Ok(other) => panic!("not an otlp receiver: {other:?}"),
            Err(err) => Err(err),
        }
    };
    let http = receiver("").unwrap();
    assert!(http.keep_alives);
    assert!(http.response_headers.is_empty());
    // v0.160.0's section, and the keys it replaces.
    let http = receiver("        keepalive:\n          idle_timeout: 45s").unwrap();
    assert!(http.keep_alives);
    assert_eq!(http.timeouts.idle, Duration::from_secs(45));
    let http = receiver("        keepalive:\n          enabled: false").unwrap();
    assert!(!http.keep_alives);
    let http = receiver("        keep_alives_enabled: false\n        idle_timeout: 30s").unwrap();
    assert!(!http.keep_alives);
    assert_eq!(http.timeouts.idle, Duration::from_secs(30));
    let err = receiver("        idle_timeout: 30s\n        keepalive:\n          idle_timeout: 1m")
        .unwrap_err();
    assert_error(
        &err,
        5,
        "receivers.otlp.protocols.http.idle_timeout",
        "alongside the `keepalive` section",
    );

    // response_headers: a map, or a list of name/value pairs.
    let http =
        receiver("        response_headers:\n          X-B: two\n          X-A: one").unwrap();
    assert_eq!(
        http.response_headers,
        vec![("X-A".into(), "one".into()), ("X-B".into(), "two".into())]
    );
    let err = receiver("        response_headers:\n          content-length: 5").unwrap_err();
    assert_error(
        &err,
        6,
        "receivers.otlp.protocols.http.response_headers.content-length",
        "a header the receiver writes itself",
    );
    let err =
        receiver("        response_headers:\n          X-A: one\n          x-a: two").unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");
}

#[test]
fn otlphttp_proxy_url_is_checked_where_it_is_written() {
    let with = |url: &str| {
        parse(&format!(
            "
exporters:
  otlphttp:
    endpoint: https://central.example
    proxy_url: {url}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp]
receivers:
  otlp:
    protocols:
      http:
"
        ))
    };
    let config = with("http://svc:pw@proxy.corp:3128").unwrap();
    let Some(Exporter::OtlpHttp(http)) = config.exporters.get(&id("otlphttp")) else {
        panic!("no otlphttp exporter");
    };
    let proxy = http.proxy_url.as_ref().unwrap();
    assert_eq!((proxy.host.as_str(), proxy.port), ("proxy.corp", 3128));
    assert_eq!(proxy.shown(), "http://svc:***@proxy.corp:3128");
    assert!(matches!(
        with("\"\"").unwrap().exporters.get(&id("otlphttp")),
        Some(Exporter::OtlpHttp(http)) if http.proxy_url.is_none()
    ));
    let err = with("socks5://proxy.corp:1080").unwrap_err();
    assert_error(
        &err,
        4,
        "exporters.otlphttp.proxy_url",
        "socks5 proxies are not supported",
    );
}

#[test]
fn a_receiver_endpoint_written_without_a_value_is_refused() {
    // The Collector then listens on a random port of every interface: never what was meant.
    let err = error(
        "
receivers:
  otlp:
    protocols:
      http:
        endpoint:
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
",
    );
    assert_error(
        &err,
        5,
        "receivers.otlp.protocols.http.endpoint",
        "is empty; write host:port, or leave the key out",
    );
    let err = error(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: \"\"
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
",
    );
    assert_error(
        &err,
        5,
        "receivers.otlp.protocols.grpc.endpoint",
        "is empty; write host:port, or leave the key out",
    );
}

#[test]
fn otlphttp_pool_keys_read_as_confighttp_folds_them() {
    let pool = |keys: &str| {
        let yaml = format!(
            "
receivers:
  otlp:
    protocols:
      http:
exporters:
  otlphttp:
    endpoint: https://central.example
{keys}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp]
"
        );
        match parse(&yaml).map(|c| c.exporters.get(&id("otlphttp")).cloned()) {
            Ok(Some(Exporter::OtlpHttp(http))) => Ok(http.pool),
            Ok(other) => panic!("not otlphttp: {other:?}"),
            Err(err) => Err(err),
        }
    };
    let default = pool("").unwrap();
    assert!(default.keep_alives);
    assert_eq!(default.idle_timeout, Some(Duration::from_secs(90)));
    assert_eq!((default.max_idle, default.max_idle_per_host), (None, None));
    let p = pool(
        "    keepalive:\n      idle_conn_timeout: 30s\n      max_idle_conns: 8\n      \
         max_idle_conns_per_host: 2",
    )
    .unwrap();
    assert_eq!(p.idle_timeout, Some(Duration::from_secs(30)));
    assert_eq!((p.max_idle, p.max_idle_per_host), (Some(8), Some(2)));
    // The older flat keys; 0 is "no limit" for the timeout and the total, as in Go.
    let p = pool("    idle_conn_timeout: 0s\n    max_idle_conns: 0\n    disable_keep_alives: true")
        .unwrap();
    assert!(!p.keep_alives);
    assert_eq!((p.idle_timeout, p.max_idle), (None, None));
    assert!(
        !pool("    keepalive:\n      enabled: false")
            .unwrap()
            .keep_alives
    );
    // Go's HTTP/2 settings load; the client speaks HTTP/1.1.
    pool("    http2_read_idle_timeout: 10s\n    http2_ping_timeout: 5s\n    force_attempt_http2: true")
        .unwrap();
    let err = pool("    max_idle_conns: 10\n    keepalive:\n      max_idle_conns: 20").unwrap_err();
    assert_error(
        &err,
        8,
        "exporters.otlphttp.max_idle_conns",
        "alongside the `keepalive` section",
    );
}

#[test]
fn periodic_readers_read_as_otelconf_reads_them() {
    let with = |readers: &str| {
        parse(&format!(
            "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
  telemetry:
    metrics:
      readers:
{readers}
"
        ))
    };
    let config = with(
        "        - periodic:
            interval: 15_000
            exporter:
              otlp:
                protocol: http/protobuf
                endpoint: https://lgtm.example:4318
                compression: gzip
                headers_list: x-a=1,x-b=2,authorization=Basic%20dXNlcjpwdw==;p=1
                headers:
                  - name: x-b
                    value: three
                  - name: x-skipped
        - periodic:
            exporter:
              otlp:
                protocol: grpc
                endpoint: collector:4317
                insecure: true
                timeout: 40000",
    )
    .unwrap();
    let metrics = &config.service.telemetry.metrics;
    // No pull reader: the admin endpoint keeps its default address.
    assert_eq!(
        metrics.address,
        Endpoint::parse(TELEMETRY_ADDRESS_DEFAULT).unwrap()
    );
    let [http, grpc] = &metrics.pushes[..] else {
        panic!("{:?}", metrics.pushes);
    };
    assert_eq!(http.protocol, PushProtocol::HttpProtobuf);
    assert_eq!(http.endpoint, "https://lgtm.example:4318/v1/metrics");
    assert_eq!(http.interval, Duration::from_secs(15));
    assert_eq!(http.timeout, Duration::from_secs(10));
    assert!(http.gzip && http.tls.is_some());
    // headers_list read as baggage: values percent-decoded, properties dropped; an entry of
    // `headers` without a value skipped; `headers` wins for a name in both.
    assert_eq!(
        http.headers,
        vec![
            ("x-a".into(), "1".into()),
            ("authorization".into(), "Basic dXNlcjpwdw==".into()),
            ("x-b".into(), "three".into())
        ]
    );
    assert_eq!(grpc.endpoint, "collector:4317");
    assert!(grpc.tls.is_none(), "insecure: true is plaintext");
    assert_eq!(grpc.interval, Duration::from_secs(60));
    // The shorter of the reader's 30 s and the exporter's 40 s.
    assert_eq!(grpc.timeout, Duration::from_secs(30));

    // A bare host:port for HTTP is https://, as the Collector normalizes it; 0 is the default.
    let config = with(
        "        - periodic:
            interval: 0
            exporter:
              otlp:
                protocol: http/protobuf
                endpoint: lgtm.example:4318",
    )
    .unwrap();
    let push = &config.service.telemetry.metrics.pushes[0];
    assert_eq!(push.endpoint, "https://lgtm.example:4318/v1/metrics");
    assert_eq!(push.interval, Duration::from_secs(60));
    // A bad headers_list member is named by its place, its value never shown.
    let err = with(
        "        - periodic:
            exporter:
              otlp:
                protocol: grpc
                endpoint: c:4317
                headers_list: x=1,Bearer s3cret",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("member 2 is not name=value"),
        "{err}"
    );
    assert!(!err.to_string().contains("s3cret"), "{err}");

    let reader = |otlp: &str| {
        with(&format!(
            "        - periodic:\n            exporter:\n              otlp:\n{otlp}"
        ))
    };
    for (otlp, key, needle) in [
        (
            "                protocol: http/json\n                endpoint: http://c:4318",
            "protocol",
            "use grpc or http/protobuf",
        ),
        (
            "                protocol: grpc\n                endpoint: c:4317\n                temporality_preference: delta",
            "temporality_preference",
            "cumulative",
        ),
        (
            "                protocol: grpc\n                endpoint: http://c:4317\n                certificate: /ca.pem",
            "certificate",
            "plaintext",
        ),
    ] {
        let err = reader(otlp).unwrap_err();
        assert!(
            err.path().is_some_and(|p| p.ends_with(key)) && err.to_string().contains(needle),
            "{key}: {err}"
        );
    }
    let err =
        with("        - periodic:\n            exporter:\n              console: {}").unwrap_err();
    assert!(
        err.to_string()
            .contains("console exporter is not supported"),
        "{err}"
    );
}

#[test]
fn sending_queue_batch_reads_as_exporterhelper_checks_it() {
    let queue = |keys: &str| {
        let yaml = format!(
            "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  otlp:
    endpoint: central:4317
    sending_queue:
{keys}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp]
"
        );
        match parse(&yaml).map(|c| c.exporters.get(&id("otlp")).cloned()) {
            Ok(Some(Exporter::Otlp(otlp))) => Ok(otlp.sending_queue),
            Ok(other) => panic!("not otlp: {other:?}"),
            Err(err) => Err(err),
        }
    };
    // `batch:` alone: on, with the Collector's defaults.
    let q = queue("      batch:").unwrap();
    assert_eq!(
        q.batch,
        Some(QueueBatch {
            flush_timeout: Duration::from_millis(200),
            min_size: 8192,
            max_size: 0,
            partition_keys: Vec::new(),
        })
    );
    let q = queue(
        "      sizer: items\n      queue_size: 10000\n      batch:\n        flush_timeout: 5s\n        \
         min_size: 512\n        max_size: 1024",
    )
    .unwrap();
    assert_eq!(
        q.batch,
        Some(QueueBatch {
            flush_timeout: Duration::from_secs(5),
            min_size: 512,
            max_size: 1024,
            partition_keys: Vec::new(),
        })
    );
    assert_eq!(queue("      enabled: true").unwrap().batch, None);
    let partitioned =
        queue("      batch:\n        partition:\n          metadata_keys: [X-Tenant]")
            .unwrap()
            .batch
            .expect("batching");
    assert_eq!(partitioned.partition_keys, ["x-tenant"]);
    for (keys, at, needle) in [
        (
            "      batch:\n        flush_timeout: 0s",
            "exporters.otlp.sending_queue.batch.flush_timeout",
            "above 0",
        ),
        (
            "      batch:\n        min_size: 10\n        max_size: 5",
            "exporters.otlp.sending_queue.batch.max_size",
            "below min_size",
        ),
        (
            // The queue's sizer is the batch's when the batch gives none, as the Collector folds
            // it; requests cannot size a batch.
            "      sizer: requests\n      batch:",
            "exporters.otlp.sending_queue.sizer",
            "not requests",
        ),
        (
            "      batch:\n        sizer: bytes",
            "exporters.otlp.sending_queue.batch.sizer",
            "in bytes are not supported",
        ),
        (
            "      batch:\n        partition:\n          metadata_keys: [tenant, Tenant]",
            "exporters.otlp.sending_queue.batch.partition.metadata_keys",
            "duplicate entry in metadata_keys",
        ),
        (
            "      sizer: items\n      queue_size: 100\n      batch:\n        min_size: 512",
            "exporters.otlp.sending_queue.batch.min_size",
            "more than the queue holds",
        ),
    ] {
        let err = queue(keys).unwrap_err();
        assert_eq!(err.path(), Some(at), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    // Per backend of a load balancer it is refused.
    let err = parse(
        "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  loadbalancing:
    protocol:
      otlp:
        sending_queue:
          batch:
    resolver:
      static:
        hostnames: [a:4317]
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [loadbalancing]
",
    )
    .unwrap_err();
    assert_eq!(
        err.path(),
        Some("exporters.loadbalancing.protocol.otlp.sending_queue.batch")
    );
}

/// A configuration with `extensions` (enabled) and an `otlphttp` exporter whose `auth` and
/// `headers` are given: the multi-tenant tests' frame.
fn with_setter(extensions: &str, exporter_extra: &str) -> Result<Config, ConfigError> {
    parse(&format!(
        "
extensions:
{extensions}
receivers:
  otlp:
    protocols:
      http:
        include_metadata: true
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:4318
    auth:
      authenticator: headers_setter
{exporter_extra}
service:
  extensions: [headers_setter]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp]
"
    ))
}

#[test]
fn client_metadata_keys_load_as_the_collector_reads_them() {
    let config = with_setter(
        "  headers_setter:
    headers:
      - key: X-Scope-OrgID
        from_context: X-Tenant
        default_value: anon
      - key: X-Extra
        value: v
        action: insert
      - key: X-Gone
        action: delete",
        "",
    )
    .expect("loads");
    let Some(Extension::HeadersSetter(setter)) = config.extensions.get(&id("headers_setter"))
    else {
        panic!("a headers_setter");
    };
    assert_eq!(setter.headers.len(), 3);
    assert_eq!(setter.headers[0].action, HeaderAction::Upsert);
    assert_eq!(setter.context_keys().collect::<Vec<_>>(), ["x-tenant"]);
    assert_eq!(setter.headers[2].source, HeaderSource::None);
    let Some(Receiver::Otlp(otlp)) = config.receivers.get(&id("otlp")) else {
        panic!("no otlp receiver");
    };
    assert!(otlp.http.as_ref().expect("http").include_metadata);
    let config = parse(&format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
processors:
  batch:
    metadata_keys: [X-Tenant, region]
    metadata_cardinality_limit: 0
{MINIMAL_SERVICE}"
    ))
    .expect("loads");
    let Some(Processor::Batch(batch)) = config.processors.get(&id("batch")) else {
        panic!("a batch processor");
    };
    assert_eq!(batch.metadata_keys, ["region", "x-tenant"]);
    assert_eq!(batch.metadata_cardinality_limit, 0);
}

#[test]
fn client_metadata_mistakes_name_their_key() {
    let err = error(
        "
processors:
  batch:
    metadata_keys: [X-Tenant, x-tenant]
",
    );
    assert_error(
        &err,
        3,
        "processors.batch.metadata_keys",
        "duplicate entry in metadata_keys: \"x-tenant\" (case-insensitive)",
    );
    let cases = [
        ("  headers_setter:\n    headers: []", "", "missing headers configuration"),
        (
            "  headers_setter:\n    headers:\n      - from_context: t",
            "",
            "missing header name",
        ),
        (
            "  headers_setter:\n    headers:\n      - key: a b\n        value: v",
            "",
            "not an HTTP header name",
        ),
        (
            "  headers_setter:\n    headers:\n      - key: A\n        value: v\n        from_context: t",
            "",
            "must either 'from_context' or 'value'",
        ),
        (
            "  headers_setter:\n    headers:\n      - key: A",
            "",
            "missing header source",
        ),
        (
            "  headers_setter:\n    headers:\n      - key: A\n        from_attribute: subject",
            "",
            "tailgate's authenticators attach none",
        ),
        (
            "  headers_setter:\n    headers:\n      - key: A\n        value: v\n        action: append",
            "",
            "`append` is no action",
        ),
        (
            "  headers_setter:\n    headers:\n      - key: X-Scope-OrgID\n        value: v",
            "    headers:\n      x-scope-orgid: other",
            "also set by auth.authenticator",
        ),
        (
            "  headers_setter:\n    headers:\n      - key: Content-Length\n        value: \"1\"",
            "",
            "written by the exporter itself",
        ),
        (
            "  headers_setter:\n    headers:\n      - key: grpc-timeout\n        value: 1S",
            "",
            "written by the exporter itself",
        ),
    ];
    for (extensions, extra, needle) in cases {
        let err = with_setter(extensions, extra).expect_err(needle);
        assert!(err.to_string().contains(needle), "`{needle}` not in: {err}");
    }
    let err = parse(
        "
extensions:
  headers_setter:
    headers:
      - key: A
        value: v
receivers:
  otlp:
    protocols:
      http:
        auth:
          authenticator: headers_setter
exporters:
  debug:
service:
  extensions: [headers_setter]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
",
    )
    .expect_err("a receiver cannot use it");
    assert!(err.to_string().contains("is a headers_setter"), "{err}");
}

/// `service.telemetry.logs.processors`: otelconf's batch and simple processors, their
/// defaults, and their mistakes refused with the key.
#[test]
fn log_processors_load_with_the_sdks_defaults_and_refuse_mistakes() {
    let with = |processors: &str| {
        parse(&format!(
            "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
  telemetry:
    logs:
      processors:
{processors}"
        ))
    };
    let config = with(
        "        - batch:
            exporter:
              otlp:
                protocol: http/protobuf
                endpoint: http://127.0.0.1:4318
        - simple:
            exporter:
              otlp:
                protocol: grpc
                endpoint: https://logs.example:4317
",
    )
    .expect("loads");
    let exports = &config.service.telemetry.logs.exports;
    assert_eq!(exports.len(), 2);
    assert_eq!(exports[0].endpoint, "http://127.0.0.1:4318/v1/logs");
    assert_eq!(exports[0].schedule_delay, Duration::from_secs(1));
    assert_eq!(exports[0].timeout, Duration::from_secs(10));
    assert_eq!(
        (exports[0].max_queue_size, exports[0].max_export_batch_size),
        (2048, 512)
    );
    assert_eq!(exports[1].max_export_batch_size, 1);
    assert_eq!(exports[1].schedule_delay, Duration::ZERO);
    assert!(exports[1].tls.is_some(), "https:// is TLS");
    assert!(!exports[0].console);
    let console = with("        - simple:\n            exporter:\n              console: {}\n")
        .expect("the console exporter loads");
    assert!(console.service.telemetry.logs.exports[0].console);
    for (processors, needle) in [
        (
            "        - batch:\n            exporter:\n              console: {}\n              otlp:\n                protocol: grpc\n                endpoint: http://127.0.0.1:4317\n",
            "`otlp` or `console`, not both",
        ),
        (
            "        - batch:\n            max_queue_size: 10\n            max_export_batch_size: 20\n            exporter:\n              otlp:\n                protocol: grpc\n                endpoint: http://127.0.0.1:4317\n",
            "20 is more than max_queue_size (10)",
        ),
        (
            "        - simple:\n            exporter:\n              otlp:\n                protocol: grpc\n                endpoint: http://127.0.0.1:4317\n                temporality_preference: delta\n",
            "a metric exporter's key",
        ),
        ("        - {}\n", "batch"),
    ] {
        let err = with(processors).expect_err(needle);
        assert!(err.to_string().contains(needle), "`{needle}` not in: {err}");
    }
}

/// `filter`: both layouts read into one list of rules per signal, resource conditions first;
/// what tailgate does not do is refused naming the key and the reason.
#[test]
fn filter_processors_read_both_layouts_and_refuse_what_they_cannot_do() {
    let with = |keys: &str| {
        parse(&format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nprocessors:\n  filter/f:\n{keys}exporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [filter/f]\n      exporters: [debug]\n"
        ))
        .map(|config| match config.processors.get(&id("filter/f")) {
            Some(Processor::Filter(filter)) => filter.clone(),
            other => panic!("a filter processor, not {other:?}"),
        })
    };
    let rules = |filter: &FilterProcessor| -> Vec<(String, bool, ErrorMode)> {
        filter
            .traces
            .iter()
            .map(|r| {
                (
                    r.condition.text().to_string(),
                    r.condition.context() == tailgate::ottl::ContextKind::Resource,
                    r.error_mode,
                )
            })
            .collect()
    };
    let filter = with(
        "    traces:\n      span:\n        - name == \"a\"\n      resource:\n        - attributes[\"k\"] == \"v\"\n    logs:\n      log_record: [severity_number < SEVERITY_NUMBER_WARN]\n",
    )
    .expect("a valid filter");
    assert_eq!(
        rules(&filter),
        [
            (
                "attributes[\"k\"] == \"v\"".to_string(),
                true,
                ErrorMode::Ignore
            ),
            ("name == \"a\"".to_string(), false, ErrorMode::Ignore),
        ]
    );
    let grouped = with(
        "    trace_conditions:\n      - context: span\n        conditions: [span.kind == SPAN_KIND_SERVER]\n      - context: resource\n        error_mode: propagate\n        conditions:\n          - attributes[\"x\"] == 1\n",
    )
    .expect("a valid filter");
    assert_eq!(
        rules(&grouped),
        [
            (
                "attributes[\"x\"] == 1".to_string(),
                true,
                ErrorMode::Propagate
            ),
            (
                "span.kind == SPAN_KIND_SERVER".to_string(),
                false,
                ErrorMode::Ignore
            ),
        ]
    );
    let inferred = with(
        "    trace_conditions:\n      - span.kind == SPAN_KIND_SERVER\n      - resource.attributes[\"x\"] == 1\n",
    )
    .expect("a valid filter");
    // One that reads the resource alone is a resource condition, tried first; the others are
    // read in the span context, their resource paths and all.
    assert_eq!(
        rules(&inferred),
        [
            (
                "resource.attributes[\"x\"] == 1".to_string(),
                true,
                ErrorMode::Ignore
            ),
            (
                "span.kind == SPAN_KIND_SERVER".to_string(),
                false,
                ErrorMode::Ignore
            ),
        ]
    );
    let mixed = with(
        "    trace_conditions:\n      - resource.attributes[\"x\"] == 1 and span.name == \"a\"\n",
    )
    .expect("a valid filter");
    assert!(!rules(&mixed)[0].1);
    assert_eq!(filter.logs.len(), 1);
    assert!(filter.metrics.is_empty());
    // The processor's mode, any case.
    let silent =
        with("    error_mode: SILENT\n    logs:\n      log_record: [flags == 1]\n").unwrap();
    assert_eq!(silent.logs[0].error_mode, ErrorMode::Silent);
    for (keys, needles) in [
        (
            "    traces:\n      spanevent: [nam == \"x\"]\n",
            &["processors.filter/f.traces.spanevent[0]", "nam"][..],
        ),
        (
            "    metrics:\n      datapoint: [value_int > 1]\n",
            &[
                "processors.filter/f.metrics.datapoint",
                "`datapoint` context is not supported",
            ],
        ),
        (
            "    spans:\n      exclude:\n        match_type: strict\n        span_names: [a]\n",
            &["processors.filter/f.spans", "match-properties layout"],
        ),
        (
            "    metrics:\n      include:\n        match_type: strict\n        metric_names: [a]\n",
            &["processors.filter/f.metrics.include", "IsMatch"][..],
        ),
        (
            "    trace_conditions:\n      - context: scope\n        conditions: [name == \"x\"]\n",
            &[
                "trace_conditions[0].context",
                "`scope` context is not supported",
            ],
        ),
        (
            "    log_conditions:\n      - context: span\n        conditions: [name == \"x\"]\n",
            &["`span` is not a context of logs conditions"],
        ),
        (
            "    traces:\n      span: [Len(name) > 3]\n",
            &["processors.filter/f.traces.span[0]", "Len(name) > 3"],
        ),
        (
            "    metric_conditions:\n      - datapoint.value_int == 1\n",
            &[
                "processors.filter/f.metric_conditions[0]",
                "`datapoint` context, which is not supported",
            ],
        ),
        ("    error_mode: loud\n", &["`loud` is not an error mode"]),
        (
            "    profiles:\n      profile: [x]\n",
            &["no profiles pipelines"],
        ),
    ] {
        let err = with(keys).expect_err(needles[0]).to_string();
        for needle in needles {
            assert!(err.contains(needle), "`{needle}` not in: {err}");
        }
    }
    // Span event conditions in each layout, tried last.
    for keys in [
        "    traces:\n      spanevent: [name == \"x\"]\n      span: [name == \"y\"]\n",
        "    trace_conditions:\n      - spanevent.name == \"x\"\n      - span.name == \"y\"\n",
        "    trace_conditions:\n      - context: spanevent\n        conditions: [name == \"x\"]\n      - context: span\n        conditions: [name == \"y\"]\n",
    ] {
        let filter = with(keys).unwrap_or_else(|err| panic!("{keys}: {err}"));
        let contexts: Vec<_> = filter.traces.iter().map(|r| r.condition.context()).collect();
        assert_eq!(
            contexts,
            [tailgate::ottl::ContextKind::Span, tailgate::ottl::ContextKind::SpanEvent],
            "{keys}"
        );
    }
    let many = format!(
        "    traces:\n      span:\n{}",
        "        - name == \"a\"\n".repeat(65)
    );
    assert!(with(&many).unwrap_err().to_string().contains("at most 64"));
}

/// `resource`: the attraction package's checks, each refusal naming the key.
#[test]
fn resource_processors_check_their_actions_as_the_collector_does() {
    let with = |actions: &str| {
        parse(&format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nprocessors:\n  resource:\n    attributes:\n{actions}exporters:\n  debug:\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      processors: [resource]\n      exporters: [debug]\n"
        ))
        .map(|config| match config.processors.get(&id("resource")) {
            Some(Processor::Resource(r)) => r.clone(),
            other => panic!("a resource processor, not {other:?}"),
        })
    };
    let ok = with(
        "      - {key: env, value: prod, action: INSERT}\n      - {key: n, value: 3, action: upsert}\n      - {key: t, from_context: metadata.X-Tenant, action: insert}\n      - {action: delete, pattern: ^tmp}\n",
    )
    .expect("valid actions");
    assert_eq!(
        ok.actions[0].kind,
        ActionKind::Insert(ValueSource::Value(ConfigValue::Str("prod".into())))
    );
    assert_eq!(
        ok.actions[1].kind,
        ActionKind::Upsert(ValueSource::Value(ConfigValue::Int(3)))
    );
    assert_eq!(
        ok.actions[2].kind,
        ActionKind::Insert(ValueSource::FromContext("x-tenant".into()))
    );
    // `default_value` alone is the value; beside a source, its fallback.
    let defaults = with(
        "      - {key: a, default_value: 7, action: insert}
      - {key: b, from_attribute: c, default_value: x, action: upsert}
      - {key: d, from_context: t, action: delete}
",
    )
    .expect("valid actions");
    assert_eq!(
        defaults.actions[0].kind,
        ActionKind::Insert(ValueSource::Value(ConfigValue::Int(7)))
    );
    assert_eq!(defaults.actions[0].default, None);
    assert_eq!(
        defaults.actions[1].default,
        Some(ConfigValue::Str("x".into()))
    );
    for (actions, needles) in [
        ("      - {key: a, action: insert}\n", &["needs `value`"][..]),
        (
            "      - {key: a, value: 1, from_attribute: b, action: upsert}\n",
            &["processors.resource.attributes[0]", "not several"],
        ),
        (
            "      - {value: 1, action: upsert}\n",
            &["missing required key `key`"],
        ),
        (
            "      - {action: delete}\n",
            &["needs `key`, `pattern` or both"],
        ),
        (
            "      - {key: a, action: extract, pattern: '(x)'}\n",
            &["every group of the pattern must be named"],
        ),
        (
            "      - {key: a, action: convert, converted_type: bool}\n",
            &["processors.resource.attributes[0].converted_type", "`bool`"],
        ),
        (
            "      - {key: a, action: rename}\n",
            &["`rename` is not an action"],
        ),
        (
            "      - {key: a, value: [1, 2], action: insert}\n",
            &[
                "processors.resource.attributes[0].value",
                "a list as a value",
            ],
        ),
        (
            "      - {key: a, from_context: auth.subject, action: insert}\n",
            &["authenticators attach none"],
        ),
        (
            "      - {key: a, action: delete, pattern: '(?<x'}\n",
            &[
                "processors.resource.attributes[0].pattern",
                "does not compile",
            ],
        ),
    ] {
        let err = with(actions).expect_err(needles[0]).to_string();
        for needle in needles {
            assert!(err.contains(needle), "`{needle}` not in: {err}");
        }
    }
    let err = parse(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nprocessors:\n  resource:\nexporters:\n  debug:\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      processors: [resource]\n      exporters: [debug]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("attributes"), "{err}");
}

/// `attributes`: its actions checked as `resource`'s are; `include`/`exclude` checked as
/// contrib's `filterconfig` checks them, the keys a signal does not read refused where a
/// pipeline of that signal lists the processor.
#[test]
fn attributes_processors_check_their_matches_as_the_collector_does() {
    let with = |signal: &str, body: &str| {
        parse(&format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nprocessors:\n  attributes/a:\n{body}exporters:\n  debug:\nservice:\n  pipelines:\n    {signal}:\n      receivers: [otlp]\n      processors: [attributes/a]\n      exporters: [debug]\n"
        ))
        .map(|config| match config.processors.get(&id("attributes/a")) {
            Some(Processor::Attributes(a)) => (**a).clone(),
            other => panic!("an attributes processor, not {other:?}"),
        })
    };
    let actions = "    actions:\n      - {key: env, value: prod, action: insert}\n";
    let ok = with(
        "traces",
        &format!(
            "    include:\n      match_type: strict\n      services: [a]\n      span_kinds: [SPAN_KIND_SERVER]\n      attributes: [{{key: code, value: 500}}, {{key: flag}}]\n      libraries: [{{name: lib, version: '1.0'}}]\n    exclude:\n      match_type: regexp\n      regexp: {{cacheenabled: true, cachemaxnumentries: 10}}\n      span_names: ['^health']\n{actions}"
        ),
    )
    .expect("valid");
    let include = ok.include.expect("include");
    assert_eq!(include.match_type, Some(MatchType::Strict));
    assert_eq!(include.attributes[0].value, Some(ConfigValue::Int(500)));
    assert_eq!(include.attributes[1].value, None);
    assert_eq!(include.libraries[0].version.as_deref(), Some("1.0"));
    assert_eq!(ok.exclude.expect("exclude").span_names, ["^health"]);
    // Attributes without values need no match type, as in the Collector.
    with(
        "logs",
        &format!("    include:\n      attributes: [{{key: k}}]\n{actions}"),
    )
    .expect("no match type needed");
    // Metrics take `resources` and never read them (as the Collector, which checks them only
    // for spans and log records): wrong ones refuse a traces pipeline alone.
    for resources in [
        "match_type: strict\n      resources: [{key: k, value: v}]",
        "resources: [{key: k, value: v}]",
        "match_type: strict\n      resources: [{key: ''}]",
        "match_type: regexp\n      resources: [{key: k, value: 5}]",
        "match_type: regexp\n      resources: [{key: k, value: '('}]",
    ] {
        let body = format!("    exclude:\n      {resources}\n{actions}");
        with("metrics", &body).unwrap_or_else(|err| panic!("{resources}: {err}"));
        if resources.starts_with("match_type: strict\n      resources: [{key: k,") {
            continue;
        }
        let err = with("traces", &body).expect_err(resources).to_string();
        assert!(
            err.contains("pipeline `traces` uses `attributes/a`: its `exclude`"),
            "{err}"
        );
    }
    // A misspelt or `expr` match type where nothing needs one, and a whole float as a
    // severity number, as the Collector reads them.
    for body in [
        "    include:\n      match_type: expr\n      attributes: [{key: k}]\n",
        "    include:\n      match_type: STRICT\n      attributes: [{key: k}]\n",
        "    include:\n      match_type: strict\n      log_severity_number: {min: 9.0}\n",
        "    include:\n      match_type: strict\n      log_severity_number: {min: 9.5}\n",
        // A regexp cache without a size is unbounded; a negative one is refused only where
        // a regexp set is built, as the Collector does.
        "    include:\n      match_type: regexp\n      regexp: {cacheenabled: true}\n      log_bodies: [a]\n",
        "    include:\n      match_type: regexp\n      regexp: {cacheenabled: true, cachemaxnumentries: -1}\n      attributes: [{key: k}]\n",
    ] {
        with("logs", &format!("{body}{actions}")).unwrap_or_else(|err| panic!("{body}: {err}"));
    }
    for (signal, body, needles) in [
        (
            "traces",
            "    include:\n      match_type: strict\n      services: [a]\n",
            &["actions"][..],
        ),
        (
            "traces",
            "    include:\n      services: [a]\n",
            &["processors.attributes/a.include.match_type", "missing"],
        ),
        (
            "traces",
            "    include:\n      match_type: fuzzy\n      services: [a]\n",
            &["`fuzzy` is not a match type"],
        ),
        (
            "metrics",
            "    include:\n      match_type: expr\n      metric_names: [a]\n",
            &["`expr` is not supported"],
        ),
        (
            "traces",
            "    include:\n      match_type: strict\n      span_kinds: [server]\n",
            &[
                "processors.attributes/a.include.span_kinds[0]",
                "`server` is not a span kind",
            ],
        ),
        (
            "traces",
            "    include:\n      match_type: regexp\n      span_names: ['(?<x']\n",
            &[
                "processors.attributes/a.include.span_names[0]",
                "does not compile",
            ],
        ),
        (
            "traces",
            "    include:\n      match_type: regexp\n      attributes: [{key: code, value: 5}]\n",
            &[
                "processors.attributes/a.include.attributes[0].value",
                "must be a string",
            ],
        ),
        (
            "traces",
            "    include:\n      match_type: strict\n      attributes: [{value: 5}]\n",
            &["processors.attributes/a.include.attributes[0].key"],
        ),
        (
            "traces",
            "    include:\n      match_type: strict\n      attributes: [{key: a, value: [1]}]\n",
            &["a list as a value"],
        ),
        (
            "traces",
            "    include:\n      match_type: strict\n      log_bodies: [a]\n",
            &[
                "pipeline `traces` uses `attributes/a`",
                "`log_bodies` does not apply to spans",
            ],
        ),
        (
            "traces",
            "    exclude:\n      match_type: strict\n",
            &["its `exclude`", "for spans, give at least one of"],
        ),
        (
            "logs",
            "    include:\n      match_type: strict\n      span_names: [a]\n",
            &["`span_names` does not apply to log records"],
        ),
        (
            "metrics",
            "    include:\n      match_type: strict\n      attributes: [{key: a}]\n",
            &["`attributes` does not apply to metrics"],
        ),
        (
            "metrics",
            "    include:\n      match_type: strict\n      log_severity_number: {min: 9}\n",
            &["`log_severity_number` does not apply to metrics"],
        ),
        (
            "traces",
            "    include:\n      match_type: strict\n      services: [a]\n      colour: red\n",
            &["colour"],
        ),
        (
            "traces",
            "    include:\n      match_type: regexp\n      regexp: {cacheenabled: true, cachemaxnumentries: -1}\n      span_names: [a]\n",
            &["cachemaxnumentries", "positive size"],
        ),
        (
            "logs",
            "    include:\n      match_type: strict\n      log_severity_number: {min: high}\n",
            &["log_severity_number.min", "an integer"],
        ),
    ] {
        let body = if needles[0] == "actions" {
            body.to_string()
        } else {
            format!("{body}{actions}")
        };
        let err = with(signal, &body).expect_err(needles[0]).to_string();
        for needle in needles {
            assert!(err.contains(needle), "`{needle}` not in: {err}");
        }
    }
}
