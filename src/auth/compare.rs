//! Comparing secrets without a timing side channel.
//!
//! A token or password compared with `==` returns at the first differing byte, so the time a
//! refusal takes tells an attacker how many leading bytes were right, and a token can be
//! guessed a byte at a time. [`equal`] takes the same time for every pair of inputs of the
//! same length (`subtle`'s constant-time equality); only the lengths, which are not secret
//! enough to matter and which every constant-time comparison in use reveals (Go's
//! `subtle.ConstantTimeCompare`, which the Collector uses, included), may show.

use subtle::ConstantTimeEq;

/// Whether `a` and `b` are the same bytes, in time independent of where they differ.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `value` is any of `candidates`: every candidate is compared, whichever matches, so
/// the time does not say which one did.
pub fn any_equal<'a>(value: &[u8], candidates: impl IntoIterator<Item = &'a [u8]>) -> bool {
    let mut found = subtle::Choice::from(0);
    for candidate in candidates {
        found |= value.ct_eq(candidate);
    }
    found.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_bytes_are_equal_and_others_are_not() {
        assert!(equal(b"Bearer abc", b"Bearer abc"));
        assert!(!equal(b"Bearer abc", b"Bearer abd"));
        assert!(!equal(b"Bearer abc", b"xearer abc"));
        assert!(!equal(b"Bearer abc", b"Bearer ab"));
        assert!(!equal(b"", b"x"));
        assert!(equal(b"", b""));
    }

    #[test]
    fn any_equal_finds_a_match_anywhere_in_the_list() {
        let list: [&[u8]; 3] = [b"one", b"two", b"three"];
        assert!(any_equal(b"three", list));
        assert!(any_equal(b"one", list));
        assert!(!any_equal(b"four", list));
        assert!(!any_equal(b"four", []));
    }

    /// The comparison must not stop at the first differing byte. Timing is noisy in a unit
    /// test, so this checks the property that makes it so: `subtle` folds every byte into the
    /// result (a difference in the first byte and one in the last give the same answer through
    /// the same code path), and equal-length inputs never short-circuit on content.
    #[test]
    fn differences_anywhere_give_the_same_answer() {
        let secret = [7u8; 64];
        for at in 0..secret.len() {
            let mut guess = secret;
            guess[at] ^= 1;
            assert!(!equal(&secret, &guess), "difference at byte {at}");
        }
    }
}
