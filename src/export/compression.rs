//! gzip, zstd, snappy, zlib (also as `deflate`) and lz4 for request bodies. Responses are
//! decompressed by the receivers' decoders ([`crate::ingest::body`]), bounded as requests are.
//!
//! A batch is compressed once, before its first attempt, and the compressed bytes are reused by
//! every retry. gzip is libdeflate's, whole-buffer (a batch is one buffer): at the same level it
//! costs 2.8x less CPU than miniz_oxide, which flate2 used before, and 1.2x less than zlib-rs,
//! for bytes within 3 % (docs/BENCHMARKS.md, "Compression"). zstd is libzstd's. Each shard
//! keeps its compressors in thread-locals, allocated on the first batch and reused after.
//!
//! snappy is written in its framing format, as the Collector's gRPC and HTTP clients write it
//! under that name (grpc-go's snappy codec; confighttp unless its `confighttp.framedSnappy`
//! gate is on): every receiver of the Collector's that takes snappy reads it.
//!
//! zlib is libdeflate's too, at gzip's levels; `deflate` is the same zlib stream under HTTP's
//! name for it, as the Collector's HTTP client sends it. lz4 is liblz4's frame format (what the
//! Collector's HTTP client writes), its blocks independent; it has no levels.
//!
//! Levels are the Collector's `compression_params.level`. The defaults are the Collector's:
//! gzip level 6 (Go's `DefaultCompression`), zstd level 3. Level 6 is kept, not level 1, because
//! a gateway's export is the link that is billed by the byte (across clouds, to a vendor): level
//! 1 saves 55 % of the gzip CPU and sends 7 % more bytes on spans that compress like real ones;
//! an operator who pays for CPU more than for egress sets `compression_params: {level: 1}`.

use std::cell::RefCell;
use std::io;

use super::settings::Compression;

/// gzip's level when none is configured: the Collector's (Go's `gzip.DefaultCompression`).
pub const GZIP_LEVEL_DEFAULT: i32 = 6;
/// The highest gzip level the Collector accepts (Go's `gzip.BestCompression`).
pub const GZIP_LEVEL_MAX: i32 = 9;
/// zstd's level when none is configured: libzstd's default, and the Collector's.
pub const ZSTD_LEVEL_DEFAULT: i32 = 3;
/// The highest zstd level; higher levels are taken as this one, as the Collector maps any level
/// to the nearest it has.
pub const ZSTD_LEVEL_MAX: i32 = 19;
/// The lowest: libzstd's fast levels run from -1 (the slowest of them) down to this one
/// (`ZSTD_minCLevel`), each faster and compressing less than the one above it.
pub const ZSTD_LEVEL_MIN: i32 = -(1 << 17);

/// The libdeflate level `level` asks for (`None` or the Collector's -1: the default).
fn gzip_level(level: Option<i32>) -> i32 {
    match level {
        Some(level @ 0..=GZIP_LEVEL_MAX) => level,
        _ => GZIP_LEVEL_DEFAULT,
    }
}

/// The libzstd level `level` asks for (`None` or 0: the default; below 0: a fast level).
fn zstd_level(level: Option<i32>) -> i32 {
    match level {
        None | Some(0) => ZSTD_LEVEL_DEFAULT,
        Some(level) => level.clamp(ZSTD_LEVEL_MIN, ZSTD_LEVEL_MAX),
    }
}

thread_local! {
    /// This shard's gzip compressors, one per level used (0 to 9), each allocated once.
    static GZIP: RefCell<Vec<Option<libdeflater::Compressor>>> = const { RefCell::new(Vec::new()) };
    /// This shard's zstd context and the level it is set to.
    static ZSTD: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// Compresses `data` at `level` (the Collector's `compression_params.level`, checked when the
/// configuration was read; `None`: the default). `Compression::None` copies it; callers send
/// uncompressed batches as they are instead.
pub(crate) fn compress(kind: Compression, level: Option<i32>, data: &[u8]) -> io::Result<Vec<u8>> {
    match kind {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip | Compression::Zlib | Compression::Deflate => {
            let level = gzip_level(level);
            GZIP.with_borrow_mut(|compressors| {
                let at = level as usize;
                if compressors.len() <= at {
                    compressors.resize_with(at + 1, || None);
                }
                let compressor = compressors[at].get_or_insert_with(|| {
                    libdeflater::Compressor::new(
                        libdeflater::CompressionLvl::new(level).unwrap_or_default(),
                    )
                });
                let written = if kind == Compression::Gzip {
                    let mut out = vec![0; compressor.gzip_compress_bound(data.len())];
                    compressor
                        .gzip_compress(data, &mut out)
                        .map(|len| (out, len))
                } else {
                    let mut out = vec![0; compressor.zlib_compress_bound(data.len())];
                    compressor
                        .zlib_compress(data, &mut out)
                        .map(|len| (out, len))
                };
                let (mut out, len) =
                    written.map_err(|err| io::Error::other(format!("{kind:?}: {err:?}")))?;
                out.truncate(len);
                Ok(out)
            })
        }
        Compression::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::with_capacity(data.len() / 2))?;
            io::Write::write_all(&mut encoder, data)?;
            let (out, finished) = encoder.finish();
            finished.map(|()| out)
        }
        Compression::Snappy => {
            // A block's bound also bounds the frames: each 64 KiB chunk adds 8 bytes and the
            // stream identifier 10, less than the block bound's 32 + 1/6 over the input.
            let mut encoder = snap::write::FrameEncoder::new(Vec::with_capacity(
                snap::raw::max_compress_len(data.len()),
            ));
            io::Write::write_all(&mut encoder, data)?;
            encoder.into_inner().map_err(|err| err.into_error())
        }
        Compression::Zstd => {
            let level = zstd_level(level);
            ZSTD.with_borrow_mut(|slot| {
                match slot {
                    Some((set, context)) if *set != level => {
                        context.set_compression_level(level)?;
                        *set = level;
                    }
                    Some(_) => {}
                    None => *slot = Some((level, zstd::bulk::Compressor::new(level)?)),
                }
                let (_, context) = slot.as_mut().expect("set above");
                context.compress(data)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::body::{decompress, Coding};

    /// How the receivers (and the exporters, for responses) read `kind`.
    fn decompress_bounded(kind: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
        let coding = match kind {
            Compression::None => Coding::Identity,
            Compression::Gzip => Coding::Gzip,
            Compression::Zstd => Coding::Zstd,
            Compression::Snappy => Coding::Snappy,
            Compression::Zlib | Compression::Deflate => Coding::Zlib,
            Compression::Lz4 => Coding::Lz4,
        };
        decompress(coding, data, limit).map_err(|err| err.to_string())
    }

    #[test]
    fn round_trips() {
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for kind in [
            Compression::None,
            Compression::Gzip,
            Compression::Zstd,
            Compression::Snappy,
            Compression::Zlib,
            Compression::Deflate,
            Compression::Lz4,
        ] {
            for level in [None, Some(-1), Some(0), Some(1), Some(9), Some(22)] {
                let packed = compress(kind, level, &data).unwrap();
                assert_eq!(decompress_bounded(kind, &packed, data.len()).unwrap(), data);
            }
        }
    }

    #[test]
    fn decompression_is_bounded() {
        let zeros = vec![0u8; 100_000];
        for kind in [
            Compression::Gzip,
            Compression::Zstd,
            Compression::Snappy,
            Compression::Zlib,
            Compression::Lz4,
        ] {
            let packed = compress(kind, None, &zeros).unwrap();
            assert!(packed.len() < 10_000, "{kind:?}: {}", packed.len());
            assert!(decompress_bounded(kind, &packed, 99_999).is_err());
        }
    }

    /// snappy goes out in the framing format: the stream identifier, then compressed chunks.
    #[test]
    fn snappy_is_written_framed() {
        let text: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("span-{} ", i % 97).into_bytes())
            .collect();
        let packed = compress(Compression::Snappy, None, &text).unwrap();
        assert!(packed.starts_with(b"\xff\x06\x00\x00sNaPpY"));
        assert!(packed.len() < text.len() / 3, "{}", packed.len());
        let mut framed = Vec::new();
        std::io::Read::read_to_end(&mut snap::read::FrameDecoder::new(&packed[..]), &mut framed)
            .unwrap();
        assert_eq!(framed, text);
    }

    #[test]
    fn levels_follow_the_collector() {
        assert_eq!(gzip_level(None), 6);
        assert_eq!(gzip_level(Some(-1)), 6);
        assert_eq!(gzip_level(Some(0)), 0);
        assert_eq!(gzip_level(Some(9)), 9);
        assert_eq!(zstd_level(None), 3);
        assert_eq!(zstd_level(Some(0)), 3);
        assert_eq!(zstd_level(Some(1)), 1);
        assert_eq!(zstd_level(Some(-5)), -5, "a fast level");
        assert_eq!(zstd_level(Some(i32::MIN)), ZSTD_LEVEL_MIN);
        assert_eq!(zstd_level(Some(40)), ZSTD_LEVEL_MAX);
        // A higher level gives fewer bytes on compressible data, so the level is really used.
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("span-{} status=ok ", i % 97).into_bytes())
            .collect();
        let fast = compress(Compression::Gzip, Some(1), &text).unwrap();
        let small = compress(Compression::Gzip, Some(9), &text).unwrap();
        assert!(
            small.len() < fast.len(),
            "{} !< {}",
            small.len(),
            fast.len()
        );
        let stored = compress(Compression::Gzip, Some(0), &text).unwrap();
        assert!(stored.len() > text.len());
    }

    /// zlib and deflate go out as zlib streams (what Go's `zlib.NewReader`, behind the
    /// Collector's `zlib` and `deflate`, reads), lz4 as an LZ4 frame (what its `lz4.NewReader`
    /// reads), at the levels asked for.
    #[test]
    fn zlib_and_lz4_are_written_as_the_collector_reads_them() {
        let text: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("span-{} ", i % 97).into_bytes())
            .collect();
        for kind in [Compression::Zlib, Compression::Deflate] {
            let fast = compress(kind, Some(1), &text).unwrap();
            let small = compress(kind, Some(9), &text).unwrap();
            assert!(
                small.len() < fast.len(),
                "{kind:?}: {} !< {}",
                small.len(),
                fast.len()
            );
            for packed in [fast, small] {
                assert_eq!(packed[0], 0x78, "{kind:?}: a zlib header");
                let mut read = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::ZlibDecoder::new(&packed[..]),
                    &mut read,
                )
                .unwrap();
                assert_eq!(read, text);
            }
        }
        let packed = compress(Compression::Lz4, None, &text).unwrap();
        assert!(
            packed.starts_with(&[0x04, 0x22, 0x4d, 0x18]),
            "an LZ4 frame"
        );
        assert!(packed.len() < text.len() / 3, "{}", packed.len());
    }
}
