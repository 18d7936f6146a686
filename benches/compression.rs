//! Compression candidates for export batches and request bodies, on the bytes the gateway sends:
//! an 8,192-span export request shaped as the OpenTelemetry SDK benchmark describes (10
//! attributes of 20-character keys and values, one event, traces of 10 spans), the batch size
//! of `passthrough.yaml`.
//!
//! `cargo bench --bench compression` prints, per candidate, the time per batch (criterion) and,
//! first, the compressed bytes per span, so that levels are compared on cost *and* size. The
//! gateway's exporters use the first candidate today (flate2 on miniz_oxide, level 6, the
//! Collector's default gzip level).

use std::hint::black_box;
use std::io::{Read, Write};

use criterion::{Criterion, Throughput};
use tailgate_bench::generate::{sdk_shaped_request, Rng};

/// Spans in the batch: `send_batch_size` of the pass-through scenario.
const SPANS: usize = 8192;

fn gzip_miniz(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::new(level),
    );
    encoder.write_all(data).expect("in memory");
    encoder.finish().expect("in memory")
}

fn gzip_libdeflate(data: &[u8], level: i32) -> Vec<u8> {
    let mut compressor =
        libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).expect("level"));
    let mut out = vec![0; compressor.gzip_compress_bound(data.len())];
    let len = compressor.gzip_compress(data, &mut out).expect("bound");
    out.truncate(len);
    out
}

fn zstd_level(data: &[u8], level: i32) -> Vec<u8> {
    zstd::bulk::compress(data, level).expect("in memory")
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let batch = sdk_shaped_request(&mut Rng(7), SPANS);
    type Candidate = (&'static str, Box<dyn Fn(&[u8]) -> Vec<u8>>);
    let candidates: Vec<Candidate> = vec![
        ("gzip_miniz_oxide_6", Box::new(|d| gzip_miniz(d, 6))),
        ("gzip_miniz_oxide_1", Box::new(|d| gzip_miniz(d, 1))),
        ("gzip_libdeflate_6", Box::new(|d| gzip_libdeflate(d, 6))),
        ("gzip_libdeflate_1", Box::new(|d| gzip_libdeflate(d, 1))),
        ("zstd_3", Box::new(|d| zstd_level(d, 3))),
        ("zstd_1", Box::new(|d| zstd_level(d, 1))),
    ];
    eprintln!(
        "batch: {SPANS} spans, {} bytes ({} a span)",
        batch.len(),
        batch.len() / SPANS
    );
    for (name, compress) in &candidates {
        let out = compress(&batch);
        eprintln!(
            "{name}: {} bytes, {:.1} bytes a span, ratio {:.1}",
            out.len(),
            out.len() as f64 / SPANS as f64,
            batch.len() as f64 / out.len() as f64
        );
    }
    let mut group = criterion.benchmark_group("compress_8192_spans");
    group.throughput(Throughput::Elements(SPANS as u64));
    for (name, compress) in &candidates {
        group.bench_function(*name, |b| b.iter(|| compress(black_box(&batch))));
    }
    group.finish();

    // Inflating what clients send: a gzip body, as the receivers decode it today (flate2 on
    // miniz_oxide, streaming) and with libdeflate (whole buffer, the size bounded by the limit).
    let gzipped = gzip_miniz(&batch, 6);
    let mut group = criterion.benchmark_group("inflate_8192_spans");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.bench_function("gunzip_miniz_oxide", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(batch.len());
            flate2::read::MultiGzDecoder::new(black_box(&gzipped[..]))
                .read_to_end(&mut out)
                .expect("valid gzip");
            out
        })
    });
    group.bench_function("gunzip_libdeflate", |b| {
        let mut decompressor = libdeflater::Decompressor::new();
        b.iter(|| {
            let mut out = vec![0; batch.len()];
            let len = decompressor
                .gzip_decompress(black_box(&gzipped), &mut out)
                .expect("valid gzip");
            out.truncate(len);
            out
        })
    });
    group.finish();
    criterion.final_summary();
}
