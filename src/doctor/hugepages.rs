//! Transparent huge pages: tailgate prefers `madvise` (`never` is fine too).
//!
//! The gateway's allocator, mimalloc, already asks for huge pages (`MADV_HUGEPAGE`) on its
//! segments, where they pay off: large, long-lived and densely used by the shard that owns them.
//! `madvise` gives it that and nothing more. `always` extends huge pages to every other
//! anonymous mapping (glommio's I/O memory, thread stacks, the TLS and compression libraries'
//! buffers): a first touch there zeroes 2 MiB instead of 4 KiB on the shard's thread, sparsely
//! used mappings grow resident memory the memory budget does not count, and khugepaged spends
//! CPU collapsing pages behind the shards. `defrag` is reported but not judged: under `madvise`
//! it governs only the mappings that asked.

use super::tree::{ReadError, Tree};
use super::{Finding, Level};

/// The transparent huge pages check.
pub const CHECK: &str = "transparent_hugepage";

const ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
const DEFRAG: &str = "/sys/kernel/mm/transparent_hugepage/defrag";

/// The selected word of a sysfs choice list: `always [madvise] never` → `madvise`.
fn selected(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'))
}

/// The THP finding: `enabled` and `defrag` under `tree`.
pub fn check(tree: &Tree) -> Finding {
    let why = "the allocator asks for huge pages where they pay off; `always` puts every other \
               mapping on 2 MiB pages too, so a first touch zeroes 2 MiB on a shard's thread, \
               resident memory grows past what the memory budget counts, and khugepaged \
               spends CPU behind the shards";
    let enabled = match tree.read(ENABLED) {
        Ok(text) => text,
        Err(ReadError::Missing { .. }) => {
            return Finding::ok(CHECK, "not built into this kernel", why);
        }
        Err(err) => return Finding::unreadable(CHECK, err.to_string(), why),
    };
    let Some(mode) = selected(&enabled) else {
        return Finding::unreadable(
            CHECK,
            format!("{ENABLED} holds `{enabled}`, with no selected mode"),
            why,
        );
    };
    let defrag_text = tree.read(DEFRAG).ok();
    let defrag = defrag_text.as_deref().and_then(selected);
    let found = match defrag {
        Some(defrag) => format!("enabled {mode}, defrag {defrag}"),
        None => format!("enabled {mode}"),
    };
    // `defrag` alone is not judged: under `madvise` it applies only to the mappings that ask.
    if mode == "always" {
        Finding::flag(
            CHECK,
            Level::Warn,
            found,
            why,
            "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled and echo madvise > \
             /sys/kernel/mm/transparent_hugepage/defrag (persist with the kernel command \
             line transparent_hugepage=madvise)",
        )
    } else {
        Finding::ok(CHECK, found, why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selected_mode_is_the_bracketed_word() {
        assert_eq!(selected("always [madvise] never"), Some("madvise"));
        assert_eq!(selected("[always] madvise never"), Some("always"));
        assert_eq!(
            selected("always defer defer+madvise [madvise] never"),
            Some("madvise")
        );
        assert_eq!(selected("always madvise never"), None);
    }
}
