//! Realistic traces, reported the way services report them: in waves, spread over time,
//! interleaved with other traces in the same requests.
//!
//! Before the run, [`TraceStream::new`] draws a pool of [`SHAPES`] trace *shapes* from the seed:
//! each has a span count (log-normal, median [`SPANS_MEDIAN`]), one to four services from a pool
//! of twelve, an operation per span, a parent tree, a duration (log-normal with median
//! [`DURATION_MEDIAN_MS`], and a slow tail: `slow_rate` of the shapes take 10–40× as long), and with
//! probability `error_rate` one span with status ERROR. Every span carries the attributes of the
//! run's [`Corpus`] and one event. The spans, ordered by end time as an SDK exports them, are split into two or three *waves*, and each wave is encoded
//! once as `ResourceSpans` entries (one per service), the bytes of an `ExportTraceServiceRequest`.
//!
//! While the load runs, the `k`th trace takes shape `pick(seed, k)` and id
//! [`oracle::trace_id`]`(seed, k)`. A load of several threads gives each a [`TraceStream::part`]:
//! the shapes are shared, read-only, and each thread starts only the numbers of its
//! [`Partition`], so the threads' traces are disjoint and the run's traces the same whatever the
//! number of threads that started them. Its wave `w` is due `w × spread` after its first wave. A
//! request is built by concatenating due waves (oldest first) and then first waves of new traces
//! until it holds the span target, so each request mixes many traces and each trace is spread over
//! several requests. Building costs a copy of the bytes plus patching each span's trace id and
//! XOR-ing its span and parent ids with a per-trace salt: what cloning one pre-encoded request
//! cost before. The oracle decides each trace when it starts, on the id actually sent.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tailgate_wire::TracesRequest;

use crate::corpus::{Corpus, OPERATIONS};
use crate::generate::{string_kv, Rng};
use crate::oracle::{self, Oracle, Partition, Recorder, TraceFacts};

/// Distinct trace shapes drawn before the run.
pub const SHAPES: usize = 1024;
/// The median spans per trace.
pub const SPANS_MEDIAN: f64 = 8.0;
/// The spread of log(spans per trace).
const SPANS_SIGMA: f64 = 0.8;
/// The most spans one trace has.
pub const SPANS_MAX: usize = 128;
/// The median trace duration.
pub const DURATION_MEDIAN_MS: f64 = 40.0;
/// The spread of log(duration).
const DURATION_SIGMA: f64 = 1.0;
/// The longest trace.
const DURATION_MAX_NS: u64 = 60_000_000_000;
/// The most waves one trace is reported in.
pub const WAVES_MAX: usize = 3;
/// The first span's start time: all shapes start here, the duration is what matters.
const BASE_NS: u64 = 1_700_000_000_000_000_000;

const SERVICES: [&str; 12] = [
    "frontend",
    "checkout",
    "cart",
    "payment",
    "shipping",
    "inventory",
    "auth",
    "search",
    "recommendation",
    "email",
    "currency",
    "ads",
];

/// How traces are drawn and reported.
#[derive(Debug, Clone)]
pub struct TraceSettings {
    pub seed: u64,
    /// Share of traces with one ERROR span.
    pub error_rate: f64,
    /// Share of traces in the slow tail.
    pub slow_rate: f64,
    /// The time between a trace's waves.
    pub spread: Duration,
    /// Which traces a tail-sampling gateway must keep.
    pub oracle: Oracle,
    /// What the spans' attributes say.
    pub corpus: Corpus,
}

/// One wave of one shape, pre-encoded, with where its ids sit.
struct Wave {
    bytes: Vec<u8>,
    spans: u32,
    /// Offsets of each span's 16-byte trace id.
    trace_ids: Vec<u32>,
    /// Offsets of each 8-byte span id and non-empty parent span id.
    span_ids: Vec<u32>,
}

/// One drawn trace shape.
struct Shape {
    waves: Vec<Wave>,
    spans: u32,
    has_error: bool,
    duration_ns: u64,
}

/// A trace waiting for its next wave.
struct Waiting {
    started: Instant,
    k: u64,
    shape: u32,
    wave: u8,
}

/// The gRPC message prefix every composed request starts with: a compressed flag and the
/// message's big-endian length.
pub const GRPC_PREFIX_BYTES: usize = 5;

/// One wave of one trace in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// The trace number.
    pub k: u64,
    /// Which of the trace's waves.
    pub wave: u8,
    pub spans: u32,
}

/// A request ready to send.
pub struct Composed {
    /// The request as one uncompressed gRPC message: [`GRPC_PREFIX_BYTES`] of prefix, then the
    /// `ExportTraceServiceRequest` ([`Composed::body`]), so gRPC sends it without a copy.
    pub framed: Bytes,
    pub spans: u64,
    /// Each wave in the request, to record a refusal (and for the pool, to finish its traces).
    pub parts: Vec<Part>,
}

#[cfg(test)]
impl Composed {
    /// The `ExportTraceServiceRequest` without the gRPC prefix.
    pub fn body(&self) -> Bytes {
        self.framed.slice(GRPC_PREFIX_BYTES..)
    }
}

/// `out` made a gRPC message: its first [`GRPC_PREFIX_BYTES`] (reserved) become the prefix of
/// an uncompressed message of the bytes after them.
pub fn frame(mut out: Vec<u8>) -> Bytes {
    let length = (out.len() - GRPC_PREFIX_BYTES) as u32;
    out[0] = 0;
    out[1..GRPC_PREFIX_BYTES].copy_from_slice(&length.to_be_bytes());
    Bytes::from(out)
}

/// What [`TraceStream::next`] has.
pub enum Next {
    Request(Composed),
    /// Nothing due before this instant.
    WaitUntil(Instant),
    /// No new traces wanted and none waiting.
    Done,
}

/// The run's traces, or one thread's part of them: shapes, the waves still to send, and the
/// oracle's record.
pub struct TraceStream {
    /// Drawn once per run; the parts of a run share them.
    shapes: Arc<[Shape]>,
    settings: TraceSettings,
    /// The trace numbers this stream starts.
    partition: Partition,
    /// Traces started: the next trace is `partition.trace_number(started)`.
    started: u64,
    /// `waiting[w - 1]`: traces whose wave `w` is next, in start order (so in due order).
    waiting: Vec<VecDeque<Waiting>>,
    bytes_per_span: usize,
    /// What the oracle decided for every trace started, and refusals.
    pub record: Recorder,
}

impl TraceStream {
    /// Draws the shapes from `settings.seed`; the stream starts every trace number.
    pub fn new(settings: TraceSettings) -> io::Result<TraceStream> {
        let shapes = (0..SHAPES)
            .map(|i| draw_shape(&settings, i as u64))
            .collect::<io::Result<Arc<[_]>>>()?;
        let (bytes, spans) = shapes.iter().flat_map(|s| &s.waves).fold((0, 0), |acc, w| {
            (acc.0 + w.bytes.len(), acc.1 + w.spans as usize)
        });
        Ok(TraceStream {
            shapes,
            settings,
            partition: Partition::WHOLE,
            started: 0,
            waiting: (1..WAVES_MAX).map(|_| VecDeque::new()).collect(),
            bytes_per_span: bytes / spans.max(1) + 1,
            record: Recorder::default(),
        })
    }

    /// A fresh stream of this run's traces that starts only the numbers of `partition`, for one
    /// of the load's threads; it shares this stream's shapes.
    pub fn part(&self, partition: Partition) -> TraceStream {
        TraceStream {
            shapes: Arc::clone(&self.shapes),
            settings: self.settings.clone(),
            partition,
            started: 0,
            waiting: (1..WAVES_MAX).map(|_| VecDeque::new()).collect(),
            bytes_per_span: self.bytes_per_span,
            record: Recorder::new(partition),
        }
    }

    /// Traces started so far.
    pub fn traces_started(&self) -> u64 {
        self.started
    }

    /// The next request of about `spans_target` spans: due waves first, then (when `start_new`)
    /// new traces.
    pub fn next(&mut self, now: Instant, spans_target: usize, start_new: bool) -> Next {
        let mut out = Vec::with_capacity(
            GRPC_PREFIX_BYTES + self.bytes_per_span * (spans_target + SPANS_MAX),
        );
        out.resize(GRPC_PREFIX_BYTES, 0);
        let mut parts = Vec::new();
        let mut spans = 0usize;
        // Later waves belong to older traces: send them first.
        for w in (0..self.waiting.len()).rev() {
            while spans < spans_target {
                let Some(front) = self.waiting[w].front() else {
                    break;
                };
                if front.started + self.settings.spread * u32::from(front.wave) > now {
                    break;
                }
                let waiting = self.waiting[w].pop_front().expect("front exists");
                spans += self.emit(&mut out, &mut parts, waiting);
            }
        }
        while start_new && spans < spans_target {
            let k = self.partition.trace_number(self.started);
            self.started += 1;
            let shape_index = pick(self.settings.seed, k, self.shapes.len());
            let shape = &self.shapes[shape_index];
            let kept = self.settings.oracle.keeps(&TraceFacts {
                trace_id: oracle::trace_id(self.settings.seed, k),
                has_error: shape.has_error,
                duration_ns: shape.duration_ns,
            });
            self.record.started(k, shape.spans, kept);
            let first = Waiting {
                started: now,
                k,
                shape: shape_index as u32,
                wave: 0,
            };
            spans += self.emit(&mut out, &mut parts, first);
        }
        if spans > 0 {
            return Next::Request(Composed {
                framed: frame(out),
                spans: spans as u64,
                parts,
            });
        }
        let due = self
            .waiting
            .iter()
            .filter_map(|queue| queue.front())
            .map(|w| w.started + self.settings.spread * u32::from(w.wave))
            .min();
        match due {
            Some(due) => Next::WaitUntil(due),
            None => Next::Done,
        }
    }

    /// Appends `waiting`'s wave to `out` with its ids patched, queues its next wave, and returns
    /// its span count.
    fn emit(&mut self, out: &mut Vec<u8>, parts: &mut Vec<Part>, waiting: Waiting) -> usize {
        let shape = &self.shapes[waiting.shape as usize];
        self.write_wave(out, waiting.k, waiting.shape as usize, waiting.wave);
        let spans = shape.waves[usize::from(waiting.wave)].spans;
        parts.push(Part {
            k: waiting.k,
            wave: waiting.wave,
            spans,
        });
        let next = waiting.wave + 1;
        if usize::from(next) < shape.waves.len() {
            self.waiting[usize::from(next) - 1].push_back(Waiting {
                wave: next,
                ..waiting
            });
        }
        spans as usize
    }

    /// The request of exactly `parts` (waves of traces this stream started), as one
    /// uncompressed gRPC message: how the pooled load finishes, after its deadline, the traces
    /// whose later waves it had not sent.
    pub fn compose(&self, parts: &[Part]) -> Bytes {
        let spans: usize = parts.iter().map(|p| p.spans as usize).sum();
        let mut out = Vec::with_capacity(GRPC_PREFIX_BYTES + self.bytes_per_span * spans);
        out.resize(GRPC_PREFIX_BYTES, 0);
        for part in parts {
            let shape = pick(self.settings.seed, part.k, self.shapes.len());
            self.write_wave(&mut out, part.k, shape, part.wave);
        }
        frame(out)
    }

    /// Appends wave `wave` of shape `shape` to `out` as trace `k`'s: its ids patched.
    fn write_wave(&self, out: &mut Vec<u8>, k: u64, shape: usize, wave: u8) {
        let wave = &self.shapes[shape].waves[usize::from(wave)];
        let id = oracle::trace_id(self.settings.seed, k);
        let salt = span_salt(self.settings.seed, k);
        let base = out.len();
        out.extend_from_slice(&wave.bytes);
        for &at in &wave.trace_ids {
            let at = base + at as usize;
            out[at..at + 16].copy_from_slice(&id);
        }
        for &at in &wave.span_ids {
            let at = base + at as usize;
            let id: &mut [u8; 8] = (&mut out[at..at + 8]).try_into().expect("8 bytes");
            *id = (u64::from_le_bytes(*id) ^ salt).to_le_bytes();
        }
    }

    /// The part of the trace numbers this stream starts.
    pub fn partition(&self) -> Partition {
        self.partition
    }
}

/// The shape of trace `k`.
fn pick(seed: u64, k: u64, shapes: usize) -> usize {
    (Rng(seed ^ 0x5ba9_e5ee_d000_0001 ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64()
        % shapes as u64) as usize
}

/// What trace `k`'s span ids are XOR-ed with.
fn span_salt(seed: u64, k: u64) -> u64 {
    Rng(seed ^ 0x5a17_0000_0000_0002 ^ k.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)).next_u64()
}

/// A uniform draw in [0, 1).
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - unit(rng);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Shape `i` of a run.
fn draw_shape(settings: &TraceSettings, i: u64) -> io::Result<Shape> {
    let mut rng = Rng(settings.seed ^ i.wrapping_mul(0xff51_afd7_ed55_8ccd));
    let n = (SPANS_MEDIAN * (SPANS_SIGMA * normal(&mut rng)).exp()).round() as usize;
    let n = n.clamp(1, SPANS_MAX);
    let mut duration_ns =
        (DURATION_MEDIAN_MS * 1e6 * (DURATION_SIGMA * normal(&mut rng)).exp()).max(1_000.0) as u64;
    if unit(&mut rng) < settings.slow_rate {
        duration_ns = duration_ns.saturating_mul(10 + rng.next_u64() % 31);
    }
    let duration_ns = duration_ns.min(DURATION_MAX_NS);
    let has_error = unit(&mut rng) < settings.error_rate;
    let error_span = has_error.then(|| (rng.next_u64() % n as u64) as usize);
    let service_count = 1 + (rng.next_u64() % 4) as usize;
    let first_service = (rng.next_u64() % SERVICES.len() as u64) as usize;
    let services: Vec<usize> = (0..service_count)
        .map(|s| (first_service + s * 5) % SERVICES.len())
        .collect();

    // (span, service) with the root first; children start inside their parent and end by it.
    let mut spans: Vec<(Span, usize)> = Vec::with_capacity(n);
    for index in 0..n {
        let (start, end, parent, service) = if index == 0 {
            (BASE_NS, BASE_NS + duration_ns, Vec::new(), services[0])
        } else {
            let p = (rng.next_u64() % index as u64) as usize;
            let (ps, pe) = (
                spans[p].0.start_time_unix_nano,
                spans[p].0.end_time_unix_nano,
            );
            let start = ps + ((pe - ps) as f64 * 0.5 * unit(&mut rng)) as u64;
            let end = start + (((pe - start) as f64 * unit(&mut rng)) as u64).max(1);
            let service = services[(rng.next_u64() % service_count as u64) as usize];
            (start, end.min(pe), spans[p].0.span_id.clone(), service)
        };
        let operation = (rng.next_u64() % OPERATIONS.len() as u64) as usize;
        spans.push((
            Span {
                trace_id: vec![0; 16],
                span_id: rng.next_u64().to_le_bytes().to_vec(),
                parent_span_id: parent,
                name: OPERATIONS[operation].to_string(),
                kind: if index == 0 { 2 } else { 3 },
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes: settings.corpus.attributes(&mut rng, operation),
                events: vec![span::Event {
                    time_unix_nano: start,
                    name: "message".into(),
                    attributes: vec![string_kv("message.type".into(), "SENT".into())],
                    dropped_attributes_count: 0,
                }],
                status: Some(Status {
                    message: String::new(),
                    code: if error_span == Some(index) { 2 } else { 0 },
                }),
                flags: 0x301,
                ..Default::default()
            },
            service,
        ));
    }
    // An SDK exports a span when it ends: order by end time (the root last), then cut in waves.
    spans.sort_by_key(|(span, _)| span.end_time_unix_nano);
    let waves = n.min(2 + (rng.next_u64() % 2) as usize);
    let mut encoded = Vec::with_capacity(waves);
    let mut rest = spans.into_iter();
    for w in 0..waves {
        let take = n * (w + 1) / waves - n * w / waves;
        encoded.push(encode_wave(rest.by_ref().take(take).collect())?);
    }
    Ok(Shape {
        waves: encoded,
        spans: n as u32,
        has_error,
        duration_ns,
    })
}

/// One wave as `ResourceSpans` entries, one per service, and where its ids sit.
fn encode_wave(spans: Vec<(Span, usize)>) -> io::Result<Wave> {
    let count = spans.len() as u32;
    let mut resource_spans: Vec<ResourceSpans> = Vec::new();
    let mut services: Vec<usize> = Vec::new();
    for (span, service) in spans {
        let at = match services.iter().position(|&s| s == service) {
            Some(at) => at,
            None => {
                services.push(service);
                resource_spans.push(resource_spans_for(service));
                services.len() - 1
            }
        };
        resource_spans[at].scope_spans[0].spans.push(span);
    }
    let bytes = ExportTraceServiceRequest { resource_spans }.encode_to_vec();
    let request = TracesRequest::parse(&bytes)
        .map_err(|err| io::Error::other(format!("generated wave: {err}")))?;
    let base = bytes.as_ptr() as usize;
    let mut trace_ids = Vec::new();
    let mut span_ids = Vec::new();
    for span in request.spans() {
        trace_ids.push((span.trace_id().as_ptr() as usize - base) as u32);
        span_ids.push((span.span_id().as_ptr() as usize - base) as u32);
        if !span.parent_span_id().is_empty() {
            span_ids.push((span.parent_span_id().as_ptr() as usize - base) as u32);
        }
    }
    Ok(Wave {
        bytes,
        spans: count,
        trace_ids,
        span_ids,
    })
}

fn resource_spans_for(service: usize) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                string_kv("service.name".into(), SERVICES[service].into()),
                string_kv("service.version".into(), "1.4.2".into()),
                string_kv("host.name".into(), format!("ip-10-0-12-{}", 10 + service)),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "io.opentelemetry.http".into(),
                version: "1.30.0".into(),
                ..Default::default()
            }),
            spans: Vec::new(),
            schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
        }],
        schema_url: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn stream(spread_ms: u64, policy: &str) -> TraceStream {
        TraceStream::new(TraceSettings {
            seed: 7,
            error_rate: 0.03,
            slow_rate: 0.02,
            spread: Duration::from_millis(spread_ms),
            oracle: Oracle::parse(policy).unwrap(),
            corpus: Corpus::Benchmark,
        })
        .unwrap()
    }

    /// (trace id, span id, parent id, status code, start, end).
    type SentSpan = ([u8; 16], Vec<u8>, Vec<u8>, i32, u64, u64);

    /// Every span in a request.
    fn spans_of(bytes: &[u8]) -> Vec<SentSpan> {
        TracesRequest::parse(bytes)
            .expect("a composed request is valid OTLP")
            .spans()
            .map(|s| {
                (
                    s.trace_id_array().unwrap(),
                    s.span_id().to_vec(),
                    s.parent_span_id().to_vec(),
                    s.status_code(),
                    s.start_time_unix_nano(),
                    s.end_time_unix_nano(),
                )
            })
            .collect()
    }

    #[test]
    fn waves_arrive_spread_and_interleaved_and_the_oracle_decides_on_sent_ids() {
        let mut stream = stream(100, "errors,latency:500,probabilistic:5");
        let t0 = Instant::now();
        let mut sent = Vec::new();
        let mut requests_per_trace: HashMap<[u8; 16], HashSet<usize>> = HashMap::new();
        // 1 s of requests, 10 ms apart, then no new traces until all waves are out.
        let mut at = t0;
        let mut r = 0;
        loop {
            let start_new = at < t0 + Duration::from_secs(1);
            match stream.next(at, 200, start_new) {
                Next::Request(request) => {
                    let spans = spans_of(&request.body());
                    assert_eq!(spans.len() as u64, request.spans);
                    for s in &spans {
                        requests_per_trace.entry(s.0).or_default().insert(r);
                    }
                    sent.extend(spans);
                    r += 1;
                }
                Next::WaitUntil(due) => {
                    assert!(!start_new);
                    at = due;
                    continue;
                }
                Next::Done => break,
            }
            at += Duration::from_millis(10);
        }
        // Each trace's spans, all sent, once each.
        let mut traces: HashMap<[u8; 16], Vec<_>> = HashMap::new();
        for s in &sent {
            traces.entry(s.0).or_default().push(s.clone());
        }
        assert_eq!(traces.len() as u64, stream.traces_started());
        assert_eq!(sent.len() as u64, stream.record.spans_sent);
        let unique: HashSet<_> = sent.iter().map(|s| (s.0, s.1.clone())).collect();
        assert_eq!(unique.len(), sent.len());
        // Traces of several spans arrive in several requests; requests hold several traces.
        let multi = requests_per_trace.values().filter(|r| r.len() > 1).count();
        assert!(multi * 2 > traces.len(), "{multi} of {}", traces.len());
        // The oracle's record matches the policies applied to what was sent.
        let mut kept = 0;
        for (id, spans) in &traces {
            let k = oracle::trace_number(7, id).expect("a generated id");
            let start = spans.iter().map(|s| s.4).min().unwrap();
            let end = spans.iter().map(|s| s.5).max().unwrap();
            let facts = TraceFacts {
                trace_id: *id,
                has_error: spans.iter().any(|s| s.3 == 2),
                duration_ns: end - start,
            };
            assert!(k < stream.traces_started());
            kept += usize::from(stream.settings.oracle.keeps(&facts));
            // Parents are spans of the same trace.
            let ids: HashSet<_> = spans.iter().map(|s| s.1.clone()).collect();
            assert!(spans.iter().all(|s| s.2.is_empty() || ids.contains(&s.2)));
        }
        assert_eq!(kept, stream.record.kept());
        let share = kept as f64 / traces.len() as f64;
        assert!((0.05..0.2).contains(&share), "kept share {share}");
    }

    /// Spans of each trace a stream sends until it has started `traces`, then drains.
    fn send(stream: &mut TraceStream, traces: u64) -> HashMap<[u8; 16], HashSet<Vec<u8>>> {
        let now = Instant::now();
        let mut sent: HashMap<[u8; 16], HashSet<Vec<u8>>> = HashMap::new();
        loop {
            let start_new = stream.traces_started() < traces;
            match stream.next(now, 100, start_new) {
                Next::Request(request) => {
                    for s in spans_of(&request.body()) {
                        assert!(sent.entry(s.0).or_default().insert(s.1), "a span twice");
                    }
                }
                Next::WaitUntil(_) => unreachable!("no spread: every wave is due at once"),
                Next::Done => return sent,
            }
        }
    }

    #[test]
    fn parts_send_disjoint_traces_that_together_are_the_whole_streams() {
        let whole = send(&mut stream(0, "always"), 400);
        let base = stream(0, "always");
        let mut seen: HashMap<[u8; 16], u64> = HashMap::new();
        for partition in Partition::all(3) {
            let mut part = base.part(partition);
            let sent = send(&mut part, 100);
            let started = part.traces_started();
            assert!(started >= 100);
            assert_eq!(part.record.partition, partition);
            assert_eq!(part.record.traces_sent, started);
            // Exactly this part's first `started` numbers, each sent as the whole stream sends it.
            let mut numbers: Vec<u64> = sent
                .keys()
                .map(|id| oracle::trace_number(7, id).expect("a generated id"))
                .collect();
            numbers.sort_unstable();
            let expected: Vec<u64> = (0..started).map(|i| partition.trace_number(i)).collect();
            assert_eq!(numbers, expected);
            for (id, spans) in &sent {
                assert_eq!(Some(spans), whole.get(id), "trace {id:?} differs");
                assert!(seen.insert(*id, partition.index).is_none(), "in two parts");
            }
        }
    }

    #[test]
    fn composing_a_requests_parts_again_gives_its_bytes() {
        let mut stream = stream(100, "always");
        let now = Instant::now();
        for _ in 0..5 {
            let Next::Request(request) = stream.next(now, 300, true) else {
                panic!("a request");
            };
            assert_eq!(stream.compose(&request.parts), request.framed);
            let spans: u32 = request.parts.iter().map(|p| p.spans).sum();
            assert_eq!(u64::from(spans), request.spans);
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_requests() {
        let now = Instant::now();
        let bytes = |mut s: TraceStream| match s.next(now, 100, true) {
            Next::Request(r) => r.framed,
            _ => panic!("a request"),
        };
        assert_eq!(bytes(stream(0, "always")), bytes(stream(0, "always")));
    }
}
