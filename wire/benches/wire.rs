//! The wire layer against prost on the gateway's routing step.
//!
//! Input: one `ExportTraceServiceRequest` of 1000 realistic spans (the OpenTelemetry SDK
//! benchmark shape: 10 attributes with 20-character keys and values, and one event), 10 spans
//! per trace. Each iteration does what a receiving shard does with a request:
//!
//! - tailgate: validate and scan in place, split by owner into 2 shards, frame both requests;
//! - prost: decode into owned structs, regroup the spans by owner, encode both requests.
//!
//! Two more measure scanning alone, in bytes per second: the gateway's pass (`Split::run`:
//! validate and route every span, no framing), and a full parse followed by a span view of every
//! span (what a consumer of the views pays). After criterion's own report, a fixed-iteration run
//! prints the summary lines, the last being `wire: tailgate X ns/span, prost Y ns/span, speedup
//! Z` (medians of 21 rounds).

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use mimalloc::MiMalloc;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use tailgate_bench::generate::{sdk_shaped_request, Rng};
use tailgate_shards::route::Router;
use tailgate_wire::{Framer, Split, TracesRequest};

/// The allocator every tailgate binary uses; prost's path allocates per field, so it matters.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const SPANS: usize = 1000;
const SHARDS: usize = 2;

/// The tailgate routing step; returns the framed bytes so nothing is optimised away.
struct Tailgate {
    router: Router,
    split: Split,
    framer: Framer,
    out: [Vec<u8>; SHARDS],
}

impl Tailgate {
    fn new() -> Self {
        Tailgate {
            router: Router::new(SHARDS),
            split: Split::new(SHARDS),
            framer: Framer::new(),
            out: Default::default(),
        }
    }

    fn run(&mut self, bytes: &[u8]) -> usize {
        let router = self.router;
        self.split
            .run(bytes, |id| router.owner(id))
            .expect("valid request");
        let mut total = 0;
        for (shard, out) in self.out.iter_mut().enumerate() {
            out.clear();
            total += self.split.frame(bytes, shard, &mut self.framer, out);
        }
        total
    }
}

/// The same step with prost: decode, regroup by owner, encode.
fn prost_route(bytes: &[u8], router: &Router) -> usize {
    let request = ExportTraceServiceRequest::decode(bytes).expect("valid request");
    let mut shards: Vec<ExportTraceServiceRequest> = (0..SHARDS)
        .map(|_| ExportTraceServiceRequest::default())
        .collect();
    for rs in request.resource_spans {
        let mut per_shard: Vec<ResourceSpans> = (0..SHARDS)
            .map(|_| ResourceSpans {
                resource: rs.resource.clone(),
                scope_spans: Vec::new(),
                schema_url: rs.schema_url.clone(),
            })
            .collect();
        for ss in rs.scope_spans {
            let mut scoped: Vec<ScopeSpans> = (0..SHARDS)
                .map(|_| ScopeSpans {
                    scope: ss.scope.clone(),
                    spans: Vec::new(),
                    schema_url: ss.schema_url.clone(),
                })
                .collect();
            for span in ss.spans {
                let id: [u8; 16] = span.trace_id.as_slice().try_into().expect("16-byte id");
                scoped[router.owner(&id)].spans.push(span);
            }
            for (shard, scope) in scoped.into_iter().enumerate() {
                if !scope.spans.is_empty() {
                    per_shard[shard].scope_spans.push(scope);
                }
            }
        }
        for (shard, resource) in per_shard.into_iter().enumerate() {
            if !resource.scope_spans.is_empty() {
                shards[shard].resource_spans.push(resource);
            }
        }
    }
    shards.iter().map(|r| r.encode_to_vec().len()).sum()
}

/// The gateway's scan: validate and route every span, without framing.
fn scan(split: &mut Split, router: &Router, bytes: &[u8]) -> usize {
    split
        .run(bytes, |id| router.owner(id))
        .expect("valid request");
    split.spans(0).len()
}

/// A full parse, then a view of every span.
fn parse_and_view(bytes: &[u8]) -> u64 {
    let request = TracesRequest::parse(bytes).expect("valid request");
    request
        .spans()
        .map(|s| s.start_time_unix_nano() ^ u64::from(s.trace_id()[0]))
        .fold(0, u64::wrapping_add)
}

/// Median nanoseconds per span over 21 rounds of `iters` runs of `f`.
fn median_ns_per_span(iters: u32, mut f: impl FnMut() -> usize) -> f64 {
    let mut rounds: Vec<f64> = (0..21)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(f());
            }
            start.elapsed().as_nanos() as f64 / f64::from(iters) / SPANS as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
}

fn main() {
    let bytes = sdk_shaped_request(&mut Rng(42), SPANS);
    let router = Router::new(SHARDS);
    let mut tailgate = Tailgate::new();
    assert_eq!(tailgate.run(&bytes) > 0, prost_route(&bytes, &router) > 0);

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("route_1000_spans");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.bench_function("tailgate_scan_split_frame", |b| {
        b.iter(|| tailgate.run(black_box(&bytes)))
    });
    group.bench_function("prost_decode_regroup_encode", |b| {
        b.iter(|| prost_route(black_box(&bytes), &router))
    });
    group.finish();
    let mut group = criterion.benchmark_group("scan_1000_spans");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    let mut split = Split::new(SHARDS);
    group.bench_function("tailgate_split", |b| {
        b.iter(|| scan(&mut split, &router, black_box(&bytes)))
    });
    group.bench_function("tailgate_parse_and_view", |b| {
        b.iter(|| parse_and_view(black_box(&bytes)))
    });
    group.finish();
    criterion.final_summary();

    let tailgate_ns = median_ns_per_span(200, || tailgate.run(&bytes));
    let prost_ns = median_ns_per_span(20, || prost_route(&bytes, &router));
    let scan_ns = median_ns_per_span(200, || scan(&mut split, &router, &bytes));
    let view_ns = median_ns_per_span(200, || parse_and_view(&bytes) as usize);
    let bytes_per_span = bytes.len() as f64 / SPANS as f64;
    println!(
        "wire: request {} bytes, {:.0} bytes/span; scan (validate + route) {:.2} GB/s ({:.0} ns/span); \
         parse + view every span {:.2} GB/s ({:.0} ns/span)",
        bytes.len(),
        bytes_per_span,
        bytes_per_span / scan_ns,
        scan_ns,
        bytes_per_span / view_ns,
        view_ns
    );
    println!(
        "wire: tailgate {tailgate_ns:.0} ns/span, prost {prost_ns:.0} ns/span, speedup {:.1}",
        prost_ns / tailgate_ns
    );
}
