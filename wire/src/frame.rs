//! Framing export requests from pieces of other requests.
//!
//! The writer never re-encodes a field. Its input is a sequence of [`Piece`]s — an item's encoded
//! message with the encoded headers of the resource group and scope group it belongs in — and
//! its output is one export request in which consecutive pieces with equal headers share one
//! resource group and one scope group. The bytes it writes are the pieces' bytes, copied, plus
//! the tags and length prefixes of the groups and items around them.
//!
//! Length prefixes come before what they measure, so framing takes two passes over the pieces:
//! the first sums the size of every group, the second writes. Group sizes are kept in the
//! [`Framer`]'s scratch vectors, which are reused from one request to the next, so framing
//! allocates nothing once they have grown to the largest request seen.

use super::proto::{len_tag, put_varint, varint_len};

/// An item and the headers of the groups it belongs in.
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    /// The resource group's header: every field but its scope groups, as encoded.
    pub resource: &'a [u8],
    /// The scope group's header: every field but its items, as encoded.
    pub scope: &'a [u8],
    /// The item's encoded message, without tag or length prefix.
    pub item: &'a [u8],
}

/// Headers are compared by address first: pieces cut from one request, or interned in one
/// arena, share their header slices, so the byte comparison is rarely reached.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

/// Size of a length-delimited field with a one-byte tag around `len` bytes.
#[inline]
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Frames export requests; holds the scratch space the two passes share.
#[derive(Debug, Default)]
pub struct Framer {
    resource_lens: Vec<usize>,
    scope_lens: Vec<usize>,
}

impl Framer {
    /// A framer with empty buffers; they grow to the largest request framed and are kept.
    pub fn new() -> Self {
        Framer::default()
    }

    /// Appends one export request holding `pieces` to `out` and returns its length.
    ///
    /// The request is of whichever signal the pieces are: traces, metrics and logs share the
    /// envelope's field numbers. No pieces make an empty request (zero bytes), which is valid.
    pub fn frame<'a, I>(&mut self, pieces: I, out: &mut Vec<u8>) -> usize
    where
        I: IntoIterator<Item = Piece<'a>>,
        I::IntoIter: Clone,
    {
        let pieces = pieces.into_iter();
        let total = self.measure(pieces.clone());
        out.reserve(total);
        let before = out.len();

        let (mut resource_i, mut scope_i) = (0, 0);
        let mut prev: Option<Piece<'a>> = None;
        for piece in pieces {
            let new_resource = prev.is_none_or(|p| !same(p.resource, piece.resource));
            if new_resource {
                out.push(len_tag(1));
                put_varint(out, self.resource_lens[resource_i] as u64);
                out.extend_from_slice(piece.resource);
                resource_i += 1;
            }
            if new_resource || prev.is_some_and(|p| !same(p.scope, piece.scope)) {
                out.push(len_tag(2));
                put_varint(out, self.scope_lens[scope_i] as u64);
                out.extend_from_slice(piece.scope);
                scope_i += 1;
            }
            out.push(len_tag(2));
            put_varint(out, piece.item.len() as u64);
            out.extend_from_slice(piece.item);
            prev = Some(piece);
        }
        debug_assert_eq!(out.len() - before, total);
        total
    }

    /// First pass: the payload length of every resource group and scope group, in order, and
    /// the request's total length.
    fn measure<'a>(&mut self, pieces: impl Iterator<Item = Piece<'a>>) -> usize {
        self.resource_lens.clear();
        self.scope_lens.clear();
        let mut total = 0;
        let mut resource_len = 0;
        let mut scope_len = 0;
        let mut prev: Option<Piece<'a>> = None;
        for piece in pieces {
            let new_resource = prev.is_none_or(|p| !same(p.resource, piece.resource));
            let new_scope = new_resource || prev.is_some_and(|p| !same(p.scope, piece.scope));
            if new_scope && prev.is_some() {
                self.scope_lens.push(scope_len);
                resource_len += field_len(scope_len);
            }
            if new_resource && prev.is_some() {
                self.resource_lens.push(resource_len);
                total += field_len(resource_len);
            }
            if new_resource {
                resource_len = piece.resource.len();
            }
            if new_scope {
                scope_len = piece.scope.len();
            }
            scope_len += field_len(piece.item.len());
            prev = Some(piece);
        }
        if prev.is_some() {
            self.scope_lens.push(scope_len);
            resource_len += field_len(scope_len);
            self.resource_lens.push(resource_len);
            total += field_len(resource_len);
        }
        total
    }
}
