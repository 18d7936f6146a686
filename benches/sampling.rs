//! The tail sampler's own cost per span: buffering owned requests and deciding their traces.
//!
//! Input: requests of 1000 SDK-shaped spans (10 attributes with 20-character keys and values,
//! one event; 10 spans per trace), every trace's ids fresh. One iteration inserts one request
//! into a shard's [`TraceBuffer`] and decides the traces of the request inserted `IN_FLIGHT`
//! requests earlier, so the buffer holds a steady `IN_FLIGHT × 1000` spans, as a shard does with
//! traces waiting out `decision_wait`. The policies keep about 10 %: errors are not a policy
//! here (the generator marks 1 span in 20 as an error, which would keep 40 % of traces), a
//! latency threshold no trace reaches, and probabilistic at 10 %. Kept spans are framed into an
//! export request, as the shard does before pushing them to its pipeline.
//!
//! After criterion's report, a fixed-iteration run prints `sampling: X ns/span (insert +
//! decide), buffer holds Y bytes for Z span bytes` (median of 21 rounds).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use mimalloc::MiMalloc;
use tailgate::config::{Config, Processor};
use tailgate::sampling::{BufferLimits, PolicySet, TraceBuffer};
use tailgate::telemetry::{RegistryBuilder, SamplingMetrics};
use tailgate_bench::generate::{sdk_shaped_request, Rng};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const SPANS: usize = 1000;
/// Requests buffered at any time: 200 × 1000 spans, about 100 MB of spans.
const IN_FLIGHT: usize = 200;
/// Distinct requests generated; ids repeat after this many, long after their traces are gone.
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

struct Bench {
    requests: Vec<Vec<u8>>,
    buffer: TraceBuffer,
    policies: PolicySet,
    metrics: SamplingMetrics,
    /// The instant each request was inserted at (a fake clock, a millisecond a request).
    clock: Instant,
    next: usize,
    out: Vec<u8>,
    late: Vec<u8>,
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
            .map(|_| sdk_shaped_request(&mut rng, SPANS))
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
            hard_bytes: u64::MAX,
            sampled_cache: 50_000,
            not_sampled_cache: 50_000,
            max_trace_bytes: None,
        };
        let mut bench = Bench {
            requests,
            buffer: TraceBuffer::new(limits, IN_FLIGHT * SPANS / 10),
            policies: PolicySet::new(&tail, 1).expect("policies"),
            metrics,
            clock: Instant::now(),
            next: 0,
            out: Vec::new(),
            late: Vec::new(),
        };
        for _ in 0..IN_FLIGHT {
            bench.step();
        }
        bench
    }

    /// Inserts the next request, then decides what is due.
    fn step(&mut self) -> usize {
        self.clock += Duration::from_millis(1);
        let request = &self.requests[self.next % DISTINCT];
        self.next += 1;
        self.late.clear();
        self.buffer.insert(request, self.clock, &mut self.late);
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
        self.out.len()
    }
}

fn main() {
    let mut bench = Bench::new();
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
