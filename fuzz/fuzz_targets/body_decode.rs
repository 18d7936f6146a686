//! Fuzzes the receivers' body decoding (`tailgate::ingest::body::decode`): gzip through
//! libdeflate's whole-buffer decoder, member by member, and zstd in one call or streaming.
//!
//! The first input byte picks the coding, the second the output limit (in 256-byte steps); the
//! rest is the body. Whatever the bytes: no crash, no output over the limit, and an accepted
//! body is exactly what a streaming reference decoder (flate2's multi-member gzip reader, or
//! zstd's streaming reader) makes of it. A body the reference reads whole within the limit is
//! accepted too.

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
    };
    (read.is_ok() && out.len() <= limit).then_some(out)
}

fuzz_target!(|data: &[u8]| {
    let [which, limit, body @ ..] = data else {
        return;
    };
    let coding = match which % 3 {
        0 => Coding::Identity,
        1 => Coding::Gzip,
        _ => Coding::Zstd,
    };
    let limit = usize::from(*limit) * 256;
    let ours = decode(coding, body.to_vec(), limit);
    let theirs = reference(coding, body, limit);
    match (&ours, &theirs) {
        (Ok(out), _) => {
            assert!(out.len() <= limit);
            assert_eq!(Some(out), theirs.as_ref(), "accepted what the reference refuses");
        }
        (Err(BodyError::TooLarge { limit: said }), _) => assert_eq!(*said, limit),
        (Err(BodyError::Corrupt(_)), None) => {}
        (Err(err), Some(out)) => panic!("refused ({err:?}) {} bytes the reference reads", out.len()),
    }
});
