//! Fuzzes what client metadata reads from untrusted bytes: a persistent queue record's
//! metadata prefix (`Metadata::decode`, read back from disk), a request's headers
//! (`Capture::from_headers`), and a routing table's request condition
//! (`RequestCondition::parse`, from the configuration).
//!
//! Whatever the bytes: no crash; metadata that decodes encodes and decodes back to itself, in
//! no more bytes than it took; a condition that parses parses the same from its own text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tailgate::config::RequestCondition;
use tailgate::metadata::{Capture, Metadata};

fuzz_target!(|data: &[u8]| {
    if let Some((metadata, used)) = Metadata::decode(data) {
        assert!(used <= data.len());
        let mut again = Vec::new();
        metadata.encode(&mut again).expect("what decoded fits the encoding");
        assert!(again.len() <= used);
        assert_eq!(Metadata::decode(&again), Some((metadata, again.len())));
    }
    // The bytes as a header list: NAME:VALUE per line, the first two names kept.
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(&str, &[u8])> = text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name, value.as_bytes()))
        .collect();
    let names: Vec<&str> = pairs.iter().take(2).map(|(name, _)| *name).collect();
    let kept = Capture::new(names).from_headers(pairs.iter().copied());
    let mut encoded = Vec::new();
    if kept.encode(&mut encoded).is_some() {
        assert_eq!(Metadata::decode(&encoded), Some((kept, encoded.len())));
    }
    if let Ok(condition) = RequestCondition::parse(&text) {
        assert_eq!(RequestCondition::parse(&condition.text).as_ref(), Ok(&condition));
    }
});
