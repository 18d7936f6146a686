//! Fuzzes the OTLP/HTTP receiver's request framing (`tailgate::ingest::http1`) with arbitrary
//! bytes as they would arrive on a connection.
//!
//! - `parse_head`: never panics; a head it reads lies within the input and within
//!   `HEAD_BYTES_MAX`, and every shorter prefix of it is "incomplete" (a receiver that reads the
//!   head in pieces sees the same head), never an error.
//! - `ChunkedDecoder`: the bytes after a chunked head — and the whole input, as a body on its
//!   own — decode to the same body, the same unconsumed rest, or an error, however the bytes are
//!   cut into reads; a body never passes the limit, and nothing consumed lies past the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tailgate::ingest::http1::{parse_head, BodyFraming, ChunkedDecoder, HEAD_BYTES_MAX};

/// The body limit the decoder is given: small, so the fuzzer reaches it.
const BODY_LIMIT: usize = 4 << 10;

/// What a receiver reading the body in reads of `cut` bytes ends with: the body and how many
/// input bytes it used, `Err` for a refused body, `None` when the input ends first.
fn decode_in_reads(input: &[u8], cut: usize) -> Option<Result<(Vec<u8>, usize), ()>> {
    let mut decoder = ChunkedDecoder::new(BODY_LIMIT);
    let mut body = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut used = 0;
    for read in input.chunks(cut.max(1)) {
        pending.extend_from_slice(read);
        let decoded = match decoder.decode(&pending, &mut body) {
            Ok(decoded) => decoded,
            Err(_) => return Some(Err(())),
        };
        assert!(decoded.consumed <= pending.len());
        assert!(body.len() <= BODY_LIMIT, "a body past the limit");
        used += decoded.consumed;
        pending.drain(..decoded.consumed);
        if decoded.done {
            return Some(Ok((body, used)));
        }
    }
    None
}

fn check_chunked(input: &[u8]) {
    let whole = decode_in_reads(input, input.len());
    for cut in [1, 2, 3, 7, 64, input.len() / 2 + 1] {
        assert_eq!(
            decode_in_reads(input, cut),
            whole,
            "reads of {cut} bytes decode differently"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((head, len))) = parse_head(data) {
        assert!(len <= data.len() && len <= HEAD_BYTES_MAX);
        for prefix in [len - 1, len / 2, 1] {
            assert!(
                matches!(parse_head(&data[..prefix]), Ok(None)),
                "a prefix of {prefix} bytes of a {len}-byte head is not incomplete"
            );
        }
        if head.body == BodyFraming::Chunked {
            check_chunked(&data[len..]);
        }
    }
    check_chunked(data);
});
