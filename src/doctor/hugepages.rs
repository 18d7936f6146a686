//! Transparent huge pages: tailgate prefers `madvise` (or `never`).
//!
//! With `always`, the kernel backs any large enough anonymous mapping with 2 MiB pages: the
//! allocator's arenas, which hold buffered span bytes, are only partly touched, so resident
//! memory runs ahead of the bytes the memory budget counts, and khugepaged spends CPU collapsing
//! pages behind the shards. With `defrag` at `always` a page fault on a shard may also stall in
//! direct compaction, a latency spike on every request that shard holds. `madvise` leaves huge
//! pages to the mappings that ask for them.

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
    let why = "with `always`, huge pages back the allocator's partly used arenas, so resident \
               memory runs ahead of the memory budget, khugepaged spends CPU behind the \
               shards, and with defrag `always` a page fault may stall in compaction";
    let enabled = match tree.read(ENABLED) {
        Ok(text) => text,
        Err(ReadError::Missing { .. }) => {
            return Finding::ok(CHECK, "not built into this kernel", why);
        }
        Err(err) => {
            return Finding::flag(
                CHECK,
                Level::Warn,
                err.to_string(),
                why,
                "run the doctor where /sys is mounted and readable",
            )
        }
    };
    let Some(mode) = selected(&enabled) else {
        return Finding::flag(
            CHECK,
            Level::Warn,
            format!("{ENABLED} holds `{enabled}`, with no selected mode"),
            why,
            "run the doctor where /sys is mounted and readable",
        );
    };
    let defrag_text = tree.read(DEFRAG).ok();
    let defrag = defrag_text.as_deref().and_then(selected);
    let found = match defrag {
        Some(defrag) => format!("enabled {mode}, defrag {defrag}"),
        None => format!("enabled {mode}"),
    };
    if mode == "always" || (mode != "never" && defrag == Some("always")) {
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
