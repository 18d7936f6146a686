//! The files the doctor reads, under a root directory: `/` on a live machine, a fake tree in
//! tests.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::tuning::CpuSet;

/// The most bytes read from one file: every file the doctor reads is a line or a short table
/// (the longest, `/proc/net/softnet_stat`, is one 100-byte line per CPU), so this bounds a
/// hostile or mistaken tree without cutting a real one.
const READ_BYTES_MAX: u64 = 1 << 20;

/// A directory the doctor reads `/proc` and `/sys` files under.
#[derive(Debug, Clone)]
pub struct Tree {
    root: PathBuf,
}

/// Why a file under the tree could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The file is not there (the kernel lacks the feature, or the tree lacks the file).
    Missing {
        /// The path as the machine names it (without the tree's root).
        path: String,
    },
    /// The file is there but reading it failed.
    Unreadable {
        /// The path as the machine names it.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The file was read but does not hold what its kernel interface documents.
    Malformed {
        /// The path as the machine names it.
        path: String,
        /// What was there, trimmed.
        text: String,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Missing { path } => write!(f, "{path} is not there"),
            ReadError::Unreadable { path, reason } => write!(f, "cannot read {path}: {reason}"),
            ReadError::Malformed { path, text } => {
                write!(
                    f,
                    "{path} holds `{text}`, which is not what the kernel writes there"
                )
            }
        }
    }
}

impl Tree {
    /// A tree rooted at `root`.
    pub fn new(root: &Path) -> Tree {
        Tree {
            root: root.to_path_buf(),
        }
    }

    /// The text of `path` (absolute, as the machine names it: `/proc/sys/...`), trimmed.
    pub fn read(&self, path: &str) -> Result<String, ReadError> {
        let full = self.root.join(path.trim_start_matches('/'));
        let file = std::fs::File::open(&full).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => ReadError::Missing {
                path: path.to_string(),
            },
            _ => ReadError::Unreadable {
                path: path.to_string(),
                reason: err.to_string(),
            },
        })?;
        let mut text = String::new();
        file.take(READ_BYTES_MAX)
            .read_to_string(&mut text)
            .map_err(|err| ReadError::Unreadable {
                path: path.to_string(),
                reason: err.to_string(),
            })?;
        Ok(text.trim().to_string())
    }

    /// The names of the entries of directory `path`, sorted; empty when it cannot be listed.
    pub fn list(&self, path: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root.join(path.trim_start_matches('/'))) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    /// The text of `path` parsed as one unsigned integer.
    pub fn read_u64(&self, path: &str) -> Result<u64, ReadError> {
        let text = self.read(path)?;
        text.parse().map_err(|_| ReadError::Malformed {
            path: path.to_string(),
            text,
        })
    }

    /// The text of `path` parsed as whitespace-separated unsigned integers (`tcp_rmem` holds
    /// three, `ip_local_port_range` two).
    pub fn read_u64s<const N: usize>(&self, path: &str) -> Result<[u64; N], ReadError> {
        let text = self.read(path)?;
        parse_u64s(&text).ok_or(ReadError::Malformed {
            path: path.to_string(),
            text,
        })
    }
}

/// Exactly `N` whitespace-separated unsigned integers.
fn parse_u64s<const N: usize>(text: &str) -> Option<[u64; N]> {
    let mut out = [0u64; N];
    let mut words = text.split_whitespace();
    for slot in &mut out {
        *slot = words.next()?.parse().ok()?;
    }
    words.next().is_none().then_some(out)
}

/// A kernel CPU list (`0-3,8,10-11`, as in `cpulist` files): the ids in increasing order, or
/// `None` when it is not one (the parser is `tune`'s, [`CpuSet::parse`]). An empty text is an
/// empty list (a memory-only NUMA node has one).
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    CpuSet::parse(text)
        .ok()
        .map(|set| set.iter().map(usize::from).collect())
}

/// CPU ids written compactly as a kernel CPU list (`0-3,8`); empty for none.
pub(crate) fn format_cpu_list(cpus: &[usize]) -> String {
    if cpus.is_empty() {
        return String::new();
    }
    cpus.iter()
        .filter_map(|&cpu| u16::try_from(cpu).ok())
        .collect::<CpuSet>()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a"), None);
        assert_eq!(parse_cpu_list("0-"), None);
    }

    #[test]
    fn cpu_lists_naming_cpus_past_the_bound_are_refused() {
        assert_eq!(parse_cpu_list("0-18446744073709551614"), None);
        assert_eq!(parse_cpu_list("0-4095").map(|c| c.len()), Some(4096));
        assert_eq!(parse_cpu_list("0-4095,9000"), None);
    }

    #[test]
    fn cpu_lists_format_compactly() {
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[4]), "4");
        assert_eq!(format_cpu_list(&[]), "");
    }

    #[test]
    fn integer_tuples_need_exactly_their_count() {
        assert_eq!(
            parse_u64s::<3>("4096\t131072\t6291456"),
            Some([4096, 131072, 6291456])
        );
        assert_eq!(parse_u64s::<2>("32768 60999"), Some([32768, 60999]));
        assert_eq!(parse_u64s::<2>("32768"), None);
        assert_eq!(parse_u64s::<2>("1 2 3"), None);
        assert_eq!(parse_u64s::<2>("1 x"), None);
    }
}
