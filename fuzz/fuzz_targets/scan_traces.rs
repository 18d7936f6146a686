//! Fuzzes the zero-copy read path for arbitrary bytes taken as an OTLP protobuf request.
//!
//! As a traces request: validate (with the full parse and with the split, which must agree on the
//! verdict and the error), walk every view (resources, scopes, spans, attributes with
//! arrays and key-value lists, events, links, headers), split by owning shard, frame every shard
//! and check that the framed requests parse again and carry exactly the accepted spans, under
//! the group headers they arrived with. As a metrics and a logs request: validate, walk the
//! views, count the items.
//!
//! The asserts encode invariants the wire layer documents; anything else that panics is a bug.

#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use tailgate_wire::{
    item_count, AnyValueView, Framer, KeyValues, LogRecordView, MetricView, Piece, Request,
    ResourceGroup, ScopeGroup, Signal, Split, SpanView, TracesRequest, NESTING_DEPTH_MAX,
};

/// The shard count the split runs with, and the owner function it uses.
const SHARDS: usize = 3;

fn owner(id: &[u8; 16]) -> usize {
    (id[0] % SHARDS as u8) as usize
}

fuzz_target!(|data: &[u8]| {
    scan_traces(data);
    scan_other(Signal::Metrics, data);
    scan_other(Signal::Logs, data);
});

fn scan_traces(data: &[u8]) {
    // Routing validates in the same pass as it splits; it must judge exactly as a full parse.
    let mut split = Split::new(SHARDS);
    let routed = split.run(data, owner);
    let request = match TracesRequest::parse(data) {
        Ok(request) => {
            assert_eq!(routed, Ok(()), "split refused what parse accepts");
            request
        }
        Err(err) => {
            assert_eq!(routed.as_ref().err(), Some(&err), "split and parse disagree");
            check_error(&err, data);
            return;
        }
    };
    assert_eq!(request.bytes(), data);
    let span_count = walk_traces(&request, data);
    assert_eq!(item_count(request.request()), span_count as u64);

    // What the split must do, worked out from the views alone: per shard, every accepted span
    // with its resource and scope headers, in request order; the rejected spans; the first
    // defect and where it was.
    let mut expected: Vec<Vec<(Vec<u8>, Vec<u8>, &[u8])>> = vec![Vec::new(); SHARDS];
    let mut rejected = 0u64;
    let mut first_defect = None;
    for resource_group in request.request().resource_groups() {
        let resource_header = header_bytes(&resource_group.header());
        for scope_group in resource_group.scope_groups() {
            let scope_header = header_bytes(&scope_group.header());
            for span in scope_group.spans() {
                match span.defect() {
                    Some(defect) => {
                        rejected += 1;
                        first_defect.get_or_insert((defect, span.offset()));
                    }
                    None => {
                        let trace_id = span
                            .trace_id_array()
                            .expect("a span without defect has a 16-byte trace id");
                        expected[owner(&trace_id)].push((
                            resource_header.clone(),
                            scope_header.clone(),
                            span.raw(),
                        ));
                    }
                }
            }
        }
    }

    assert_eq!(split.shard_count(), SHARDS);
    assert_eq!(split.rejected(), rejected, "rejected span count");
    assert_eq!(split.first_defect(), first_defect, "first defect");
    let routed: usize = (0..SHARDS).map(|shard| split.spans(shard).len()).sum();
    assert_eq!(
        routed as u64 + split.rejected(),
        span_count as u64,
        "every span is routed or rejected"
    );

    let mut framer = Framer::new();
    let mut out = Vec::new();
    for (shard, expected) in expected.iter().enumerate() {
        let refs = split.spans(shard);
        assert_eq!(refs.len(), expected.len(), "spans of shard {shard}");
        for (span_ref, (_, _, raw)) in refs.iter().zip(expected) {
            assert_eq!(&data[span_ref.start as usize..span_ref.end as usize], *raw);
        }

        // Framing appends: leave something in front to check that it does.
        out.clear();
        out.extend_from_slice(b"prefix");
        let len = split.frame(data, shard, &mut framer, &mut out);
        assert_eq!(out.len(), 6 + len, "frame returns the length it appended");
        let framed = &out[6..];
        if expected.is_empty() {
            assert!(framed.is_empty(), "no spans frame an empty request");
        }
        let reparsed = match TracesRequest::parse(framed) {
            Ok(reparsed) => reparsed,
            Err(err) => panic!(
                "framed request of shard {shard} does not parse: {err}\nframed: {framed:02x?}"
            ),
        };
        let reparsed_count = walk_traces(&reparsed, framed);
        assert_eq!(reparsed_count, expected.len(), "span count of shard {shard}");

        let mut found = Vec::with_capacity(expected.len());
        for resource_group in reparsed.request().resource_groups() {
            let resource_header = header_bytes(&resource_group.header());
            for scope_group in resource_group.scope_groups() {
                let scope_header = header_bytes(&scope_group.header());
                for span in scope_group.spans() {
                    assert_eq!(span.defect(), None, "framed spans were accepted");
                    let trace_id = span.trace_id_array().expect("16-byte trace id");
                    assert_eq!(owner(&trace_id), shard, "span framed for the wrong shard");
                    found.push((resource_header.clone(), scope_header.clone(), span.raw()));
                }
            }
        }
        assert!(
            &found == expected,
            "shard {shard}: framed spans or their headers differ from the request's"
        );
    }
}

fn scan_other(signal: Signal, data: &[u8]) {
    let request = match Request::parse(signal, data) {
        Ok(request) => request,
        Err(err) => {
            check_error(&err, data);
            return;
        }
    };
    assert_eq!(request.signal(), signal);
    let mut items = 0u64;
    let mut points = 0u64;
    for resource_group in request.resource_groups() {
        walk_resource_group(&resource_group, data);
        for scope_group in resource_group.scope_groups() {
            walk_scope_group(&scope_group, data);
            for item in scope_group.items() {
                check_slice(data, item.offset, item.bytes);
                items += 1;
                match signal {
                    Signal::Metrics => {
                        let metric = MetricView::new(item);
                        black_box(metric.name());
                        points += metric.data_point_count();
                    }
                    Signal::Logs => {
                        let record = LogRecordView::new(item);
                        black_box(record.severity_number());
                        black_box(record.severity_text());
                        black_box(record.trace_id());
                        black_box(record.span_id());
                        walk_value(&record.body(), 1);
                        walk_attributes(record.attributes(), 1);
                    }
                    Signal::Traces => unreachable!(),
                }
            }
        }
    }
    let counted = item_count(&request);
    match signal {
        Signal::Metrics => assert_eq!(counted, points, "metrics count data points"),
        _ => assert_eq!(counted, items, "logs count records"),
    }

    // Framing is signal-independent: every item framed again under its own group headers makes
    // a request of the same signal with the same items, in the same order.
    let mut headers = Vec::new();
    for resource_group in request.resource_groups() {
        let resource = header_bytes(&resource_group.header());
        for scope_group in resource_group.scope_groups() {
            let scope = header_bytes(&scope_group.header());
            for item in scope_group.items() {
                headers.push((resource.clone(), scope.clone(), item.bytes));
            }
        }
    }
    let pieces: Vec<Piece<'_>> = headers
        .iter()
        .map(|(resource, scope, item)| Piece {
            resource,
            scope,
            item,
        })
        .collect();
    let mut out = Vec::new();
    let len = Framer::new().frame(pieces.iter().copied(), &mut out);
    assert_eq!(len, out.len());
    let reframed = match Request::parse(signal, &out) {
        Ok(reframed) => reframed,
        Err(err) => panic!("framed {signal:?} request does not parse: {err}\nframed: {out:02x?}"),
    };
    assert_eq!(item_count(&reframed), counted, "framed {signal:?} item count");
    let reframed_items: Vec<&[u8]> = reframed.items().map(|(_, _, item)| item.bytes).collect();
    let items: Vec<&[u8]> = headers.iter().map(|(_, _, item)| *item).collect();
    assert!(reframed_items == items, "framed {signal:?} items differ");
}

/// A request error points inside the request and can be displayed.
fn check_error(err: &tailgate_wire::WireError, data: &[u8]) {
    assert!(
        err.offset <= data.len(),
        "error offset {} beyond the request's {} bytes: {err:?}",
        err.offset,
        data.len()
    );
    black_box(err.to_string());
}

/// `bytes` is the part of `data` that starts at `offset`.
fn check_slice(data: &[u8], offset: usize, bytes: &[u8]) {
    assert!(
        offset <= data.len() && bytes.len() <= data.len() - offset,
        "view at {offset} (+{}) outside the request's {} bytes",
        bytes.len(),
        data.len()
    );
    assert_eq!(&data[offset..offset + bytes.len()], bytes, "view bytes at {offset}");
}

/// A header's parts, concatenated, as the framer writes them.
fn header_bytes(header: &tailgate_wire::Header<'_>) -> Vec<u8> {
    let mut parts = Vec::new();
    for part in header.parts() {
        assert!(!part.is_empty(), "a header part is a whole field");
        parts.extend_from_slice(part);
    }
    let mut written = Vec::new();
    header.write_to(&mut written);
    assert_eq!(written, parts, "write_to writes the parts");
    parts
}

/// Walks every view of a traces request; returns the span count.
fn walk_traces(request: &TracesRequest<'_>, data: &[u8]) -> usize {
    let mut spans = 0;
    for resource_group in request.request().resource_groups() {
        walk_resource_group(&resource_group, data);
        for scope_group in resource_group.scope_groups() {
            walk_scope_group(&scope_group, data);
            for span in scope_group.spans() {
                walk_span(&span, data);
                spans += 1;
            }
        }
    }
    assert_eq!(request.spans().count(), spans);
    spans
}

fn walk_resource_group(group: &ResourceGroup<'_>, data: &[u8]) {
    check_slice(data, group.offset(), group.raw());
    black_box(group.schema_url());
    header_bytes(&group.header());
    if let Some(resource) = group.resource() {
        black_box(resource.raw());
        black_box(resource.dropped_attributes_count());
        walk_attributes(resource.attributes(), 1);
    }
}

fn walk_scope_group(group: &ScopeGroup<'_>, data: &[u8]) {
    check_slice(data, group.offset(), group.raw());
    black_box(group.schema_url());
    header_bytes(&group.header());
    if let Some(scope) = group.scope() {
        black_box(scope.raw());
        black_box(scope.name());
        black_box(scope.version());
        black_box(scope.dropped_attributes_count());
        walk_attributes(scope.attributes(), 1);
    }
}

fn walk_span(span: &SpanView<'_>, data: &[u8]) {
    check_slice(data, span.offset(), span.raw());
    black_box(span.trace_id());
    black_box(span.trace_id_array());
    black_box(span.span_id());
    black_box(span.parent_span_id());
    black_box(span.trace_state());
    black_box(span.name());
    black_box(span.kind());
    black_box(span.start_time_unix_nano());
    black_box(span.end_time_unix_nano());
    black_box(span.flags());
    black_box(span.status_code());
    black_box(span.status_message());
    black_box(span.dropped_attributes_count());
    black_box(span.dropped_events_count());
    black_box(span.dropped_links_count());
    let defect = span.defect();
    if let Some(defect) = defect {
        black_box(defect.to_string());
    } else {
        assert_eq!(span.trace_id().len(), 16);
        assert_eq!(span.span_id().len(), 8);
    }
    walk_attributes(span.attributes(), 1);
    for event in span.events() {
        black_box(event.time_unix_nano());
        black_box(event.name());
        black_box(event.dropped_attributes_count());
        walk_attributes(event.attributes(), 1);
    }
    for link in span.links() {
        black_box(link.trace_id());
        black_box(link.span_id());
        black_box(link.trace_state());
        black_box(link.flags());
        black_box(link.dropped_attributes_count());
        walk_attributes(link.attributes(), 1);
    }
}

/// Walks attributes and, through arrays and key-value lists, everything nested in them.
///
/// `depth` counts `AnyValue` levels. Each level is at least two nested messages (a `KeyValue` or
/// `ArrayValue` and its `AnyValue`), and the validator refuses requests nested deeper than
/// `NESTING_DEPTH_MAX` messages, so a validated request can never take the walk past that
/// bound: the guard is an invariant, and it also keeps the recursion's stack use bounded.
fn walk_attributes(attributes: KeyValues<'_>, depth: usize) {
    let clone = attributes.clone();
    let mut first = None;
    for kv in attributes {
        black_box(kv.key);
        if first.is_none() {
            first = Some(kv.key);
        }
        walk_value(&kv.value, depth);
    }
    if let Some(key) = first {
        assert!(clone.get(key).is_some(), "get finds the first key");
    }
}

fn walk_value(value: &AnyValueView<'_>, depth: usize) {
    assert!(
        depth <= NESTING_DEPTH_MAX,
        "attribute values nested {depth} deep in a validated request"
    );
    match value {
        AnyValueView::Empty => {}
        AnyValueView::String(s) => {
            black_box(std::str::from_utf8(s).is_ok());
        }
        AnyValueView::Bool(b) => {
            black_box(*b);
        }
        AnyValueView::Int(i) => {
            black_box(*i);
        }
        AnyValueView::Double(d) => {
            black_box(*d);
        }
        AnyValueView::Bytes(b) => {
            black_box(*b);
        }
        AnyValueView::Array(array) => {
            for element in array.iter() {
                walk_value(&element, depth + 1);
            }
        }
        AnyValueView::KvList(list) => walk_attributes(list.clone(), depth + 1),
    }
}
