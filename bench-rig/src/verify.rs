//! What the sink checks: span ids found by a scan of the request, and what arrived judged
//! against the oracle's expectation.
//!
//! [`scan_span_ids`] walks an `ExportTraceServiceRequest` only as deep as span ids:
//! ResourceSpans (field 1) → ScopeSpans (field 2) → Span (field 2) → trace_id (1) and span_id
//! (2); everything else (resources, attributes, events) is skipped by its length, unread. Every
//! length is checked against its buffer and the scan stops at the first malformed byte, so it
//! cannot read out of bounds, and says the request was malformed.
//!
//! [`SpanLog`] keeps every (trace id, span id) received in one array reserved up front, appended
//! in arrival order: the hot path is a 24-byte write, with no hash table probe (a random cache
//! miss or two per span, which capped the sink near one million spans a second). The log is
//! sorted once, at exit, to count distinct spans per trace and duplicates.
//!
//! [`verify`] takes the distinct spans received per trace id and an `Expectation` and sorts
//! every trace: kept and complete, kept but partial, kept but missing, kept though the policies
//! drop it, not ours at all, or not judged (spans of it were refused upstream of the gateway).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::oracle::{self, Expectation};

/// A hasher for keys that are already random (trace ids, hashes of span ids): a multiply-xor
/// fold, much cheaper than SipHash. Not for keys an adversary chooses.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(23) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A map keyed by random ids.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// One span received: the trace id's two halves (big-endian) and the span id (8 bytes,
/// little-endian; a span id of another length is hashed).
type SpanRecord = (u64, u64, u64);

/// Every (trace id, span id) received, in arrival order, up to a bound fixed at start.
pub struct SpanLog {
    records: Vec<SpanRecord>,
    limit: usize,
}

/// What a sorted [`SpanLog`] says.
pub struct SpanCounts {
    /// Distinct spans per trace id.
    pub traces: IdMap<[u8; 16], u32>,
    /// Spans whose (trace id, span id) arrived before.
    pub duplicates: u64,
}

impl SpanLog {
    /// A log of at most `limit` spans. The array is reserved now; the memory is only touched,
    /// and so resident, as spans arrive.
    pub fn new(limit: usize) -> SpanLog {
        SpanLog {
            records: Vec::with_capacity(limit),
            limit,
        }
    }

    /// Records a span; `false` when the log is full and the span was not recorded.
    pub fn push(&mut self, trace_id: &[u8; 16], span_id: &[u8]) -> bool {
        if self.records.len() >= self.limit {
            return false;
        }
        let half = |at: usize| u64::from_be_bytes(trace_id[at..at + 8].try_into().expect("8"));
        let span = match <[u8; 8]>::try_from(span_id) {
            Ok(id) => u64::from_le_bytes(id),
            Err(_) => xxhash_rust::xxh3::xxh3_64(span_id),
        };
        self.records.push((half(0), half(8), span));
        true
    }

    /// Forgets the spans recorded after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        self.records.truncate(len);
    }

    /// Takes in another log's spans (another shard's), beyond this log's own bound.
    pub fn absorb(&mut self, other: SpanLog) {
        self.records.extend(other.records);
        self.limit += other.limit;
    }

    /// Spans recorded.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no span was recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Sorts the log and counts distinct spans per trace, and duplicates.
    pub fn count(&mut self) -> SpanCounts {
        self.records.sort_unstable();
        let mut counts = SpanCounts {
            traces: IdMap::default(),
            duplicates: 0,
        };
        let mut previous: Option<SpanRecord> = None;
        for &record in &self.records {
            if previous == Some(record) {
                counts.duplicates += 1;
                continue;
            }
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&record.0.to_be_bytes());
            id[8..].copy_from_slice(&record.1.to_be_bytes());
            *counts.traces.entry(id).or_insert(0) += 1;
            previous = Some(record);
        }
        counts
    }
}

/// Reads a varint at `*pos`; `None` when malformed or truncated.
fn varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// Calls `field` with (number, payload) for every length-delimited field of `message`, skipping
/// the others; `false` when the message is malformed.
fn for_each_len_field<'a>(message: &'a [u8], mut field: impl FnMut(u64, &'a [u8])) -> bool {
    let mut pos = 0;
    while pos < message.len() {
        let Some(tag) = varint(message, &mut pos) else {
            return false;
        };
        let skipped = match tag & 7 {
            0 => varint(message, &mut pos).is_some(),
            1 => {
                pos += 8;
                pos <= message.len()
            }
            5 => {
                pos += 4;
                pos <= message.len()
            }
            2 => {
                let Some(len) = varint(message, &mut pos) else {
                    return false;
                };
                let Some(end) = usize::try_from(len)
                    .ok()
                    .and_then(|len| pos.checked_add(len))
                    .filter(|&end| end <= message.len())
                else {
                    return false;
                };
                field(tag >> 3, &message[pos..end]);
                pos = end;
                true
            }
            _ => false,
        };
        if !skipped {
            return false;
        }
    }
    true
}

/// Calls `span` with (trace id, span id) of every span in a traces request, in wire order, and
/// returns how many there were; `None` when the request's framing is malformed (a length past
/// its buffer, a bad varint or wire type) at any level walked, after calling `span` for the
/// spans before the fault.
pub fn scan_span_ids(request: &[u8], mut span: impl FnMut(&[u8], &[u8])) -> Option<u64> {
    let mut spans = 0u64;
    let mut whole = true;
    whole &= for_each_len_field(request, |number, resource_spans| {
        if number != 1 {
            return;
        }
        whole &= for_each_len_field(resource_spans, |number, scope_spans| {
            if number != 2 {
                return;
            }
            whole &= for_each_len_field(scope_spans, |number, one_span| {
                if number != 2 {
                    return;
                }
                spans += 1;
                // Every SDK writes a span's ids first: read them in place and skip the rest.
                // (Protobuf lets a later duplicate field win; a span that repeats its ids after
                // this prefix is read by the first ones.)
                if let (Some(&[0x0a, 16]), Some(&[0x12, 8])) =
                    (one_span.get(..2), one_span.get(18..20))
                {
                    if let (Some(trace_id), Some(span_id)) =
                        (one_span.get(2..18), one_span.get(20..28))
                    {
                        span(trace_id, span_id);
                        return;
                    }
                }
                let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
                whole &= for_each_len_field(one_span, |number, payload| match number {
                    1 => trace_id = payload,
                    2 => span_id = payload,
                    _ => {}
                });
                span(trace_id, span_id);
            });
        });
    });
    whole.then_some(spans)
}

/// How what arrived compares with what the oracle expects.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Traces the load started.
    pub traces_sent: u64,
    /// Of those, the traces the policies keep.
    pub traces_expected: u64,
    /// Kept traces with every span, exactly the spans sent.
    pub kept_complete: u64,
    /// Kept traces with some spans missing.
    pub kept_partial: u64,
    /// Kept traces of which nothing arrived.
    pub kept_missing: u64,
    /// Traces that arrived though the policies drop them.
    pub kept_wrongly: u64,
    /// Traces with ids the load did not generate.
    pub unknown: u64,
    /// Traces some of whose spans the gateway refused: their outcome is not judged.
    pub not_judged: u64,
    /// Spans missing from partial kept traces.
    pub spans_missing: u64,
}

impl Verdict {
    /// Whether everything that should have arrived did, whole, and nothing else.
    pub fn passed(&self, duplicates: u64) -> bool {
        self.kept_partial == 0
            && self.kept_missing == 0
            && self.kept_wrongly == 0
            && self.unknown == 0
            && duplicates == 0
    }

    /// The verdict as report keys.
    pub fn to_json(&self, duplicates: u64, complete_tracking: bool) -> serde_json::Value {
        serde_json::json!({
            "expected_traces_sent": self.traces_sent,
            "expected_traces_kept": self.traces_expected,
            "kept_traces_complete": self.kept_complete,
            "kept_traces_partial": self.kept_partial,
            "kept_traces_missing": self.kept_missing,
            "kept_traces_spans_missing": self.spans_missing,
            "traces_kept_wrongly": self.kept_wrongly,
            "traces_unknown": self.unknown,
            "traces_not_judged": self.not_judged,
            "duplicated_spans": duplicates,
            "verified": complete_tracking && self.passed(duplicates),
        })
    }
}

/// Judges `received` (distinct spans per trace id) against `expectation`.
pub fn verify(received: &IdMap<[u8; 16], u32>, expectation: &Expectation) -> Verdict {
    let seed = expectation.seed;
    let mut verdict = Verdict {
        traces_sent: expectation.traces_sent,
        ..Verdict::default()
    };
    for (&k, &spans) in &expectation.kept {
        if expectation.refused.contains_key(&k) {
            continue;
        }
        verdict.traces_expected += 1;
        let got = received
            .get(&oracle::trace_id(seed, k))
            .copied()
            .unwrap_or(0);
        if got == 0 {
            verdict.kept_missing += 1;
        } else if got >= spans {
            verdict.kept_complete += 1;
        } else {
            verdict.kept_partial += 1;
            verdict.spans_missing += u64::from(spans - got);
        }
    }
    for id in received.keys() {
        match oracle::trace_number(seed, id) {
            Some(k) if expectation.was_sent(k) => {
                if expectation.refused.contains_key(&k) {
                    verdict.not_judged += 1;
                } else if !expectation.kept.contains_key(&k) {
                    verdict.kept_wrongly += 1;
                }
            }
            _ => verdict.unknown += 1,
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{sdk_shaped_request, Rng};
    use tailgate_wire::TracesRequest;

    #[test]
    fn the_scan_finds_what_the_parser_finds() {
        let request = sdk_shaped_request(&mut Rng(3), 40);
        let parsed: Vec<(Vec<u8>, Vec<u8>)> = TracesRequest::parse(&request)
            .unwrap()
            .spans()
            .map(|s| (s.trace_id().to_vec(), s.span_id().to_vec()))
            .collect();
        let mut scanned = Vec::new();
        let n = scan_span_ids(&request, |t, s| scanned.push((t.to_vec(), s.to_vec())));
        assert_eq!(n, Some(40));
        assert_eq!(scanned, parsed);
        // Ids written after other fields are found by the full walk.
        let odd = [0x2a, 1, b'x', 0x12, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 16]
            .iter()
            .copied()
            .chain([9u8; 16])
            .collect::<Vec<u8>>();
        let mut request = vec![
            0x0a,
            odd.len() as u8 + 4,
            0x12,
            odd.len() as u8 + 2,
            0x12,
            odd.len() as u8,
        ];
        request.extend_from_slice(&odd);
        let mut found = Vec::new();
        assert_eq!(
            scan_span_ids(&request, |t, s| found.push((t.to_vec(), s.to_vec()))),
            Some(1)
        );
        assert_eq!(found, vec![(vec![9u8; 16], vec![1, 2, 3, 4, 5, 6, 7, 8])]);
        let request = sdk_shaped_request(&mut Rng(3), 40);
        // Cut anywhere: no panic, and a cut request is found malformed (a cut inside the one
        // ResourceSpans leaves its length past the end).
        for cut in 1..request.len() {
            assert_eq!(
                scan_span_ids(&request[..cut], |_, _| {}),
                None,
                "cut at {cut}"
            );
        }
        assert_eq!(scan_span_ids(&[], |_, _| {}), Some(0));
    }

    #[test]
    fn the_log_counts_distinct_spans_and_duplicates() {
        let mut log = SpanLog::new(5);
        let (a, b) = ([1u8; 16], [2u8; 16]);
        assert!(log.push(&b, &[9; 8]));
        assert!(log.push(&a, &[1; 8]));
        assert!(log.push(&a, &[2; 8]));
        assert!(log.push(&a, &[1; 8]));
        assert!(log.push(&a, &[1; 4]));
        assert!(!log.push(&a, &[3; 8]));
        let counts = log.count();
        assert_eq!(counts.duplicates, 1);
        assert_eq!(counts.traces.get(&a), Some(&3));
        assert_eq!(counts.traces.get(&b), Some(&1));
    }

    #[test]
    fn every_trace_is_sorted_into_one_outcome() {
        let seed = 5;
        let expectation = Expectation {
            seed,
            traces_sent: 6,
            traces_sent_by_part: vec![6],
            kept: HashMap::from([(0, 3), (1, 3), (2, 3), (5, 2)]),
            refused: HashMap::from([(5, 1), (4, 1)]),
            ..Expectation::default()
        };
        let mut received = IdMap::default();
        received.insert(oracle::trace_id(seed, 0), 3); // complete
        received.insert(oracle::trace_id(seed, 1), 2); // partial; 2 is missing
        received.insert(oracle::trace_id(seed, 3), 1); // dropped by the policies: kept wrongly
        received.insert(oracle::trace_id(seed, 4), 1); // refused in part: not judged
        received.insert(oracle::trace_id(seed, 5), 1); // kept, refused in part: not judged
        received.insert(oracle::trace_id(seed, 9), 1); // never sent
        received.insert([7; 16], 1); // not generated
        let verdict = verify(&received, &expectation);
        assert_eq!(
            verdict,
            Verdict {
                traces_sent: 6,
                traces_expected: 3,
                kept_complete: 1,
                kept_partial: 1,
                kept_missing: 1,
                kept_wrongly: 1,
                unknown: 2,
                not_judged: 2,
                spans_missing: 1,
            }
        );
        assert!(!verdict.passed(0));
    }

    #[test]
    fn traces_are_judged_by_the_part_that_started_them() {
        // Two threads: part 0 started 0, 2, 4 and 6 (all kept); part 1 started 1.
        let seed = 8;
        let expectation = Expectation {
            seed,
            traces_sent: 5,
            traces_sent_by_part: vec![4, 1],
            kept: HashMap::from([(0, 1), (2, 1), (4, 1), (6, 1), (1, 1)]),
            ..Expectation::default()
        };
        let mut received = IdMap::default();
        for k in [0, 1, 2, 4, 6] {
            received.insert(oracle::trace_id(seed, k), 1);
        }
        // 3 is below the 5 traces sent but part 1 never got that far.
        received.insert(oracle::trace_id(seed, 3), 1);
        let verdict = verify(&received, &expectation);
        assert_eq!(verdict.kept_complete, 5, "{verdict:?}");
        assert_eq!(verdict.unknown, 1, "{verdict:?}");
        assert_eq!(verdict.kept_wrongly, 0, "{verdict:?}");
    }
}
