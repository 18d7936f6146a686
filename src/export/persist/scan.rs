//! Reading a segment back at start: every intact record, and every damaged stretch between
//! them, measured.
//!
//! A segment is records end to end. Recovery walks it from the start; a record that fails its
//! checks (cut short by a crash mid-write, bytes changed on disk) starts a damaged stretch,
//! which ends at the next place a record's magic begins an intact record, or at the file's end.
//! So damage costs the records it touches and no more: everything after it that is intact is
//! sent.

use super::record::{self, Header};

/// A stretch of a segment that holds no intact record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Damaged {
    pub offset: u64,
    pub bytes: u64,
    /// The header at its start, if its magic is there (unverified).
    pub claimed: Option<Header>,
    /// The items claimed by every header found in the stretch (its start and each later
    /// magic): what the damage cost, as well as the damaged bytes can tell (an estimate).
    pub claimed_items: u64,
}

/// What a segment holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Scanned {
    /// Intact records: their offsets and headers, in file order.
    pub records: Vec<(u64, Header)>,
    pub damaged: Vec<Damaged>,
}

/// Walks `bytes`, a whole segment.
pub(super) fn scan(bytes: &[u8]) -> Scanned {
    let mut scanned = Scanned::default();
    let mut at = 0usize;
    while at < bytes.len() {
        match record::verify(&bytes[at..]) {
            Ok(header) => {
                scanned.records.push((at as u64, header));
                at += header.record_len() as usize;
            }
            Err(_) => {
                let claimed = record::header(&bytes[at..]).ok();
                let next = next_intact(bytes, at + 1).unwrap_or(bytes.len());
                scanned.damaged.push(Damaged {
                    offset: at as u64,
                    bytes: (next - at) as u64,
                    claimed,
                    claimed_items: claimed_items(&bytes[at..next]),
                });
                at = next;
            }
        }
    }
    scanned
}

/// The items claimed by the headers whose magic appears in `stretch`.
fn claimed_items(stretch: &[u8]) -> u64 {
    let mut items = 0u64;
    let mut from = 0;
    while let Some(at) = record::next_magic(stretch, from) {
        if let Ok(header) = record::header(&stretch[at..]) {
            items = items.saturating_add(header.items);
        }
        from = at + 1;
    }
    items
}

/// The offset of the next intact record at or after `from`.
fn next_intact(bytes: &[u8], mut from: usize) -> Option<usize> {
    while let Some(at) = record::next_magic(bytes, from) {
        if record::verify(&bytes[at..]).is_ok() {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tailgate_wire::Signal;

    fn records(bodies: &[&[u8]]) -> (Vec<u8>, Vec<u64>) {
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            offsets.push(bytes.len() as u64);
            bytes.extend(record::encode(Signal::Traces, i as u64 + 1, body).unwrap());
        }
        (bytes, offsets)
    }

    #[test]
    fn intact_records_are_all_found() {
        let (bytes, offsets) = records(&[b"one", b"two", b"three"]);
        let scanned = scan(&bytes);
        assert!(scanned.damaged.is_empty());
        let found: Vec<u64> = scanned.records.iter().map(|(at, _)| *at).collect();
        assert_eq!(found, offsets);
    }

    #[test]
    fn a_torn_tail_is_one_damaged_stretch() {
        let (mut bytes, offsets) = records(&[b"one", b"two", b"three"]);
        let full = bytes.len();
        bytes.truncate(full - 2);
        let scanned = scan(&bytes);
        assert_eq!(scanned.records.len(), 2);
        assert_eq!(scanned.damaged.len(), 1);
        let damaged = scanned.damaged[0];
        assert_eq!(damaged.offset, offsets[2]);
        assert_eq!(damaged.bytes, (full - 2) as u64 - offsets[2]);
        assert_eq!(damaged.claimed.map(|h| h.items), Some(3));
    }

    #[test]
    fn damage_in_the_middle_costs_only_that_record() {
        let (mut bytes, offsets) = records(&[b"one", b"two", b"three", b"four"]);
        // Change a byte of the second record's body, and the third record's length.
        bytes[offsets[1] as usize + record::HEADER_BYTES] ^= 1;
        bytes[offsets[2] as usize + 5] ^= 0x7f;
        let scanned = scan(&bytes);
        let found: Vec<u64> = scanned.records.iter().map(|(at, _)| *at).collect();
        assert_eq!(found, vec![offsets[0], offsets[3]]);
        assert_eq!(
            scanned.damaged.len(),
            1,
            "two adjacent bad records are one stretch"
        );
        assert_eq!(scanned.damaged[0].offset, offsets[1]);
        assert_eq!(scanned.damaged[0].bytes, offsets[3] - offsets[1]);
    }

    #[test]
    fn garbage_only_is_all_damage() {
        let scanned = scan(&[0u8; 100]);
        assert!(scanned.records.is_empty());
        assert_eq!(
            scanned.damaged,
            vec![Damaged {
                offset: 0,
                bytes: 100,
                claimed: None,
                claimed_items: 0,
            }]
        );
    }
}
