//! Iteration over the fields of messages that have already been validated.
//!
//! Views are only ever built over bytes that [`super::schema::validate`] accepted, so reading
//! them again cannot fail. These iterators still check every bound; should a bug ever hand them
//! unvalidated bytes they stop at the bad field (and assert in debug builds) rather than read out
//! of bounds or panic.

use super::proto::{read_varint, Field, Reader, Value};

/// The fields of one validated message, in wire order.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the request.
    base: usize,
}

impl<'a> Fields<'a> {
    #[inline]
    pub(crate) fn new(bytes: &'a [u8], offset: usize) -> Self {
        Fields {
            buf: bytes,
            pos: 0,
            base: offset,
        }
    }

    /// Reads the field at the cursor; `None` at the end or on bytes that do not parse.
    #[inline(always)]
    fn read(&mut self) -> Option<Field<'a>> {
        let buf = self.buf;
        let start = self.pos;
        let mut pos = start;
        let tag = read_varint(buf, &mut pos).ok()?;
        let value = match tag & 7 {
            0 => Value::Varint(read_varint(buf, &mut pos).ok()?),
            1 => {
                let bytes = buf.get(pos..pos + 8)?;
                pos += 8;
                Value::I64(u64::from_le_bytes(bytes.try_into().ok()?))
            }
            5 => {
                let bytes = buf.get(pos..pos + 4)?;
                pos += 4;
                Value::I32(u32::from_le_bytes(bytes.try_into().ok()?))
            }
            2 => {
                let len = usize::try_from(read_varint(buf, &mut pos).ok()?).ok()?;
                let payload = buf.get(pos..pos.checked_add(len)?)?;
                let at = self.base + pos;
                pos += len;
                Value::Len(payload, at)
            }
            3 => {
                pos = Reader::skip_group_at(buf, pos, self.base, (tag >> 3) as u32, 1).ok()?;
                Value::Group
            }
            _ => return None,
        };
        self.pos = pos;
        Some(Field {
            number: (tag >> 3) as u32,
            value,
            raw: &buf[start..pos],
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    #[inline]
    fn next(&mut self) -> Option<Field<'a>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let field = self.read();
        if field.is_none() {
            debug_assert!(
                false,
                "view over unvalidated bytes at {}",
                self.base + self.pos
            );
            self.pos = self.buf.len();
        }
        field
    }
}

/// The payloads of every occurrence of one length-delimited field.
#[derive(Debug, Clone)]
pub(crate) struct Repeated<'a> {
    fields: Fields<'a>,
    number: u32,
}

impl<'a> Repeated<'a> {
    #[inline]
    pub(crate) fn new(bytes: &'a [u8], offset: usize, number: u32) -> Self {
        Repeated {
            fields: Fields::new(bytes, offset),
            number,
        }
    }
}

impl<'a> Iterator for Repeated<'a> {
    /// The payload and its absolute offset.
    type Item = (&'a [u8], usize);

    // Always inlined: called out of line, it hands its item back through memory, which the
    // caller reads as one 16-byte load over two 8-byte stores; that load cannot be forwarded
    // and waits for the store buffer to drain, behind the trace buffer's span copies (8 % of a
    // tail-sampling shard's time stalled there; see docs/BENCHMARKS.md).
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        for field in self.fields.by_ref() {
            if field.number == self.number {
                if let Value::Len(payload, at) = field.value {
                    return Some((payload, at));
                }
            }
        }
        None
    }
}

/// Reads `N` little-endian bytes at `*pos`, moving past them.
#[inline(always)]
pub(crate) fn fixed_at<const N: usize>(bytes: &[u8], pos: &mut usize) -> Option<[u8; N]> {
    let value = bytes.get(*pos..*pos + N)?.try_into().ok()?;
    *pos += N;
    Some(value)
}
