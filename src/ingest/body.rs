//! Request bodies: decompression with a bound on what it may produce.
//!
//! A compressed body is inflated into a buffer that may not grow past the receiver's size
//! limit: decompression stops at the limit and the request is refused, so a gzip bomb costs at
//! most `limit` bytes of memory and the time to inflate them, never more.

use std::io::Read;

/// A body's content coding, as `grpc-encoding` or `Content-Encoding` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Zstd,
}

impl Coding {
    /// Parses a coding name; `None` for codings tailgate does not accept.
    pub fn parse(name: &str) -> Option<Coding> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Some(Coding::Identity),
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The decoded body would exceed `limit` bytes.
    TooLarge { limit: usize },
    /// The compressed stream is corrupt.
    Corrupt(String),
}

/// Decodes `body` in `coding`, refusing to produce more than `limit` bytes.
pub fn decode(coding: Coding, body: Vec<u8>, limit: usize) -> Result<Vec<u8>, BodyError> {
    match coding {
        Coding::Identity if body.len() > limit => Err(BodyError::TooLarge { limit }),
        Coding::Identity => Ok(body),
        Coding::Gzip | Coding::Zstd => decompress(coding, &body, limit),
    }
}

/// Decodes `body` in `coding` into a new buffer, refusing to produce more than `limit` bytes
/// (an identity body is copied).
pub fn decompress(coding: Coding, body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    match coding {
        Coding::Identity => decode(coding, body.to_vec(), limit),
        Coding::Gzip => inflate(flate2::read::MultiGzDecoder::new(body), limit),
        Coding::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(body)
                .map_err(|err| BodyError::Corrupt(err.to_string()))?;
            inflate(decoder, limit)
        }
    }
}

/// Reads a decoder to its end, at most `limit` bytes.
fn inflate(decoder: impl Read, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "over it".
    let read = decoder
        .take((limit as u64).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|err| BodyError::Corrupt(err.to_string()))?;
    if read > limit {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn codings_round_trip_within_the_limit() {
        let data = vec![7u8; 10_000];
        assert_eq!(decode(Coding::Gzip, gzip(&data), 10_000).unwrap(), data);
        let zstd = zstd::encode_all(data.as_slice(), 1).unwrap();
        assert_eq!(decode(Coding::Zstd, zstd, 10_000).unwrap(), data);
        assert_eq!(
            decode(Coding::Identity, data.clone(), 10_000).unwrap(),
            data
        );
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        // 64 MiB of zeros compress to about 64 KiB.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        assert_eq!(
            decode(Coding::Gzip, bomb, 4 << 20),
            Err(BodyError::TooLarge { limit: 4 << 20 })
        );
        assert_eq!(
            decode(Coding::Identity, vec![0; 11], 10),
            Err(BodyError::TooLarge { limit: 10 })
        );
    }

    #[test]
    fn corrupt_streams_and_unknown_codings_are_errors() {
        assert!(matches!(
            decode(Coding::Gzip, b"not gzip".to_vec(), 100),
            Err(BodyError::Corrupt(_))
        ));
        assert!(matches!(
            decode(Coding::Zstd, b"not zstd".to_vec(), 100),
            Err(BodyError::Corrupt(_))
        ));
        assert_eq!(Coding::parse("br"), None);
        assert_eq!(Coding::parse("GZIP"), Some(Coding::Gzip));
    }
}
