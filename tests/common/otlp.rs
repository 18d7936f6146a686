//! OTLP export requests for tests that need a service name on each resource (the peers that
//! record requests tell tenants apart by it).
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// A traces request of `spans` under one resource, of service `service`.
pub fn spans_request(service: &str, spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

/// A resource whose `service.name` is `service`.
pub fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(service.into())),
            }),
            ..KeyValue::default()
        }],
        ..Resource::default()
    })
}

/// One gauge of `points` data points from `service`.
pub fn metrics_request(service: &str, points: usize) -> Vec<u8> {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(service),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue_depth".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![
                            NumberDataPoint {
                                time_unix_nano: 1,
                                ..NumberDataPoint::default()
                            };
                            points
                        ],
                    })),
                    ..Metric::default()
                }],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
    .encode_to_vec()
}

/// `records` log records from `service`.
pub fn logs_request(service: &str, records: usize) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(service),
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    LogRecord {
                        time_unix_nano: 1,
                        ..LogRecord::default()
                    };
                    records
                ],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
    .encode_to_vec()
}

/// A resource group of `service` holding a log record of each severity number of `severities`.
pub fn log_group(service: &str, severities: &[i32]) -> ResourceLogs {
    ResourceLogs {
        resource: resource(service),
        scope_logs: vec![ScopeLogs {
            log_records: severities
                .iter()
                .map(|&severity_number| LogRecord {
                    time_unix_nano: 1,
                    severity_number,
                    ..LogRecord::default()
                })
                .collect(),
            ..ScopeLogs::default()
        }],
        ..ResourceLogs::default()
    }
}

/// An attribute `key` holding `value` (`None`: an `AnyValue` with no value set).
pub fn kv(key: &str, value: Option<any_value::Value>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value }),
        ..KeyValue::default()
    }
}

/// A string value, for [`kv`].
pub fn s(text: &str) -> Option<any_value::Value> {
    Some(any_value::Value::StringValue(text.into()))
}
