//! The oracle: which generated traces a tail-sampling gateway must keep, and the expectation file
//! the sink verifies against.
//!
//! Trace ids are not random: the `k`th trace of a run with seed `s` has the id
//! `hi ‖ (k ⊕ hi)` (two big-endian u64s) where `hi` is a mix of `s` and `k`. Both halves look
//! random to a hash, and anyone who knows the seed can tell a generated id from a stranger and
//! recover its `k` ([`trace_number`]). So the load records only the traces the policies keep (and
//! the few touched by a refused request) and the sink still classifies every trace it receives.
//!
//! The policies are the Collector's `tail_sampling` rules for a generated trace: `errors` (any span
//! with status ERROR), `latency:THRESHOLD_MS` (earliest start to latest end, in whole
//! milliseconds, above the threshold), `probabilistic:PCT[:SALT]` (FNV-1a 64 over the salt then the 16 id bytes, kept when
//! at most the Collector's threshold), and `always`. Any policy that samples keeps the trace.
//! `consistent:PCT` is OTEP-235 consistent sampling on the id's last 56 bits (kept when at least
//! `round((1 - p) * 2^56)`): what a gateway's stress relief keeps of the traces it decides at
//! arrival. With it beside the policies the expectation is the union of both; a run in which
//! stress relief decided some traces and the policies others then has no trace kept wrongly and
//! no kept trace partial, while some expected traces are missing by design.
//!
//! A load of several threads splits the trace numbers into [`Partition`]s, one per thread: thread
//! `t` of `T` starts `t`, `t + T`, `t + 2T`, … so no two threads send the same trace, and the
//! traces a thread started are exactly the first `n` numbers of its part. The expectation records
//! the `n` of every part, and that says exactly which numbers were sent ([`Expectation::was_sent`])
//! however far the threads got.
//!
//! The expectation file is one JSON header line and then fixed 16-byte records, little-endian:
//! `k: u64`, `spans: u32`, `kind: u32` ([`RECORD_KEPT`]: a kept trace and all its spans;
//! [`RECORD_REFUSED`]: spans of trace `k` the gateway refused, so its outcome is not judged).
//! The header carries the traces started per part (`traces_sent_by_part`); a file without it is
//! from a load of one thread, whose part is every number below `traces_sent`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use crate::generate::Rng;

/// The Collector's default salt for `probabilistic`.
pub const SALT_DEFAULT: &str = "default-hash-seed";
/// FNV-1a 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Record kind: a trace the policies keep, with its span count.
pub const RECORD_KEPT: u32 = 1;
/// Record kind: spans of a trace in a request the gateway refused.
pub const RECORD_REFUSED: u32 = 2;
/// The policies [`Oracle::parse`] knows, for error messages.
const POLICY_FORMS: &str =
    "one of always, errors, latency:MS, probabilistic:PCT[:SALT], consistent:PCT";
/// The first bytes of an expectation file's header line.
const MAGIC: &str = "tailgate-bench-expect/1";
/// The most records an expectation file may hold (16 bytes each: 1 GiB).
const RECORDS_MAX: u64 = 1 << 26;
/// The most parts the trace numbers are split into: the most threads one load runs.
pub const PARTS_MAX: usize = 256;

/// FNV-1a 64 over `bytes`, continuing from `state` (start from [`fnv1a64_start`]).
pub fn fnv1a64(state: u64, bytes: &[u8]) -> u64 {
    let mut h = state;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The FNV-1a 64 offset basis, the state before any byte.
pub fn fnv1a64_start() -> u64 {
    FNV_OFFSET
}

/// The Collector's `calculateThreshold(percentage / 100)`: `big.Float` holding 2^64 − 1 (64-bit
/// mantissa) times the ratio, rounded to 64 significant bits (nearest, ties to even), then
/// truncated to an integer. Not `uint64(ratio * math.MaxUint64)` in f64: math.MaxUint64 is not an
/// f64, and at 10 % that product is one ulp away from the Collector's threshold.
pub fn collector_threshold(percentage: f64) -> u64 {
    let ratio = percentage / 100.0;
    if ratio.is_nan() || ratio <= 0.0 {
        return 0;
    }
    if ratio >= 1.0 {
        return u64::MAX;
    }
    // ratio = m × 2^e exactly, with m an integer of at most 53 bits.
    let bits = ratio.to_bits();
    let biased_exponent = ((bits >> 52) & 0x7ff) as i64;
    let fraction = u128::from(bits & ((1u64 << 52) - 1));
    let (m, e) = if biased_exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction + (1u128 << 52), biased_exponent - 1075)
    };
    let exact = m * u128::from(u64::MAX);
    // Round the exact product to 64 significant bits.
    let width = 128 - exact.leading_zeros() as i64;
    let (mut kept, mut scale) = (exact, 0i64);
    if width > 64 {
        let drop = (width - 64) as u32;
        let low = exact & ((1u128 << drop) - 1);
        let half = 1u128 << (drop - 1);
        kept = exact >> drop;
        if low > half || (low == half && kept & 1 == 1) {
            kept += 1;
        }
        scale = i64::from(drop);
    }
    // value = kept × 2^(scale + e); ratio < 1 makes scale + e negative here.
    let shift = -(scale + e);
    if shift >= 128 {
        0
    } else if shift <= 0 {
        u64::MAX
    } else {
        u64::try_from(kept >> shift).unwrap_or(u64::MAX)
    }
}

/// One tail-sampling policy the oracle applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// Keeps every trace.
    Always,
    /// Keeps a trace with any span whose status is ERROR.
    Errors,
    /// Keeps a trace whose duration (earliest start to latest end) is at least this.
    Latency { threshold_ms: u64 },
    /// Keeps a trace whose salted FNV-1a hash is at most the threshold.
    Probabilistic {
        percentage: f64,
        salt: String,
        threshold: u64,
    },
    /// Keeps a trace whose id's 56 bits of randomness are at least the threshold (OTEP 235).
    Consistent { percentage: f64, threshold: u64 },
}

/// OTEP 235's rejection threshold for keeping `percentage` percent: `round((1 - p) * 2^56)`,
/// computed as `2^56 - round(p * 2^56)` (exact where `1 - p` would round).
pub fn consistent_threshold(percentage: f64) -> u64 {
    const VALUES: u64 = 1 << 56;
    let p = (percentage / 100.0).clamp(0.0, 1.0);
    VALUES - ((p * VALUES as f64).round() as u64).min(VALUES)
}

/// A trace id's 56 bits of randomness: its last 7 bytes, big-endian.
pub fn randomness(trace_id: &[u8; 16]) -> u64 {
    u64::from_be_bytes(trace_id[8..].try_into().expect("8 bytes")) & ((1 << 56) - 1)
}

/// The policies of one run: a trace is kept when any keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Oracle {
    pub policies: Vec<Policy>,
    /// The spec the policies were parsed from, for reports.
    pub spec: String,
}

/// What the oracle needs to know of a generated trace.
#[derive(Debug, Clone, Copy)]
pub struct TraceFacts {
    pub trace_id: [u8; 16],
    pub has_error: bool,
    pub duration_ns: u64,
}

impl Oracle {
    /// Parses `errors,latency:500,probabilistic:5[:salt],consistent:10` or `always`.
    pub fn parse(spec: &str) -> Result<Oracle, String> {
        let mut policies = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.splitn(3, ':');
            let name = fields.next().unwrap_or_default();
            let arg = fields.next();
            let policy = match (name, arg) {
                ("always", None) => Policy::Always,
                ("errors", None) => Policy::Errors,
                ("latency", Some(ms)) => Policy::Latency {
                    threshold_ms: ms
                        .parse()
                        .map_err(|_| format!("latency threshold {ms:?}: milliseconds"))?,
                },
                ("probabilistic", Some(pct)) => {
                    let percentage: f64 = pct
                        .parse()
                        .ok()
                        .filter(|p: &f64| (0.0..=100.0).contains(p))
                        .ok_or_else(|| format!("sampling percentage {pct:?}: 0 to 100"))?;
                    let salt = fields.next().unwrap_or(SALT_DEFAULT).to_string();
                    Policy::Probabilistic {
                        percentage,
                        threshold: collector_threshold(percentage),
                        salt,
                    }
                }
                ("consistent", Some(pct)) => {
                    let percentage: f64 = pct
                        .parse()
                        .ok()
                        .filter(|p: &f64| (0.0..=100.0).contains(p))
                        .ok_or_else(|| format!("consistent percentage {pct:?}: 0 to 100"))?;
                    Policy::Consistent {
                        percentage,
                        threshold: consistent_threshold(percentage),
                    }
                }
                _ => return Err(format!("policy {part:?}: {POLICY_FORMS}")),
            };
            policies.push(policy);
        }
        if policies.is_empty() {
            return Err("no policy given".into());
        }
        Ok(Oracle {
            policies,
            spec: spec.to_string(),
        })
    }

    /// Whether the policies keep this trace.
    pub fn keeps(&self, trace: &TraceFacts) -> bool {
        self.policies.iter().any(|policy| match policy {
            Policy::Always => true,
            Policy::Errors => trace.has_error,
            // The Collector (v0.161.0) keeps a trace whose duration in whole milliseconds is
            // above the threshold: at least threshold + 1 ms.
            Policy::Latency { threshold_ms } => {
                trace.duration_ns >= threshold_ms.saturating_add(1).saturating_mul(1_000_000)
            }
            Policy::Probabilistic {
                salt, threshold, ..
            } => {
                let h = fnv1a64(fnv1a64(fnv1a64_start(), salt.as_bytes()), &trace.trace_id);
                h <= *threshold
            }
            Policy::Consistent { threshold, .. } => randomness(&trace.trace_id) >= *threshold,
        })
    }
}

/// The half of trace `k`'s id that is a pure function of the seed and `k`.
fn id_mix(seed: u64, k: u64) -> u64 {
    Rng(seed ^ k.wrapping_mul(0xd1b5_4a32_d192_ed03)).next_u64()
}

/// The id of the `k`th trace of a run with `seed`.
pub fn trace_id(seed: u64, k: u64) -> [u8; 16] {
    let hi = id_mix(seed, k);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&hi.to_be_bytes());
    id[8..].copy_from_slice(&(k ^ hi).to_be_bytes());
    id
}

/// The `k` of a trace id generated with `seed`, or `None` for an id the generator did not make.
pub fn trace_number(seed: u64, id: &[u8; 16]) -> Option<u64> {
    let hi = u64::from_be_bytes(id[..8].try_into().ok()?);
    let k = u64::from_be_bytes(id[8..].try_into().ok()?) ^ hi;
    (id_mix(seed, k) == hi).then_some(k)
}

/// Which trace numbers one of the load's threads starts: part `index` of `count` starts
/// `index`, `index + count`, `index + 2 × count`, … Parts never share a number, and the `n`
/// traces a part started are its first `n` numbers, so one count per part says what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub index: u64,
    pub count: u64,
}

impl Partition {
    /// Every trace number: the part of a load of one thread.
    pub const WHOLE: Partition = Partition { index: 0, count: 1 };

    /// The `count` parts, in order.
    pub fn all(count: u64) -> impl Iterator<Item = Partition> {
        (0..count).map(move |index| Partition { index, count })
    }

    /// The `i`th trace number of this part.
    pub fn trace_number(self, i: u64) -> u64 {
        i.checked_mul(self.count)
            .and_then(|k| k.checked_add(self.index))
            .expect("trace numbers stay below 2^64")
    }
}

impl Default for Partition {
    fn default() -> Self {
        Partition::WHOLE
    }
}

/// What the load tells the sink to expect.
#[derive(Debug, Default, Clone)]
pub struct Expectation {
    pub seed: u64,
    pub policy: String,
    /// Traces started (every one with all its spans sent or refused), over all parts.
    pub traces_sent: u64,
    /// Traces started by each part of the trace numbers, in part order: part `t` of `T` started
    /// the numbers `t + i × T` for `i` below its count.
    pub traces_sent_by_part: Vec<u64>,
    pub spans_sent: u64,
    /// Kept traces: `k` → spans.
    pub kept: HashMap<u64, u32>,
    /// Traces with spans in refused requests: `k` → spans refused.
    pub refused: HashMap<u64, u32>,
}

/// Records kept from an expectation's writer: appended while the load runs, cheaply, by the one
/// thread that starts the traces of `partition`.
#[derive(Debug, Default)]
pub struct Recorder {
    pub partition: Partition,
    pub traces_sent: u64,
    pub spans_sent: u64,
    /// Spans of the traces the policies keep.
    pub spans_kept: u64,
    records: Vec<(u64, u32, u32)>,
}

impl Recorder {
    /// An empty record of the traces of `partition`.
    pub fn new(partition: Partition) -> Recorder {
        Recorder {
            partition,
            ..Recorder::default()
        }
    }

    /// A trace was started: `spans` of it will be sent, and the policies keep it or not.
    pub fn started(&mut self, k: u64, spans: u32, kept: bool) {
        self.traces_sent += 1;
        self.spans_sent += u64::from(spans);
        if kept {
            self.spans_kept += u64::from(spans);
            self.records.push((k, spans, RECORD_KEPT));
        }
    }

    /// `spans` spans of trace `k` were in a refused request.
    pub fn refused(&mut self, k: u64, spans: u32) {
        self.records.push((k, spans, RECORD_REFUSED));
    }

    /// Writes the expectation file for what `parts` started between them: one recorder per part
    /// of the trace numbers, in part order (a load of one thread passes its one recorder).
    pub fn write(parts: &[Recorder], path: &Path, seed: u64, policy: &str) -> io::Result<()> {
        let count = parts.len() as u64;
        if parts.is_empty()
            || parts.len() > PARTS_MAX
            || !parts
                .iter()
                .zip(Partition::all(count))
                .all(|(recorder, part)| recorder.partition == part)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("an expectation needs the recorders of parts 0 to n − 1 of n (n ≤ {PARTS_MAX}), in order"),
            ));
        }
        let by_part: Vec<u64> = parts.iter().map(|r| r.traces_sent).collect();
        let header = serde_json::json!({
            "format": MAGIC,
            "seed": seed,
            "policy": policy,
            "traces_sent": by_part.iter().sum::<u64>(),
            "traces_sent_by_part": by_part,
            "spans_sent": parts.iter().map(|r| r.spans_sent).sum::<u64>(),
            "records": parts.iter().map(|r| r.records.len()).sum::<usize>(),
        });
        let mut out = io::BufWriter::new(std::fs::File::create(path)?);
        serde_json::to_writer(&mut out, &header)?;
        out.write_all(b"\n")?;
        for &(k, spans, kind) in parts.iter().flat_map(|r| &r.records) {
            out.write_all(&k.to_le_bytes())?;
            out.write_all(&spans.to_le_bytes())?;
            out.write_all(&kind.to_le_bytes())?;
        }
        out.flush()
    }

    /// Forgets every trace after the first `traces` this part started, which hold `spans_sent`
    /// spans between them: a load that recorded its traces ahead of sending them (the pool)
    /// keeps only the ones it sent.
    pub fn truncate(&mut self, traces: u64, spans_sent: u64) {
        let partition = self.partition;
        let index = |k: u64| (k - partition.index) / partition.count;
        self.records
            .retain(|&(k, _, kind)| kind != RECORD_KEPT || index(k) < traces);
        self.traces_sent = self.traces_sent.min(traces);
        self.spans_sent = self.spans_sent.min(spans_sent);
        self.spans_kept = self
            .records
            .iter()
            .filter(|r| r.2 == RECORD_KEPT)
            .map(|r| u64::from(r.1))
            .sum();
    }

    /// Kept traces recorded so far.
    pub fn kept(&self) -> usize {
        self.records.iter().filter(|r| r.2 == RECORD_KEPT).count()
    }
}

impl Expectation {
    /// Whether the load started trace `k`.
    pub fn was_sent(&self, k: u64) -> bool {
        let parts = self.traces_sent_by_part.len() as u64;
        parts > 0 && self.traces_sent_by_part[(k % parts) as usize] > k / parts
    }

    /// Reads an expectation file written by [`Recorder::write`].
    pub fn read(path: &Path) -> io::Result<Expectation> {
        let bytes = std::fs::read(path)?;
        let invalid = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {what}", path.display()),
            )
        };
        let newline = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| invalid("no header line"))?;
        let header: serde_json::Value =
            serde_json::from_slice(&bytes[..newline]).map_err(|e| invalid(&e.to_string()))?;
        if header["format"] != MAGIC {
            return Err(invalid("not an expectation file"));
        }
        let field = |name: &str| {
            header[name]
                .as_u64()
                .ok_or_else(|| invalid(&format!("header lacks {name}")))
        };
        let records = field("records")?;
        let body = &bytes[newline + 1..];
        if records > RECORDS_MAX || body.len() as u64 != records * 16 {
            return Err(invalid("record count and file length disagree"));
        }
        let traces_sent = field("traces_sent")?;
        let traces_sent_by_part = match &header["traces_sent_by_part"] {
            serde_json::Value::Null => vec![traces_sent],
            serde_json::Value::Array(parts) if (1..=PARTS_MAX).contains(&parts.len()) => parts
                .iter()
                .map(serde_json::Value::as_u64)
                .collect::<Option<Vec<u64>>>()
                .ok_or_else(|| invalid("traces_sent_by_part holds a non-count"))?,
            _ => {
                return Err(invalid(&format!(
                    "traces_sent_by_part: a list of 1 to {PARTS_MAX} counts"
                )))
            }
        };
        let sum = traces_sent_by_part
            .iter()
            .try_fold(0u64, |sum, &n| sum.checked_add(n));
        if sum != Some(traces_sent) {
            return Err(invalid(
                "traces_sent_by_part does not add up to traces_sent",
            ));
        }
        let mut expectation = Expectation {
            seed: field("seed")?,
            policy: header["policy"].as_str().unwrap_or_default().to_string(),
            traces_sent,
            traces_sent_by_part,
            spans_sent: field("spans_sent")?,
            ..Expectation::default()
        };
        for record in body.chunks_exact(16) {
            let k = u64::from_le_bytes(record[..8].try_into().expect("8 bytes"));
            let spans = u32::from_le_bytes(record[8..12].try_into().expect("4 bytes"));
            match u32::from_le_bytes(record[12..].try_into().expect("4 bytes")) {
                RECORD_KEPT => {
                    expectation.kept.insert(k, spans);
                }
                RECORD_REFUSED => *expectation.refused.entry(k).or_insert(0) += spans,
                _ => return Err(invalid("unknown record kind")),
            }
        }
        Ok(expectation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_hand_computed_values() {
        // The empty input is the offset basis.
        assert_eq!(fnv1a64(fnv1a64_start(), b""), 0xcbf2_9ce4_8422_2325);
        // "a": (basis ^ 0x61) × prime mod 2^64.
        let by_hand = (0xcbf2_9ce4_8422_2325u64 ^ 0x61).wrapping_mul(0x100_0000_01b3);
        assert_eq!(by_hand, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(fnv1a64_start(), b"a"), 0xaf63_dc4c_8601_ec8c);
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(fnv1a64_start(), b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64(fnv1a64_start(), b"b"), 0xaf63_df4c_8601_f1a5);
        // Continuing a hash is hashing the concatenation.
        let split = fnv1a64(fnv1a64(fnv1a64_start(), b"foo"), b"bar");
        assert_eq!(split, 0x8594_4171_f739_67e8);
    }

    #[test]
    fn consistent_sampling_is_otep_235s() {
        assert_eq!(consistent_threshold(10.0), 0xe6_6666_6666_6666);
        assert_eq!(consistent_threshold(100.0), 0);
        assert_eq!(consistent_threshold(0.0), 1 << 56);
        // The W3C Trace Context example id: randomness 0xce929d0e0e4736, 0.807 of 2^56.
        let mut w3c = [0u8; 16];
        w3c[8..].copy_from_slice(&0xa3ce_929d_0e0e_4736u64.to_be_bytes());
        assert_eq!(randomness(&w3c), 0xce_929d_0e0e_4736);
        let oracle = |spec: &str| Oracle::parse(spec).unwrap();
        let facts = TraceFacts {
            trace_id: w3c,
            has_error: false,
            duration_ns: 0,
        };
        assert!(oracle("consistent:20").keeps(&facts));
        assert!(!oracle("consistent:19").keeps(&facts));
        assert!(oracle("consistent:19,always").keeps(&facts));
        assert!(Oracle::parse("consistent:101").is_err());
    }

    #[test]
    fn threshold_is_the_collectors_big_float_product() {
        assert_eq!(collector_threshold(0.0), 0);
        assert_eq!(collector_threshold(100.0), u64::MAX);
        // 50 %: 0.5 × (2^64 − 1) = 2^63 − 0.5, exact in 64 bits, truncated.
        assert_eq!(collector_threshold(50.0), (1 << 63) - 1);
        assert_eq!(collector_threshold(25.0), (1 << 62) - 1);
        // 10 % and 5 %: the ratio's f64 is not exact, and the product rounds to 64 bits; the f64
        // product `uint64(ratio * MaxUint64)` would give one more.
        assert_eq!(collector_threshold(10.0), 1_844_674_407_370_955_263);
        assert_eq!(collector_threshold(5.0), 922_337_203_685_477_631);
        let f64_product = (0.1f64 * u64::MAX as f64) as u64;
        assert_ne!(f64_product, collector_threshold(10.0));
    }

    #[test]
    fn probabilistic_uses_salt_then_trace_id() {
        let id = [0x11u8; 16];
        let mut input = SALT_DEFAULT.as_bytes().to_vec();
        input.extend_from_slice(&id);
        let h = fnv1a64(fnv1a64_start(), &input);
        let trace = TraceFacts {
            trace_id: id,
            has_error: false,
            duration_ns: 0,
        };
        let pct = (h as f64 / u64::MAX as f64) * 100.0;
        let above = Oracle::parse(&format!("probabilistic:{}", (pct + 0.01).min(100.0))).unwrap();
        let below = Oracle::parse(&format!("probabilistic:{}", (pct - 0.01).max(0.0))).unwrap();
        assert!(above.keeps(&trace));
        assert!(!below.keeps(&trace));
        let other_salt = Oracle::parse("probabilistic:50:x").unwrap();
        assert_eq!(
            other_salt.keeps(&trace),
            fnv1a64(fnv1a64(fnv1a64_start(), b"x"), &id) <= 1 << 63
        );
    }

    #[test]
    fn policies_combine_as_any() {
        let oracle = Oracle::parse("errors,latency:500").unwrap();
        let trace = |has_error, duration_ns| TraceFacts {
            trace_id: [0; 16],
            has_error,
            duration_ns,
        };
        assert!(oracle.keeps(&trace(true, 0)));
        // Above 500 whole milliseconds, as the Collector (v0.161.0) reads `threshold_ms`.
        assert!(oracle.keeps(&trace(false, 501_000_000)));
        assert!(!oracle.keeps(&trace(false, 500_999_999)));
        assert!(!oracle.keeps(&trace(false, 500_000_000)));
        assert!(Oracle::parse("latency").is_err());
        assert!(Oracle::parse("probabilistic:101").is_err());
        assert!(Oracle::parse("").is_err());
    }

    #[test]
    fn trace_ids_carry_their_number() {
        for k in [0, 1, 7, u64::MAX / 3] {
            let id = trace_id(42, k);
            assert_eq!(trace_number(42, &id), Some(k));
            assert_eq!(trace_number(43, &id), None);
        }
        assert_eq!(trace_number(42, &[0xab; 16]), None);
    }

    #[test]
    fn expectation_round_trips() {
        let mut recorder = Recorder::default();
        recorder.started(0, 5, true);
        recorder.started(1, 3, false);
        recorder.refused(1, 2);
        let path = std::env::temp_dir().join(format!("expect-{}.bin", std::process::id()));
        Recorder::write(&[recorder], &path, 9, "errors").unwrap();
        let read = Expectation::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!((read.seed, read.traces_sent, read.spans_sent), (9, 2, 8));
        assert_eq!(read.traces_sent_by_part, vec![2]);
        assert_eq!(read.kept, HashMap::from([(0, 5)]));
        assert_eq!(read.refused, HashMap::from([(1, 2)]));
    }

    #[test]
    fn partitions_are_disjoint_and_cover_the_numbers() {
        for count in 1..=7u64 {
            let mut seen = std::collections::HashSet::new();
            for part in Partition::all(count) {
                for i in 0..50 {
                    let k = part.trace_number(i);
                    assert_eq!(k % count, part.index);
                    assert!(seen.insert(k), "{k} in two parts of {count}");
                }
            }
            // The first 50 of every part are exactly the numbers below 50 × count.
            assert_eq!(seen.len() as u64, 50 * count);
            assert!(seen.iter().all(|&k| k < 50 * count));
        }
        assert_eq!(
            Partition::all(1).collect::<Vec<_>>(),
            vec![Partition::WHOLE]
        );
    }

    #[test]
    fn the_parts_of_a_load_merge_into_one_expectation() {
        // Part 0 of 2 started traces 0, 2 and 4; part 1 started only trace 1.
        let parts = Partition::all(2).collect::<Vec<_>>();
        let mut first = Recorder::new(parts[0]);
        for (i, kept) in [true, false, true].into_iter().enumerate() {
            first.started(parts[0].trace_number(i as u64), 2, kept);
        }
        let mut second = Recorder::new(parts[1]);
        second.started(parts[1].trace_number(0), 3, true);
        second.refused(1, 1);
        let path = std::env::temp_dir().join(format!("expect-parts-{}.bin", std::process::id()));
        Recorder::write(&[first, second], &path, 9, "errors").unwrap();
        let read = Expectation::read(&path).unwrap();
        assert_eq!((read.traces_sent, read.spans_sent), (4, 9));
        assert_eq!(read.traces_sent_by_part, vec![3, 1]);
        assert_eq!(read.kept, HashMap::from([(0, 2), (4, 2), (1, 3)]));
        assert_eq!(read.refused, HashMap::from([(1, 1)]));
        // Trace 4 was sent though it is not below the 4 traces sent; 3 and 6 were not.
        let sent: Vec<u64> = (0..10).filter(|&k| read.was_sent(k)).collect();
        assert_eq!(sent, vec![0, 1, 2, 4]);
        // Parts out of order, or missing one, are refused.
        let swapped = [Recorder::new(parts[1]), Recorder::new(parts[0])];
        assert!(Recorder::write(&swapped, &path, 9, "errors").is_err());
        assert!(Recorder::write(&[Recorder::new(parts[1])], &path, 9, "errors").is_err());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn truncating_forgets_the_traces_not_sent() {
        let part = Partition { index: 1, count: 3 };
        let mut recorder = Recorder::new(part);
        for i in 0..10 {
            recorder.started(part.trace_number(i), 4, i % 2 == 0);
        }
        recorder.refused(part.trace_number(1), 2);
        assert_eq!((recorder.kept(), recorder.spans_kept), (5, 20));
        recorder.truncate(5, 20);
        // Traces 0, 2 and 4 of the part are kept; the refusal stays.
        assert_eq!((recorder.traces_sent, recorder.spans_sent), (5, 20));
        assert_eq!((recorder.kept(), recorder.spans_kept), (3, 12));
        assert_eq!(recorder.records.len(), 4);
    }

    #[test]
    fn an_expectation_without_parts_is_one_part() {
        let path = std::env::temp_dir().join(format!("expect-old-{}.bin", std::process::id()));
        let header = r#"{"format":"tailgate-bench-expect/1","seed":1,"policy":"always","traces_sent":3,"spans_sent":6,"records":0}"#;
        std::fs::write(&path, format!("{header}\n")).unwrap();
        let read = Expectation::read(&path).unwrap();
        assert_eq!(read.traces_sent_by_part, vec![3]);
        assert!(read.was_sent(2) && !read.was_sent(3));
        let bad = header.replace(r#""records""#, r#""traces_sent_by_part":[1,1],"records""#);
        std::fs::write(&path, format!("{bad}\n")).unwrap();
        assert!(Expectation::read(&path).is_err(), "parts must add up");
        let _ = std::fs::remove_file(&path);
    }
}
