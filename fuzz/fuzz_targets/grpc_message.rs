//! Fuzzes what the gRPC receiver reads off an HTTP/2 connection: a unary call's message framing
//! (`tailgate_wire::grpc::MessageReader`) and the frame headers the keepalive rules
//! follow (`tailgate::ingest::keepalive::FrameSniffer`).
//!
//! The first input byte picks a frame size; the rest is the stream. The message read from
//! frames of that size is the message read from one frame (or both are refused); an accepted
//! message is within the limit and is exactly the bytes after the 5-byte prefix. The sniffer
//! finds the same frame headers however the stream is cut.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tailgate::ingest::keepalive::{FrameHeader, FrameSniffer};
use tailgate_wire::grpc::{MessageReader, PREFIX_BYTES};

/// The message limit: small, so the fuzzer reaches it.
const LIMIT: usize = 4 << 10;

fn read(stream: &[u8], frame: usize) -> Option<(bool, Bytes)> {
    let mut reader = MessageReader::new(LIMIT);
    for chunk in stream.chunks(frame.max(1)) {
        reader.push(Bytes::copy_from_slice(chunk)).ok()?;
    }
    reader.finish().ok()
}

fn frames(stream: &[u8], cut: usize) -> Vec<FrameHeader> {
    let mut sniffer = FrameSniffer::default();
    let mut seen = Vec::new();
    for piece in stream.chunks(cut.max(1)) {
        sniffer.feed(piece, |frame| seen.push(frame));
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    let Some((&frame, stream)) = data.split_first() else {
        return;
    };
    let frame = usize::from(frame) + 1;
    let whole = read(stream, stream.len());
    assert_eq!(read(stream, frame), whole, "frames of {frame} bytes read differently");
    if let Some((_, message)) = &whole {
        assert!(message.len() <= LIMIT);
        assert_eq!(&message[..], &stream[PREFIX_BYTES..]);
    }
    assert_eq!(frames(stream, frame), frames(stream, stream.len()));
});
