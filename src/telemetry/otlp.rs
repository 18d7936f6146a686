//! The self-metrics as an OTLP metrics export request, for the Collector's periodic readers
//! (`service.telemetry.metrics.readers[].periodic`): every family of the registry and the process
//! families, under this gateway's resource (`service.telemetry.resource`), cumulative, as the
//! Collector's own periodic reader sends them.
//!
//! Counters are monotonic cumulative sums (integers; the process's uptime and CPU seconds as
//! doubles), gauges are gauges, histograms explicit-bucket histograms with the registry's
//! bounds. Names are the registry's, without the `_total` a Prometheus page may add; labels
//! become attributes.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::process;
use super::registry::{MetricType, Registry, Value};

/// An encoded `ExportMetricsServiceRequest` and the data points in it.
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub points: u64,
}

/// `registry` (and the process families) now, as one export request. `started` is the
/// process's start, the start time of every cumulative point.
pub fn export_request(
    registry: &Registry,
    resource: &[(String, String)],
    started: (Instant, SystemTime),
) -> Encoded {
    let now = unix_nanos(SystemTime::now());
    let start = unix_nanos(started.1);
    let mut metrics: Vec<Metric> = Vec::new();
    let mut points = 0u64;
    registry.visit(|name, help, kind, labels, value| {
        if metrics.last().is_none_or(|m| m.name != name) {
            metrics.push(Metric {
                name: name.to_string(),
                description: help.to_string(),
                data: Some(match kind {
                    MetricType::Counter => metric::Data::Sum(Sum {
                        data_points: Vec::new(),
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    }),
                    MetricType::Gauge => metric::Data::Gauge(Gauge {
                        data_points: Vec::new(),
                    }),
                    MetricType::Histogram => metric::Data::Histogram(Histogram {
                        data_points: Vec::new(),
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    }),
                }),
                ..Default::default()
            });
        }
        let Some(metric) = metrics.last_mut() else {
            return;
        };
        let attributes = attributes(labels);
        let number = |value: number_data_point::Value| NumberDataPoint {
            attributes: attributes.clone(),
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Some(value),
            ..Default::default()
        };
        match (metric.data.as_mut(), value) {
            (Some(metric::Data::Sum(sum)), Value::Number(n)) => sum.data_points.push(number(
                number_data_point::Value::AsInt(i64::try_from(n).unwrap_or(i64::MAX)),
            )),
            (Some(metric::Data::Gauge(gauge)), Value::Signed(n)) => gauge
                .data_points
                .push(number(number_data_point::Value::AsInt(n))),
            (Some(metric::Data::Histogram(histogram)), Value::Histogram(snapshot)) => {
                let mut previous = 0;
                let bucket_counts = snapshot
                    .cumulative
                    .iter()
                    .map(|&cumulative| {
                        let count = cumulative.saturating_sub(previous);
                        previous = cumulative;
                        count
                    })
                    .collect();
                histogram.data_points.push(HistogramDataPoint {
                    attributes: attributes.clone(),
                    start_time_unix_nano: start,
                    time_unix_nano: now,
                    count: snapshot.cumulative.last().copied().unwrap_or(0),
                    sum: Some(snapshot.sum as f64),
                    bucket_counts,
                    explicit_bounds: snapshot.bounds.iter().map(|&b| b as f64).collect(),
                    ..Default::default()
                });
            }
            // A family holds one kind of cell; nothing else is registered.
            _ => return,
        }
        points += 1;
    });
    for sample in process::samples(started.0) {
        let point = NumberDataPoint {
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsDouble(sample.value)),
            ..Default::default()
        };
        let data = if sample.counter {
            metric::Data::Sum(Sum {
                data_points: vec![point],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })
        } else {
            metric::Data::Gauge(Gauge {
                data_points: vec![point],
            })
        };
        metrics.push(Metric {
            name: sample.name.to_string(),
            description: sample.help.to_string(),
            data: Some(data),
            ..Default::default()
        });
        points += 1;
    }
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource
                    .iter()
                    .map(|(name, value)| string_attribute(name, value))
                    .collect(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "tailgate".to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Encoded {
        bytes: request.encode_to_vec(),
        points,
    }
}

fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn string_attribute(name: &str, value: &str) -> KeyValue {
    KeyValue {
        key: name.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// The registry's rendered labels, `k="v",k2="v2"` with `\\`, `\"` and `\n` escaped, as
/// attributes.
fn attributes(rendered: &str) -> Vec<KeyValue> {
    let mut out = Vec::new();
    let mut rest = rendered;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push(string_attribute(name.trim_start_matches(','), &value));
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::RegistryBuilder;

    #[test]
    fn labels_come_back_as_attributes() {
        let pairs: Vec<(String, String)> =
            attributes(r#"exporter="otlp/a",reason="say \"x\"\\y\nz""#)
                .into_iter()
                .map(|kv| match kv.value.and_then(|v| v.value) {
                    Some(any_value::Value::StringValue(s)) => (kv.key, s),
                    other => panic!("{other:?}"),
                })
                .collect();
        assert_eq!(
            pairs,
            vec![
                ("exporter".to_string(), "otlp/a".to_string()),
                ("reason".to_string(), "say \"x\"\\y\nz".to_string())
            ]
        );
        assert!(attributes("").is_empty());
    }

    #[test]
    fn counters_gauges_and_histograms_are_encoded_as_otlp() {
        let mut builder = RegistryBuilder::new();
        let sent = builder.counter(
            "otelcol_exporter_sent_spans",
            "Sent.",
            &[("exporter", "otlp")],
        );
        let queue = builder.gauge("otelcol_exporter_queue_size", "Queue.", &[]);
        let latency = builder.histogram("lat", "Latency.", &[10, 100], &[]);
        let registry = builder.build();
        sent.add(7);
        queue.set(3);
        latency.record(5);
        latency.record(50);
        latency.record(500);
        let encoded = export_request(
            &registry,
            &[("service.name".into(), "tailgate".into())],
            (Instant::now(), SystemTime::now()),
        );
        let request = ExportMetricsServiceRequest::decode(&encoded.bytes[..]).unwrap();
        let scope = &request.resource_metrics[0].scope_metrics[0];
        let by_name = |name: &str| {
            scope
                .metrics
                .iter()
                .find(|m| m.name == name)
                .and_then(|m| m.data.clone())
                .unwrap_or_else(|| panic!("{name}"))
        };
        match by_name("otelcol_exporter_sent_spans") {
            metric::Data::Sum(sum) => {
                assert!(sum.is_monotonic);
                assert_eq!(
                    sum.data_points[0].value,
                    Some(number_data_point::Value::AsInt(7))
                );
                assert_eq!(sum.data_points[0].attributes[0].key, "exporter");
            }
            other => panic!("{other:?}"),
        }
        match by_name("otelcol_exporter_queue_size") {
            metric::Data::Gauge(g) => {
                assert_eq!(
                    g.data_points[0].value,
                    Some(number_data_point::Value::AsInt(3))
                )
            }
            other => panic!("{other:?}"),
        }
        match by_name("lat") {
            metric::Data::Histogram(h) => {
                let p = &h.data_points[0];
                assert_eq!((p.count, p.sum), (3, Some(555.0)));
                assert_eq!(p.bucket_counts, vec![1, 1, 1]);
                assert_eq!(p.explicit_bounds, vec![10.0, 100.0]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            by_name("otelcol_process_uptime"),
            metric::Data::Sum(_)
        ));
        assert!(encoded.points >= 4);
    }
}
