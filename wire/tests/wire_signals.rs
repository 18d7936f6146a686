//! Metrics and logs through the wire layer at resource/scope granularity: validated in place,
//! counted the way the Collector counts them, read through views, and framed back into
//! requests from their group headers and item bytes.
//!
//! prost is the oracle: requests are built with the prost types, and what the views report and
//! what the framer writes is compared with what prost decodes.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric, number_data_point,
    summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use tailgate_wire::{
    item_count, AnyValueView, Framer, KeyValues, LogRecordView, MetricView, Piece, Request, Signal,
};

// --- building requests -------------------------------------------------------------------------

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.to_owned())
}

fn resource(service: &str, dropped: u32) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", string(service)),
            kv("service.instance.id", any_value::Value::IntValue(7)),
        ],
        dropped_attributes_count: dropped,
        entity_refs: vec![],
    })
}

fn scope(name: &str, version: &str) -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: name.into(),
        version: version.into(),
        attributes: vec![kv("scope.kind", string(name))],
        dropped_attributes_count: 0,
    })
}

fn number_points(n: usize, seed: u64) -> Vec<NumberDataPoint> {
    (0..n as u64)
        .map(|i| NumberDataPoint {
            attributes: vec![kv("core", any_value::Value::IntValue(i as i64))],
            start_time_unix_nano: 1_000 + seed,
            time_unix_nano: 2_000 + seed + i,
            exemplars: if i == 0 {
                vec![Exemplar {
                    filtered_attributes: vec![kv("user", string("u"))],
                    time_unix_nano: 1_500 + seed,
                    span_id: vec![1; 8],
                    trace_id: vec![2; 16],
                    value: Some(exemplar::Value::AsDouble(0.5)),
                }]
            } else {
                vec![]
            },
            flags: 0,
            value: Some(if i % 2 == 0 {
                number_data_point::Value::AsInt(seed as i64 * 10 + i as i64)
            } else {
                number_data_point::Value::AsDouble(seed as f64 + i as f64 / 4.0)
            }),
        })
        .collect()
}

fn gauge(name: &str, points: usize) -> Metric {
    Metric {
        name: name.into(),
        description: format!("{name} gauge"),
        unit: "1".into(),
        metadata: vec![],
        data: Some(metric::Data::Gauge(Gauge {
            data_points: number_points(points, 1),
        })),
    }
}

fn sum(name: &str, points: usize) -> Metric {
    Metric {
        name: name.into(),
        unit: "{request}".into(),
        metadata: vec![kv("prometheus.type", string("counter"))],
        data: Some(metric::Data::Sum(Sum {
            data_points: number_points(points, 2),
            aggregation_temporality: 2,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn histogram(name: &str, points: usize) -> Metric {
    Metric {
        name: name.into(),
        unit: "ms".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: (0..points as u64)
                .map(|i| HistogramDataPoint {
                    attributes: vec![kv("route", string("/a"))],
                    start_time_unix_nano: 10,
                    time_unix_nano: 20 + i,
                    count: 6 + i,
                    sum: Some(12.5),
                    bucket_counts: vec![1, 2, 3 + i],
                    explicit_bounds: vec![1.0, 10.0],
                    exemplars: vec![],
                    flags: 0,
                    min: Some(0.5),
                    max: if i == 0 { Some(20.0) } else { None },
                })
                .collect(),
            aggregation_temporality: 1,
        })),
        ..Default::default()
    }
}

fn exponential_histogram(name: &str, points: usize) -> Metric {
    Metric {
        name: name.into(),
        data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: (0..points as u64)
                .map(|i| ExponentialHistogramDataPoint {
                    attributes: vec![],
                    start_time_unix_nano: 30,
                    time_unix_nano: 40 + i,
                    count: 9,
                    sum: Some(4.25),
                    scale: -2 + i as i32,
                    zero_count: 1,
                    positive: Some(Buckets {
                        offset: -3,
                        bucket_counts: vec![2, 0, 4],
                    }),
                    negative: Some(Buckets {
                        offset: 1,
                        bucket_counts: vec![2],
                    }),
                    flags: 0,
                    exemplars: vec![],
                    min: None,
                    max: Some(9.0),
                    zero_threshold: 0.001,
                })
                .collect(),
            aggregation_temporality: 2,
        })),
        ..Default::default()
    }
}

fn summary(name: &str, points: usize) -> Metric {
    Metric {
        name: name.into(),
        data: Some(metric::Data::Summary(Summary {
            data_points: (0..points as u64)
                .map(|i| SummaryDataPoint {
                    attributes: vec![kv("gen", any_value::Value::IntValue(i as i64))],
                    start_time_unix_nano: 50,
                    time_unix_nano: 60 + i,
                    count: 3,
                    sum: 7.0,
                    quantile_values: vec![
                        ValueAtQuantile {
                            quantile: 0.5,
                            value: 2.0,
                        },
                        ValueAtQuantile {
                            quantile: 1.0,
                            value: 4.0,
                        },
                    ],
                    flags: 0,
                })
                .collect(),
        })),
        ..Default::default()
    }
}

/// Several resources and scopes, distinct schema URLs, every kind of metric data, a metric with
/// no data and one with no points; consecutive groups never share headers and every group
/// holds items, so framing its items again must give the same request back.
fn metrics_request() -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![
            ResourceMetrics {
                resource: resource("api", 0),
                scope_metrics: vec![
                    ScopeMetrics {
                        scope: scope("meter-a", "1.0"),
                        metrics: vec![gauge("cpu", 3), sum("requests", 2), histogram("latency", 1)],
                        schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
                    },
                    ScopeMetrics {
                        scope: scope("meter-b", ""),
                        metrics: vec![
                            exponential_histogram("rpc", 2),
                            summary("gc", 1),
                            gauge("idle", 0),
                        ],
                        schema_url: String::new(),
                    },
                ],
                schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
            },
            ResourceMetrics {
                resource: None,
                scope_metrics: vec![ScopeMetrics {
                    scope: None,
                    metrics: vec![sum("anonymous", 4)],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
            ResourceMetrics {
                resource: resource("worker", 3),
                scope_metrics: vec![
                    ScopeMetrics {
                        // The same scope as the first resource's: a different resource group.
                        scope: scope("meter-a", "1.0"),
                        metrics: vec![gauge("cpu", 1)],
                        schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
                    },
                    ScopeMetrics {
                        scope: scope("meter-c", "3"),
                        metrics: vec![
                            histogram("queue.wait", 2),
                            Metric {
                                name: "declared.only".into(),
                                ..Default::default()
                            },
                        ],
                        schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                    },
                ],
                schema_url: "https://opentelemetry.io/schemas/1.25.0".into(),
            },
        ],
    }
}

fn log(n: u64, severity: i32, body: Option<any_value::Value>) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000 + n,
        observed_time_unix_nano: 1_700_000_000_000_000_500 + n,
        severity_number: severity,
        severity_text: ["", "INFO", "WARN", "ERROR"][n as usize % 4].into(),
        body: body.map(|value| AnyValue { value: Some(value) }),
        attributes: vec![kv("seq", any_value::Value::IntValue(n as i64))],
        dropped_attributes_count: n as u32 % 2,
        flags: (n % 2) as u32,
        trace_id: if n.is_multiple_of(2) {
            vec![n as u8; 16]
        } else {
            vec![]
        },
        span_id: if n.is_multiple_of(2) {
            vec![n as u8 + 1; 8]
        } else {
            vec![]
        },
        event_name: if n == 3 {
            "login".into()
        } else {
            String::new()
        },
    }
}

/// Several resources and scopes with records of every body kind.
fn logs_request() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![
            ResourceLogs {
                resource: resource("billing", 1),
                scope_logs: vec![
                    ScopeLogs {
                        scope: scope("log4j", "2.20"),
                        log_records: vec![
                            log(0, 9, Some(string("payment accepted"))),
                            log(1, 13, Some(any_value::Value::IntValue(-402))),
                            log(
                                2,
                                17,
                                Some(any_value::Value::KvlistValue(KeyValueList {
                                    values: vec![
                                        kv("code", any_value::Value::IntValue(500)),
                                        kv("retry", any_value::Value::BoolValue(false)),
                                    ],
                                })),
                            ),
                        ],
                        schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
                    },
                    ScopeLogs {
                        scope: scope("audit", "1"),
                        log_records: vec![log(
                            3,
                            21,
                            Some(any_value::Value::ArrayValue(ArrayValue {
                                values: vec![
                                    AnyValue {
                                        value: Some(any_value::Value::DoubleValue(1.5)),
                                    },
                                    AnyValue {
                                        value: Some(any_value::Value::BytesValue(vec![0, 1, 2])),
                                    },
                                ],
                            })),
                        )],
                        schema_url: String::new(),
                    },
                ],
                schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
            },
            ResourceLogs {
                resource: None,
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: vec![log(4, 0, None), log(5, 24, Some(string("")))],
                    schema_url: String::new(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.25.0".into(),
            },
        ],
    }
}

// --- oracles ------------------------------------------------------------------------------------

/// Data points of one metric as prost decoded it.
fn prost_points(metric: &Metric) -> u64 {
    (match &metric.data {
        None => 0,
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(e)) => e.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
    }) as u64
}

fn prost_metrics(request: &ExportMetricsServiceRequest) -> Vec<&Metric> {
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .collect()
}

fn prost_logs(request: &ExportLogsServiceRequest) -> Vec<&LogRecord> {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .collect()
}

fn utf8(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

/// An attribute value view as the prost value it should equal.
fn value_of(view: AnyValueView<'_>) -> Option<any_value::Value> {
    Some(match view {
        AnyValueView::Empty => return None,
        AnyValueView::String(s) => any_value::Value::StringValue(utf8(s)),
        AnyValueView::Bool(b) => any_value::Value::BoolValue(b),
        AnyValueView::Int(i) => any_value::Value::IntValue(i),
        AnyValueView::Double(d) => any_value::Value::DoubleValue(d),
        AnyValueView::Bytes(b) => any_value::Value::BytesValue(b.to_vec()),
        AnyValueView::Array(array) => any_value::Value::ArrayValue(ArrayValue {
            values: array
                .iter()
                .map(|v| AnyValue { value: value_of(v) })
                .collect(),
        }),
        AnyValueView::KvList(list) => any_value::Value::KvlistValue(KeyValueList {
            values: attributes_of(list),
        }),
    })
}

fn attributes_of(list: KeyValues<'_>) -> Vec<KeyValue> {
    list.map(|kv| KeyValue {
        key: utf8(kv.key),
        value: Some(AnyValue {
            value: value_of(kv.value),
        }),
        key_strindex: 0,
    })
    .collect()
}

// --- framing ------------------------------------------------------------------------------------

/// One item with copies of its groups' headers, as a receiver would keep them once the request's
/// buffer is gone.
struct OwnedPiece {
    resource: Vec<u8>,
    scope: Vec<u8>,
    item: Vec<u8>,
}

fn owned_pieces(request: &Request<'_>) -> Vec<OwnedPiece> {
    let mut pieces = Vec::new();
    for resource_group in request.resource_groups() {
        let mut resource = Vec::new();
        for part in resource_group.header().parts() {
            resource.extend_from_slice(part);
        }
        for scope_group in resource_group.scope_groups() {
            let mut scope = Vec::new();
            for part in scope_group.header().parts() {
                scope.extend_from_slice(part);
            }
            for item in scope_group.items() {
                pieces.push(OwnedPiece {
                    resource: resource.clone(),
                    scope: scope.clone(),
                    item: item.bytes.to_vec(),
                });
            }
        }
    }
    pieces
}

/// Frames `pieces` after some bytes already in the output, as a batcher appending requests to
/// one buffer would, and returns just the new request.
fn frame(pieces: &[OwnedPiece]) -> Vec<u8> {
    let pieces: Vec<Piece<'_>> = pieces
        .iter()
        .map(|p| Piece {
            resource: &p.resource,
            scope: &p.scope,
            item: &p.item,
        })
        .collect();
    let prefix = b"previous request";
    let mut out = prefix.to_vec();
    let len = Framer::new().frame(pieces.iter().copied(), &mut out);
    assert_eq!(
        len,
        out.len() - prefix.len(),
        "frame returns what it appended"
    );
    assert_eq!(
        &out[..prefix.len()],
        prefix,
        "frame leaves earlier bytes alone"
    );
    out.split_off(prefix.len())
}

/// Wraps a field's payload in its tag (wire type LEN) and length prefix.
fn len_field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for mut value in [u64::from(number) << 3 | 2, payload.len() as u64] {
        while value >= 0x80 {
            out.push(value as u8 | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }
    out.extend_from_slice(payload);
    out
}

/// A request (of any signal) with one resource group, one scope group and one item.
fn single_item_request(item: &[u8]) -> Vec<u8> {
    len_field(1, &len_field(2, &len_field(2, item)))
}

// --- metrics --------------------------------------------------------------------------------------

#[test]
fn metrics_item_count_is_the_number_of_data_points() {
    let original = metrics_request();
    let bytes = original.encode_to_vec();
    let request = Request::parse(Signal::Metrics, &bytes).expect("valid request");
    assert_eq!(request.signal(), Signal::Metrics);

    let expected: u64 = prost_metrics(&original).into_iter().map(prost_points).sum();
    assert_eq!(
        expected,
        3 + 2 + 1 + 2 + 1 + 4 + 1 + 2,
        "the oracle counts what was built"
    );
    assert_eq!(item_count(&request), expected);
}

#[test]
fn metric_views_match_prost() {
    let bytes = metrics_request().encode_to_vec();
    let decoded = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
    let request = Request::parse(Signal::Metrics, &bytes).unwrap();

    let views: Vec<_> = request
        .items()
        .map(|(_, _, item)| MetricView::new(item))
        .collect();
    let metrics = prost_metrics(&decoded);
    assert_eq!(views.len(), metrics.len());
    for (view, metric) in views.iter().zip(&metrics) {
        assert_eq!(view.name(), metric.name.as_bytes());
        assert_eq!(
            view.data_point_count(),
            prost_points(metric),
            "{}",
            metric.name
        );
    }

    // Groups: same count, resources, scopes and schema URLs as prost sees.
    let groups: Vec<_> = request.resource_groups().collect();
    assert_eq!(groups.len(), decoded.resource_metrics.len());
    for (group, prost_group) in groups.iter().zip(&decoded.resource_metrics) {
        assert_eq!(group.schema_url(), prost_group.schema_url.as_bytes());
        match (&group.resource(), &prost_group.resource) {
            (None, None) => {}
            (Some(view), Some(resource)) => {
                assert_eq!(attributes_of(view.attributes()), resource.attributes);
                assert_eq!(
                    view.dropped_attributes_count(),
                    resource.dropped_attributes_count
                );
                assert_eq!(view.raw(), resource.encode_to_vec());
            }
            (view, resource) => panic!("resource {view:?} vs {resource:?}"),
        }
        let scopes: Vec<_> = group.scope_groups().collect();
        assert_eq!(scopes.len(), prost_group.scope_metrics.len());
        for (scope_group, prost_scope) in scopes.iter().zip(&prost_group.scope_metrics) {
            assert_eq!(scope_group.schema_url(), prost_scope.schema_url.as_bytes());
            assert_eq!(scope_group.items().count(), prost_scope.metrics.len());
            match (&scope_group.scope(), &prost_scope.scope) {
                (None, None) => {}
                (Some(view), Some(scope)) => {
                    assert_eq!(view.name(), scope.name.as_bytes());
                    assert_eq!(view.version(), scope.version.as_bytes());
                    assert_eq!(attributes_of(view.attributes()), scope.attributes);
                    assert_eq!(
                        view.dropped_attributes_count(),
                        scope.dropped_attributes_count
                    );
                }
                (view, scope) => panic!("scope {view:?} vs {scope:?}"),
            }
        }
    }
}

#[test]
fn metrics_framed_from_headers_and_items_decode_to_the_same_request() {
    let original = metrics_request();
    let bytes = original.encode_to_vec();
    let request = Request::parse(Signal::Metrics, &bytes).unwrap();
    let pieces = owned_pieces(&request);
    assert_eq!(pieces.len(), prost_metrics(&original).len());

    let framed = frame(&pieces);
    let reframed = Request::parse(Signal::Metrics, &framed).expect("framed request validates");
    assert_eq!(item_count(&reframed), item_count(&request));
    let decoded = ExportMetricsServiceRequest::decode(framed.as_slice()).unwrap();
    assert_eq!(decoded, original);
    // Items are copied, never re-encoded.
    for ((_, _, a), (_, _, b)) in request.items().zip(reframed.items()) {
        assert_eq!(a.bytes, b.bytes);
    }
}

#[test]
fn metrics_from_two_requests_with_equal_headers_share_one_group() {
    let build = |metrics: Vec<Metric>| ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("api", 2),
            scope_metrics: vec![ScopeMetrics {
                scope: scope("meter-a", "1.0"),
                metrics,
                schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
        }],
    };
    let first = build(vec![gauge("cpu", 2), summary("gc", 1)]);
    let second = build(vec![
        histogram("latency", 3),
        exponential_histogram("rpc", 2),
    ]);
    let (first_bytes, second_bytes) = (first.encode_to_vec(), second.encode_to_vec());
    let first_request = Request::parse(Signal::Metrics, &first_bytes).unwrap();
    let second_request = Request::parse(Signal::Metrics, &second_bytes).unwrap();

    let mut pieces = owned_pieces(&first_request);
    pieces.extend(owned_pieces(&second_request));
    // Equal bytes at different addresses: the framer must compare contents.
    assert_ne!(pieces[0].resource.as_ptr(), pieces[2].resource.as_ptr());
    let framed = frame(&pieces);

    let decoded = ExportMetricsServiceRequest::decode(framed.as_slice()).unwrap();
    assert_eq!(decoded.resource_metrics.len(), 1, "one resource group");
    assert_eq!(
        decoded.resource_metrics[0].scope_metrics.len(),
        1,
        "one scope group"
    );
    let mut expected = first.clone();
    expected.resource_metrics[0].scope_metrics[0]
        .metrics
        .extend(second.resource_metrics[0].scope_metrics[0].metrics.clone());
    assert_eq!(decoded, expected);

    let reframed = Request::parse(Signal::Metrics, &framed).unwrap();
    assert_eq!(
        item_count(&reframed),
        item_count(&first_request) + item_count(&second_request)
    );
    assert_eq!(item_count(&reframed), 2 + 1 + 3 + 2);
}

#[test]
fn pieces_whose_headers_differ_start_new_groups() {
    // scope A, scope B, scope A again under one resource: three scope groups, in order, since
    // only consecutive pieces share a group.
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("api", 0),
            scope_metrics: vec![
                ScopeMetrics {
                    scope: scope("a", "1"),
                    metrics: vec![gauge("x", 1)],
                    schema_url: String::new(),
                },
                ScopeMetrics {
                    scope: scope("b", "1"),
                    metrics: vec![gauge("y", 1)],
                    schema_url: String::new(),
                },
                ScopeMetrics {
                    scope: scope("a", "1"),
                    metrics: vec![gauge("z", 1)],
                    schema_url: String::new(),
                },
            ],
            schema_url: String::new(),
        }],
    };
    let bytes = request.encode_to_vec();
    let pieces = owned_pieces(&Request::parse(Signal::Metrics, &bytes).unwrap());
    let decoded = ExportMetricsServiceRequest::decode(frame(&pieces).as_slice()).unwrap();
    assert_eq!(decoded, request);
}

/// Builds a metric from several encodings of metric fields, concatenated: protobuf decoders
/// merge repeated occurrences of a message field, and a oneof takes its last member.
fn concatenated_metric(parts: &[Metric]) -> Vec<u8> {
    parts.iter().flat_map(|m| m.encode_to_vec()).collect()
}

fn data_only(metric: Metric) -> Metric {
    Metric {
        name: String::new(),
        description: String::new(),
        unit: String::new(),
        metadata: vec![],
        ..metric
    }
}

#[test]
fn repeated_data_fields_count_as_protobuf_merges_them() {
    let cases: Vec<(&str, Vec<Metric>, u64)> = vec![
        (
            "gauge twice",
            vec![gauge("m", 2), data_only(gauge("", 3))],
            5,
        ),
        (
            "gauge three times",
            vec![
                gauge("m", 1),
                data_only(gauge("", 1)),
                data_only(gauge("", 4)),
            ],
            6,
        ),
        (
            "gauge then sum",
            vec![gauge("m", 2), data_only(sum("", 3))],
            3,
        ),
        (
            "sum then gauge twice",
            vec![
                sum("m", 3),
                data_only(gauge("", 2)),
                data_only(gauge("", 1)),
            ],
            3,
        ),
        (
            "gauge, sum, gauge",
            vec![
                gauge("m", 2),
                data_only(sum("", 1)),
                data_only(gauge("", 4)),
            ],
            4,
        ),
        (
            "histogram twice",
            vec![histogram("m", 1), data_only(histogram("", 2))],
            3,
        ),
        (
            "exponential histogram twice",
            vec![
                exponential_histogram("m", 2),
                data_only(exponential_histogram("", 2)),
            ],
            4,
        ),
        (
            "summary twice",
            vec![summary("m", 1), data_only(summary("", 1))],
            2,
        ),
        (
            "summary then nothing",
            vec![summary("m", 2), Metric::default()],
            2,
        ),
    ];
    for (what, parts, points) in cases {
        let metric_bytes = concatenated_metric(&parts);
        let bytes = single_item_request(&metric_bytes);

        // The oracle: what a protobuf decoder makes of the bytes.
        let decoded = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
        let metric = prost_metrics(&decoded)[0];
        assert_eq!(
            prost_points(metric),
            points,
            "{what}: prost merges as the spec says"
        );
        assert_eq!(metric.name, "m");

        let request = Request::parse(Signal::Metrics, &bytes).expect(what);
        let (_, _, item) = request.items().next().unwrap();
        assert_eq!(item.bytes, metric_bytes.as_slice());
        let view = MetricView::new(item);
        assert_eq!(view.data_point_count(), points, "{what}");
        assert_eq!(view.name(), b"m", "{what}");
        assert_eq!(item_count(&request), points, "{what}");
    }
}

#[test]
fn an_empty_metrics_request_has_no_items() {
    for request in [
        ExportMetricsServiceRequest::default(),
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource("idle", 0),
                scope_metrics: vec![ScopeMetrics::default()],
                schema_url: String::new(),
            }],
        },
    ] {
        let bytes = request.encode_to_vec();
        let parsed = Request::parse(Signal::Metrics, &bytes).unwrap();
        assert_eq!(item_count(&parsed), 0);
        assert!(
            frame(&owned_pieces(&parsed)).is_empty(),
            "no pieces frame no request"
        );
    }
}

// --- logs -----------------------------------------------------------------------------------------

#[test]
fn logs_item_count_is_the_number_of_log_records() {
    let original = logs_request();
    let bytes = original.encode_to_vec();
    let request = Request::parse(Signal::Logs, &bytes).expect("valid request");
    assert_eq!(request.signal(), Signal::Logs);
    let expected = prost_logs(&original).len() as u64;
    assert_eq!(expected, 6, "the oracle counts what was built");
    assert_eq!(item_count(&request), expected);
}

#[test]
fn log_record_views_match_prost() {
    let bytes = logs_request().encode_to_vec();
    let decoded = ExportLogsServiceRequest::decode(bytes.as_slice()).unwrap();
    let request = Request::parse(Signal::Logs, &bytes).unwrap();

    let views: Vec<_> = request
        .items()
        .map(|(_, _, item)| LogRecordView::new(item))
        .collect();
    let records = prost_logs(&decoded);
    assert_eq!(views.len(), records.len());
    for (i, (view, record)) in views.iter().zip(&records).enumerate() {
        assert_eq!(view.severity_number(), record.severity_number, "record {i}");
        assert_eq!(
            view.severity_text(),
            record.severity_text.as_bytes(),
            "record {i}"
        );
        assert_eq!(view.trace_id(), record.trace_id.as_slice(), "record {i}");
        assert_eq!(view.span_id(), record.span_id.as_slice(), "record {i}");
        assert_eq!(
            value_of(view.body()),
            record.body.as_ref().and_then(|b| b.value.clone()),
            "record {i}"
        );
        assert_eq!(
            attributes_of(view.attributes()),
            record.attributes,
            "record {i}"
        );
    }
    // Spot checks against the values built, not only against prost.
    assert!(matches!(
        views[0].body(),
        AnyValueView::String(b"payment accepted")
    ));
    assert!(matches!(views[1].body(), AnyValueView::Int(-402)));
    assert_eq!(views[1].severity_number(), 13);
    assert_eq!(views[2].trace_id(), [2; 16]);
    assert!(matches!(views[4].body(), AnyValueView::Empty));
    assert!(matches!(views[5].body(), AnyValueView::String(b"")));

    let groups: Vec<_> = request.resource_groups().collect();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        groups[0].schema_url(),
        b"https://opentelemetry.io/schemas/1.24.0"
    );
    assert_eq!(
        groups[1].schema_url(),
        b"https://opentelemetry.io/schemas/1.25.0"
    );
    assert!(groups[1].resource().is_none());
    let scopes: Vec<_> = groups[0].scope_groups().collect();
    assert_eq!(scopes[0].scope().unwrap().name(), b"log4j");
    assert_eq!(scopes[0].scope().unwrap().version(), b"2.20");
    assert_eq!(scopes[1].scope().unwrap().name(), b"audit");
    assert_eq!(
        scopes[0].schema_url(),
        b"https://opentelemetry.io/schemas/1.21.0"
    );
    assert_eq!(scopes[1].items().count(), 1);
}

#[test]
fn logs_framed_from_headers_and_items_decode_to_the_same_request() {
    let original = logs_request();
    let bytes = original.encode_to_vec();
    let request = Request::parse(Signal::Logs, &bytes).unwrap();
    let framed = frame(&owned_pieces(&request));
    let reframed = Request::parse(Signal::Logs, &framed).expect("framed request validates");
    assert_eq!(item_count(&reframed), 6);
    assert_eq!(
        ExportLogsServiceRequest::decode(framed.as_slice()).unwrap(),
        original
    );
}

#[test]
fn logs_from_two_requests_with_equal_headers_share_one_group() {
    let build = |records: Vec<LogRecord>| ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("billing", 1),
            scope_logs: vec![ScopeLogs {
                scope: scope("log4j", "2.20"),
                log_records: records,
                schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
        }],
    };
    let first = build(vec![log(0, 9, Some(string("a"))), log(1, 13, None)]);
    let second = build(vec![log(2, 17, Some(string("c")))]);
    let (first_bytes, second_bytes) = (first.encode_to_vec(), second.encode_to_vec());
    let mut pieces = owned_pieces(&Request::parse(Signal::Logs, &first_bytes).unwrap());
    pieces.extend(owned_pieces(
        &Request::parse(Signal::Logs, &second_bytes).unwrap(),
    ));
    let framed = frame(&pieces);

    let decoded = ExportLogsServiceRequest::decode(framed.as_slice()).unwrap();
    assert_eq!(decoded.resource_logs.len(), 1, "one resource group");
    assert_eq!(
        decoded.resource_logs[0].scope_logs.len(),
        1,
        "one scope group"
    );
    let records: Vec<_> = prost_logs(&decoded).into_iter().cloned().collect();
    let mut expected: Vec<_> = prost_logs(&first).into_iter().cloned().collect();
    expected.extend(prost_logs(&second).into_iter().cloned());
    assert_eq!(records, expected);
    assert_eq!(
        decoded.resource_logs[0].resource,
        first.resource_logs[0].resource
    );
    assert_eq!(
        decoded.resource_logs[0].scope_logs[0].scope,
        first.resource_logs[0].scope_logs[0].scope
    );
    assert_eq!(
        item_count(&Request::parse(Signal::Logs, &framed).unwrap()),
        3
    );
}

#[test]
fn empty_groups_do_not_survive_framing_but_every_record_does() {
    let mut original = logs_request();
    original.resource_logs[0]
        .scope_logs
        .insert(1, ScopeLogs::default());
    original.resource_logs.insert(
        1,
        ResourceLogs {
            resource: resource("silent", 0),
            scope_logs: vec![],
            schema_url: String::new(),
        },
    );
    let bytes = original.encode_to_vec();
    let request = Request::parse(Signal::Logs, &bytes).unwrap();
    assert_eq!(request.resource_groups().count(), 3);
    let framed = frame(&owned_pieces(&request));
    assert_eq!(
        ExportLogsServiceRequest::decode(framed.as_slice()).unwrap(),
        logs_request()
    );
}

#[test]
fn unknown_fields_in_group_headers_travel_with_the_items() {
    // A resource group and a scope group, each with a field this OTLP version does not define
    // (field 1000, a varint), in front of their known fields.
    let unknown_resource_field = [0xc0, 0x3e, 0x2a]; // field 1000, VARINT, 42
    let unknown_scope_field = [0xc8, 0x3e, 0x07]; // field 1001, VARINT, 7
    let record = log(0, 9, Some(string("x"))).encode_to_vec();
    let scope_group = [
        &unknown_scope_field[..],
        &len_field(1, &scope("log4j", "1").unwrap().encode_to_vec()),
        &len_field(2, &record),
    ]
    .concat();
    let resource_group = [
        &unknown_resource_field[..],
        &len_field(3, b"https://example.com/schema"),
        &len_field(2, &scope_group),
    ]
    .concat();
    let bytes = len_field(1, &resource_group);
    let request = Request::parse(Signal::Logs, &bytes).unwrap();

    let framed = frame(&owned_pieces(&request));
    let reframed = Request::parse(Signal::Logs, &framed).unwrap();
    let (resource, scope, item) = reframed.items().next().unwrap();
    let resource_header: Vec<_> = resource.header().parts().collect();
    assert_eq!(
        resource_header,
        [
            &unknown_resource_field[..],
            &len_field(3, b"https://example.com/schema")
        ]
    );
    let scope_header: Vec<_> = scope.header().parts().collect();
    assert_eq!(scope_header[0], unknown_scope_field);
    assert_eq!(scope.scope().unwrap().name(), b"log4j");
    assert_eq!(item.bytes, record.as_slice());
    // A protobuf decoder skips the unknown fields and sees the same request.
    assert_eq!(
        ExportLogsServiceRequest::decode(framed.as_slice()).unwrap(),
        ExportLogsServiceRequest::decode(bytes.as_slice()).unwrap()
    );
}

/// Splitting by resource group: every group written on its own is a valid request of the same
/// signal holding exactly that group, its items counted as the whole request counts them, and
/// the groups written back to back are the original request.
#[test]
fn resource_groups_written_alone_are_requests_of_their_own() {
    let metrics = metrics_request().encode_to_vec();
    let logs = logs_request().encode_to_vec();
    for (signal, bytes) in [(Signal::Metrics, &metrics), (Signal::Logs, &logs)] {
        let request = Request::parse(signal, bytes).expect("valid");
        let mut all = Vec::new();
        let mut counted = 0;
        for group in request.resource_groups() {
            let mut alone = Vec::new();
            group.write_to(&mut alone);
            let parsed = Request::parse(signal, &alone).expect("a group alone is a request");
            assert_eq!(parsed.resource_groups().count(), 1);
            assert_eq!(item_count(&parsed), group.item_count(signal));
            counted += group.item_count(signal);
            all.extend_from_slice(&alone);
        }
        assert!(
            request.resource_groups().count() > 1,
            "the test needs several groups"
        );
        assert_eq!(counted, item_count(&request));
        assert_eq!(&all, bytes);
    }
}
