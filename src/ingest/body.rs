//! Request bodies: decompression with a bound on what it may produce.
//!
//! A compressed body is inflated into a buffer that may not grow past the receiver's size
//! limit: decompression stops at the limit and the request is refused, so a gzip bomb costs at
//! most `limit` bytes of memory and the time to inflate them, never more.
//!
//! snappy comes in either of its two formats under the one name (see [`unsnappy`]).
//!
//! gzip is inflated whole-buffer by libdeflate, zstd in one call when the frame states its
//! size: both about twice as fast as streaming (docs/BENCHMARKS.md, "Compression"). Each
//! shard keeps its decoders' state in thread-locals, so a request allocates only its output.
//! The compressed body is contiguous before this runs (gRPC reassembles a message from its
//! DATA frames first): for a compressed message that copy is of the compressed bytes, a few
//! percent of the inflating cost, and whole-buffer inflating needs the bytes together anyway.

use std::cell::RefCell;
use std::io::Read;

use crate::sys::{GzipInflater, GzipMemberError};

/// A body's content coding, as `grpc-encoding` or `Content-Encoding` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `identity` (or no header): the body as it is.
    Identity,
    /// `gzip` (or `x-gzip`): one or more gzip members.
    Gzip,
    /// `zstd`: one or more zstd frames.
    Zstd,
    /// `snappy` (or `x-snappy-framed`): snappy's framing format, or one raw block.
    Snappy,
    /// `zlib` or `deflate`: a zlib stream (HTTP's `deflate` is zlib-wrapped, and the
    /// Collector's HTTP client and the OpenTelemetry SDKs send it so), or a bare deflate
    /// stream, which some clients send under `deflate`.
    Zlib,
    /// `lz4`: LZ4 frames, as the Collector's HTTP client sends them.
    Lz4,
}

impl Coding {
    /// Parses a coding name; `None` for codings tailgate does not accept.
    pub fn parse(name: &str) -> Option<Coding> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Some(Coding::Identity),
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "zstd" => Some(Coding::Zstd),
            "snappy" | "x-snappy-framed" => Some(Coding::Snappy),
            "zlib" | "deflate" => Some(Coding::Zlib),
            "lz4" => Some(Coding::Lz4),
            _ => None,
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The decoded body would exceed `limit` bytes.
    TooLarge {
        /// The limit it would pass.
        limit: usize,
    },
    /// The compressed stream is corrupt.
    Corrupt(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge { limit } => write!(f, "decompressed body exceeds {limit} bytes"),
            BodyError::Corrupt(why) => f.write_str(why),
        }
    }
}

/// Decodes `body` in `coding`, refusing to produce more than `limit` bytes.
pub fn decode(coding: Coding, body: Vec<u8>, limit: usize) -> Result<Vec<u8>, BodyError> {
    match coding {
        Coding::Identity if body.len() > limit => Err(BodyError::TooLarge { limit }),
        Coding::Identity => Ok(body),
        Coding::Gzip | Coding::Zstd | Coding::Snappy | Coding::Zlib | Coding::Lz4 => {
            decompress(coding, &body, limit)
        }
    }
}

/// Decodes `body` in `coding` into a new buffer, refusing to produce more than `limit` bytes
/// (an identity body is copied).
pub fn decompress(coding: Coding, body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    match coding {
        Coding::Identity => decode(coding, body.to_vec(), limit),
        Coding::Gzip => gunzip(body, limit),
        Coding::Zstd => unzstd(body, limit),
        Coding::Snappy => unsnappy(body, limit),
        Coding::Zlib => unzlib(body, limit),
        Coding::Lz4 => unlz4(body, limit),
    }
}

thread_local! {
    /// This thread's (this shard's) gzip decoder: its tables are allocated once.
    static GZIP: RefCell<Option<GzipInflater>> = const { RefCell::new(None) };
    /// This thread's zlib and bare-deflate decoder (libdeflate's tables, allocated once).
    static DEFLATE: RefCell<Option<libdeflater::Decompressor>> = const { RefCell::new(None) };
    /// This thread's zstd decoding context.
    static ZSTD: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// The first output buffer for a gzip body when its trailer cannot say: four times the input,
/// about what OTLP compresses to.
const GZIP_RATIO_GUESS: usize = 4;
/// A gzip member's first bytes: ID1, ID2 and CM (8, DEFLATE).
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Inflates a gzip body of one or more members with libdeflate, whole-buffer.
///
/// The last member's trailer holds its size (mod 2^32): for the usual one-member body that is
/// the exact output size, so the output is allocated once. The trailer is only a hint (the CRC
/// and size checks come after inflating): the first buffer is never larger than `limit`, and
/// when it is short the member is inflated again into one twice the size, up to `limit`.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    if body.is_empty() {
        // As Go's gzip reader and flate2's say: no member is not a gzip stream.
        return Err(BodyError::Corrupt("gzip: empty body".into()));
    }
    if !body.starts_with(&GZIP_MAGIC) {
        return Err(BodyError::Corrupt("gzip: not gzip data".into()));
    }
    let declared = match body.len().checked_sub(4).and_then(|at| body.get(at..)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
        _ => return Err(BodyError::Corrupt("gzip: truncated".into())),
    };
    GZIP.with_borrow_mut(|slot| {
        let inflater = slot.get_or_insert_with(GzipInflater::new);
        let mut out = Vec::new();
        let mut room = declared
            .max(body.len().saturating_mul(GZIP_RATIO_GUESS))
            .min(limit);
        let mut rest = body;
        while !rest.is_empty() {
            check_gzip_header(rest)?;
            let left = limit.saturating_sub(out.len());
            match inflater.member(rest, &mut out, room.min(left)) {
                Ok(consumed) => rest = rest.get(consumed..).unwrap_or_default(),
                Err(GzipMemberError::InsufficientSpace) if room >= left => {
                    return Err(BodyError::TooLarge { limit });
                }
                Err(GzipMemberError::InsufficientSpace) => room = room.saturating_mul(2),
                Err(GzipMemberError::BadData) => {
                    return Err(BodyError::Corrupt("gzip: invalid compressed data".into()));
                }
            }
        }
        Ok(out)
    })
}

/// Checks what libdeflate skips in a gzip member's header: the header's own checksum (FHCRC,
/// the low 16 bits of the CRC-32 of the header before it), which Go's and flate2's readers
/// verify. A header too short to hold its fields is left to the inflater to refuse.
fn check_gzip_header(member: &[u8]) -> Result<(), BodyError> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    let truncated = || BodyError::Corrupt("gzip: truncated header".into());
    let Some(&flags) = member.get(3) else {
        return Err(truncated());
    };
    if flags & FHCRC == 0 {
        return Ok(());
    }
    // Offsets stay within the member or the header is refused: every step is checked.
    let mut at: usize = 10;
    if flags & FEXTRA != 0 {
        let len = match at.checked_add(2).and_then(|end| member.get(at..end)) {
            Some(&[a, b]) => usize::from(u16::from_le_bytes([a, b])),
            _ => return Err(truncated()),
        };
        at = at
            .checked_add(2)
            .and_then(|at| at.checked_add(len))
            .ok_or_else(truncated)?;
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            let end = member
                .get(at..)
                .and_then(|rest| rest.iter().position(|&b| b == 0))
                .ok_or_else(truncated)?;
            at = at
                .checked_add(end)
                .and_then(|at| at.checked_add(1))
                .ok_or_else(truncated)?;
        }
    }
    let stored = at.checked_add(2).and_then(|end| member.get(at..end));
    match (member.get(..at), stored) {
        (Some(header), Some(&[a, b]))
            if libdeflater::crc32(header) & 0xffff == u32::from(u16::from_le_bytes([a, b])) =>
        {
            Ok(())
        }
        (Some(_), Some(_)) => Err(BodyError::Corrupt("gzip: header checksum mismatch".into())),
        _ => Err(truncated()),
    }
}

/// Decodes a zstd body: in one call when its first frame says its size (what one-shot
/// compressors, the Collector's among them, write), else streaming.
fn unzstd(body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(body) {
        if size > limit as u64 {
            return Err(BodyError::TooLarge { limit });
        }
        let whole = ZSTD.with_borrow_mut(|slot| {
            if slot.is_none() {
                *slot = zstd::bulk::Decompressor::new().ok();
            }
            slot.as_mut()
                .and_then(|context| context.decompress(body, size as usize).ok())
        });
        // Several frames, or a corrupt one: the streaming decoder reads them all, or says what
        // is wrong.
        if let Some(out) = whole {
            return Ok(out);
        }
    }
    let decoder = zstd::stream::read::Decoder::new(body)
        .map_err(|err| BodyError::Corrupt(err.to_string()))?;
    inflate(decoder, limit)
}

/// The stream identifier chunk that opens snappy's framing format: chunk type 0xff, a length
/// of 6, and "sNaPpY".
const SNAPPY_STREAM_IDENTIFIER: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Decodes a snappy body in whichever of snappy's two formats it is, as the Collector's
/// receivers do: the framing format (chunks of at most 64 KiB, each with a CRC-32C of its
/// data, checked here) when it opens with the stream identifier — what grpc-go's snappy codec
/// and the Collector's HTTP client send under `snappy`, and what `x-snappy-framed` names — and
/// otherwise one raw block, whose stated length is checked against `limit` before anything is
/// allocated (the block format of Prometheus remote write and of clients that follow the
/// content coding's registration).
fn unsnappy(body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    if body.starts_with(SNAPPY_STREAM_IDENTIFIER) {
        return inflate(snap::read::FrameDecoder::new(body), limit).map_err(|err| match err {
            BodyError::Corrupt(why) => BodyError::Corrupt(format!("snappy: {why}")),
            other => other,
        });
    }
    let len = snap::raw::decompress_len(body)
        .map_err(|err| BodyError::Corrupt(format!("snappy: {err}")))?;
    if len > limit {
        return Err(BodyError::TooLarge { limit });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|err| BodyError::Corrupt(format!("snappy: {err}")))
}

/// Whether `body` opens with a zlib header (RFC 1950): the deflate method, a window of at most
/// 32 KiB, no preset dictionary (which no HTTP client can send), and the header's check bits.
fn zlib_header(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8
                && cmf >> 4 <= 7
                && flg & 0x20 == 0
                && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Decodes a `zlib` or `deflate` body: a zlib stream, its Adler-32 checked, or a bare deflate
/// stream when it does not open with a zlib header; bytes after the stream's end are ignored,
/// as Go's and flate2's readers ignore them.
///
/// Whole-buffer, by libdeflate, as gzip is (2.7× faster than streaming through zlib-rs:
/// docs/BENCHMARKS.md, "zlib, deflate and lz4"). A zlib stream does not state its size, so the
/// first buffer is four times the body and, when it is short, the body is inflated again into
/// one twice the size, never past `limit`: a bomb costs about twice `limit` of work at most.
fn unzlib(body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let zlib = zlib_header(body);
    DEFLATE.with_borrow_mut(|slot| {
        let decompressor = slot.get_or_insert_with(libdeflater::Decompressor::new);
        let mut room = body.len().saturating_mul(GZIP_RATIO_GUESS).min(limit);
        loop {
            let mut out = vec![0; room];
            let inflated = if zlib {
                decompressor.zlib_decompress(body, &mut out)
            } else {
                decompressor.deflate_decompress(body, &mut out)
            };
            match inflated {
                Ok(len) => {
                    out.truncate(len);
                    return Ok(out);
                }
                Err(libdeflater::DecompressionError::InsufficientSpace) if room >= limit => {
                    return Err(BodyError::TooLarge { limit });
                }
                Err(libdeflater::DecompressionError::InsufficientSpace) => {
                    room = room.saturating_mul(2).max(1).min(limit);
                }
                Err(libdeflater::DecompressionError::BadData) => {
                    let what = if zlib { "zlib" } else { "bare deflate" };
                    return Err(BodyError::Corrupt(format!("deflate: invalid {what} data")));
                }
            }
        }
    })
}

/// The LZ4 frame format's magic number (little-endian on the wire).
const LZ4_MAGIC: u32 = 0x184d_2204;

/// The length of the LZ4 frame at the start of `body`, found from its header and block sizes
/// without decompressing: liblz4's reader stops at a frame's end and would leave what follows
/// unread, so each frame is measured, then handed to it on its own.
fn lz4_frame_len(body: &[u8]) -> Result<usize, BodyError> {
    let corrupt = |why: &str| BodyError::Corrupt(format!("lz4: {why}"));
    let word = |at: usize| {
        body.get(at..at.saturating_add(4))
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| corrupt("truncated frame"))
    };
    if word(0)? != LZ4_MAGIC {
        return Err(corrupt("not an LZ4 frame (bad magic number)"));
    }
    let flags = *body.get(4).ok_or_else(|| corrupt("truncated frame"))?;
    let block_checksums = flags & 0x10 != 0;
    let content_size = flags & 0x08 != 0;
    let content_checksum = flags & 0x04 != 0;
    let dictionary = flags & 0x01 != 0;
    // Magic, FLG, BD, the optional content size and dictionary id, the header checksum.
    let mut at: usize = 7;
    if content_size {
        at = at.saturating_add(8);
    }
    if dictionary {
        at = at.saturating_add(4);
    }
    loop {
        let size = word(at)?;
        at = at.saturating_add(4);
        if size == 0 {
            break;
        }
        let data = (size & 0x7fff_ffff) as usize;
        let checksum = if block_checksums { 4 } else { 0 };
        at = at.saturating_add(data).saturating_add(checksum);
    }
    let end = at.saturating_add(if content_checksum { 4 } else { 0 });
    if end > body.len() {
        return Err(corrupt("truncated frame"));
    }
    Ok(end)
}

/// Decodes an `lz4` body: one or more LZ4 frames, one after another, each read whole (nothing
/// after the last frame is left unread or ignored).
fn unlz4(body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let len = lz4_frame_len(rest)?;
        let (frame, after) = rest.split_at(len);
        let decoder =
            lz4::Decoder::new(frame).map_err(|err| BodyError::Corrupt(format!("lz4: {err}")))?;
        let part = inflate(decoder, limit.saturating_sub(out.len())).map_err(|err| match err {
            BodyError::Corrupt(why) => BodyError::Corrupt(format!("lz4: {why}")),
            BodyError::TooLarge { .. } => BodyError::TooLarge { limit },
        })?;
        // The usual body is one frame: its output is the body's, not copied.
        if out.is_empty() {
            out = part;
        } else {
            out.extend_from_slice(&part);
        }
        rest = after;
    }
    Ok(out)
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

    /// A member with a name and a header checksum (FHCRC), written by hand: flate2 writes no
    /// header checksum.
    fn gzip_with_header_crc(data: &[u8], corrupt_header_crc: bool) -> Vec<u8> {
        let mut member = vec![0x1f, 0x8b, 0x08, 0x02 | 0x08, 0, 0, 0, 0, 0, 0xff];
        member.extend_from_slice(b"spans.pb\0");
        let crc = (libdeflater::crc32(&member) & 0xffff) as u16 ^ u16::from(corrupt_header_crc);
        member.extend_from_slice(&crc.to_le_bytes());
        let mut deflate = flate2::write::DeflateEncoder::new(member, flate2::Compression::fast());
        deflate.write_all(data).unwrap();
        let mut member = deflate.finish().unwrap();
        member.extend_from_slice(&libdeflater::crc32(data).to_le_bytes());
        member.extend_from_slice(&(data.len() as u32).to_le_bytes());
        member
    }

    /// libdeflate skips the header checksum; the receiver checks it, as Go's and flate2's
    /// readers do (the body_decode fuzz target found the difference).
    #[test]
    fn a_gzip_header_checksum_is_verified() {
        let data = b"resource spans".repeat(100);
        assert_eq!(
            decode(Coding::Gzip, gzip_with_header_crc(&data, false), 1 << 20).unwrap(),
            data
        );
        assert_eq!(
            decode(Coding::Gzip, gzip_with_header_crc(&data, true), 1 << 20),
            Err(BodyError::Corrupt("gzip: header checksum mismatch".into()))
        );
        // The fuzzer's case: an empty member whose header checksum is zero.
        let found = [
            0x1f, 0x8b, 0x08, 0x02, 0x1f, 0x8b, 0x08, 0x18, 0xed, 0x00, 0x00, 0x00, 0x01, 0x00,
            0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert!(matches!(
            decode(Coding::Gzip, found.to_vec(), 512),
            Err(BodyError::Corrupt(_))
        ));
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
    fn every_gzip_member_is_read() {
        let (first, second) = (vec![1u8; 3_000], vec![2u8; 70_000]);
        let mut body = gzip(&first);
        body.extend(gzip(&second));
        let both = [first.clone(), second.clone()].concat();
        assert_eq!(decode(Coding::Gzip, body.clone(), 73_000).unwrap(), both);
        // The same two members past the limit by one byte.
        assert_eq!(
            decode(Coding::Gzip, body, 72_999),
            Err(BodyError::TooLarge { limit: 72_999 })
        );
        // Identical members are both kept, not taken for one.
        let mut twice = gzip(&first);
        twice.extend(gzip(&first));
        assert_eq!(decode(Coding::Gzip, twice, 10_000).unwrap().len(), 6_000);
    }

    #[test]
    fn a_gzip_trailer_that_lies_about_the_size_changes_nothing() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 7).to_le_bytes())
            .collect();
        let honest = gzip(&data);
        let len = honest.len();
        // Declared smaller than it is: the output grows and the CRC/size check refuses it.
        let mut small = honest.clone();
        small[len - 4..].copy_from_slice(&100u32.to_le_bytes());
        assert!(matches!(
            decode(Coding::Gzip, small, 1 << 20),
            Err(BodyError::Corrupt(_))
        ));
        // Declared over the limit: inflated into at most the limit; the lie is then refused.
        let mut large = honest.clone();
        large[len - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(Coding::Gzip, large.clone(), 1 << 20),
            Err(BodyError::Corrupt(_))
        ));
        assert_eq!(
            decode(Coding::Gzip, large, 799_999),
            Err(BodyError::TooLarge { limit: 799_999 })
        );
        // Trailing bytes that are not a member are an error, not ignored.
        let mut trailing = honest;
        trailing.extend_from_slice(b"junk at the end of the body");
        assert!(matches!(
            decode(Coding::Gzip, trailing, 1 << 20),
            Err(BodyError::Corrupt(_))
        ));
        // No member at all is not a gzip body (flate2's and Go's readers refuse it too).
        assert!(matches!(
            decode(Coding::Gzip, Vec::new(), 10),
            Err(BodyError::Corrupt(_))
        ));
    }

    /// snappy in either format under one name, as the Collector's receivers take it: framed
    /// (grpc-go, the Collector's HTTP client), and one raw block (Prometheus remote write's
    /// format); bounded either way; corrupt data refused, a framed chunk's CRC checked.
    #[test]
    fn snappy_framed_or_one_block() {
        let data: Vec<u8> = (0..60_000u32)
            .flat_map(|i| format!("{} ", i % 89).into_bytes())
            .collect();
        let mut encoder = snap::write::FrameEncoder::new(Vec::new());
        encoder.write_all(&data).unwrap();
        let framed = encoder.into_inner().unwrap();
        let block = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        for name in ["snappy", "x-snappy-framed", "Snappy"] {
            let coding = Coding::parse(name).unwrap();
            assert_eq!(decode(coding, framed.clone(), data.len()).unwrap(), data);
            assert_eq!(decode(coding, block.clone(), data.len()).unwrap(), data);
        }
        for body in [&framed, &block] {
            assert_eq!(
                decode(Coding::Snappy, body.clone(), data.len() - 1),
                Err(BodyError::TooLarge {
                    limit: data.len() - 1
                })
            );
        }
        // A block stating a length past the limit is refused before anything is allocated.
        let mut huge = Vec::new();
        let mut len = 1u64 << 40;
        while len >= 0x80 {
            huge.push((len as u8) | 0x80);
            len >>= 7;
        }
        huge.push(len as u8);
        huge.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decode(Coding::Snappy, huge, 1 << 20),
            Err(BodyError::TooLarge { .. }) | Err(BodyError::Corrupt(_))
        ));
        let mut bad_crc = framed.clone();
        // The first data chunk's CRC: after the 10-byte identifier, its 4-byte header.
        bad_crc[14] ^= 0xff;
        assert!(matches!(
            decode(Coding::Snappy, bad_crc, data.len()),
            Err(BodyError::Corrupt(why)) if why.starts_with("snappy")
        ));
        assert!(matches!(
            decode(Coding::Snappy, b"not snappy at all".to_vec(), 1000),
            Err(BodyError::Corrupt(_)) | Err(BodyError::TooLarge { .. })
        ));
    }

    #[test]
    fn zstd_with_and_without_a_stated_size_and_in_several_frames() {
        let data = vec![9u8; 50_000];
        // One-shot: the frame states its size.
        let sized = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&sized).unwrap(),
            Some(50_000)
        );
        assert_eq!(decode(Coding::Zstd, sized.clone(), 50_000).unwrap(), data);
        assert_eq!(
            decode(Coding::Zstd, sized.clone(), 49_999),
            Err(BodyError::TooLarge { limit: 49_999 })
        );
        // Streaming: no size in the frame.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut encoder, &data).unwrap();
        let unsized_ = encoder.finish().unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&unsized_).unwrap(),
            None
        );
        assert_eq!(
            decode(Coding::Zstd, unsized_.clone(), 50_000).unwrap(),
            data
        );
        assert_eq!(
            decode(Coding::Zstd, unsized_, 10_000),
            Err(BodyError::TooLarge { limit: 10_000 })
        );
        // Two frames: both read.
        let two = [sized.clone(), sized].concat();
        assert_eq!(decode(Coding::Zstd, two, 100_000).unwrap().len(), 100_000);
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
        for (coding, name) in [(Coding::Zlib, "deflate"), (Coding::Lz4, "lz4")] {
            match decode(coding, b"neither zlib nor lz4".to_vec(), 100) {
                Err(BodyError::Corrupt(why)) => assert!(why.starts_with(name), "{why}"),
                other => panic!("{coding:?}: {other:?}"),
            }
        }
        // A zlib stream whose Adler-32 does not match what it inflates to.
        let mut zlib = zlib(b"spans and more spans");
        let last = zlib.len() - 1;
        zlib[last] ^= 1;
        assert!(matches!(
            decode(Coding::Zlib, zlib, 100),
            Err(BodyError::Corrupt(_))
        ));
        assert_eq!(Coding::parse("br"), None);
        assert_eq!(Coding::parse("GZIP"), Some(Coding::Gzip));
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn lz4_frames(data: &[u8], block: lz4::BlockSize) -> Vec<u8> {
        let mut encoder = lz4::EncoderBuilder::new()
            .block_size(block)
            .checksum(lz4::ContentChecksum::ChecksumEnabled)
            .build(Vec::new())
            .unwrap();
        encoder.write_all(data).unwrap();
        let (out, finished) = encoder.finish();
        finished.unwrap();
        out
    }

    /// `zlib` and `deflate` name the same decoder: a zlib stream as the Collector and the SDKs
    /// send it, or a bare deflate stream as some other clients send under `deflate`.
    #[test]
    fn zlib_and_bare_deflate_under_either_name() {
        let data: Vec<u8> = (0..30_000u32)
            .flat_map(|i| (i % 253).to_le_bytes())
            .collect();
        assert_eq!(Coding::parse("deflate"), Some(Coding::Zlib));
        assert_eq!(Coding::parse("zlib"), Some(Coding::Zlib));
        assert_eq!(decode(Coding::Zlib, zlib(&data), data.len()).unwrap(), data);
        let mut bare = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        bare.write_all(&data).unwrap();
        let bare = bare.finish().unwrap();
        assert!(
            !zlib_header(&bare),
            "this stream does not pass for a zlib header"
        );
        assert_eq!(decode(Coding::Zlib, bare, data.len()).unwrap(), data);
        // Bombs stop at the limit in both forms.
        let bomb = zlib(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        assert_eq!(
            decode(Coding::Zlib, bomb, 4 << 20),
            Err(BodyError::TooLarge { limit: 4 << 20 })
        );
        assert_eq!(
            decode(Coding::Zlib, zlib(&data), data.len() - 1),
            Err(BodyError::TooLarge {
                limit: data.len() - 1
            })
        );
    }

    /// libdeflate's whole-buffer zlib and bare-deflate inflating says what flate2's streaming
    /// readers say (the fuzz target's reference) on streams cut short, flipped, or followed by
    /// other bytes: the same output where both accept, a refusal where flate2 refuses.
    #[test]
    fn zlib_whole_buffer_agrees_with_a_streaming_reader() {
        let data: Vec<u8> = (0..5_000u32)
            .flat_map(|i| format!("{} ", i % 71).into_bytes())
            .collect();
        let mut bare =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        bare.write_all(&data).unwrap();
        let streams = [zlib(&data), bare.finish().unwrap()];
        let reference = |body: &[u8]| {
            let mut out = Vec::new();
            let read = if zlib_header(body) {
                flate2::read::ZlibDecoder::new(body).read_to_end(&mut out)
            } else {
                flate2::read::DeflateDecoder::new(body).read_to_end(&mut out)
            };
            read.ok().map(|_| out)
        };
        let mut variants: Vec<Vec<u8>> = Vec::new();
        for stream in &streams {
            for cut in (0..stream.len()).step_by(7) {
                variants.push(stream[..cut].to_vec());
            }
            for at in (0..stream.len()).step_by(11) {
                let mut flipped = stream.clone();
                flipped[at] ^= 0x5a;
                variants.push(flipped);
            }
            variants.push([stream.as_slice(), b"trailing bytes"].concat());
        }
        for body in variants {
            match (unzlib(&body, 1 << 20), reference(&body)) {
                (Ok(ours), Some(theirs)) => assert_eq!(ours, theirs),
                (Err(_), None) => {}
                (ours, theirs) => panic!(
                    "{} bytes: ours {:?}, flate2 {:?}",
                    body.len(),
                    ours.map(|o| o.len()),
                    theirs.map(|t| t.len())
                ),
            }
        }
    }

    /// lz4 in the frame format, in blocks of any size, one frame or several; a bomb stops at the
    /// limit.
    #[test]
    fn lz4_frames_within_the_limit() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for block in [lz4::BlockSize::Max64KB, lz4::BlockSize::Max4MB] {
            let framed = lz4_frames(&data, block);
            assert!(
                framed.starts_with(&[0x04, 0x22, 0x4d, 0x18]),
                "the frame magic"
            );
            assert_eq!(
                decode(Coding::Lz4, framed.clone(), data.len()).unwrap(),
                data
            );
            assert_eq!(
                decode(Coding::Lz4, framed, data.len() - 1),
                Err(BodyError::TooLarge {
                    limit: data.len() - 1
                })
            );
        }
        let bomb = lz4_frames(&vec![0u8; 64 << 20], lz4::BlockSize::Max4MB);
        assert!(bomb.len() < 1 << 20, "{}", bomb.len());
        assert_eq!(
            decode(Coding::Lz4, bomb, 4 << 20),
            Err(BodyError::TooLarge { limit: 4 << 20 })
        );
        // Frames one after another, as the frame format allows, are read as one body; bytes
        // after the last frame that are not a frame are refused, not ignored.
        let first = lz4_frames(b"first ", lz4::BlockSize::Max64KB);
        let two = [
            first.clone(),
            lz4_frames(b"second", lz4::BlockSize::Max64KB),
        ]
        .concat();
        assert_eq!(decode(Coding::Lz4, two, 100).unwrap(), b"first second");
        let trailing = [first.clone(), b"junk".to_vec()].concat();
        assert!(matches!(
            decode(Coding::Lz4, trailing, 100),
            Err(BodyError::Corrupt(_))
        ));
        assert!(matches!(
            decode(Coding::Lz4, first[..first.len() - 3].to_vec(), 100),
            Err(BodyError::Corrupt(_))
        ));
        // What the exporters send reads back.
        let sent =
            crate::export::compression::compress(crate::export::Compression::Lz4, None, &data)
                .unwrap();
        assert_eq!(decode(Coding::Lz4, sent, data.len()).unwrap(), data);
    }
}
