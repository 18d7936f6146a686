//! What forwarding a span to the tier member that owns its trace costs the two nodes' CPUs,
//! outside the network: the work the tier adds to a span's path, measured apart from the
//! syscalls, HTTP/2 and scheduling that `bench-rig/scenarios/tier.sh` measures with it.
//!
//! Input: five client requests of 500 spans from the semantic corpus (spans that compress like
//! real ones), each already validated and split by owner over three members, as the receiving
//! node's ingest does for every request, tier or not. Each iteration then does what the tier
//! adds for the two members' parts (about 2/3 of the spans), per compression:
//!
//! - the sending node frames each member's spans into that member's outbox (under their
//!   resource and scope, original bytes) and compresses the outbox (one request of ~1,700 spans
//!   a member; at the tier scenario's rate a 100 ms outbox holds about 5,000);
//! - the owning node decompresses it and validates and routes it again (its own `Split::run`,
//!   one shard).
//!
//! Criterion reports time per forwarded span. Ownership is xxh3 of the trace id modulo 3, which
//! stands in for the ring's lookup (one slice of its 4096-slice index: a few ns a span).

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use mimalloc::MiMalloc;
use tailgate_bench::corpus::Corpus;
use tailgate_bench::generate::{request_of, Rng};
use tailgate_wire::{Framer, Split};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const REQUESTS: usize = 5;
const REQUEST_SPANS: usize = 500;
const MEMBERS: usize = 3;

fn owner(id: &[u8; 16]) -> usize {
    (xxhash_rust::xxh3::xxh3_64(id) % MEMBERS as u64) as usize
}

/// One compression of the outboxes: how they are compressed and decompressed.
struct Codec {
    name: &'static str,
    level: Option<i32>,
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let mut rng = Rng(17);
    let requests: Vec<Vec<u8>> = (0..REQUESTS)
        .map(|_| request_of(Corpus::Semantic, &mut rng, REQUEST_SPANS))
        .collect();
    let splits: Vec<Split> = requests
        .iter()
        .map(|request| {
            let mut split = Split::new(MEMBERS);
            split.run(request, owner).expect("a valid request");
            split
        })
        .collect();
    // Member 0 is this node; 1 and 2 are the others.
    let forwarded: usize = splits
        .iter()
        .map(|split| split.spans(1).len() + split.spans(2).len())
        .sum();
    let codecs = [
        Codec {
            name: "none",
            level: None,
        },
        Codec {
            name: "zstd_-1",
            level: Some(-1),
        },
        Codec {
            name: "zstd_3",
            level: Some(3),
        },
    ];
    let mut group = criterion.benchmark_group("forward_2500_spans/semantic");
    group.throughput(Throughput::Elements(forwarded as u64));
    for codec in &codecs {
        let mut framer = Framer::new();
        let mut outboxes: [Vec<u8>; MEMBERS] = Default::default();
        let mut compressor = codec
            .level
            .map(|level| zstd::bulk::Compressor::new(level).expect("a level"));
        let mut decompressor = zstd::bulk::Decompressor::new().expect("a context");
        let mut received = Split::new(1);
        group.bench_function(codec.name, |b| {
            b.iter(|| {
                let mut routed = 0;
                for (outbox, member) in outboxes.iter_mut().zip(0..MEMBERS).skip(1) {
                    outbox.clear();
                    for (request, split) in requests.iter().zip(&splits) {
                        split.frame(request, member, &mut framer, outbox);
                    }
                    let body = match compressor.as_mut() {
                        None => std::mem::take(outbox),
                        Some(compressor) => {
                            let sent = compressor.compress(outbox).expect("in memory");
                            decompressor
                                .decompress(black_box(&sent), outbox.len())
                                .expect("valid zstd")
                        }
                    };
                    received.run(black_box(&body), |_| 0).expect("valid");
                    routed += received.spans(0).len();
                    if compressor.is_none() {
                        *outbox = body;
                    }
                }
                routed
            })
        });
    }
    group.finish();
    criterion.final_summary();
}
