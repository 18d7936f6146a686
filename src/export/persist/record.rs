//! One queued batch on disk: a fixed header, then the batch's bytes exactly as they will be
//! sent.
//!
//! ```text
//!  0      4          8               16      17    20       28
//!  ┌──────┬──────────┬───────────────┬───────┬─────┬────────┬──────────────── ─ ─
//!  │magic │ body len │ items         │signal │ m 0 0│checksum│ body (the batch)
//!  └──────┴──────────┴───────────────┴───────┴─────┴────────┴──────────────── ─ ─
//!   u32 LE  u32 LE     u64 LE          u8     pad    u64 LE
//! ```
//!
//! A batch with client metadata is written under a magic of its own ("TGQ2"), its body the
//! metadata (`Metadata::encode`) and then the batch's bytes, and byte 17 (under the checksum,
//! where the magic is not) set to 1: a version that predates it finds no record there, and
//! skips and counts it as damaged rather than sending the metadata as OTLP.
//!
//! The checksum is xxh3-64 of the body seeded with xxh3-64 of bytes 4..20 of the header: it
//! covers every field but the magic, so a record is either exactly what was written or refused. (xxh3 is the routing hash
//! the gateway already carries; at ~30 GB/s it costs less than the copy into the page cache,
//! and a 64-bit hash misses a random corruption with probability 2⁻⁶⁴.) The magic lets
//! recovery find the next record after a damaged one without trusting the damaged length.

use tailgate_wire::Signal;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Every record starts with these bytes ("TGQ1" little-endian).
pub(super) const MAGIC: u32 = u32::from_le_bytes(*b"TGQ1");
/// The magic of a record whose body starts with the batch's client metadata ("TGQ2").
pub(super) const MAGIC_METADATA: u32 = u32::from_le_bytes(*b"TGQ2");
/// The header's length.
pub(super) const HEADER_BYTES: usize = 28;

/// What a record's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub body_len: u32,
    pub items: u64,
    pub signal: Signal,
    /// Whether the body starts with the batch's client metadata.
    pub with_metadata: bool,
}

impl Header {
    /// The record's whole length on disk.
    pub fn record_len(&self) -> u64 {
        HEADER_BYTES as u64 + u64::from(self.body_len)
    }
}

fn signal_byte(signal: Signal) -> u8 {
    match signal {
        Signal::Traces => 1,
        Signal::Metrics => 2,
        Signal::Logs => 3,
    }
}

fn byte_signal(byte: u8) -> Option<Signal> {
    match byte {
        1 => Some(Signal::Traces),
        2 => Some(Signal::Metrics),
        3 => Some(Signal::Logs),
        _ => None,
    }
}

/// xxh3 of the body, seeded with xxh3 of the header's fields: two one-shot hashes, which run
/// at memory speed where the streaming hasher does not.
fn checksum(header: &[u8], body: &[u8]) -> u64 {
    xxh3_64_with_seed(body, xxh3_64(&header[4..20]))
}

/// The header of a record holding `body`. `None` if the body is too long for the header's
/// length field (4 GiB; batches are bounded far below).
pub(super) fn header_for(
    signal: Signal,
    items: u64,
    with_metadata: bool,
    body: &[u8],
) -> Option<[u8; HEADER_BYTES]> {
    let body_len = u32::try_from(body.len()).ok()?;
    let mut header = [0u8; HEADER_BYTES];
    let magic = if with_metadata { MAGIC_METADATA } else { MAGIC };
    header[0..4].copy_from_slice(&magic.to_le_bytes());
    header[17] = u8::from(with_metadata);
    header[4..8].copy_from_slice(&body_len.to_le_bytes());
    header[8..16].copy_from_slice(&items.to_le_bytes());
    header[16] = signal_byte(signal);
    let sum = checksum(&header, body);
    header[20..28].copy_from_slice(&sum.to_le_bytes());
    Some(header)
}

/// The record for a batch, header and body in one buffer.
#[cfg(test)]
pub(super) fn encode(signal: Signal, items: u64, body: &[u8]) -> Option<Vec<u8>> {
    let mut record = header_for(signal, items, false, body)?.to_vec();
    record.extend_from_slice(body);
    Some(record)
}

/// Why bytes are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Damage {
    /// Fewer bytes than a header, or than the header's length says: a write cut short.
    Torn,
    /// The magic is not there: not the start of a record.
    NotARecord,
    /// The header or body does not match its checksum (or names no signal).
    Checksum,
}

/// Reads the header at the start of `bytes`, without checking the body.
pub(super) fn header(bytes: &[u8]) -> Result<Header, Damage> {
    let head = bytes.get(..HEADER_BYTES).ok_or(Damage::Torn)?;
    let u32_at = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"));
    let with_metadata = match u32_at(0) {
        MAGIC => false,
        MAGIC_METADATA => true,
        _ => return Err(Damage::NotARecord),
    };
    let signal = byte_signal(head[16]).ok_or(Damage::Checksum)?;
    // The magic is outside the checksum; byte 17, inside it, says the same.
    if head[17] != u8::from(with_metadata) {
        return Err(Damage::Checksum);
    }
    Ok(Header {
        body_len: u32_at(4),
        items: u64_at(8),
        signal,
        with_metadata,
    })
}

/// Checks the record at the start of `bytes` whole: header, length and checksum.
pub(super) fn verify(bytes: &[u8]) -> Result<Header, Damage> {
    let header = header(bytes)?;
    let end = usize::try_from(header.record_len()).map_err(|_| Damage::Torn)?;
    let body = bytes.get(HEADER_BYTES..end).ok_or(Damage::Torn)?;
    let stored = u64::from_le_bytes(bytes[20..28].try_into().expect("8 bytes"));
    if checksum(bytes, body) != stored {
        return Err(Damage::Checksum);
    }
    Ok(header)
}

/// The offset of the next place in `bytes` after `from` where a record's magic appears: where
/// recovery tries again after a damaged record.
pub(super) fn next_magic(bytes: &[u8], from: usize) -> Option<usize> {
    let (plain, with_metadata) = (MAGIC.to_le_bytes(), MAGIC_METADATA.to_le_bytes());
    bytes
        .get(from..)?
        .windows(plain.len())
        .position(|w| w == plain || w == with_metadata)
        .map(|at| from + at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let record = encode(Signal::Logs, 7, b"hello").unwrap();
        assert_eq!(record.len(), HEADER_BYTES + 5);
        let header = verify(&record).unwrap();
        assert_eq!(
            header,
            Header {
                body_len: 5,
                items: 7,
                signal: Signal::Logs,
                with_metadata: false,
            }
        );
        assert_eq!(&record[HEADER_BYTES..], b"hello");
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let record = encode(Signal::Traces, 3, b"some span bytes").unwrap();
        for at in 0..record.len() {
            let mut bad = record.clone();
            bad[at] ^= 0x40;
            let result = verify(&bad);
            assert!(result.is_err(), "a flip at {at} went unnoticed");
        }
    }

    #[test]
    fn a_cut_record_is_torn() {
        let record = encode(Signal::Traces, 1, b"abcdef").unwrap();
        for len in 0..record.len() {
            let result = verify(&record[..len]);
            assert_eq!(result, Err(Damage::Torn), "cut at {len}");
        }
    }

    #[test]
    fn the_next_magic_is_found_after_garbage() {
        let mut bytes = vec![0xAB; 13];
        let record = encode(Signal::Metrics, 2, b"x").unwrap();
        bytes.extend_from_slice(&record);
        assert_eq!(next_magic(&bytes, 0), Some(13));
        assert_eq!(next_magic(&bytes, 14), None);
        assert!(verify(&bytes[13..]).is_ok());
    }
}
