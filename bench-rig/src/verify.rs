//! What the sink checks: span ids found by a scan of the request, and what arrived judged
//! against the oracle's expectation.
//!
//! [`scan_span_ids`] walks an `ExportTraceServiceRequest` only as deep as span ids:
//! ResourceSpans (field 1) → ScopeSpans (field 2) → Span (field 2) → trace_id (1) and span_id
//! (2); everything else (resources, attributes, events) is skipped by its length, unread. The
//! sink's receivers have validated the request already; the scan still checks every length
//! against its buffer and stops at the first malformed byte, so it cannot read out of bounds.
//!
//! [`verify`] takes the distinct spans received per trace id and an [`Expectation`] and sorts
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
/// returns how many spans it found.
pub fn scan_span_ids(request: &[u8], mut span: impl FnMut(&[u8], &[u8])) -> u64 {
    let mut spans = 0u64;
    for_each_len_field(request, |number, resource_spans| {
        if number != 1 {
            return;
        }
        for_each_len_field(resource_spans, |number, scope_spans| {
            if number != 2 {
                return;
            }
            for_each_len_field(scope_spans, |number, one_span| {
                if number != 2 {
                    return;
                }
                let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
                for_each_len_field(one_span, |number, payload| match number {
                    1 => trace_id = payload,
                    2 => span_id = payload,
                    _ => {}
                });
                spans += 1;
                span(trace_id, span_id);
            });
        });
    });
    spans
}

/// How what arrived compares with what the oracle expects.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Traces the load started, and those of them the policies keep.
    pub traces_sent: u64,
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
            Some(k) if k < expectation.traces_sent => {
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
    use tailgate::wire::TracesRequest;

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
        assert_eq!(n, 40);
        assert_eq!(scanned, parsed);
        // Cut anywhere: no panic, never more spans than whole.
        for cut in 0..request.len() {
            assert!(scan_span_ids(&request[..cut], |_, _| {}) <= 40);
        }
    }

    #[test]
    fn every_trace_is_sorted_into_one_outcome() {
        let seed = 5;
        let expectation = Expectation {
            seed,
            traces_sent: 6,
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
}
