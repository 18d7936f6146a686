//! Compression candidates for export batches and request bodies, on the bytes the gateway sees:
//! requests built by the bench rig's generator with each of its corpora
//! ([`Corpus::Benchmark`]: the OpenTelemetry SDK benchmark's random attribute text, the worst
//! case for a compressor; [`Corpus::Semantic`]: semantic-convention attributes that compress like
//! real traffic).
//!
//! `cargo bench --bench compression` prints, per corpus and candidate, the compressed bytes per
//! span first, then criterion's time per batch, so levels are compared on cost *and* size:
//!
//! - deflating an 8,192-span export batch (`send_batch_size` of the pass-through scenario) with
//!   gzip (miniz_oxide, zlib-rs, libdeflate; levels 1 and 6) and zstd (levels 3 and 1, and the
//!   fast levels -1 and -5: the tier forwards at -1), snappy (its framing format), zlib
//!   (libdeflate, level 6, what `zlib` and `deflate` send) and lz4 (liblz4's frame format);
//! - inflating a 500-span client request (the load's request size), gzip and zstd, the way a
//!   receiver can: streaming (miniz_oxide, zlib-rs) or whole-buffer (libdeflate, zstd); and
//!   snappy, zlib and lz4 the way the receivers read them (zlib also streamed through zlib-rs);
//! - reassembling that request from 16 KiB DATA frames, compressed and not.
//!
//! miniz_oxide is called directly (raw deflate plus the gzip trailer's CRC-32), because flate2
//! runs on one backend per build and tailgate's is zlib-rs.

use std::hint::black_box;
use std::io::{Read, Write};

use criterion::{Criterion, Throughput};
use tailgate_bench::corpus::Corpus;
use tailgate_bench::generate::{request_of, Rng};

/// Spans in an export batch: `send_batch_size` of the pass-through scenario.
const BATCH_SPANS: usize = 8192;
/// Spans in a client request: the load's `spans_per_request`.
const REQUEST_SPANS: usize = 500;
/// The HTTP/2 DATA frame size grpc-go and grpc-java send.
const FRAME_BYTES: usize = 16 << 10;

fn gzip_miniz_oxide(data: &[u8], level: u8) -> Vec<u8> {
    let mut out = miniz_oxide::deflate::compress_to_vec(data, level);
    out.extend_from_slice(&libdeflater::crc32(data).to_le_bytes());
    out
}

fn gzip_zlib_rs(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::new(level),
    );
    encoder.write_all(data).expect("in memory");
    encoder.finish().expect("in memory")
}

fn gzip_libdeflate(compressor: &mut libdeflater::Compressor, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0; compressor.gzip_compress_bound(data.len())];
    let len = compressor.gzip_compress(data, &mut out).expect("bound");
    out.truncate(len);
    out
}

fn libdeflate(level: i32) -> libdeflater::Compressor {
    libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).expect("level"))
}

/// snappy's framing format, as the exporters write it.
fn snappy_framed(data: &[u8]) -> Vec<u8> {
    let mut encoder = snap::write::FrameEncoder::new(Vec::new());
    encoder.write_all(data).expect("in memory");
    encoder.into_inner().expect("in memory")
}

/// A zlib stream, as the exporters write `zlib` and `deflate`.
fn zlib_libdeflate(compressor: &mut libdeflater::Compressor, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0; compressor.zlib_compress_bound(data.len())];
    let len = compressor.zlib_compress(data, &mut out).expect("room");
    out.truncate(len);
    out
}

/// One LZ4 frame of independent blocks, as the exporters write `lz4`.
fn lz4_frame(data: &[u8]) -> Vec<u8> {
    let mut encoder = lz4::EncoderBuilder::new()
        .block_mode(lz4::BlockMode::Independent)
        .build(Vec::with_capacity(data.len() / 2))
        .expect("in memory");
    encoder.write_all(data).expect("in memory");
    let (out, finished) = encoder.finish();
    finished.expect("in memory");
    out
}

type Compress = Box<dyn FnMut(&[u8]) -> Vec<u8>>;

fn candidates() -> Vec<(&'static str, Compress)> {
    let mut libdeflate_6 = libdeflate(6);
    let mut libdeflate_1 = libdeflate(1);
    let mut libdeflate_zlib_6 = libdeflate(6);
    let mut zstd_3 = zstd::bulk::Compressor::new(3).expect("level");
    let mut zstd_1 = zstd::bulk::Compressor::new(1).expect("level");
    let mut zstd_fast_1 = zstd::bulk::Compressor::new(-1).expect("level");
    let mut zstd_fast_5 = zstd::bulk::Compressor::new(-5).expect("level");
    vec![
        ("gzip_miniz_oxide_6", Box::new(|d| gzip_miniz_oxide(d, 6))),
        ("gzip_miniz_oxide_1", Box::new(|d| gzip_miniz_oxide(d, 1))),
        ("gzip_zlib_rs_6", Box::new(|d| gzip_zlib_rs(d, 6))),
        ("gzip_zlib_rs_1", Box::new(|d| gzip_zlib_rs(d, 1))),
        (
            "gzip_libdeflate_6",
            Box::new(move |d| gzip_libdeflate(&mut libdeflate_6, d)),
        ),
        (
            "gzip_libdeflate_1",
            Box::new(move |d| gzip_libdeflate(&mut libdeflate_1, d)),
        ),
        (
            "zstd_3",
            Box::new(move |d| zstd_3.compress(d).expect("in memory")),
        ),
        (
            "zstd_1",
            Box::new(move |d| zstd_1.compress(d).expect("in memory")),
        ),
        (
            "zstd_-1",
            Box::new(move |d| zstd_fast_1.compress(d).expect("in memory")),
        ),
        (
            "zstd_-5",
            Box::new(move |d| zstd_fast_5.compress(d).expect("in memory")),
        ),
        ("snappy_framed", Box::new(snappy_framed)),
        (
            "zlib_libdeflate_6",
            Box::new(move |d| zlib_libdeflate(&mut libdeflate_zlib_6, d)),
        ),
        ("lz4_frame", Box::new(lz4_frame)),
    ]
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    for corpus in [Corpus::Semantic, Corpus::Benchmark] {
        let batch = request_of(corpus, &mut Rng(7), BATCH_SPANS);
        eprintln!(
            "{} corpus, export batch: {BATCH_SPANS} spans, {} bytes ({} a span)",
            corpus.name(),
            batch.len(),
            batch.len() / BATCH_SPANS
        );
        let mut candidates = candidates();
        for (name, compress) in candidates.iter_mut() {
            let out = compress(&batch);
            eprintln!(
                "  {name}: {} bytes, {:.1} bytes a span, ratio {:.2}",
                out.len(),
                out.len() as f64 / BATCH_SPANS as f64,
                batch.len() as f64 / out.len() as f64
            );
        }
        let mut group = criterion.benchmark_group(format!("compress_8192_spans/{}", corpus.name()));
        group.throughput(Throughput::Elements(BATCH_SPANS as u64));
        for (name, compress) in candidates.iter_mut() {
            group.bench_function(*name, |b| b.iter(|| compress(black_box(&batch))));
        }
        group.finish();

        // Inflating what a client sends: one request, gzip at the Collector's default level 6
        // (the compressor does not change how fast it inflates much) and zstd at level 3.
        let request = request_of(corpus, &mut Rng(11), REQUEST_SPANS);
        let gzipped = gzip_zlib_rs(&request, 6);
        let zstded = zstd::bulk::compress(&request, 3).expect("in memory");
        let raw_deflate = miniz_oxide::deflate::compress_to_vec(&request, 6);
        let mut group = criterion.benchmark_group(format!("inflate_500_spans/{}", corpus.name()));
        group.throughput(Throughput::Elements(REQUEST_SPANS as u64));
        group.bench_function("gunzip_miniz_oxide", |b| {
            b.iter(|| {
                miniz_oxide::inflate::decompress_to_vec(black_box(&raw_deflate)).expect("valid")
            })
        });
        group.bench_function("gunzip_zlib_rs_streaming", |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(request.len());
                flate2::read::MultiGzDecoder::new(black_box(&gzipped[..]))
                    .read_to_end(&mut out)
                    .expect("valid gzip");
                out
            })
        });
        group.bench_function("gunzip_zlib_rs_reused_state", |b| {
            let mut state = flate2::Decompress::new(false);
            b.iter(|| {
                // The gzip header written by flate2 with no name is 10 bytes; the trailer 8.
                let deflated = &gzipped[10..gzipped.len() - 8];
                let mut out = Vec::with_capacity(request.len() + 1);
                state.reset(false);
                state
                    .decompress_vec(
                        black_box(deflated),
                        &mut out,
                        flate2::FlushDecompress::Finish,
                    )
                    .expect("valid");
                out
            })
        });
        group.bench_function("gunzip_libdeflate", |b| {
            let mut decompressor = libdeflater::Decompressor::new();
            b.iter(|| {
                let mut out = vec![0; request.len()];
                let len = decompressor
                    .gzip_decompress(black_box(&gzipped), &mut out)
                    .expect("valid gzip");
                out.truncate(len);
                out
            })
        });
        // zstd at level 3 and at the tier's -1: a faster level also inflates faster.
        let zstded_fast = zstd::bulk::compress(&request, -1).expect("in memory");
        for (name, compressed) in [("unzstd_bulk", &zstded), ("unzstd_bulk_-1", &zstded_fast)] {
            group.bench_function(name, |b| {
                let mut decompressor = zstd::bulk::Decompressor::new().expect("context");
                b.iter(|| {
                    decompressor
                        .decompress(black_box(compressed), request.len())
                        .expect("valid zstd")
                })
            });
        }
        // snappy's framing format, read as the receivers read it (each chunk's CRC checked).
        let snapped = snappy_framed(&request);
        group.bench_function("unsnappy_framed", |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(request.len());
                snap::read::FrameDecoder::new(black_box(&snapped[..]))
                    .read_to_end(&mut out)
                    .expect("valid snappy");
                out
            })
        });
        // zlib and lz4, streaming as the receivers read them (flate2 on zlib-rs; liblz4).
        let zlibbed = zlib_libdeflate(&mut libdeflate(6), &request);
        group.bench_function("unzlib_zlib_rs", |b| {
            b.iter(|| {
                let mut out = Vec::new();
                flate2::read::ZlibDecoder::new(black_box(&zlibbed[..]))
                    .read_to_end(&mut out)
                    .expect("valid zlib");
                out
            })
        });
        group.bench_function("unzlib_libdeflate", |b| {
            let mut decompressor = libdeflater::Decompressor::new();
            b.iter(|| {
                let mut out = vec![0; request.len()];
                let len = decompressor
                    .zlib_decompress(black_box(&zlibbed), &mut out)
                    .expect("valid zlib");
                out.truncate(len);
                out
            })
        });
        let lz4ed = lz4_frame(&request);
        group.bench_function("unlz4_frame", |b| {
            b.iter(|| {
                let mut out = Vec::new();
                lz4::Decoder::new(black_box(&lz4ed[..]))
                    .expect("a frame")
                    .read_to_end(&mut out)
                    .expect("valid lz4");
                out
            })
        });
        group.finish();

        // What gRPC's message reassembly costs when a request comes in 16 KiB DATA frames (as
        // grpc-go and grpc-java send): one copy of the message's bytes, compressed or not,
        // into one buffer. Set beside the inflating cost above, it says whether decompressing
        // straight from the frames would pay.
        let mut group =
            criterion.benchmark_group(format!("reassemble_500_spans/{}", corpus.name()));
        group.throughput(Throughput::Elements(REQUEST_SPANS as u64));
        for (name, message) in [("gzip_message", &gzipped), ("plain_message", &request)] {
            let frames: Vec<&[u8]> = message.chunks(FRAME_BYTES).collect();
            group.bench_function(name, |b| {
                b.iter(|| {
                    let mut whole = Vec::with_capacity(message.len());
                    for frame in black_box(&frames) {
                        whole.extend_from_slice(frame);
                    }
                    whole
                })
            });
        }
        group.finish();
    }
    criterion.final_summary();
}
