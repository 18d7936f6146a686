//! The trace-id hasher: per-process random keys, so a client cannot choose ids that collide in
//! the buffer's maps, and a folded multiply over the id's 64-bit words, which is all a
//! uniformly random 128-bit id needs.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Per-process random keys for hashing trace ids, so a client cannot choose ids that collide.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdHash {
    k0: u64,
    k1: u64,
}

impl IdHash {
    /// Fresh keys, drawn from the process's random hash state.
    pub(super) fn random() -> Self {
        let state = RandomState::new();
        IdHash {
            k0: state.hash_one(0x7461_696c_6761_7465u64),
            k1: state.hash_one(0x6964_6861_7368_0001u64) | 1,
        }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { keys: *self, h: 0 }
    }
}

/// A folded multiply over 64-bit words: `(h ^ word ^ k0) * k1` in 128 bits, high half xor low.
#[derive(Debug, Clone)]
pub(super) struct IdHasher {
    keys: IdHash,
    h: u64,
}

impl IdHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        let m = u128::from(self.h ^ word ^ self.keys.k0) * u128::from(self.keys.k1);
        self.h = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }

    #[inline]
    fn write_u128(&mut self, v: u128) {
        self.mix(v as u64);
        self.mix((v >> 64) as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.h
    }
}
