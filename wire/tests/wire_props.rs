//! Property tests of the wire layer against prost, the reference decoder.

mod support;

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message;
use tailgate_shards::route::Router;
use tailgate_wire::{Framer, Request, Signal, SpanFacts, Split, TracesRequest};

use support::*;

/// What a span was sent with: its resource, scope and both schema URLs.
type Context = (
    Option<Resource>,
    String,
    Option<InstrumentationScope>,
    String,
);

/// Every span's canonical encoding, mapped to the contexts it was sent in (a multiset: random
/// spans may repeat).
fn span_contexts(request: &ExportTraceServiceRequest) -> HashMap<Vec<u8>, Vec<Context>> {
    let mut out: HashMap<Vec<u8>, Vec<Context>> = HashMap::new();
    for rs in &request.resource_spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                out.entry(span.encode_to_vec()).or_default().push((
                    rs.resource.clone(),
                    rs.schema_url.clone(),
                    ss.scope.clone(),
                    ss.schema_url.clone(),
                ));
            }
        }
    }
    for contexts in out.values_mut() {
        contexts.sort_by_key(|c| format!("{c:?}"));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The views expose exactly the fields prost decodes: a request rebuilt from views alone
    /// equals the original.
    #[test]
    fn views_report_what_prost_decodes(original in traces_request()) {
        let bytes = original.encode_to_vec();
        let request = TracesRequest::parse(&bytes).expect("valid request");
        prop_assert_eq!(to_request(&request), without_empty_statuses(original));
        prop_assert!(request.spans().all(|s| s.defect().is_none()));
    }

    /// Splitting by owner and framing each shard's request keeps every span byte for byte,
    /// exactly once, in the shard that owns its trace, under its original resource and scope.
    #[test]
    fn split_and_frame_preserve_every_span(original in traces_request(), shards in 1usize..5) {
        let bytes = original.encode_to_vec();
        let request = TracesRequest::parse(&bytes).expect("valid request");
        let router = Router::new(shards);
        let mut split = Split::new(shards);
        split.run(&bytes, |id| router.owner(id)).expect("valid request");
        prop_assert_eq!(split.rejected(), 0);

        let mut framer = Framer::new();
        let mut seen: HashMap<Vec<u8>, Vec<Context>> = HashMap::new();
        let mut original_raw: Vec<&[u8]> = request.spans().map(|s| s.raw()).collect();
        let mut framed_raw: Vec<Vec<u8>> = Vec::new();
        for shard in 0..shards {
            let mut out = Vec::new();
            let len = split.frame(&bytes, shard, &mut framer, &mut out);
            prop_assert_eq!(len, out.len());
            // Framed output is valid for our scanner and for prost alike.
            let framed = TracesRequest::parse(&out).expect("framed request is valid");
            for span in framed.spans() {
                prop_assert_eq!(router.owner(&span.trace_id_array().unwrap()), shard);
                framed_raw.push(span.raw().to_vec());
            }
            let decoded = ExportTraceServiceRequest::decode(out.as_slice()).expect("prost decodes");
            for (span, contexts) in span_contexts(&decoded) {
                seen.entry(span).or_default().extend(contexts);
            }
        }
        for contexts in seen.values_mut() {
            contexts.sort_by_key(|c| format!("{c:?}"));
        }
        original_raw.sort();
        framed_raw.sort();
        prop_assert_eq!(original_raw, framed_raw.iter().map(|v| v.as_slice()).collect::<Vec<_>>());
        prop_assert_eq!(seen, span_contexts(&original));
    }

    /// The lean facts scan reads what the full span view reads, whatever else a span carries:
    /// unknown fields of every wire type (a group makes it defer to the view), and a status
    /// repeated, whose occurrences merge.
    #[test]
    fn facts_scan_agrees_with_the_span_view(
        original in traces_request(),
        extra in vec((0usize..5, any::<u32>()), 0..4),
    ) {
        let bytes = original.encode_to_vec();
        let request = TracesRequest::parse(&bytes).expect("valid request");
        for span in request.spans() {
            prop_assert_eq!(SpanFacts::scan(span.raw()), Some(SpanFacts::from(&span)));
            let mut raw = span.raw().to_vec();
            let mut group = false;
            for &(kind, value) in &extra {
                match kind {
                    // Unknown varint, fixed64, fixed32 fields.
                    0 => { raw.extend([0xa0, 0x03]); raw.extend(varint(u64::from(value))); }
                    1 => { raw.extend([0xa9, 0x03]); raw.extend(u64::from(value).to_le_bytes()); }
                    2 => { raw.extend([0xad, 0x03]); raw.extend(value.to_le_bytes()); }
                    // A status with only a message: the code already set stays.
                    3 => raw.extend([0x7a, 0x03, 0x12, 0x01, b'x']),
                    // An unknown group (field 52): start, one varint, end.
                    _ => { raw.extend([0xa3, 0x03, 0x08, 0x01, 0xa4, 0x03]); group = true; }
                }
            }
            let view = tailgate_wire::SpanView::new(tailgate_wire::Item { bytes: &raw, offset: 0 });
            let scanned = SpanFacts::scan(&raw);
            if group {
                prop_assert_eq!(scanned, None);
            } else {
                prop_assert_eq!(scanned, Some(SpanFacts::from(&view)));
            }
        }
    }

    /// Spans with bad ids are set aside one by one; the others still go through.
    #[test]
    fn bad_ids_reject_only_their_span(
        original in traces_request(),
        damage in vec((any::<prop::sample::Index>(), 0usize..5), 0..4),
    ) {
        let mut damaged = original.clone();
        let mut spans: Vec<_> = damaged
            .resource_spans
            .iter_mut()
            .flat_map(|rs| rs.scope_spans.iter_mut())
            .flat_map(|ss| ss.spans.iter_mut())
            .collect();
        let mut bad = std::collections::HashSet::new();
        if !spans.is_empty() {
            for (index, how) in damage {
                let i = index.index(spans.len());
                let span = &mut spans[i];
                match how {
                    0 => span.trace_id.truncate(15),
                    1 => span.trace_id = vec![0; 16],
                    2 => span.span_id.push(7),
                    3 => span.span_id = vec![0; 8],
                    _ => span.parent_span_id = vec![1; 3],
                }
                bad.insert(i);
            }
        }
        let bytes = damaged.encode_to_vec();
        let request = TracesRequest::parse(&bytes).expect("id defects are not request errors");
        let defects = request.spans().filter(|s| s.defect().is_some()).count();
        prop_assert_eq!(defects, bad.len());
        let mut split = Split::new(2);
        split.run(&bytes, |id| usize::from(id[15] & 1)).unwrap();
        prop_assert_eq!(split.rejected() as usize, bad.len());
        prop_assert_eq!(split.first_defect().is_some(), !bad.is_empty());
        let kept: usize = (0..2).map(|s| split.spans(s).len()).sum();
        prop_assert_eq!(kept + bad.len(), request.spans().count());
    }

    /// Mutated requests: whatever tailgate accepts, prost decodes (strings aside: tailgate, like
    /// the Collector, does not check UTF-8), and whatever prost decodes, tailgate accepts.
    #[test]
    fn agrees_with_prost_on_mutated_requests(
        original in traces_request(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = original.encode_to_vec();
        if bytes.is_empty() {
            return Ok(());
        }
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let ours = TracesRequest::parse(&bytes);
        let theirs = ExportTraceServiceRequest::decode(bytes.as_slice());
        match (&ours, &theirs) {
            (Ok(_), Err(e)) => prop_assert!(
                e.to_string().contains("UTF-8"),
                "tailgate accepted what prost refuses: {e}"
            ),
            (Err(e), Ok(_)) => prop_assert!(false, "tailgate refused what prost decodes: {e}"),
            _ => {}
        }
        // Routing validates in the same pass as it splits: it must refuse exactly what a full
        // parse refuses, with the same error at the same offset.
        let mut split = Split::new(2);
        let routed = split.run(&bytes, |id| usize::from(id[0] & 1));
        prop_assert_eq!(routed.as_ref().err(), ours.as_ref().err());
        if let Ok(request) = ours {
            walk(&request);
        }
    }

    /// Random bytes never panic, whatever the signal.
    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let parsed = TracesRequest::parse(&bytes);
        let routed = Split::new(2).run(&bytes, |id| usize::from(id[0] & 1));
        prop_assert_eq!(routed.err(), parsed.as_ref().err().cloned());
        if let Ok(request) = parsed {
            walk(&request);
        }
        for signal in [Signal::Metrics, Signal::Logs] {
            if let Ok(request) = Request::parse(signal, &bytes) {
                let _ = tailgate_wire::item_count(&request);
            }
        }
    }
}

/// Reads everything a view can give, then splits and frames, checking the result parses.
fn walk(request: &TracesRequest<'_>) {
    for span in request.spans() {
        let _ = span.defect();
        let _ = to_span_lossy(&span);
    }
    let mut split = Split::new(3);
    split
        .run(request.bytes(), |id| usize::from(id[0]) % 3)
        .expect("split accepts what parse accepts");
    let mut framer = Framer::new();
    for shard in 0..3 {
        let mut out = Vec::new();
        split.frame(request.bytes(), shard, &mut framer, &mut out);
        TracesRequest::parse(&out).expect("framed output of an accepted request is valid");
    }
}

/// Walks every lazy part of a span without assuming UTF-8.
fn to_span_lossy(span: &tailgate_wire::SpanView<'_>) -> usize {
    fn value(v: tailgate_wire::AnyValueView<'_>) -> usize {
        use tailgate_wire::AnyValueView as V;
        match v {
            V::Array(a) => a.iter().map(value).sum::<usize>() + 1,
            V::KvList(kvs) => kvs.map(|kv| kv.key.len() + value(kv.value)).sum::<usize>() + 1,
            _ => 1,
        }
    }
    span.attributes().map(|kv| value(kv.value)).sum::<usize>()
        + span
            .events()
            .map(|e| e.attributes().map(|kv| value(kv.value)).sum::<usize>())
            .sum::<usize>()
        + span
            .links()
            .map(|l| l.attributes().map(|kv| value(kv.value)).sum::<usize>())
            .sum::<usize>()
}
