//! Iteration over the fields of messages that have already been validated.
//!
//! Views are only ever built over bytes that [`super::schema::validate`] accepted, so reading
//! them again cannot fail. These iterators still use the checked [`Reader`]; should a bug ever
//! hand them unvalidated bytes they stop at the bad field (and assert in debug builds) rather
//! than read out of bounds.

use super::proto::{Field, Reader, Value};

/// The fields of one validated message, in wire order.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    reader: Reader<'a>,
}

impl<'a> Fields<'a> {
    #[inline]
    pub(crate) fn new(bytes: &'a [u8], offset: usize) -> Self {
        Fields {
            reader: Reader::new(bytes, offset),
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    #[inline]
    fn next(&mut self) -> Option<Field<'a>> {
        match self.reader.next_field(0) {
            Ok(field) => field,
            Err(err) => {
                debug_assert!(false, "view over unvalidated bytes: {err}");
                None
            }
        }
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

    #[inline]
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
