//! The attribute actions of contrib's `attraction` package over one set of attributes (a
//! resource's, a span's, a log record's, a data point's), with its semantics over a pdata map:
//! a key read is its first occurrence; a value set replaces the first occurrence or is
//! appended; a delete removes the first occurrence (the last attribute moved into its place).
//! The `resource` and `attributes` processors share them.

use std::borrow::Cow;

use regex::bytes::Regex;
use tailgate_wire::encode::{
    bytes_field_len as field_len, put_bytes_field, put_fixed64_field, put_varint, put_varint_field,
};
use tailgate_wire::{AnyValueView, RawKeyValue};

use super::pdata;
use crate::config::{ActionKind, AttributeAction, ConfigValue, ConvertTo, ValueSource};
use crate::metadata::Metadata;

/// One attribute being edited: its key, its value's `AnyValue` payload, and its message as
/// received while no action has changed it.
pub(crate) struct Attr<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) value: Cow<'a, [u8]>,
    pub(crate) received: Option<&'a [u8]>,
}

impl<'a> Attr<'a> {
    /// An attribute as received.
    pub(crate) fn received(kv: RawKeyValue<'a>) -> Attr<'a> {
        Attr {
            key: kv.key,
            value: Cow::Borrowed(kv.value),
            received: Some(kv.message),
        }
    }
}

/// One action, compiled.
struct Action {
    key: Vec<u8>,
    kind: Kind,
    /// `default_value`, encoded: what `insert`, `update` and `upsert` set when their source
    /// gives nothing.
    default: Option<Vec<u8>>,
}

impl Action {
    /// The client metadata key its `from_context` reads.
    fn context_key(&self) -> Option<&str> {
        match &self.kind {
            Kind::Insert(Source::FromContext(k))
            | Kind::Update(Source::FromContext(k))
            | Kind::Upsert(Source::FromContext(k)) => Some(k),
            _ => None,
        }
    }
}

enum Kind {
    Insert(Source),
    Update(Source),
    Upsert(Source),
    Delete(Option<KeyPattern>),
    Hash(Option<KeyPattern>),
    Extract(Regex, Vec<Vec<u8>>),
    Convert(ConvertTo),
}

enum Source {
    /// An encoded `AnyValue` payload.
    Value(Vec<u8>),
    FromAttribute(Vec<u8>),
    FromContext(String),
}

/// A `pattern` of `delete` or `hash`, matched against every key of every item: with the literal
/// prefix a pattern anchored at the start requires (`^http\.request\.header\.` requires
/// `http.request.header.`), a key without it is passed over without running the expression.
struct KeyPattern {
    regex: Regex,
    prefix: Vec<u8>,
}

impl KeyPattern {
    fn new(pattern: &str) -> KeyPattern {
        KeyPattern {
            regex: crate::ottl::compile_go_regex(pattern)
                .expect("patterns compile: checked with the config"),
            prefix: required_prefix(pattern),
        }
    }

    /// Whether `key` matches, read as Go reads it (invalid UTF-8 as U+FFFD).
    fn is_match(&self, key: &[u8]) -> bool {
        key.starts_with(&self.prefix) && self.regex.is_match(&pdata::go_regex_text(key))
    }
}

/// The literal text every match of `pattern` starts with, read conservatively: after a leading
/// `^`, the letters, digits and `_-/:@` and backslash-escaped punctuation up to the first
/// other character, less the last one when a quantifier may leave it out. Empty (no prefix
/// asked of a key) for anything else: no leading `^`, an alternation anywhere, flags.
fn required_prefix(pattern: &str) -> Vec<u8> {
    let Some(rest) = pattern.strip_prefix('^') else {
        return Vec::new();
    };
    if pattern.contains('|') {
        return Vec::new();
    }
    let mut prefix = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(&c) = chars.peek() {
        let literal = match c {
            c if c.is_ascii_alphanumeric() || "_-/:@".contains(c) => c,
            '\\' => {
                let mut ahead = chars.clone();
                ahead.next();
                match ahead.next() {
                    Some(e) if e.is_ascii_punctuation() => {
                        chars.next();
                        e
                    }
                    _ => break,
                }
            }
            _ => break,
        };
        chars.next();
        prefix.push(literal as u8);
    }
    // `ab?`, `ab*`, `ab{0,1}`: the last letter may be absent.
    if matches!(chars.peek(), Some('?' | '*' | '{')) {
        prefix.pop();
    }
    prefix
}

/// A processor's actions, compiled, in the order written.
pub(crate) struct Actions {
    actions: Vec<Action>,
    /// When every action acts only on an attribute already there (`update`, `delete` and
    /// `hash` of a key, `extract`, `convert`): those keys. Attributes holding none of them are
    /// left as they are without being read into a list.
    keys_needed: Option<Vec<Vec<u8>>>,
}

impl Actions {
    /// `actions`, their patterns compiled when the configuration was checked.
    pub(crate) fn new(actions: &[AttributeAction]) -> Actions {
        let compile = |p: &str| {
            crate::ottl::compile_go_regex(p).expect("patterns compile: checked with the config")
        };
        let actions: Vec<Action> = actions
            .iter()
            .map(|a| {
                let source = |s: &ValueSource| match s {
                    ValueSource::Value(v) => Source::Value(encode_config_value(v)),
                    ValueSource::FromAttribute(k) => Source::FromAttribute(k.as_bytes().to_vec()),
                    ValueSource::FromContext(k) => Source::FromContext(k.clone()),
                };
                let kind = match &a.kind {
                    ActionKind::Insert(s) => Kind::Insert(source(s)),
                    ActionKind::Update(s) => Kind::Update(source(s)),
                    ActionKind::Upsert(s) => Kind::Upsert(source(s)),
                    ActionKind::Delete { pattern } => {
                        Kind::Delete(pattern.as_deref().map(KeyPattern::new))
                    }
                    ActionKind::Hash { pattern } => {
                        Kind::Hash(pattern.as_deref().map(KeyPattern::new))
                    }
                    ActionKind::Extract { pattern } => {
                        let regex = compile(pattern);
                        let names = regex
                            .capture_names()
                            .skip(1)
                            .map(|n| n.unwrap_or_default().as_bytes().to_vec())
                            .collect();
                        Kind::Extract(regex, names)
                    }
                    ActionKind::Convert(to) => Kind::Convert(*to),
                };
                Action {
                    key: a.key.as_bytes().to_vec(),
                    kind,
                    default: a.default.as_ref().map(encode_config_value),
                }
            })
            .collect();
        let keys_needed = actions
            .iter()
            .map(|a| match &a.kind {
                Kind::Update(_)
                | Kind::Delete(None)
                | Kind::Hash(None)
                | Kind::Extract(..)
                | Kind::Convert(_) => Some(a.key.clone()),
                _ => None,
            })
            .collect();
        Actions {
            actions,
            keys_needed,
        }
    }

    /// Whether the actions may change `attributes`: false when each acts only on a key they
    /// lack (read without decoding the other values).
    pub(crate) fn may_change(&self, attributes: tailgate_wire::KeyValues<'_>) -> bool {
        self.keys_needed
            .as_ref()
            .is_none_or(|keys| keys.iter().any(|key| attributes.clone().get(key).is_some()))
    }

    /// The client metadata value each action reads (`from_context`), encoded: once a request.
    pub(crate) fn context(&self, metadata: &Metadata) -> Vec<Option<Vec<u8>>> {
        self.actions
            .iter()
            .map(|a| a.context_key().and_then(|k| context_value(metadata, k)))
            .collect()
    }

    /// Applies every action in turn to `attrs`, with `context` what [`Actions::context`] gave
    /// for the request; whether any changed them.
    pub(crate) fn apply<'a>(
        &'a self,
        context: &'a [Option<Vec<u8>>],
        attrs: &mut Vec<Attr<'a>>,
    ) -> bool {
        let mut changed = false;
        for (action, context) in self.actions.iter().zip(context) {
            changed |= act(action, context.as_deref(), attrs);
        }
        changed
    }
}

/// Appends `attrs` to `out` as fields `number` (`KeyValue` messages): those no action changed
/// as received, the others encoded.
pub(crate) fn encode(attrs: &[Attr<'_>], number: u32, out: &mut Vec<u8>) {
    for attr in attrs {
        match attr.received {
            Some(message) => put_bytes_field(out, number, message),
            None => {
                let (key, value) = (attr.key, &attr.value[..]);
                let len = field_len(key.len()) + field_len(value.len());
                put_varint(out, u64::from(number) << 3 | 2);
                put_varint(out, len as u64);
                put_bytes_field(out, 1, key);
                put_bytes_field(out, 2, value);
            }
        }
    }
}

/// Applies `action` to `attrs`, with `context` the request's metadata value its
/// `from_context` reads (encoded); whether it changed them.
fn act<'a>(action: &'a Action, context: Option<&'a [u8]>, attrs: &mut Vec<Attr<'a>>) -> bool {
    let key = &action.key[..];
    let source_value = |source: &'a Source, attrs: &[Attr<'a>]| {
        source_value(source, attrs, context)
            .or_else(|| action.default.as_deref().map(Cow::Borrowed))
    };
    match &action.kind {
        Kind::Insert(source) => {
            let Some(value) = source_value(source, attrs) else {
                return false;
            };
            if find(attrs, key).is_some() {
                return false;
            }
            attrs.push(new_attr(key, value));
            true
        }
        Kind::Update(source) => {
            let Some(value) = source_value(source, attrs) else {
                return false;
            };
            let Some(at) = find(attrs, key) else {
                return false;
            };
            set(&mut attrs[at], value);
            true
        }
        Kind::Upsert(source) => {
            let Some(value) = source_value(source, attrs) else {
                return false;
            };
            put(attrs, key, value);
            true
        }
        Kind::Delete(pattern) => {
            let mut changed = remove(attrs, key);
            if let Some(regex) = pattern {
                // pdata's `RemoveIf`: every match, the others kept in order.
                let before = attrs.len();
                attrs.retain(|a| !regex.is_match(a.key));
                changed |= attrs.len() != before;
            }
            changed
        }
        Kind::Hash(pattern) => {
            let mut changed = find(attrs, key).is_some_and(|at| hash(&mut attrs[at]));
            if let Some(regex) = pattern {
                // Every attribute whose key matches, each once.
                for attr in attrs.iter_mut().filter(|a| regex.is_match(a.key)) {
                    changed |= hash(attr);
                }
            }
            changed
        }
        Kind::Extract(regex, names) => {
            let Some(at) = find(attrs, key) else {
                return false;
            };
            let AnyValueView::String(text) = AnyValueView::parse(&attrs[at].value) else {
                return false;
            };
            let Some(captures) = regex.captures(text) else {
                return false;
            };
            let values: Vec<Vec<u8>> = (1..=names.len())
                .map(|i| encode_str(captures.get(i).map_or(&[][..], |m| m.as_bytes())))
                .collect();
            for (name, value) in names.iter().zip(values) {
                put(attrs, name, Cow::Owned(value));
            }
            true
        }
        Kind::Convert(to) => {
            let Some(at) = find(attrs, key) else {
                return false;
            };
            match convert(AnyValueView::parse(&attrs[at].value), *to) {
                Some(value) => {
                    set(&mut attrs[at], Cow::Owned(value));
                    true
                }
                None => false,
            }
        }
    }
}

/// The first attribute named `key`, as pdata's `Map.Get` finds it.
fn find(attrs: &[Attr<'_>], key: &[u8]) -> Option<usize> {
    attrs.iter().position(|a| a.key == key)
}

fn new_attr<'a>(key: &'a [u8], value: Cow<'a, [u8]>) -> Attr<'a> {
    Attr {
        key,
        value,
        received: None,
    }
}

fn set<'a>(attr: &mut Attr<'a>, value: Cow<'a, [u8]>) {
    attr.value = value;
    attr.received = None;
}

/// pdata's `Map.Put*`: the first occurrence set, or a new attribute appended.
fn put<'a>(attrs: &mut Vec<Attr<'a>>, key: &'a [u8], value: Cow<'a, [u8]>) {
    match find(attrs, key) {
        Some(at) => set(&mut attrs[at], value),
        None => attrs.push(new_attr(key, value)),
    }
}

/// pdata's `Map.Remove`: the first occurrence, the last attribute moved into its place.
fn remove(attrs: &mut Vec<Attr<'_>>, key: &[u8]) -> bool {
    match find(attrs, key) {
        Some(at) => {
            attrs.swap_remove(at);
            true
        }
        None => false,
    }
}

/// contrib's `sha2Hasher`: the hex SHA-256 of a string's bytes (the empty string's too), a
/// bool's byte (1 or 0), an int's or a double's 8 little-endian bytes; any other value becomes
/// the empty string.
fn hash(attr: &mut Attr<'_>) -> bool {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut scalar = [0u8; 8];
    let input: Option<&[u8]> = match AnyValueView::parse(&attr.value) {
        AnyValueView::String(s) => Some(s),
        AnyValueView::Bool(b) => {
            scalar[0] = u8::from(b);
            Some(&scalar[..1])
        }
        AnyValueView::Int(i) => {
            scalar = i.to_le_bytes();
            Some(&scalar[..])
        }
        AnyValueView::Double(d) => {
            scalar = d.to_bits().to_le_bytes();
            Some(&scalar[..])
        }
        _ => None,
    };
    let mut hex = [0u8; 64];
    let hashed = match input {
        Some(input) => {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input);
            for (i, b) in digest.as_ref().iter().enumerate() {
                hex[2 * i] = HEX[usize::from(b >> 4)];
                hex[2 * i + 1] = HEX[usize::from(b & 15)];
            }
            &hex[..]
        }
        None => &[][..],
    };
    let value = encode_str(hashed);
    set(attr, Cow::Owned(value));
    true
}

/// contrib's `convertValue`: the new value, or `None` where it leaves the value as it is.
fn convert(value: AnyValueView<'_>, to: ConvertTo) -> Option<Vec<u8>> {
    match (to, value) {
        (ConvertTo::String, AnyValueView::String(_)) => None,
        (ConvertTo::String, value) => pdata::scalar_string(value).map(|s| encode_str(s.as_bytes())),
        (ConvertTo::Int, AnyValueView::Int(_)) => None,
        (ConvertTo::Int, AnyValueView::Double(d)) => Some(encode_int(go_float_to_int(d))),
        (ConvertTo::Int, AnyValueView::Bool(b)) => Some(encode_int(i64::from(b))),
        (ConvertTo::Int, AnyValueView::String(s)) => std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .map(encode_int),
        (ConvertTo::Double, AnyValueView::Int(i)) => Some(encode_double(i as f64)),
        (ConvertTo::Double, AnyValueView::Double(_)) => None,
        (ConvertTo::Double, AnyValueView::Bool(b)) => Some(encode_double(f64::from(u8::from(b)))),
        (ConvertTo::Double, AnyValueView::String(s)) => std::str::from_utf8(s)
            .ok()
            .and_then(go_parse_float)
            .map(encode_double),
        _ => None,
    }
}

/// Go's `int64(f)` on amd64: the integer part, and the most negative integer where there is
/// none that fits (NaN, infinities, out of range).
fn go_float_to_int(f: f64) -> i64 {
    // 2^63: the first double past the largest i64; -2^63 is the smallest i64 itself.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if (-LIMIT..LIMIT).contains(&f) {
        f as i64
    } else {
        i64::MIN
    }
}

/// Go's `strconv.ParseFloat(s, 64)` where it succeeds, for what Rust's parser reads alike:
/// decimal forms, `inf` and `infinity` in any case with or without a sign, `nan` in any case
/// without one. A finite form out of
/// range fails in Go (its error beside ±Inf), and here. Hexadecimal floats and underscores,
/// which Go reads in some forms, are read as failures: the value is left as it is.
fn go_parse_float(s: &str) -> Option<f64> {
    let f: f64 = s.parse().ok()?;
    let literal = s.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if f.is_infinite() && literal != "inf" && literal != "infinity" {
        return None;
    }
    // Go reads `nan` unsigned only, as its `math.NaN()`, whose bits differ from Rust's NaN.
    if f.is_nan() {
        return (literal.len() == s.len()).then_some(GO_NAN);
    }
    Some(f)
}

/// Go's `math.NaN()`: the bits its `ParseFloat` gives `NaN`.
const GO_NAN: f64 = f64::from_bits(0x7FF8_0000_0000_0001);

/// The value `source` gives, as an `AnyValue` payload; `None` when it gives none.
fn source_value<'a>(
    source: &'a Source,
    attrs: &[Attr<'a>],
    context: Option<&'a [u8]>,
) -> Option<Cow<'a, [u8]>> {
    match source {
        Source::Value(v) => Some(Cow::Borrowed(v)),
        Source::FromAttribute(k) => find(attrs, k).map(|at| attrs[at].value.clone()),
        Source::FromContext(_) => context.map(Cow::Borrowed),
    }
}

/// The client metadata value of `key`, several joined with `;`, encoded; `None` without one.
fn context_value(metadata: &Metadata, key: &str) -> Option<Vec<u8>> {
    let values = metadata.get(key);
    (!values.is_empty()).then(|| encode_str(&values.join(&b';')))
}

fn encode_config_value(value: &ConfigValue) -> Vec<u8> {
    match value {
        ConfigValue::Str(s) => encode_str(s.as_bytes()),
        ConfigValue::Int(i) => encode_int(*i),
        ConfigValue::Double(d) => encode_double(*d),
        ConfigValue::Bool(b) => {
            let mut out = Vec::new();
            put_varint_field(&mut out, 2, u64::from(*b));
            out
        }
    }
}

/// `AnyValue.string_value`, written even when empty (a oneof member is present).
pub(crate) fn encode_str(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    put_bytes_field(&mut out, 1, s);
    out
}

fn encode_int(i: i64) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint_field(&mut out, 3, i as u64);
    out
}

fn encode_double(d: f64) -> Vec<u8> {
    let mut out = Vec::new();
    put_fixed64_field(&mut out, 4, d.to_bits());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prefix a pattern requires never changes an answer: every key the expression
    /// matches has it.
    #[test]
    fn a_required_prefix_only_passes_over_keys_that_cannot_match() {
        for (pattern, prefix) in [
            (r"^http\.request\.header\.", "http.request.header."),
            (r"^tmp", "tmp"),
            (r"^tm?p", "t"),
            (r"^ab*", "a"),
            (r"^a{0,1}b", ""),
            (r"^a|^b", ""),
            (r"tmp", ""),
            (r"^(?i)tmp", ""),
            (r"^pii\.\w+", "pii."),
            (r"^x+y", "x"),
        ] {
            assert_eq!(required_prefix(pattern), prefix.as_bytes(), "{pattern}");
            let with = KeyPattern::new(pattern);
            let regex = crate::ottl::compile_go_regex(pattern).unwrap();
            for key in [
                "http.request.header.x",
                "http.request",
                "tmp.a",
                "tp",
                "tmp",
                "abbb",
                "b",
                "ab",
                "pii.name",
                "pii.",
                "xxy",
                "TMP",
                "",
            ] {
                assert_eq!(
                    with.is_match(key.as_bytes()),
                    regex.is_match(key.as_bytes()),
                    "{pattern} on {key}"
                );
            }
        }
    }

    #[test]
    fn numbers_convert_as_go_converts_them() {
        assert_eq!(go_parse_float("1e400"), None);
        assert_eq!(go_parse_float("-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(
            go_parse_float("NaN").map(f64::to_bits),
            Some(0x7FF8_0000_0000_0001)
        );
        assert_eq!(go_parse_float("-nan"), None);
        assert_eq!(go_float_to_int(3.7), 3);
        assert_eq!(go_float_to_int(f64::NAN), i64::MIN);
    }
}
