//! Views of the messages every signal shares: `Resource`, `InstrumentationScope`, `KeyValue` and
//! `AnyValue`.
//!
//! A view is a borrowed slice of a validated request plus the offset where it starts. Nothing is
//! decoded until asked for, and nothing is allocated: attribute iterators walk the message's
//! fields on each call, and values come back as typed views over the original bytes. Strings
//! are handed out as bytes, as they were received; [`std::str::from_utf8`] is the caller's.

use super::fields::{Fields, Repeated};
use super::proto::{read_varint, Value};

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

    /// The value of the first attribute named `key`, if any. Only that attribute's value is
    /// decoded: the others' keys are compared and their values skipped.
    pub fn get(self, key: &[u8]) -> Option<AnyValueView<'a>> {
        for (bytes, offset) in self.inner {
            // The layout encoders write: the key, then the value filling the rest. Then the key
            // is the key (no later occurrence overrides it), read without a field loop.
            if let Some((name, value)) = key_then_value(bytes) {
                if name != key {
                    continue;
                }
                return Some(value.map_or(AnyValueView::Empty, |(at, len)| {
                    AnyValueView::decode(&bytes[at..at + len], offset + at)
                }));
            }
            let (mut name, mut value): (&[u8], _) = (&[], None);
            for field in Fields::new(bytes, offset) {
                match (field.number, field.value) {
                    (1, Value::Len(k, _)) => name = k,
                    (2, Value::Len(v, at)) => value = Some((v, at)),
                    _ => {}
                }
            }
            if name == key {
                return Some(
                    value.map_or(AnyValueView::Empty, |(v, at)| AnyValueView::decode(v, at)),
                );
            }
        }
        None
    }
}

/// One attribute as received: its encoded `KeyValue` message (without tag and length), its key,
/// and its value's encoded `AnyValue` payload (empty without one).
#[derive(Debug, Clone, Copy)]
pub struct RawKeyValue<'a> {
    /// The `KeyValue` message.
    pub message: &'a [u8],
    /// The key (the last, should the field repeat).
    pub key: &'a [u8],
    /// The value's `AnyValue` payload (the last, should the field repeat).
    pub value: &'a [u8],
}

impl<'a> KeyValues<'a> {
    /// Each attribute as received, in order.
    pub fn raw(self) -> impl Iterator<Item = RawKeyValue<'a>> + 'a {
        self.inner.map(|(message, offset)| {
            let mut out = RawKeyValue {
                message,
                key: &[],
                value: &[],
            };
            for field in Fields::new(message, offset) {
                match (field.number, field.value) {
                    (1, Value::Len(k, _)) => out.key = k,
                    (2, Value::Len(v, _)) => out.value = v,
                    _ => {}
                }
            }
            out
        })
    }
}

impl<'a> AnyValueView<'a> {
    /// The value an `AnyValue` payload holds: one from [`RawKeyValue::value`], or one this
    /// process encoded (both valid).
    pub fn parse(payload: &'a [u8]) -> AnyValueView<'a> {
        AnyValueView::decode(payload, 0)
    }
}

/// Where a field's payload is in its message: offset and length.
type Payload = (usize, usize);

/// A `KeyValue`'s key, and where its value's payload is (offset, length; none without one),
/// when the message is laid out as encoders write it: field 1 with a one-byte length, then at
/// most field 2 reaching the end. `None` for any other layout.
#[inline]
fn key_then_value(bytes: &[u8]) -> Option<(&[u8], Option<Payload>)> {
    let (&[0x0A, n], rest) = bytes.split_first_chunk::<2>()? else {
        return None;
    };
    let n = usize::from(n);
    if n >= 0x80 || rest.len() < n {
        return None;
    }
    let (name, after) = rest.split_at(n);
    if after.is_empty() {
        return Some((name, None));
    }
    if after[0] != 0x12 {
        return None;
    }
    let mut pos = 1;
    let len = usize::try_from(read_varint(after, &mut pos).ok()?).ok()?;
    (pos.checked_add(len)? == after.len()).then_some((name, Some((2 + n + pos, len))))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-delimited field `number` holding `payload`.
    fn len_field(number: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![number << 3 | 2];
        let mut n = payload.len();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(payload);
        out
    }

    /// An `AnyValue` holding the string `s`.
    fn string(s: &str) -> Vec<u8> {
        len_field(1, s.as_bytes())
    }

    /// Attributes (field 1 of the outer message) from each `KeyValue`'s fields, as written.
    fn attributes(kvs: &[Vec<Vec<u8>>]) -> Vec<u8> {
        kvs.iter()
            .flat_map(|fields| len_field(1, &fields.concat()))
            .collect()
    }

    fn get<'a>(bytes: &'a [u8], key: &str) -> Option<AnyValueView<'a>> {
        KeyValues::new(bytes, 0, 1).get(key.as_bytes())
    }

    #[test]
    fn get_reads_the_first_attribute_named_key_in_any_layout() {
        let long = "k".repeat(200);
        let bytes = attributes(&[
            // Key, then value: the encoders' layout.
            vec![len_field(1, b"a"), len_field(2, &string("first"))],
            // The same key again: the first wins.
            vec![len_field(1, b"a"), len_field(2, &string("second"))],
            // Value before key.
            vec![len_field(2, &string("reversed")), len_field(1, b"b")],
            // A key written twice in one message: the last occurrence is the key.
            vec![
                len_field(1, b"x"),
                len_field(2, &string("twice")),
                len_field(1, b"c"),
            ],
            // No value.
            vec![len_field(1, b"d")],
            // A key longer than a one-byte length.
            vec![len_field(1, long.as_bytes()), len_field(2, &string("long"))],
        ]);
        let text = |v: Option<AnyValueView<'_>>| match v {
            Some(AnyValueView::String(s)) => Some(String::from_utf8(s.to_vec()).unwrap()),
            Some(AnyValueView::Empty) => Some(String::new()),
            Some(other) => panic!("{other:?}"),
            None => None,
        };
        assert_eq!(text(get(&bytes, "a")).as_deref(), Some("first"));
        assert_eq!(text(get(&bytes, "b")).as_deref(), Some("reversed"));
        assert_eq!(text(get(&bytes, "c")).as_deref(), Some("twice"));
        assert_eq!(text(get(&bytes, "x")), None);
        assert_eq!(text(get(&bytes, "d")).as_deref(), Some(""));
        assert_eq!(text(get(&bytes, &long)).as_deref(), Some("long"));
        assert_eq!(text(get(&bytes, "missing")), None);
    }
}
