//! The protobuf wire format, read in place.
//!
//! A [`Reader`] walks the fields of one message held in a byte slice. It knows nothing of OTLP:
//! it decodes tags, varints, fixed-width values and length-delimited payloads, and skips what it
//! is told to skip. Every read is bounds-checked against the slice, so hostile input yields a
//! [`WireError`] with the absolute offset (the reader carries the offset of its slice within the
//! whole request), never a panic or an out-of-bounds read. Nothing here allocates.

use std::fmt;

use super::error::{WireError, WireErrorKind};
use super::NESTING_DEPTH_MAX;

/// The six wire types of protobuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// 0: int32, int64, uint32, uint64, sint32, sint64, bool, enum.
    Varint,
    /// 1: fixed64, sfixed64, double.
    I64,
    /// 2: length-delimited: strings, bytes, messages, packed repeated fields.
    Len,
    /// 3: start of a group (deprecated; skipped).
    StartGroup,
    /// 4: end of a group (deprecated; skipped).
    EndGroup,
    /// 5: fixed32, sfixed32, float.
    I32,
}

impl WireType {
    fn from_bits(bits: u8) -> Option<WireType> {
        Some(match bits {
            0 => WireType::Varint,
            1 => WireType::I64,
            2 => WireType::Len,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::I32,
            _ => return None,
        })
    }
}

impl fmt::Display for WireType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireType::Varint => "VARINT",
            WireType::I64 => "I64",
            WireType::Len => "LEN",
            WireType::StartGroup => "SGROUP",
            WireType::EndGroup => "EGROUP",
            WireType::I32 => "I32",
        })
    }
}

/// One field's value as it sits on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Varint(u64),
    I64(u64),
    /// A length-delimited payload and the absolute offset of its first byte.
    Len(&'a [u8], usize),
    I32(u32),
    /// A group, already skipped; only unknown fields may be groups.
    Group,
}

/// One decoded field: its number, its value, and its encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    pub number: u32,
    pub value: Value<'a>,
    /// The whole field as encoded: tag, length prefix and payload.
    pub raw: &'a [u8],
}

/// A cursor that skips groups: the one structure whose end is found only by reading through
/// it. Unknown fields may be groups (a deprecated encoding that decoders must still skip).
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the request.
    base: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn err(&self, kind: WireErrorKind, at: usize) -> WireError {
        WireError::new(kind, self.base + at)
    }

    /// Reads a varint: at most 10 bytes, and the 10th may only carry the 64th bit.
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        read_varint(self.buf, &mut self.pos).map_err(|kind| self.err(kind, start))
    }

    #[inline]
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let start = self.pos;
        match self.buf.get(start..start + N) {
            Some(bytes) => {
                self.pos = start + N;
                let mut out = [0u8; N];
                out.copy_from_slice(bytes);
                Ok(out)
            }
            None => Err(self.err(WireErrorKind::Truncated, start)),
        }
    }

    /// Reads a length prefix and the payload it announces.
    #[inline]
    fn len_delimited(&mut self) -> Result<(&'a [u8], usize), WireError> {
        let start = self.pos;
        let len = self.varint()?;
        let available = self.buf.len() - self.pos;
        if len > available as u64 {
            return Err(self.err(WireErrorKind::LengthOverrun { len, available }, start));
        }
        let payload_start = self.pos;
        self.pos += len as usize;
        Ok((
            &self.buf[payload_start..self.pos],
            self.base + payload_start,
        ))
    }

    /// Reads a tag: field number and wire type.
    #[inline]
    fn tag(&mut self) -> Result<(u32, WireType), WireError> {
        let start = self.pos;
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(self.err(WireErrorKind::InvalidFieldNumber(number), start));
        }
        let bits = (tag & 7) as u8;
        match WireType::from_bits(bits) {
            Some(wire_type) => Ok((number as u32, wire_type)),
            None => Err(self.err(WireErrorKind::InvalidWireType(bits), start)),
        }
    }

    /// Skips a group that starts at `pos` of `buf` (just after its start-group tag) and returns
    /// the position after its end-group marker.
    pub(crate) fn skip_group_at(
        buf: &'a [u8],
        pos: usize,
        base: usize,
        number: u32,
        depth: usize,
    ) -> Result<usize, WireError> {
        let mut reader = Reader { buf, pos, base };
        reader.skip_group(number, depth)?;
        Ok(reader.pos)
    }

    /// Skips the fields of a group up to its matching end-group marker.
    fn skip_group(&mut self, number: u32, depth: usize) -> Result<(), WireError> {
        if depth > NESTING_DEPTH_MAX {
            return Err(self.err(
                WireErrorKind::TooDeep {
                    limit: NESTING_DEPTH_MAX,
                },
                self.pos,
            ));
        }
        loop {
            if self.pos >= self.buf.len() {
                return Err(self.err(WireErrorKind::Truncated, self.pos));
            }
            let start = self.pos;
            let (inner, wire_type) = self.tag()?;
            match wire_type {
                WireType::EndGroup if inner == number => return Ok(()),
                WireType::EndGroup => {
                    return Err(self.err(WireErrorKind::UnexpectedEndGroup { field: inner }, start))
                }
                WireType::StartGroup => self.skip_group(inner, depth + 1)?,
                WireType::Varint => {
                    self.varint()?;
                }
                WireType::I64 => {
                    self.fixed::<8>()?;
                }
                WireType::I32 => {
                    self.fixed::<4>()?;
                }
                WireType::Len => {
                    self.len_delimited()?;
                }
            }
        }
    }
}

/// Reads the varint at `*pos` and moves past it. On error `*pos` is left where the varint
/// starts, and the error kind is returned for the caller to place.
#[inline(always)]
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireErrorKind> {
    match buf.get(*pos..*pos + 2) {
        Some(&[low, _]) if low < 0x80 => {
            *pos += 1;
            Ok(u64::from(low))
        }
        Some(&[low, high]) if high < 0x80 => {
            *pos += 2;
            Ok(u64::from(low & 0x7f) | u64::from(high) << 7)
        }
        _ => read_varint_long(buf, pos),
    }
}

/// The general case of [`read_varint`]: three bytes or more, or the end of the input near.
fn read_varint_long(buf: &[u8], pos: &mut usize) -> Result<u64, WireErrorKind> {
    let start = *pos;
    let mut value = 0u64;
    for i in 0..10 {
        let Some(&byte) = buf.get(start + i) else {
            return Err(WireErrorKind::Truncated);
        };
        if i == 9 && byte > 1 {
            return Err(if byte & 0x80 != 0 {
                WireErrorKind::VarintTooLong
            } else {
                WireErrorKind::VarintOverflow
            });
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            *pos = start + i + 1;
            return Ok(value);
        }
    }
    unreachable!("the 10th byte either ends the varint or is rejected")
}

/// Number of bytes `value` takes as a varint.
#[inline]
pub(crate) fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 still takes one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `value` as a varint.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The tag byte of a length-delimited field with a number below 16.
#[inline]
pub(crate) const fn len_tag(number: u32) -> u8 {
    ((number << 3) | 2) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<u64, WireErrorKind> {
        read_varint(bytes, &mut 0)
    }

    #[test]
    fn varints_round_trip_and_report_their_length() {
        for value in [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value), "{value}");
            assert_eq!(read(&buf), Ok(value));
        }
    }

    #[test]
    fn varint_limits_are_those_of_the_spec() {
        let mut ten = vec![0xff; 9];
        ten.push(0x01);
        assert_eq!(read(&ten), Ok(u64::MAX));
        let mut overflow = vec![0xff; 9];
        overflow.push(0x02);
        assert_eq!(read(&overflow).unwrap_err(), WireErrorKind::VarintOverflow);
        let mut eleven = vec![0xff; 10];
        eleven.push(0x00);
        assert_eq!(read(&eleven).unwrap_err(), WireErrorKind::VarintTooLong);
        assert_eq!(read(&[0x80, 0x80]).unwrap_err(), WireErrorKind::Truncated);
        assert_eq!(read(&[]).unwrap_err(), WireErrorKind::Truncated);
        // Non-minimal encodings are valid protobuf.
        assert_eq!(read(&[0x81, 0x00]), Ok(1));
    }

    #[test]
    fn groups_are_skipped_to_their_matching_end() {
        // Group 7 holds varint field 1 = 5 and a nested group 8; then field 2 follows.
        let bytes = [0x08, 0x05, 0x43, 0x44, 0x3c, 0x10, 0x01];
        assert_eq!(Reader::skip_group_at(&bytes, 0, 100, 7, 1), Ok(5));
        let unbalanced = [0x08, 0x05, 0x44];
        let err = Reader::skip_group_at(&unbalanced, 0, 100, 7, 1).unwrap_err();
        assert_eq!(err.kind, WireErrorKind::UnexpectedEndGroup { field: 8 });
        assert_eq!(err.offset, 102);
        let unterminated = [0x08, 0x05];
        let err = Reader::skip_group_at(&unterminated, 0, 0, 7, 1).unwrap_err();
        assert_eq!(err.kind, WireErrorKind::Truncated);
    }
}
