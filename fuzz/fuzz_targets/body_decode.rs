//! Fuzzes the receivers' body decoding (`tailgate::ingest::body::decode`): gzip through
//! libdeflate's whole-buffer decoder, member by member, zstd in one call or streaming, snappy
//! framed or as one block, zlib (or bare deflate) and lz4 frames.
//!
//! The first input byte picks the coding, the second the output limit (in 256-byte steps); the
//! rest is the body. Whatever the bytes: no crash, no output over the limit, and an accepted
//! body is exactly what a streaming reference decoder (flate2's multi-member gzip reader,
//! zstd's streaming reader, snap's frame reader for a body opening with snappy's stream
//! identifier and its raw decoder otherwise) makes of it. A body the reference reads whole
//! within the limit is accepted too. zlib (inflated whole by libdeflate) is checked against
//! flate2's streaming zlib reader for a body with a zlib header and its bare deflate reader
//! otherwise. lz4 bodies are read frame by frame (each frame measured from its header and block
//! sizes, then read by liblz4), which no reference here does: for them the target checks the
//! limit and that nothing crashes.

#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use tailgate::ingest::body::{decode, BodyError, Coding};

fn reference(coding: Coding, body: &[u8], limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let bound = limit as u64 + 1;
    let read = match coding {
        Coding::Identity => return (body.len() <= limit).then(|| body.to_vec()),
        Coding::Gzip => flate2::read::MultiGzDecoder::new(body)
            .take(bound)
            .read_to_end(&mut out),
        Coding::Zstd => zstd::stream::read::Decoder::new(body)
            .ok()?
            .take(bound)
            .read_to_end(&mut out),
        Coding::Snappy if body.starts_with(b"\xff\x06\x00\x00sNaPpY") => {
            snap::read::FrameDecoder::new(body)
                .take(bound)
                .read_to_end(&mut out)
        }
        // A block states its length first: the reference allocates only within the limit.
        Coding::Snappy if snap::raw::decompress_len(body).ok()? > limit => return None,
        Coding::Snappy => {
            out = snap::raw::Decoder::new().decompress_vec(body).ok()?;
            Ok(out.len())
        }
        Coding::Zlib => {
            let zlib = matches!(body, [cmf, flg, ..] if cmf & 0x0f == 8 && cmf >> 4 <= 7
                && flg & 0x20 == 0 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0);
            if zlib {
                flate2::read::ZlibDecoder::new(body).take(bound).read_to_end(&mut out)
            } else {
                flate2::read::DeflateDecoder::new(body).take(bound).read_to_end(&mut out)
            }
        }
        Coding::Lz4 => return None,
    };
    (read.is_ok() && out.len() <= limit).then_some(out)
}

fuzz_target!(|data: &[u8]| {
    let [which, limit, body @ ..] = data else {
        return;
    };
    let coding = match which % 6 {
        0 => Coding::Identity,
        1 => Coding::Gzip,
        2 => Coding::Zstd,
        3 => Coding::Snappy,
        4 => Coding::Zlib,
        _ => Coding::Lz4,
    };
    let limit = usize::from(*limit) * 256;
    let ours = decode(coding, body.to_vec(), limit);
    let theirs = reference(coding, body, limit);
    match (&ours, &theirs) {
        (Ok(out), _) if coding == Coding::Lz4 => assert!(out.len() <= limit),
        (Ok(out), _) => {
            assert!(out.len() <= limit);
            assert_eq!(Some(out), theirs.as_ref(), "accepted what the reference refuses");
        }
        (Err(BodyError::TooLarge { limit: said }), _) => assert_eq!(*said, limit),
        (Err(BodyError::Corrupt(_)), None) => {}
        (Err(BodyError::Corrupt(_)), _) if coding == Coding::Lz4 => {}
        (Err(err), Some(out)) => panic!("refused ({err:?}) {} bytes the reference reads", out.len()),
    }
});
