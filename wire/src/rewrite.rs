//! Rewriting one field of a span: the one place span bytes are not forwarded as received.
//!
//! Consistent probability sampling (OTEP 235) records a sampler's threshold in the span's W3C
//! `trace_state` (`Span` field 3). A kept span whose trace state changes is copied field by
//! field with the new `trace_state` in place of the old; every other field, unknown ones
//! included, keeps its bytes and its order. The span's length prefix is the framer's to write,
//! as for every span.

use super::encode::put_bytes_field;
use super::fields::Fields;
use super::proto::{put_varint, varint_len, Value};

/// `Span.trace_state`.
const TRACE_STATE: u32 = 3;

/// Appends `span` (the bytes of a validated `Span` message, without its tag and length) to
/// `out` with its `trace_state` set to `trace_state`: written where the first `trace_state`
/// field was, or, without one, before the first field numbered above it (the order encoders
/// write). Every other occurrence is left out, since the last one would otherwise win. An
/// empty `trace_state` is left out altogether, as proto3 encodes its default.
pub fn span_with_trace_state(span: &[u8], trace_state: &[u8], out: &mut Vec<u8>) {
    let mut written = trace_state.is_empty();
    for field in Fields::new(span, 0) {
        let is_trace_state = field.number == TRACE_STATE && matches!(field.value, Value::Len(..));
        if !written && (is_trace_state || field.number > TRACE_STATE) {
            put_bytes_field(out, TRACE_STATE, trace_state);
            written = true;
        }
        if !is_trace_state {
            out.extend_from_slice(field.raw);
        }
    }
    if !written {
        put_bytes_field(out, TRACE_STATE, trace_state);
    }
}

/// `Resource{Spans,Metrics,Logs}.resource`, and `Resource.attributes`.
const RESOURCE: u32 = 1;
const ATTRIBUTES: u32 = 1;

/// Appends `group` (a validated resource group) to `out` as a resource group field of an export
/// request, with its resource's attributes replaced by `attributes`: `Resource.attributes`
/// fields, each its tag, length and `KeyValue` message, concatenated. The resource's other
/// fields (its dropped-attribute count, fields this crate does not know), the group's scope
/// groups and schema URL keep their bytes and their order. The new resource is written first; a
/// group with several `resource` fields (which a decoder merges) gets one, holding the others'
/// fields but attributes. Nothing is allocated: lengths are summed, then the bytes written.
pub fn group_with_resource_attributes(
    group: &super::ResourceGroup<'_>,
    attributes: &[u8],
    out: &mut Vec<u8>,
) {
    let resource_fields = || {
        Fields::new(group.raw(), 0)
            .filter(|f| f.number == RESOURCE)
            .filter_map(|f| match f.value {
                Value::Len(payload, _) => Some(payload),
                _ => None,
            })
            .flat_map(|payload| Fields::new(payload, 0).filter(|f| f.number != ATTRIBUTES))
    };
    let resource_len = attributes.len() + resource_fields().map(|f| f.raw.len()).sum::<usize>();
    let rest: usize = Fields::new(group.raw(), 0)
        .filter(|f| f.number != RESOURCE)
        .map(|f| f.raw.len())
        .sum();
    let resource_field = 1 + varint_len(resource_len as u64) + resource_len;
    put_varint(out, u64::from(super::envelope::RESOURCE_GROUPS) << 3 | 2);
    put_varint(out, (resource_field + rest) as u64);
    out.reserve(resource_field + rest);
    put_varint(out, u64::from(RESOURCE) << 3 | 2);
    put_varint(out, resource_len as u64);
    out.extend_from_slice(attributes);
    for field in resource_fields() {
        out.extend_from_slice(field.raw);
    }
    for field in Fields::new(group.raw(), 0).filter(|f| f.number != RESOURCE) {
        out.extend_from_slice(field.raw);
    }
}

/// `Span.attributes`.
pub const SPAN_ATTRIBUTES: u32 = 9;
/// `LogRecord.attributes`.
pub const LOG_RECORD_ATTRIBUTES: u32 = 6;

/// The attributes of `message` (a validated message's bytes) held in its field `number`: a
/// span's ([`SPAN_ATTRIBUTES`]), a log record's ([`LOG_RECORD_ATTRIBUTES`]), a data point's
/// ([`DataPoint::attributes_field`]).
pub fn attributes_of(message: &[u8], number: u32) -> super::KeyValues<'_> {
    super::KeyValues::new(message, 0, number)
}

/// Appends `message` (a validated message's bytes, without its tag and length) to `out` with
/// its attributes (field `number`) replaced by `attributes`: fields of that number, each its
/// tag, length and `KeyValue` message, concatenated. They are written where the first
/// attributes field was or, without one, before the first field numbered above `number` (the
/// order encoders write); every other field, unknown ones included, keeps its bytes and order.
pub fn with_attributes(message: &[u8], number: u32, attributes: &[u8], out: &mut Vec<u8>) {
    let mut written = false;
    for field in Fields::new(message, 0) {
        let is_attribute = field.number == number && matches!(field.value, Value::Len(..));
        if !written && (is_attribute || field.number > number) {
            out.extend_from_slice(attributes);
            written = true;
        }
        if !is_attribute {
            out.extend_from_slice(field.raw);
        }
    }
    if !written {
        out.extend_from_slice(attributes);
    }
}

/// The `Metric.data` oneof's field numbers (gauge, sum, histogram, exponential histogram,
/// summary), each with the field its data points keep their attributes in. Each of those
/// messages holds its data points in field 1.
const DATA_ATTRIBUTES: [(u32, u32); 5] = [(5, 7), (7, 7), (9, 9), (10, 1), (11, 7)];
const DATA_POINTS: u32 = 1;

/// One data point of a metric.
#[derive(Debug, Clone, Copy)]
pub struct DataPoint<'a> {
    /// The data point's message (a `NumberDataPoint`, `HistogramDataPoint`,
    /// `ExponentialHistogramDataPoint` or `SummaryDataPoint`), without tag or length.
    pub bytes: &'a [u8],
    /// The field holding its attributes.
    pub attributes_field: u32,
}

fn data_attributes(number: u32) -> Option<u32> {
    DATA_ATTRIBUTES
        .iter()
        .find(|(data, _)| *data == number)
        .map(|(_, attributes)| *attributes)
}

/// Every data point of `metric` (a validated `Metric`'s bytes), in wire order, whatever data
/// field holds it (those a later field of another kind replaces included: editing them changes
/// nothing a decoder reads).
pub fn data_points(metric: &[u8]) -> impl Iterator<Item = DataPoint<'_>> + '_ {
    Fields::new(metric, 0).flat_map(|field| {
        let data = match (data_attributes(field.number), field.value) {
            (Some(attributes), Value::Len(payload, _)) => Some((attributes, payload)),
            _ => None,
        };
        data.into_iter().flat_map(|(attributes_field, payload)| {
            Fields::new(payload, 0).filter_map(move |f| match (f.number, f.value) {
                (DATA_POINTS, Value::Len(bytes, _)) => Some(DataPoint {
                    bytes,
                    attributes_field,
                }),
                _ => None,
            })
        })
    })
}

/// Appends `metric` (a validated `Metric`'s bytes) to `out` with some of its data points
/// replaced: `replacement(i)` gives the new bytes of the `i`-th point [`data_points`] yields,
/// or `None` to keep it as it came. Every other field of the metric and of its data messages
/// keeps its bytes and order. Lengths are summed first, then the bytes written once.
pub fn metric_with_data_points<'r>(
    metric: &[u8],
    replacement: impl Fn(usize) -> Option<&'r [u8]>,
    out: &mut Vec<u8>,
) {
    // Each data message's new length, for its tag; the same walk writes it below.
    let walk = |out: Option<&mut Vec<u8>>, lens: &mut Vec<usize>| {
        let mut out = out;
        let mut point = 0;
        let mut data_index = 0;
        for field in Fields::new(metric, 0) {
            let payload = match (data_attributes(field.number), field.value) {
                (Some(_), Value::Len(payload, _)) => payload,
                _ => {
                    if let Some(out) = out.as_deref_mut() {
                        out.extend_from_slice(field.raw);
                    }
                    continue;
                }
            };
            if let Some(out) = out.as_deref_mut() {
                put_varint(out, u64::from(field.number) << 3 | 2);
                put_varint(out, lens[data_index] as u64);
            }
            let mut len = 0;
            for inner in Fields::new(payload, 0) {
                let new = match (inner.number, inner.value) {
                    (DATA_POINTS, Value::Len(..)) => {
                        point += 1;
                        replacement(point - 1)
                    }
                    _ => None,
                };
                match (new, out.as_deref_mut()) {
                    (Some(bytes), Some(out)) => put_bytes_field(out, DATA_POINTS, bytes),
                    (None, Some(out)) => out.extend_from_slice(inner.raw),
                    (Some(bytes), None) => len += 1 + varint_len(bytes.len() as u64) + bytes.len(),
                    (None, None) => len += inner.raw.len(),
                }
            }
            if out.is_none() {
                lens.push(len);
            }
            data_index += 1;
        }
    };
    let mut lens = Vec::new();
    walk(None, &mut lens);
    walk(Some(out), &mut lens);
}

/// `Span.events`.
const SPAN_EVENTS: u32 = 11;

/// Appends `span` (a validated `Span`'s bytes) to `out` without the events `remove(i)` picks,
/// `i` numbering its events in wire order (the order [`crate::SpanView::events`] yields them).
/// Every other field keeps its bytes and its order.
pub fn span_without_events(span: &[u8], remove: impl Fn(usize) -> bool, out: &mut Vec<u8>) {
    let mut event = 0;
    for field in Fields::new(span, 0) {
        if child(&field, SPAN_EVENTS).is_some() {
            event += 1;
            if remove(event - 1) {
                continue;
            }
        }
        out.extend_from_slice(field.raw);
    }
}

/// The payload of `field` when it is a length-delimited field numbered `number`.
fn child<'a>(field: &crate::proto::Field<'a>, number: u32) -> Option<&'a [u8]> {
    match field.value {
        Value::Len(payload, _) if field.number == number => Some(payload),
        _ => None,
    }
}

/// Appends `request` (a validated export request's bytes, of any signal) to `out` with some of
/// its items replaced: `replacement(i)` gives the new bytes of the `i`-th item in wire order
/// (the order [`crate::Request::items`] yields them), or `None` to keep it. The request keeps
/// its shape: every group (empty ones included) and every other field keeps its bytes and its
/// place, and a resource group none of whose items is replaced is copied whole. Lengths are
/// summed first, then the bytes written once.
pub fn request_with_items<'r>(
    request: &[u8],
    replacement: impl Fn(usize) -> Option<&'r [u8]>,
    out: &mut Vec<u8>,
) {
    use crate::envelope::{CHILDREN, RESOURCE_GROUPS};
    let field_len = |len: usize| 1 + varint_len(len as u64) + len;
    let mut item = 0;
    let mut scope_lens: Vec<usize> = Vec::new();
    for field in Fields::new(request, 0) {
        let Some(group) = child(&field, RESOURCE_GROUPS) else {
            out.extend_from_slice(field.raw);
            continue;
        };
        // Measured: the group's new length, each scope group's, and whether anything changed.
        let first = item;
        scope_lens.clear();
        let (mut group_len, mut changed) = (0, false);
        for group_field in Fields::new(group, 0) {
            let Some(scope) = child(&group_field, CHILDREN) else {
                group_len += group_field.raw.len();
                continue;
            };
            let mut scope_len = 0;
            for scope_field in Fields::new(scope, 0) {
                if child(&scope_field, CHILDREN).is_none() {
                    scope_len += scope_field.raw.len();
                    continue;
                }
                scope_len += match replacement(item) {
                    Some(new) => {
                        changed = true;
                        field_len(new.len())
                    }
                    None => scope_field.raw.len(),
                };
                item += 1;
            }
            scope_lens.push(scope_len);
            group_len += field_len(scope_len);
        }
        if !changed {
            out.extend_from_slice(field.raw);
            continue;
        }
        // Written, in the same order.
        item = first;
        out.reserve(field_len(group_len));
        put_varint(out, u64::from(RESOURCE_GROUPS) << 3 | 2);
        put_varint(out, group_len as u64);
        let mut scope_lens = scope_lens.iter();
        for group_field in Fields::new(group, 0) {
            let Some(scope) = child(&group_field, CHILDREN) else {
                out.extend_from_slice(group_field.raw);
                continue;
            };
            put_varint(out, u64::from(CHILDREN) << 3 | 2);
            put_varint(out, *scope_lens.next().expect("measured") as u64);
            for scope_field in Fields::new(scope, 0) {
                if child(&scope_field, CHILDREN).is_none() {
                    out.extend_from_slice(scope_field.raw);
                    continue;
                }
                match replacement(item) {
                    Some(new) => put_bytes_field(out, CHILDREN, new),
                    None => out.extend_from_slice(scope_field.raw),
                }
                item += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message;

    fn rewritten(span: &Span, state: &str) -> Span {
        let bytes = span.encode_to_vec();
        let mut out = Vec::new();
        span_with_trace_state(&bytes, state.as_bytes(), &mut out);
        Span::decode(out.as_slice()).unwrap()
    }

    fn span(state: &str) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            trace_state: state.to_string(),
            name: "op".to_string(),
            start_time_unix_nano: 7,
            ..Default::default()
        }
    }

    #[test]
    fn replaces_adds_and_removes_the_trace_state_keeping_the_rest() {
        for (before, after) in [
            ("vendor=a", "ot=th:8,vendor=a"),
            ("", "ot=th:0"),
            ("ot=th:8", ""),
        ] {
            let got = rewritten(&span(before), after);
            assert_eq!(got, span(after), "{before:?} → {after:?}");
        }
        // Written in field order, so an encoder's output stays byte for byte an encoder's.
        assert_eq!(
            {
                let mut out = Vec::new();
                span_with_trace_state(&span("").encode_to_vec(), b"ot=th:0", &mut out);
                out
            },
            span("ot=th:0").encode_to_vec()
        );
    }

    #[test]
    fn every_occurrence_is_replaced_and_unknown_fields_stay() {
        let mut bytes = span("a=1").encode_to_vec();
        // A second trace_state (which would win on decoding) and an unknown field 99.
        bytes.extend_from_slice(&[0x1a, 3, b'b', b'=', b'2']);
        bytes.extend_from_slice(&[0x98, 0x06, 0x05]);
        let mut out = Vec::new();
        span_with_trace_state(&bytes, b"c=3", &mut out);
        assert_eq!(Span::decode(out.as_slice()).unwrap(), span("c=3"));
        assert!(out.ends_with(&[0x98, 0x06, 0x05]));
    }
}

#[cfg(test)]
mod group_tests {
    use super::*;
    use crate::{Request, Signal};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    /// `group` (a `ResourceLogs`'s fields, as bytes) rewritten with `attributes`, then read
    /// back through the validator and prost.
    fn rewrite(group: &[u8], attributes: &[KeyValue]) -> ResourceLogs {
        let mut request = Vec::new();
        put_bytes_field(&mut request, 1, group);
        let request_view = Request::parse(Signal::Logs, &request).expect("a valid input");
        let group_view = request_view.resource_groups().next().expect("a group");
        let mut fields = Vec::new();
        for attribute in attributes {
            put_bytes_field(&mut fields, 1, &attribute.encode_to_vec());
        }
        let mut out = Vec::new();
        group_with_resource_attributes(&group_view, &fields, &mut out);
        Request::parse(Signal::Logs, &out).expect("a valid output");
        let mut decoded = ExportLogsServiceRequest::decode(out.as_slice()).expect("decodes");
        assert_eq!(decoded.resource_logs.len(), 1);
        decoded.resource_logs.remove(0)
    }

    fn records() -> ScopeLogs {
        ScopeLogs {
            log_records: vec![LogRecord {
                time_unix_nano: 5,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_group_keeps_everything_but_its_resource_attributes() {
        let group = ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("old", "1")],
                dropped_attributes_count: 3,
                ..Default::default()
            }),
            scope_logs: vec![records(), records()],
            schema_url: "https://schema".into(),
        };
        let got = rewrite(&group.encode_to_vec(), &[kv("new", "2"), kv("more", "3")]);
        let mut want = group;
        want.resource.as_mut().unwrap().attributes = vec![kv("new", "2"), kv("more", "3")];
        assert_eq!(got, want);

        // No resource at all: one is written, holding the attributes alone.
        let bare = ResourceLogs {
            scope_logs: vec![records()],
            ..Default::default()
        };
        let got = rewrite(&bare.encode_to_vec(), &[kv("a", "b")]);
        assert_eq!(got.resource.unwrap().attributes, vec![kv("a", "b")]);
        assert_eq!(got.scope_logs, bare.scope_logs);
    }

    #[test]
    fn two_resource_fields_and_unknown_fields_become_one_resource_with_the_rest_kept() {
        let first = Resource {
            attributes: vec![kv("a", "1")],
            dropped_attributes_count: 1,
            ..Default::default()
        }
        .encode_to_vec();
        let mut second = Resource {
            attributes: vec![kv("b", "2")],
            dropped_attributes_count: 9,
            ..Default::default()
        }
        .encode_to_vec();
        // An unknown varint field (number 15) inside the second resource.
        second.extend_from_slice(&[15 << 3, 7]);
        let mut group = Vec::new();
        put_bytes_field(&mut group, 1, &first);
        put_bytes_field(&mut group, 2, &records().encode_to_vec());
        put_bytes_field(&mut group, 1, &second);
        // An unknown length-delimited field (number 30) of the group.
        put_bytes_field(&mut group, 30, b"kept");
        let got = rewrite(&group, &[kv("c", "3")]);
        let resource = got.resource.unwrap();
        assert_eq!(resource.attributes, vec![kv("c", "3")]);
        // The last dropped count wins, as a decoder merging the two reads it.
        assert_eq!(resource.dropped_attributes_count, 9);
        assert_eq!(got.scope_logs, vec![records()]);
        // The bytes kept as they came: the unknown fields are still there.
        let mut request = Vec::new();
        put_bytes_field(&mut request, 1, &group);
        let view = Request::parse(Signal::Logs, &request).unwrap();
        let mut out = Vec::new();
        let mut fields = Vec::new();
        put_bytes_field(&mut fields, 1, &kv("c", "3").encode_to_vec());
        group_with_resource_attributes(&view.resource_groups().next().unwrap(), &fields, &mut out);
        assert!(out.windows(2).any(|w| w == [15 << 3, 7]));
        assert!(out.ends_with(b"kept"));
    }
}

#[cfg(test)]
mod item_tests {
    use super::*;
    use crate::MetricView;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use opentelemetry_proto::tonic::metrics::v1::{
        metric::Data, number_data_point, Gauge, Histogram, HistogramDataPoint, Metric,
        NumberDataPoint, Sum,
    };
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn fields(number: u32, attributes: &[KeyValue]) -> Vec<u8> {
        let mut out = Vec::new();
        for attribute in attributes {
            put_bytes_field(&mut out, number, &attribute.encode_to_vec());
        }
        out
    }

    #[test]
    fn an_item_keeps_every_field_but_its_attributes_in_place() {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "op".into(),
            attributes: vec![kv("a", "1"), kv("b", "2")],
            dropped_attributes_count: 4,
            ..Default::default()
        };
        let mut out = Vec::new();
        with_attributes(
            &span.encode_to_vec(),
            SPAN_ATTRIBUTES,
            &fields(SPAN_ATTRIBUTES, &[kv("c", "3")]),
            &mut out,
        );
        let want = Span {
            attributes: vec![kv("c", "3")],
            ..span.clone()
        };
        // Written where the attributes were: the encoder's bytes exactly.
        assert_eq!(out, want.encode_to_vec());
        // No attributes at all: written before the first field numbered above them.
        let bare = Span {
            attributes: Vec::new(),
            ..span
        };
        out.clear();
        with_attributes(
            &bare.encode_to_vec(),
            SPAN_ATTRIBUTES,
            &fields(SPAN_ATTRIBUTES, &[kv("c", "3")]),
            &mut out,
        );
        assert_eq!(out, want.encode_to_vec());
        // Emptied: every attributes field gone, an unknown field kept.
        let mut record = LogRecord {
            time_unix_nano: 9,
            attributes: vec![kv("a", "1")],
            ..Default::default()
        }
        .encode_to_vec();
        record.extend_from_slice(&[0x98, 0x06, 0x05]);
        put_bytes_field(
            &mut record,
            LOG_RECORD_ATTRIBUTES,
            &kv("late", "x").encode_to_vec(),
        );
        out.clear();
        with_attributes(&record, LOG_RECORD_ATTRIBUTES, &[], &mut out);
        assert_eq!(
            LogRecord::decode(out.as_slice()).unwrap(),
            LogRecord {
                time_unix_nano: 9,
                ..Default::default()
            }
        );
        assert!(out.ends_with(&[0x98, 0x06, 0x05]));
    }

    fn number(time: u64, attributes: Vec<KeyValue>) -> NumberDataPoint {
        NumberDataPoint {
            attributes,
            time_unix_nano: time,
            value: Some(number_data_point::Value::AsInt(1)),
            ..Default::default()
        }
    }

    #[test]
    fn a_metric_gets_its_changed_points_and_keeps_the_rest() {
        let metric = Metric {
            name: "m".into(),
            unit: "1".into(),
            data: Some(Data::Sum(Sum {
                data_points: vec![number(1, vec![kv("a", "1")]), number(2, vec![kv("b", "2")])],
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let bytes = metric.encode_to_vec();
        let points: Vec<DataPoint<'_>> = data_points(&bytes).collect();
        assert_eq!(points.len(), 2);
        assert!(points.iter().all(|p| p.attributes_field == 7));
        // The second point replaced.
        let mut second = Vec::new();
        with_attributes(points[1].bytes, 7, &fields(7, &[kv("c", "3")]), &mut second);
        let mut out = Vec::new();
        metric_with_data_points(&bytes, |i| (i == 1).then_some(&second[..]), &mut out);
        let mut want = metric.clone();
        if let Some(Data::Sum(sum)) = &mut want.data {
            sum.data_points[1].attributes = vec![kv("c", "3")];
        }
        assert_eq!(out, want.encode_to_vec());
        // Nothing replaced: the bytes as they came.
        out.clear();
        metric_with_data_points(&bytes, |_| None, &mut out);
        assert_eq!(out, bytes);

        // A histogram keeps its attributes in field 9; a metric with two data fields (the
        // later one wins for a decoder) numbers its points across both.
        let histogram = Metric {
            name: "h".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: vec![kv("h", "1")],
                    count: 1,
                    ..Default::default()
                }],
                aggregation_temporality: 1,
            })),
            ..Default::default()
        };
        let mut both = Metric {
            data: Some(Data::Gauge(Gauge {
                data_points: vec![number(5, vec![kv("g", "1")])],
            })),
            ..Default::default()
        }
        .encode_to_vec();
        both.extend_from_slice(&histogram.encode_to_vec());
        let fields_of: Vec<u32> = data_points(&both).map(|p| p.attributes_field).collect();
        assert_eq!(fields_of, [7, 9]);
        let mut new_histogram_point = Vec::new();
        let points: Vec<DataPoint<'_>> = data_points(&both).collect();
        with_attributes(
            points[1].bytes,
            9,
            &fields(9, &[kv("z", "9")]),
            &mut new_histogram_point,
        );
        out.clear();
        metric_with_data_points(
            &both,
            |i| (i == 1).then_some(&new_histogram_point[..]),
            &mut out,
        );
        let decoded = Metric::decode(out.as_slice()).unwrap();
        let Some(Data::Histogram(h)) = decoded.data else {
            panic!("the later data field wins");
        };
        assert_eq!(h.data_points[0].attributes, vec![kv("z", "9")]);
        assert_eq!(h.data_points[0].count, 1);
        assert_eq!(decoded.name, "h");
        // The output is a valid metric for the crate's own reader.
        let mut request = Vec::new();
        let mut scope = Vec::new();
        put_bytes_field(&mut scope, 2, &out);
        let mut group = Vec::new();
        put_bytes_field(&mut group, 2, &scope);
        put_bytes_field(&mut request, 1, &group);
        let request = crate::Request::parse(crate::Signal::Metrics, &request).expect("valid");
        let (_, _, item) = request.items().next().expect("one metric");
        assert_eq!(MetricView::new(item).data_point_count(), 1);
    }

    /// A request keeps its shape: empty groups, two equal groups side by side, unknown fields
    /// and the groups without a changed item, byte for byte.
    #[test]
    fn a_request_keeps_its_shape_around_its_replaced_items() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
        let span = |n: u8| Span {
            trace_id: vec![n; 16],
            span_id: vec![n; 8],
            name: format!("s{n}"),
            ..Default::default()
        };
        let group = |spans: Vec<Span>| ResourceSpans {
            scope_spans: vec![
                ScopeSpans {
                    spans,
                    schema_url: "scope".into(),
                    ..Default::default()
                },
                ScopeSpans::default(),
            ],
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                group(vec![span(1), span(2)]),
                group(vec![span(3)]),
                ResourceSpans::default(),
                group(vec![span(4)]),
            ],
        };
        let mut bytes = request.encode_to_vec();
        // An unknown top-level field.
        put_bytes_field(&mut bytes, 9, b"kept");
        let named = Span {
            name: "renamed".into(),
            ..span(2)
        }
        .encode_to_vec();
        let mut out = Vec::new();
        request_with_items(&bytes, |i| (i == 1).then_some(&named[..]), &mut out);
        crate::Request::parse(crate::Signal::Traces, &out).expect("a valid request");
        let mut want = request.clone();
        want.resource_spans[0].scope_spans[0].spans[1].name = "renamed".into();
        assert_eq!(
            ExportTraceServiceRequest::decode(out.as_slice()).unwrap(),
            want
        );
        // The groups after the first as they came, and the unknown field.
        let rest = &bytes[request.resource_spans[0].encoded_len() + 2..];
        assert!(out.ends_with(rest), "the unchanged groups are copied whole");
        // The last item replaced: the groups before it copied whole.
        out.clear();
        let last = Span {
            name: "last".into(),
            ..span(4)
        }
        .encode_to_vec();
        request_with_items(&bytes, |i| (i == 3).then_some(&last[..]), &mut out);
        let mut want = request;
        want.resource_spans[3].scope_spans[0].spans[0].name = "last".into();
        assert_eq!(
            ExportTraceServiceRequest::decode(out.as_slice()).unwrap(),
            want
        );
        assert!(out.ends_with(b"kept"));
    }

    #[test]
    fn a_span_loses_the_events_picked_and_keeps_the_rest() {
        use opentelemetry_proto::tonic::trace::v1::span::Event;
        let event = |name: &str| Event {
            name: name.into(),
            time_unix_nano: 3,
            ..Default::default()
        };
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "op".into(),
            events: vec![event("a"), event("b"), event("c")],
            dropped_events_count: 2,
            ..Default::default()
        };
        let mut bytes = span.encode_to_vec();
        bytes.extend_from_slice(&[0x98, 0x06, 0x05]);
        let mut out = Vec::new();
        span_without_events(&bytes, |i| i != 1, &mut out);
        let got = Span::decode(out.as_slice()).unwrap();
        assert_eq!(
            got,
            Span {
                events: vec![event("b")],
                ..span.clone()
            }
        );
        assert!(out.ends_with(&[0x98, 0x06, 0x05]));
        out.clear();
        span_without_events(&bytes, |_| false, &mut out);
        assert_eq!(out, bytes);
    }
}
