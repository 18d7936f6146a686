//! The tail sampler's own cost per span: buffering owned requests and deciding their traces.
//!
//! Input: requests of 1000 SDK-shaped spans (10 attributes with 20-character keys and values,
//! one event; 10 spans per trace), every trace's id renewed at each use. One iteration inserts one request
//! into a shard's [`TraceBuffer`] and decides the traces of the request inserted `IN_FLIGHT`
//! requests earlier, so the buffer holds a steady `IN_FLIGHT × 1000` spans, as a shard does with
//! traces waiting out `decision_wait`. The policies keep about 10 %: errors are not a policy
//! here (the generator marks 1 span in 20 as an error, which would keep 40 % of traces), a
//! latency threshold no trace reaches, and probabilistic at 10 %. Kept spans are framed into an
//! export request, as the shard does before pushing them to its pipeline.
//!
//! With `SAMPLING_STRESS_RELIEF=PCT` set, the buffer is put in stress relief at `PCT` % after
//! the setup, and the buffered traces are left to be decided before anything is measured: every
//! trace is then decided at its arrival by its id, and nothing is buffered (the cost of a span
//! in stress relief, against the cost of buffering and deciding it).
//!
//! With `SAMPLING_STEPS=N` set, it runs N steps after the setup and nothing else, for counting
//! instructions under callgrind (see [`measured`]). Otherwise, after criterion's report, a
//! fixed-iteration run prints `sampling: X ns/span (insert +
//! decide), buffer holds Y bytes for Z span bytes` (median of 21 rounds).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use mimalloc::MiMalloc;
use tailgate::config::{Config, Processor};
use tailgate::metadata::Metadata;
use tailgate::sampling::stress_relief::ArrivalSampling;
use tailgate::sampling::{BufferLimits, Framed, PolicySet, TraceBuffer};
use tailgate::telemetry::{RegistryBuilder, SamplingMetrics};
use tailgate_bench::generate::{sdk_shaped_request, Rng};
use tailgate_wire::TracesRequest;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const SPANS: usize = 1000;
/// Requests buffered at any time: 200 × 1000 spans, about 100 MB of spans.
const IN_FLIGHT: usize = 200;
/// Distinct requests generated (their trace ids are renewed at each use).
const DISTINCT: usize = 400;

const POLICIES: &str = "
receivers:
  otlp:
    protocols:
      grpc:
processors:
  tail_sampling:
    decision_wait: 2s
    policies:
      - name: slow
        type: latency
        latency:
          threshold_ms: 10000
      - name: some
        type: probabilistic
        probabilistic:
          sampling_percentage: 10
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [debug]
";

/// A request and where its spans' trace ids are.
struct Template {
    bytes: Vec<u8>,
    trace_ids: Vec<usize>,
}

impl Template {
    fn new(bytes: Vec<u8>) -> Template {
        let request = TracesRequest::parse(&bytes).expect("generated request");
        let base = bytes.as_ptr() as usize;
        let trace_ids = request
            .spans()
            .map(|s| s.trace_id().as_ptr() as usize - base)
            .collect();
        Template { bytes, trace_ids }
    }

    /// Gives every trace fresh ids for send `n`: the first 8 bytes of each trace id become `n`
    /// (the other 8 keep traces within the request apart).
    fn renew(&mut self, n: u64) {
        for &at in &self.trace_ids {
            self.bytes[at..at + 8].copy_from_slice(&n.to_le_bytes());
        }
    }
}

struct Bench {
    requests: Vec<Template>,
    buffer: TraceBuffer,
    policies: PolicySet,
    metrics: SamplingMetrics,
    /// The instant each request was inserted at (a fake clock, a millisecond a request).
    clock: Instant,
    next: usize,
    out: Framed,
    late: Framed,
}

impl Bench {
    fn new() -> Bench {
        let config = Config::from_yaml(POLICIES, "bench").expect("bench config");
        let tail = config
            .processors
            .by_id
            .values()
            .find_map(|p| match p {
                Processor::TailSampling(t) => Some(t.clone()),
                _ => None,
            })
            .expect("tail_sampling");
        let mut rng = Rng(7);
        let requests = (0..DISTINCT)
            .map(|_| Template::new(sdk_shaped_request(&mut rng, SPANS)))
            .collect();
        let names: Vec<&str> = tail.policies.iter().map(|p| p.name.as_str()).collect();
        let metrics = SamplingMetrics::register(&mut RegistryBuilder::new(), 0, &names);
        let limits = BufferLimits {
            // One request per millisecond: the oldest is due after IN_FLIGHT of them.
            decision_wait: Duration::from_millis(IN_FLIGHT as u64),
            decision_wait_after_root: None,
            num_traces: usize::MAX,
            evict_at_num_traces: true,
            soft_bytes: u64::MAX,
            sampled_cache: 50_000,
            not_sampled_cache: 50_000,
            max_trace_bytes: None,
            decide_at_ingest: false,
            oversized_bytes: tailgate::sampling::oversized_bytes(u64::MAX),
        };
        let mut bench = Bench {
            requests,
            buffer: TraceBuffer::new(limits, IN_FLIGHT * SPANS / 10),
            policies: PolicySet::new(&tail, 1).expect("policies"),
            metrics,
            clock: Instant::now(),
            next: 0,
            out: Framed::default(),
            late: Framed::default(),
        };
        for _ in 0..IN_FLIGHT {
            bench.step();
        }
        bench
    }

    /// Inserts the next request, then decides what is due.
    fn step(&mut self) -> usize {
        self.clock += Duration::from_millis(1);
        let request = &mut self.requests[self.next % DISTINCT];
        self.next += 1;
        request.renew(self.next as u64);
        self.late.clear();
        self.buffer.insert(
            &request.bytes,
            &Metadata::none(),
            self.clock,
            &mut self.late,
        );
        self.out.clear();
        loop {
            let round = self.buffer.decide_round(
                self.clock,
                false,
                &mut self.policies,
                &self.metrics,
                &mut |_| {},
                &mut self.out,
            );
            if round.traces == 0 {
                break;
            }
        }
        self.out.bytes.len()
    }
}

/// `steps` steps, apart for instruction counting: `SAMPLING_STEPS=N valgrind --tool=callgrind
/// --toggle-collect='*measured*' target/release/deps/sampling-*` counts what N steps cost,
/// without setup or criterion.
#[inline(never)]
fn measured(bench: &mut Bench, steps: usize) -> usize {
    (0..steps).map(|_| bench.step()).sum()
}

fn main() {
    let mut bench = Bench::new();
    if let Some(percent) = std::env::var("SAMPLING_STRESS_RELIEF")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        bench
            .buffer
            .set_stress_relief(Some(ArrivalSampling::new(percent, false)));
        // The traces buffered before are decided at their wait.
        for _ in 0..IN_FLIGHT {
            bench.step();
        }
        assert_eq!(
            bench.buffer.span_count(),
            0,
            "nothing buffered in stress relief"
        );
    }
    if let Some(steps) = std::env::var("SAMPLING_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        black_box(measured(&mut bench, steps));
        println!("sampling: {steps} steps of {SPANS} spans");
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("sampling");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.bench_function("insert+decide 1000 spans", |b| {
        b.iter(|| black_box(bench.step()))
    });
    group.finish();
    criterion.final_summary();

    let mut rounds: Vec<f64> = (0..21)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..100 {
                black_box(bench.step());
            }
            started.elapsed().as_nanos() as f64 / (100 * SPANS) as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    println!(
        "sampling: {:.0} ns/span (insert + decide), buffer holds {} bytes for {} span bytes \
         ({} spans)",
        rounds[10],
        bench.buffer.bytes(),
        bench.buffer.span_bytes(),
        bench.buffer.span_count()
    );
}
