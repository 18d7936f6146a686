//! Client metadata: the request headers a receiver with `include_metadata: true` keeps, carried
//! with the request's data to the batcher and the exporters — the Collector's `client.Info`
//! metadata, for multi-tenant gateways.
//!
//! # The model
//!
//! A receiver keeps only the headers something downstream reads ([`Capture`]): the keys of
//! the `batch` processors' `metadata_keys` and the `from_context` keys of the `headers_setter`
//! extensions, by lower-case name. Keeping every header would cost every request a copy of
//! them for nothing, and what is kept is observably the same. A request without any of them,
//! and every request of a receiver without `include_metadata`, carries [`Metadata::none`],
//! which is a null pointer: the path without metadata pays nothing.
//!
//! What reaches an exporter is the Collector's rule:
//!
//! - a pipeline with a `batch` processor with `metadata_keys` batches each combination of
//!   those keys' values apart, and its batches carry those keys only ([`Metadata::project`]);
//! - a pipeline with a `batch` processor without them merges everything and carries none;
//! - a pipeline without a `batch` processor carries each request's metadata as it came (its
//!   batches, when its exporters batch, merge only requests of the same metadata);
//! - `tail_sampling` keeps each span's metadata in its buffer (with the span's resource and
//!   scope), and a kept trace goes out as one request per metadata its spans came with; a
//!   tier forwards each span with its metadata as request headers, which the owner keeps.
//!
//! Values are kept as bytes: a header value may hold any byte but CR, LF and NUL, and an
//! exporter writes it back as it came. What a request keeps is bounded by the receiver's
//! header limits (a gRPC header list of 16 KiB, an HTTP head of 100 fields).
//!
//! # Cardinality
//!
//! A `batch` processor with `metadata_keys` admits at most `metadata_cardinality_limit`
//! distinct combinations on the node (the Collector's default, 1000); a request bringing one
//! more is refused, permanently, with the Collector's message. [`Admission`] keeps the
//! combinations admitted: each shard asks its own cache first, and only a combination the shard
//! has not seen takes the node's lock — at most `limit` times a shard, plus once for each
//! refused request.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tailgate_wire::Signal;

/// One kept header: its lower-case name and every value it had, in order.
pub type Entry = (Box<str>, Vec<Box<[u8]>>);

/// The headers a request kept (see the module documentation), sorted by name; cheap to clone
/// and to compare, and nothing at all when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Metadata(Option<Arc<[Entry]>>);

impl Metadata {
    /// No metadata.
    pub fn none() -> Metadata {
        Metadata(None)
    }

    /// Whether nothing was kept.
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// The entries, sorted by name.
    pub fn entries(&self) -> &[Entry] {
        self.0.as_deref().unwrap_or(&[])
    }

    /// Metadata of `entries`, which must have unique lower-case names; empty value lists are
    /// left out (a header absent and a header never read are the same).
    pub fn from_entries(mut entries: Vec<Entry>) -> Metadata {
        entries.retain(|(_, values)| !values.is_empty());
        if entries.is_empty() {
            return Metadata(None);
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        debug_assert!(entries.windows(2).all(|w| w[0].0 != w[1].0), "unique names");
        Metadata(Some(entries.into()))
    }

    /// The values of `key` (lower-case), empty when the request had none.
    pub fn get(&self, key: &str) -> &[Box<[u8]>] {
        let entries = self.entries();
        match entries.binary_search_by(|(name, _)| (**name).cmp(key)) {
            Ok(at) => &entries[at].1,
            Err(_) => &[],
        }
    }

    /// The metadata of `keys` only (lower-case, sorted): what a batch of a `batch` processor
    /// with these `metadata_keys` carries, and what tells its batches apart.
    pub fn project(&self, keys: &[Box<str>]) -> Metadata {
        if self.is_none() {
            return Metadata(None);
        }
        // The usual case, asked for every request: every key kept is one of `keys` (the
        // receivers keep only keys something reads), so the same metadata, shared, uncopied.
        if self
            .entries()
            .iter()
            .all(|(name, _)| keys.iter().any(|key| key == name))
        {
            return self.clone();
        }
        let entries: Vec<Entry> = keys
            .iter()
            .filter_map(|key| {
                let values = self.get(key);
                (!values.is_empty()).then(|| (key.clone(), values.to_vec()))
            })
            .collect();
        Metadata::from_entries(entries)
    }

    /// Appends the metadata's encoding, for a persistent queue's record: a `u16` count of
    /// entries, then each as a `u16`-length name, a `u16` count of values and each value as a
    /// `u32`-length byte string, all little-endian. `None` if it does not fit those lengths
    /// (the receivers' header limits keep it far within them).
    pub fn encode(&self, out: &mut Vec<u8>) -> Option<()> {
        let entries = self.entries();
        out.extend_from_slice(&u16::try_from(entries.len()).ok()?.to_le_bytes());
        for (name, values) in entries {
            out.extend_from_slice(&u16::try_from(name.len()).ok()?.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&u16::try_from(values.len()).ok()?.to_le_bytes());
            for value in values {
                out.extend_from_slice(&u32::try_from(value.len()).ok()?.to_le_bytes());
                out.extend_from_slice(value);
            }
        }
        Some(())
    }

    /// Reads what [`Metadata::encode`] wrote at the start of `bytes`; the metadata and how many
    /// bytes it took, or `None` if they do not hold a valid encoding.
    pub fn decode(bytes: &[u8]) -> Option<(Metadata, usize)> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let part = bytes.get(at..at.checked_add(n)?)?;
            at += n;
            Some(part)
        };
        let count = u16::from_le_bytes(take(2)?.try_into().ok()?);
        let mut entries = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = u16::from_le_bytes(take(2)?.try_into().ok()?);
            let name = std::str::from_utf8(take(usize::from(len))?).ok()?;
            let values_count = u16::from_le_bytes(take(2)?.try_into().ok()?);
            let mut values = Vec::with_capacity(usize::from(values_count));
            for _ in 0..values_count {
                let len = u32::from_le_bytes(take(4)?.try_into().ok()?);
                values.push(Box::from(take(usize::try_from(len).ok()?)?));
            }
            entries.push((Box::from(name), values));
        }
        let mut names: Vec<&str> = entries.iter().map(|(n, _)| &**n).collect();
        names.sort_unstable();
        names.dedup();
        if names.len() != entries.len() {
            return None;
        }
        Some((Metadata::from_entries(entries), at))
    }
}

/// Which headers a receiver with `include_metadata` keeps: the keys something downstream
/// reads, lower-case and sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    keys: Vec<Box<str>>,
}

impl Capture {
    /// Keeps `keys` (any case; duplicates are kept once).
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Capture {
        let mut keys: Vec<Box<str>> = keys
            .into_iter()
            .map(|key| Box::from(key.to_ascii_lowercase()))
            .collect();
        keys.sort();
        keys.dedup();
        Capture { keys }
    }

    /// Whether it keeps nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys it keeps, lower-case and sorted.
    pub fn keys(&self) -> &[Box<str>] {
        &self.keys
    }

    /// The metadata of a request with these headers (names in any case).
    pub fn from_headers<'a>(&self, headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Metadata {
        if self.keys.is_empty() {
            return Metadata::none();
        }
        let mut entries: Vec<Entry> = Vec::new();
        for (name, value) in headers {
            let Some(key) = self.keys.iter().find(|k| k.eq_ignore_ascii_case(name)) else {
                continue;
            };
            match entries.iter_mut().find(|(n, _)| n == key) {
                Some((_, values)) => values.push(Box::from(value)),
                None => entries.push((key.clone(), vec![Box::from(value)])),
            }
        }
        Metadata::from_entries(entries)
    }
}

/// A request refused for one combination too many; its message is the Collector's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyCombinations;

impl std::fmt::Display for TooManyCombinations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too many batcher metadata-value combinations")
    }
}

impl std::error::Error for TooManyCombinations {}

/// The combinations of one `batch` processor's `metadata_keys` admitted on the node (see the
/// module documentation), shared by every shard.
#[derive(Debug)]
pub struct Admission {
    /// The processor's `metadata_keys`, lower-case and sorted.
    keys: Vec<Box<str>>,
    /// `metadata_cardinality_limit`; 0 admits every combination.
    limit: usize,
    admitted: Mutex<HashSet<Metadata>>,
}

impl Admission {
    /// An admission for `keys` (lower-case, sorted) with `limit` combinations at most.
    pub fn new(keys: Vec<Box<str>>, limit: usize) -> Admission {
        Admission {
            keys,
            limit,
            admitted: Mutex::new(HashSet::new()),
        }
    }

    /// How many combinations were admitted.
    #[cfg(test)]
    pub fn admitted(&self) -> usize {
        self.admitted.lock().map_or(0, |set| set.len())
    }
}

/// One shard's view of the node's admissions: what it already saw admitted, asked before the
/// node's lock.
#[derive(Debug, Default)]
pub struct Admissions {
    each: Vec<ShardAdmission>,
}

/// One admission as a shard sees it.
#[derive(Debug)]
struct ShardAdmission {
    signal: Signal,
    node: Arc<Admission>,
    /// The combinations this shard knows to be admitted.
    seen: RefCell<HashSet<Metadata>>,
    /// Whether the node's set was full when this shard last looked: then `seen` holds all of
    /// it (it never changes again), and a combination not in it is refused without the lock.
    full: Cell<bool>,
}

impl Admissions {
    /// A shard's view of `admissions`, each for the data of its signal.
    pub fn new(admissions: &[(Signal, Arc<Admission>)]) -> Admissions {
        Admissions {
            each: admissions
                .iter()
                .map(|(signal, node)| ShardAdmission {
                    signal: *signal,
                    node: node.clone(),
                    seen: RefCell::new(HashSet::new()),
                    full: Cell::new(false),
                })
                .collect(),
        }
    }

    /// Admits `metadata`'s combination for every processor of `signal`, or refuses it if one has no room
    /// for one more. A combination a processor admitted stays admitted (its batcher stays, as
    /// in the Collector), so an admission is never taken back.
    pub fn admit(&self, signal: Signal, metadata: &Metadata) -> Result<(), TooManyCombinations> {
        for shard in &self.each {
            if shard.signal != signal {
                continue;
            }
            let admission = &shard.node;
            let combination = metadata.project(&admission.keys);
            if shard.seen.borrow().contains(&combination) {
                continue;
            }
            if shard.full.get() {
                return Err(TooManyCombinations);
            }
            {
                // The node's lock, only for a combination new to this shard (at most `limit`
                // times a shard, and once more when the set is full); a poisoned lock (a panic
                // elsewhere, which ends the process) refuses rather than admits.
                let Ok(mut admitted) = admission.admitted.lock() else {
                    return Err(TooManyCombinations);
                };
                if !admitted.contains(&combination) {
                    if admission.limit != 0 && admitted.len() >= admission.limit {
                        // Full for good: this shard keeps all of it and asks no more.
                        shard.seen.borrow_mut().extend(admitted.iter().cloned());
                        shard.full.set(true);
                        return Err(TooManyCombinations);
                    }
                    admitted.insert(combination.clone());
                }
            }
            shard.seen.borrow_mut().insert(combination);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static [u8])> {
        pairs.iter().map(|(n, v)| (*n, v.as_bytes())).collect()
    }

    fn keys(names: &[&str]) -> Vec<Box<str>> {
        names.iter().map(|n| Box::from(*n)).collect()
    }

    #[test]
    fn a_capture_keeps_its_keys_only_in_any_case_with_every_value() {
        let capture = Capture::new(["X-Tenant", "region", "x-tenant"]);
        let m = capture.from_headers(
            headers(&[
                ("content-type", "application/x-protobuf"),
                ("X-TENANT", "acme"),
                ("Region", "eu"),
                ("x-tenant", "again"),
            ])
            .into_iter(),
        );
        assert_eq!(
            m.get("x-tenant"),
            [Box::from(&b"acme"[..]), Box::from(&b"again"[..])]
        );
        assert_eq!(m.get("region"), [Box::from(&b"eu"[..])]);
        assert!(m.get("content-type").is_empty());
        let none = capture.from_headers(headers(&[("content-type", "x")]).into_iter());
        assert!(none.is_none(), "nothing kept is no metadata");
        assert!(Capture::new([])
            .from_headers(headers(&[("x-tenant", "a")]).into_iter())
            .is_none());
    }

    #[test]
    fn a_projection_keeps_the_keys_asked_and_tells_empty_from_absent() {
        let capture = Capture::new(["x-tenant", "region"]);
        let m =
            capture.from_headers(headers(&[("x-tenant", "acme"), ("region", "eu")]).into_iter());
        let tenant = m.project(&keys(&["x-tenant"]));
        assert_eq!(tenant.entries().len(), 1);
        assert_eq!(tenant.get("x-tenant"), [Box::from(&b"acme"[..])]);
        assert_eq!(m.project(&keys(&["region", "x-tenant"])), m);
        let empty = capture.from_headers(headers(&[("x-tenant", "")]).into_iter());
        let absent = capture.from_headers(headers(&[("region", "eu")]).into_iter());
        assert_ne!(
            empty.project(&keys(&["x-tenant"])),
            absent.project(&keys(&["x-tenant"])),
            "an empty value is a combination of its own, as in the Collector"
        );
        assert!(absent.project(&keys(&["x-tenant"])).is_none());
    }

    #[test]
    fn the_encoding_reads_back_and_refuses_damage() {
        let capture = Capture::new(["x-tenant", "region"]);
        let m = capture.from_headers(
            headers(&[("x-tenant", "acme"), ("region", "eu"), ("x-tenant", "")]).into_iter(),
        );
        let mut out = Vec::new();
        m.encode(&mut out).expect("fits");
        out.extend_from_slice(b"body");
        let (back, used) = Metadata::decode(&out).expect("decodes");
        assert_eq!(back, m);
        assert_eq!(&out[used..], b"body");
        let mut none = Vec::new();
        Metadata::none().encode(&mut none).expect("fits");
        assert_eq!(Metadata::decode(&none), Some((Metadata::none(), 2)));
        for cut in 0..used {
            assert!(Metadata::decode(&out[..cut]).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn admission_stops_at_the_limit_across_shards_and_keeps_what_it_admitted() {
        let capture = Capture::new(["x-tenant"]);
        let tenant =
            |t: &'static str| capture.from_headers(headers(&[("x-tenant", t)]).into_iter());
        let node = Arc::new(Admission::new(keys(&["x-tenant"]), 2));
        let traces = Signal::Traces;
        let (one, two) = (
            Admissions::new(&[(traces, node.clone())]),
            Admissions::new(&[(traces, node.clone())]),
        );
        assert_eq!(one.admit(traces, &tenant("a")), Ok(()));
        assert_eq!(two.admit(traces, &tenant("b")), Ok(()));
        assert_eq!(
            two.admit(traces, &tenant("a")),
            Ok(()),
            "admitted by the other shard"
        );
        assert_eq!(one.admit(traces, &tenant("c")), Err(TooManyCombinations));
        assert_eq!(two.admit(traces, &tenant("c")), Err(TooManyCombinations));
        assert_eq!(
            one.admit(Signal::Logs, &tenant("c")),
            Ok(()),
            "another signal's pipelines"
        );
        assert_eq!(one.admit(traces, &tenant("b")), Ok(()));
        assert_eq!(node.admitted(), 2);
        let unlimited =
            Admissions::new(&[(traces, Arc::new(Admission::new(keys(&["x-tenant"]), 0)))]);
        for t in ["a", "b", "c", "d"] {
            assert_eq!(unlimited.admit(traces, &tenant(t)), Ok(()));
        }
    }
}
