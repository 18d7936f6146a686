//! gzip and zstd for request bodies, and bounded decompression of responses.
//!
//! A batch is compressed once, before its first attempt, and the compressed bytes are reused by
//! every retry. Levels are the libraries' defaults, which are also the Collector's (Go's
//! `gzip.DefaultCompression` is level 6; zstd's default is level 3).

use std::io::{self, Read, Write};

use super::settings::Compression;

/// gzip level: zlib's default, the usual trade of speed for size.
const GZIP_LEVEL: u32 = 6;
/// zstd level: the library's default.
const ZSTD_LEVEL: i32 = 3;

/// Compresses `data` (`Compression::None` copies it; callers send uncompressed batches as they
/// are instead).
pub(crate) fn compress(kind: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
    match kind {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 4 + 64),
                flate2::Compression::new(GZIP_LEVEL),
            );
            encoder.write_all(data)?;
            encoder.finish()
        }
        Compression::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL),
    }
}

/// Decompresses `data`, refusing output past `limit_bytes` so a hostile or broken upstream
/// cannot make a shard inflate a bomb.
pub(crate) fn decompress_bounded(
    kind: Compression,
    data: &[u8],
    limit_bytes: usize,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let bound = limit_bytes as u64 + 1;
    match kind {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data)
                .take(bound)
                .read_to_end(&mut out)?;
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(data)?
                .take(bound)
                .read_to_end(&mut out)?;
        }
    }
    if out.len() > limit_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("decompressed body exceeds {limit_bytes} bytes"),
        ));
    }
    Ok(out)
}

/// The compression a `grpc-encoding` or `Content-Encoding` token names, if it is one we read.
pub(crate) fn from_token(token: &str) -> Option<Compression> {
    match token.trim() {
        "" | "identity" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for kind in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let packed = compress(kind, &data).unwrap();
            assert_eq!(decompress_bounded(kind, &packed, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn decompression_is_bounded() {
        let zeros = vec![0u8; 100_000];
        for kind in [Compression::Gzip, Compression::Zstd] {
            let packed = compress(kind, &zeros).unwrap();
            assert!(packed.len() < 1000);
            assert!(decompress_bounded(kind, &packed, 99_999).is_err());
        }
    }

    #[test]
    fn tokens() {
        assert_eq!(from_token("gzip"), Some(Compression::Gzip));
        assert_eq!(from_token("identity"), Some(Compression::None));
        assert_eq!(from_token("br"), None);
    }
}
