//! What client metadata (multi-tenant gateways, `crate::metadata`) costs a span, part by part,
//! outside the network: `bench-rig/scenarios/tenants.yaml` measures it in place.
//!
//! - `capture`: a receiver with `include_metadata` keeping `x-tenant` of a gRPC call's headers
//!   (the headers a grpc-go client sends, plus the tenant's);
//! - `admit`: the `metadata_cardinality_limit` check of a request whose tenant this shard has
//!   admitted before (every request after a tenant's first);
//! - `batch/plain` against `batch/8-tenants`: a pipeline's batcher taking 500-span requests of
//!   the semantic corpus into 8,192-span batches, without metadata and with 8 tenants batched
//!   apart (each request copied into its tenant's batch either way);
//! - `headers`: `headers_setter` making a batch's `X-Scope-OrgID` from its metadata.
//!
//! Criterion reports time per span for the batcher, per request or batch for the others (a
//! request is 500 spans, a batch 8,192).

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use mimalloc::MiMalloc;
use tailgate::auth::HeaderSetter;
use tailgate::config::{HeaderAction, HeaderEntry, HeaderSource, HeadersSetter, Secret};
use tailgate::export::{Batch, BatcherSettings, Batchers, Partitioning};
use tailgate::metadata::{Admission, Admissions, Capture, Metadata};
use tailgate_bench::corpus::Corpus;
use tailgate_bench::generate::{request_of, Rng};
use tailgate_wire::Signal;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const REQUEST_SPANS: u64 = 500;
const TENANTS: usize = 8;

/// The headers of one OTLP/gRPC call from grpc-go, with a tenant's.
fn call_headers(tenant: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("content-type", b"application/grpc".to_vec()),
        ("user-agent", b"grpc-go/1.76.0".to_vec()),
        ("te", b"trailers".to_vec()),
        ("grpc-encoding", b"gzip".to_vec()),
        ("grpc-accept-encoding", b"gzip,zstd".to_vec()),
        ("grpc-timeout", b"4999906u".to_vec()),
        ("x-tenant", tenant.as_bytes().to_vec()),
    ]
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let mut rng = Rng(29);
    let request = request_of(Corpus::Semantic, &mut rng, REQUEST_SPANS as usize);
    let capture = Capture::new(["x-tenant"]);
    let tenants: Vec<Metadata> = (0..TENANTS)
        .map(|t| {
            let headers = call_headers(&format!("tenant-{t}"));
            capture.from_headers(headers.iter().map(|(n, v)| (*n, v.as_slice())))
        })
        .collect();

    let headers = call_headers("tenant-3");
    criterion
        .benchmark_group("tenants")
        .throughput(Throughput::Elements(1))
        .bench_function("capture", |b| {
            b.iter(|| {
                black_box(capture.from_headers(headers.iter().map(|(n, v)| (*n, v.as_slice()))))
            })
        });

    let admissions = Admissions::new(&[(
        Signal::Traces,
        std::sync::Arc::new(Admission::new(vec![Box::from("x-tenant")], 1000)),
    )]);
    for tenant in &tenants {
        admissions.admit(Signal::Traces, tenant).expect("room");
    }
    criterion
        .benchmark_group("tenants")
        .throughput(Throughput::Elements(1))
        .bench_function("admit", |b| {
            let mut n = 0;
            b.iter(|| {
                n = (n + 1) % TENANTS;
                black_box(admissions.admit(Signal::Traces, &tenants[n]))
            })
        });

    let settings = BatcherSettings {
        send_batch_size: 8192,
        ..BatcherSettings::default()
    };
    let mut group = criterion.benchmark_group("tenants/batch");
    group.throughput(Throughput::Elements(REQUEST_SPANS));
    for (name, partitioning, of) in [
        ("plain", Partitioning::Drop, None),
        (
            "8-tenants",
            Partitioning::Keys(vec![Box::from("x-tenant")]),
            Some(&tenants),
        ),
    ] {
        let mut batchers = Batchers::new(settings.clone(), partitioning).expect("valid");
        let mut out: Vec<Batch> = Vec::new();
        let mut n = 0;
        let none = Metadata::none();
        group.bench_function(name, |b| {
            b.iter(|| {
                n = (n + 1) % TENANTS;
                let metadata = of.map_or(&none, |t| &t[n]);
                batchers.push(
                    Signal::Traces,
                    &request,
                    REQUEST_SPANS,
                    metadata,
                    Instant::now(),
                    &mut out,
                );
                out.clear();
            })
        });
    }
    group.finish();

    let setter = HeaderSetter::new(
        "headers_setter",
        &HeadersSetter {
            headers: vec![HeaderEntry {
                key: "X-Scope-OrgID".into(),
                action: HeaderAction::Upsert,
                source: HeaderSource::Context {
                    key: "x-tenant".into(),
                    default: Secret::from(String::new()),
                },
            }],
        },
    )
    .expect("valid");
    criterion
        .benchmark_group("tenants")
        .throughput(Throughput::Elements(1))
        .bench_function("headers", |b| {
            b.iter(|| black_box(setter.headers(&tenants[3]).expect("one value")))
        });
    criterion.final_summary();
}
