//! CPU sets and the kernel's CPU-list syntax (`0-3,8-11`).
//!
//! Every CPU file `tune` reads (`online`, `thread_siblings_list`, a node's `cpulist`,
//! `Cpus_allowed_list`, `cpuset.cpus.effective`) and the `--irq-cpus` argument use this syntax.
//! A set is a fixed 4096-bit map, so its size is bounded by construction: an id above
//! [`CPU_ID_MAX`] (the config's own limit) is refused when parsed, never stored.

use std::fmt;

/// The largest CPU id a set holds: the same bound as the config's `shards.cpus`.
pub const CPU_ID_MAX: u16 = 4095;

/// Entries (`N` or `A-B`) one list may hold; the kernel never writes more than one per CPU.
const LIST_ENTRIES_MAX: usize = CPU_ID_MAX as usize + 1;

const WORDS: usize = (CPU_ID_MAX as usize + 1) / 64;

/// A set of CPU ids, each at most [`CPU_ID_MAX`], iterated in ascending order.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CpuSet {
    // Boxed: 512 bytes inline would make every error and plan carrying a set that large.
    words: Box<[u64; WORDS]>,
}

/// Why a CPU list did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuListError {
    /// An entry is not a decimal number or `A-B` range (the text of the entry, cut to 32 bytes).
    NotANumber(String),
    /// A CPU id above [`CPU_ID_MAX`].
    IdTooLarge(u64),
    /// A range whose end is below its start.
    Reversed {
        /// The range's first id.
        first: u16,
        /// The range's last id.
        last: u16,
    },
    /// More than one entry per possible CPU.
    TooManyEntries,
}

impl fmt::Display for CpuListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuListError::NotANumber(entry) => {
                write!(f, "`{entry}` is not a CPU id or a range like `0-3`")
            }
            CpuListError::IdTooLarge(id) => {
                write!(
                    f,
                    "CPU id {id} is above the largest supported, {CPU_ID_MAX}"
                )
            }
            CpuListError::Reversed { first, last } => {
                write!(f, "range `{first}-{last}` ends before it starts")
            }
            CpuListError::TooManyEntries => {
                write!(f, "more than {LIST_ENTRIES_MAX} entries in one CPU list")
            }
        }
    }
}

impl std::error::Error for CpuListError {}

impl Default for CpuSet {
    fn default() -> Self {
        CpuSet::new()
    }
}

impl CpuSet {
    /// The empty set.
    pub fn new() -> Self {
        CpuSet {
            words: Box::new([0; WORDS]),
        }
    }

    /// Parses the kernel's list syntax: comma-separated ids and `A-B` ranges, surrounding
    /// whitespace (the file's newline) ignored; an empty list is the empty set.
    pub fn parse(text: &str) -> Result<CpuSet, CpuListError> {
        let mut set = CpuSet::new();
        let text = text.trim();
        if text.is_empty() {
            return Ok(set);
        }
        for (index, entry) in text.split(',').enumerate() {
            if index >= LIST_ENTRIES_MAX {
                return Err(CpuListError::TooManyEntries);
            }
            let entry = entry.trim();
            let (first, last) = match entry.split_once('-') {
                Some((first, last)) => (parse_id(first, entry)?, parse_id(last, entry)?),
                None => {
                    let id = parse_id(entry, entry)?;
                    (id, id)
                }
            };
            if last < first {
                return Err(CpuListError::Reversed { first, last });
            }
            for id in first..=last {
                set.insert(id);
            }
        }
        Ok(set)
    }

    /// Adds `id`; the type's bound is [`CPU_ID_MAX`], which every caller has checked.
    pub fn insert(&mut self, id: u16) {
        assert!(id <= CPU_ID_MAX, "CPU id {id} above CPU_ID_MAX");
        self.words[usize::from(id / 64)] |= 1 << (id % 64);
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: u16) -> bool {
        id <= CPU_ID_MAX && self.words[usize::from(id / 64)] & (1 << (id % 64)) != 0
    }

    /// How many CPUs the set holds.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set holds no CPU.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The lowest CPU id in the set.
    pub fn first(&self) -> Option<u16> {
        self.iter().next()
    }

    /// The CPUs in both sets.
    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        let mut out = self.clone();
        for (word, theirs) in out.words.iter_mut().zip(other.words.iter()) {
            *word &= theirs;
        }
        out
    }

    /// The CPUs in either set.
    pub fn union(&self, other: &CpuSet) -> CpuSet {
        let mut out = self.clone();
        for (word, theirs) in out.words.iter_mut().zip(other.words.iter()) {
            *word |= theirs;
        }
        out
    }

    /// The CPUs in `self` and not in `other`.
    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        let mut out = self.clone();
        for (word, theirs) in out.words.iter_mut().zip(other.words.iter()) {
            *word &= !theirs;
        }
        out
    }

    /// The ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..=CPU_ID_MAX).filter(move |&id| self.contains(id))
    }

    /// The set as a YAML flow list, `[0, 1, 16, 17]`: the form a profile's `cpus` and
    /// `irq_cpus` take, so the IRQ-affinity script can read it with a one-line parse.
    pub fn to_flow_list(&self) -> String {
        let ids: Vec<String> = self.iter().map(|id| id.to_string()).collect();
        format!("[{}]", ids.join(", "))
    }
}

impl FromIterator<u16> for CpuSet {
    fn from_iter<I: IntoIterator<Item = u16>>(ids: I) -> Self {
        let mut set = CpuSet::new();
        for id in ids {
            set.insert(id);
        }
        set
    }
}

/// The kernel's compact list syntax (`0-3,8-11`), the inverse of [`CpuSet::parse`]; `-` when
/// empty, so a comment never shows a blank.
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids = self.iter().peekable();
        if ids.peek().is_none() {
            return f.write_str("-");
        }
        let mut separator = "";
        while let Some(first) = ids.next() {
            let mut last = first;
            while ids.peek() == Some(&(last + 1)) {
                last += 1;
                ids.next();
            }
            if first == last {
                write!(f, "{separator}{first}")?;
            } else {
                write!(f, "{separator}{first}-{last}")?;
            }
            separator = ",";
        }
        Ok(())
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSet({self})")
    }
}

fn parse_id(text: &str, entry: &str) -> Result<u16, CpuListError> {
    let text = text.trim();
    // At most 20 digits reach u64::MAX; longer runs of digits are refused as not-a-number
    // rather than parsed, so a hostile file cannot make this loop long.
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CpuListError::NotANumber(entry.chars().take(32).collect()));
    }
    let id: u64 = text
        .parse()
        .map_err(|_| CpuListError::NotANumber(entry.chars().take(32).collect()))?;
    if id > u64::from(CPU_ID_MAX) {
        return Err(CpuListError::IdTooLarge(id));
    }
    Ok(id as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(set: &CpuSet) -> Vec<u16> {
        set.iter().collect()
    }

    #[test]
    fn parses_ids_ranges_and_the_trailing_newline() {
        let set = CpuSet::parse("0-3,8-11\n").unwrap();
        assert_eq!(ids(&set), vec![0, 1, 2, 3, 8, 9, 10, 11]);
        assert_eq!(ids(&CpuSet::parse("5").unwrap()), vec![5]);
        assert_eq!(ids(&CpuSet::parse(" 1 , 3-3 ").unwrap()), vec![1, 3]);
        assert!(CpuSet::parse("\n").unwrap().is_empty());
        assert_eq!(ids(&CpuSet::parse("4095").unwrap()), vec![4095]);
    }

    #[test]
    fn refuses_what_is_not_a_list() {
        assert_eq!(
            CpuSet::parse("0-x"),
            Err(CpuListError::NotANumber("0-x".into()))
        );
        assert_eq!(
            CpuSet::parse("1,,2"),
            Err(CpuListError::NotANumber("".into()))
        );
        assert_eq!(
            CpuSet::parse("-1"),
            Err(CpuListError::NotANumber("-1".into()))
        );
        assert_eq!(
            CpuSet::parse("0-1-2"),
            Err(CpuListError::NotANumber("0-1-2".into()))
        );
        assert_eq!(CpuSet::parse("4096"), Err(CpuListError::IdTooLarge(4096)));
        assert_eq!(
            CpuSet::parse("99999999999999999999999"),
            Err(CpuListError::NotANumber("99999999999999999999999".into()))
        );
        assert_eq!(
            CpuSet::parse("7-3"),
            Err(CpuListError::Reversed { first: 7, last: 3 })
        );
        let long = vec!["1"; LIST_ENTRIES_MAX + 1].join(",");
        assert_eq!(CpuSet::parse(&long), Err(CpuListError::TooManyEntries));
    }

    #[test]
    fn formats_as_the_kernel_and_as_a_flow_list() {
        let set = CpuSet::parse("0-3,8,10-11").unwrap();
        assert_eq!(set.to_string(), "0-3,8,10-11");
        assert_eq!(CpuSet::parse(&set.to_string()).unwrap(), set);
        assert_eq!(set.to_flow_list(), "[0, 1, 2, 3, 8, 10, 11]");
        assert_eq!(CpuSet::new().to_flow_list(), "[]");
        assert_eq!(CpuSet::new().to_string(), "-");
    }

    #[test]
    fn set_operations() {
        let a = CpuSet::parse("0-7").unwrap();
        let b = CpuSet::parse("4-11").unwrap();
        assert_eq!(a.intersection(&b).to_string(), "4-7");
        assert_eq!(a.union(&b).to_string(), "0-11");
        assert_eq!(a.difference(&b).to_string(), "0-3");
        assert_eq!(a.len(), 8);
        assert_eq!(b.first(), Some(4));
    }
}
