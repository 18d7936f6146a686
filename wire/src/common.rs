//! Views of the messages every signal shares: `Resource`, `InstrumentationScope`, `KeyValue` and
//! `AnyValue`.
//!
//! A view is a borrowed slice of a validated request plus the offset where it starts. Nothing is
//! decoded until asked for, and nothing is allocated: attribute iterators walk the message's
//! fields on each call, and values come back as typed views over the original bytes. Strings
//! are handed out as bytes, as they were received; [`std::str::from_utf8`] is the caller's.

use super::fields::{Fields, Repeated};
use super::proto::Value;

/// The value of one attribute, as a typed view.
#[derive(Debug, Clone)]
pub enum AnyValueView<'a> {
    /// No value set (an empty `AnyValue`, or none at all).
    Empty,
    /// A `string_value`'s UTF-8 bytes, unchecked.
    String(&'a [u8]),
    /// A `bool_value`.
    Bool(bool),
    /// An `int_value`.
    Int(i64),
    /// A `double_value`.
    Double(f64),
    /// A `bytes_value`.
    Bytes(&'a [u8]),
    /// An `array_value`, its elements decoded lazily.
    Array(ArrayView<'a>),
    /// A `kvlist_value`, its pairs decoded lazily.
    KvList(KeyValues<'a>),
}

impl<'a> AnyValueView<'a> {
    /// Decodes an `AnyValue` message; when several value fields are present the last one wins,
    /// as protobuf's rule for `oneof` says.
    pub(crate) fn decode(bytes: &'a [u8], offset: usize) -> Self {
        let mut value = AnyValueView::Empty;
        for field in Fields::new(bytes, offset) {
            value = match (field.number, field.value) {
                (1, Value::Len(s, _)) => AnyValueView::String(s),
                (2, Value::Varint(v)) => AnyValueView::Bool(v != 0),
                (3, Value::Varint(v)) => AnyValueView::Int(v as i64),
                (4, Value::I64(v)) => AnyValueView::Double(f64::from_bits(v)),
                (5, Value::Len(b, at)) => AnyValueView::Array(ArrayView {
                    bytes: b,
                    offset: at,
                }),
                (6, Value::Len(b, at)) => AnyValueView::KvList(KeyValues::new(b, at, 1)),
                (7, Value::Len(b, _)) => AnyValueView::Bytes(b),
                _ => continue,
            };
        }
        value
    }
}

/// An `ArrayValue`: a list of values.
#[derive(Debug, Clone)]
pub struct ArrayView<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> ArrayView<'a> {
    /// The array's elements in order.
    pub fn iter(&self) -> impl Iterator<Item = AnyValueView<'a>> + 'a {
        Repeated::new(self.bytes, self.offset, 1).map(|(b, at)| AnyValueView::decode(b, at))
    }
}

/// One `KeyValue`: an attribute.
#[derive(Debug, Clone)]
pub struct KeyValueView<'a> {
    /// The attribute's name, as received (UTF-8, unchecked).
    pub key: &'a [u8],
    /// The attribute's value.
    pub value: AnyValueView<'a>,
}

impl<'a> KeyValueView<'a> {
    fn decode(bytes: &'a [u8], offset: usize) -> Self {
        let mut key: &[u8] = &[];
        let mut value = AnyValueView::Empty;
        for field in Fields::new(bytes, offset) {
            match (field.number, field.value) {
                (1, Value::Len(k, _)) => key = k,
                (2, Value::Len(v, at)) => value = AnyValueView::decode(v, at),
                _ => {}
            }
        }
        KeyValueView { key, value }
    }
}

/// A lazy iterator over a repeated `KeyValue` field (attributes, or a `KeyValueList`).
#[derive(Debug, Clone)]
pub struct KeyValues<'a> {
    inner: Repeated<'a>,
}

impl<'a> KeyValues<'a> {
    pub(crate) fn new(bytes: &'a [u8], offset: usize, number: u32) -> Self {
        KeyValues {
            inner: Repeated::new(bytes, offset, number),
        }
    }

    /// The value of the first attribute named `key`, if any.
    pub fn get(mut self, key: &[u8]) -> Option<AnyValueView<'a>> {
        self.find(|kv| kv.key == key).map(|kv| kv.value)
    }
}

impl<'a> Iterator for KeyValues<'a> {
    type Item = KeyValueView<'a>;

    fn next(&mut self) -> Option<KeyValueView<'a>> {
        self.inner
            .next()
            .map(|(bytes, at)| KeyValueView::decode(bytes, at))
    }
}

/// Reads a varint field's last value from a validated message, or 0.
pub(crate) fn last_varint(bytes: &[u8], offset: usize, number: u32) -> u64 {
    Fields::new(bytes, offset)
        .filter(|f| f.number == number)
        .fold(0, |acc, f| match f.value {
            Value::Varint(v) => v,
            _ => acc,
        })
}

/// Reads a length-delimited field's last value from a validated message, or an empty slice.
pub(crate) fn last_bytes(bytes: &[u8], offset: usize, number: u32) -> &[u8] {
    Repeated::new(bytes, offset, number)
        .last()
        .map_or(&[][..], |(b, _)| b)
}

/// A `Resource`: the entity that produced the telemetry.
#[derive(Debug, Clone, Copy)]
pub struct ResourceView<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> ResourceView<'a> {
    pub(crate) fn new(bytes: &'a [u8], offset: usize) -> Self {
        ResourceView { bytes, offset }
    }

    /// The encoded `Resource` message.
    pub fn raw(&self) -> &'a [u8] {
        self.bytes
    }

    /// The resource's attributes, decoded lazily.
    pub fn attributes(&self) -> KeyValues<'a> {
        KeyValues::new(self.bytes, self.offset, 1)
    }

    /// How many attributes the sender dropped from the resource.
    pub fn dropped_attributes_count(&self) -> u32 {
        last_varint(self.bytes, self.offset, 2) as u32
    }
}

/// An `InstrumentationScope`: the library that produced the telemetry.
#[derive(Debug, Clone, Copy)]
pub struct ScopeView<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> ScopeView<'a> {
    pub(crate) fn new(bytes: &'a [u8], offset: usize) -> Self {
        ScopeView { bytes, offset }
    }

    /// The encoded `InstrumentationScope` message.
    pub fn raw(&self) -> &'a [u8] {
        self.bytes
    }

    /// The scope's `name`.
    pub fn name(&self) -> &'a [u8] {
        last_bytes(self.bytes, self.offset, 1)
    }

    /// The scope's `version`.
    pub fn version(&self) -> &'a [u8] {
        last_bytes(self.bytes, self.offset, 2)
    }

    /// The scope's attributes, decoded lazily.
    pub fn attributes(&self) -> KeyValues<'a> {
        KeyValues::new(self.bytes, self.offset, 3)
    }

    /// How many attributes the sender dropped from the scope.
    pub fn dropped_attributes_count(&self) -> u32 {
        last_varint(self.bytes, self.offset, 4) as u32
    }
}
