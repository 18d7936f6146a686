//! pdata's renderings of a value as a string, which the Collector's processors match and
//! convert against: `Value.AsString` (its doubles in ES6 form, its maps and lists as JSON).

use tailgate_wire::AnyValueView;

/// pdata's `Value.AsString` for what `convert` turns into a string: a bool, an int, a double
/// (as pdata writes it), bytes (standard base64), an empty value (the empty string). A map or
/// a list, which pdata writes as JSON, is left as it is.
pub(crate) fn scalar_string(value: AnyValueView<'_>) -> Option<String> {
    use base64::Engine as _;
    Some(match value {
        AnyValueView::Bool(b) => b.to_string(),
        AnyValueView::Int(i) => i.to_string(),
        AnyValueView::Double(d) => float(d),
        AnyValueView::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
        AnyValueView::Empty => String::new(),
        _ => return None,
    })
}

/// pdata's `float64AsString`: `NaN`, `Infinity`, `-Infinity`, else ES6 number formatting (the
/// shortest digits, fixed notation but below 1e-6 and from 1e21, an exponent without zero
/// padding after a `+` or `-`).
pub(crate) fn float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{f:e}");
        let (mantissa, exponent) = text.split_once('e').expect("an exponent");
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        format!("{mantissa}e{sign}{digits}")
    } else {
        format!("{f}")
    }
}

/// pdata's `Value.AsString`, whole: a string as it is, a scalar as [`scalar_string`] writes
/// it, a map or a list as Go's `encoding/json` writes its raw form (keys sorted, the last of a
/// repeated key winning, no HTML escaping), or the empty string where that fails (a NaN or an
/// infinity inside).
pub(crate) fn as_string(value: AnyValueView<'_>) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    match value {
        AnyValueView::String(s) => Cow::Borrowed(s),
        AnyValueView::Array(_) | AnyValueView::KvList(_) => {
            let mut out = Vec::new();
            match json(value, &mut out) {
                Ok(()) => Cow::Owned(out),
                Err(Unsupported) => Cow::Borrowed(&[]),
            }
        }
        scalar => Cow::Owned(scalar_string(scalar).unwrap_or_default().into_bytes()),
    }
}

/// A value `encoding/json` refuses: a NaN or an infinite double.
struct Unsupported;

/// Appends `value`'s raw form as Go's `encoding/json` encodes it.
fn json(value: AnyValueView<'_>, out: &mut Vec<u8>) -> Result<(), Unsupported> {
    use base64::Engine as _;
    match value {
        AnyValueView::Empty => out.extend_from_slice(b"null"),
        AnyValueView::String(s) => json_string(s, out),
        AnyValueView::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        AnyValueView::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        AnyValueView::Double(d) if !d.is_finite() => return Err(Unsupported),
        AnyValueView::Double(d) => out.extend_from_slice(float(d).as_bytes()),
        // pdata's raw form of empty bytes is a nil slice, which Go writes as `null`.
        AnyValueView::Bytes([]) => out.extend_from_slice(b"null"),
        AnyValueView::Bytes(b) => {
            let text = base64::engine::general_purpose::STANDARD.encode(b);
            json_string(text.as_bytes(), out);
        }
        AnyValueView::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json(item, out)?;
            }
            out.push(b']');
        }
        AnyValueView::KvList(pairs) => {
            // A Go map: one entry a key, the last value written winning, keys in byte order.
            // Sorted stably by key, the last of each run of equal keys is the one kept.
            let mut entries: Vec<(&[u8], AnyValueView<'_>)> =
                pairs.map(|kv| (kv.key, kv.value)).collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let mut kept = 0;
            for i in 0..entries.len() {
                let last_of_key = entries.get(i + 1).is_none_or(|next| next.0 != entries[i].0);
                if last_of_key {
                    entries.swap(kept, i);
                    kept += 1;
                }
            }
            entries.truncate(kept);
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_string(key, out);
                out.push(b':');
                json(value, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// A string as `encoding/json` writes it without HTML escaping: `"` and `\` escaped, control
/// characters as `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX`, U+2028 and U+2029 escaped, and each
/// invalid UTF-8 byte written as `\ufffd`.
fn json_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                }
                '\u{2028}' => out.extend_from_slice(b"\\u2028"),
                '\u{2029}' => out.extend_from_slice(b"\\u2029"),
                c => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

/// `bytes` as Go's regular expressions read a string: each byte of invalid UTF-8 as U+FFFD (so
/// `.` matches it). Valid UTF-8, the common case, is borrowed.
pub(crate) fn go_regex_text(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if std::str::from_utf8(bytes).is_ok() {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        for _ in chunk.invalid() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_read_as_pdata_writes_them() {
        for (f, text) in [
            (0.25, "0.25"),
            (100.0, "100"),
            (-2.5e-7, "-2.5e-7"),
            (1.5e21, "1.5e+21"),
            (1e-6, "0.000001"),
            (0.0, "0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(float(f), text, "{f}");
        }
    }

    /// A map is written with its keys sorted, the last of a repeated key winning; empty bytes
    /// as `null`; a NaN anywhere inside makes the whole string empty.
    #[test]
    fn maps_and_lists_read_as_go_json_writes_them() {
        use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
        use prost::Message;
        let kv = |key: &str, value: Value| KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        };
        let text = |pairs: Vec<KeyValue>| {
            let value = AnyValue {
                value: Some(Value::KvlistValue(
                    opentelemetry_proto::tonic::common::v1::KeyValueList { values: pairs },
                )),
            }
            .encode_to_vec();
            String::from_utf8(as_string(AnyValueView::parse(&value)).into_owned()).unwrap()
        };
        assert_eq!(
            text(vec![
                kv("b", Value::IntValue(1)),
                kv("a", Value::StringValue("x\u{2028}<\"".into())),
                kv("b", Value::IntValue(2)),
                kv("c", Value::BytesValue(Vec::new())),
                kv("d", Value::BytesValue(vec![1])),
            ]),
            r#"{"a":"x\u2028<\"","b":2,"c":null,"d":"AQ=="}"#
        );
        assert_eq!(text(vec![kv("n", Value::DoubleValue(f64::NAN))]), "");
        // Many keys: sorted once, not compared pairwise.
        let many: Vec<KeyValue> = (0..50_000)
            .map(|i| kv(&format!("k{i}"), Value::IntValue(i)))
            .collect();
        assert!(text(many).starts_with(r#"{"k0":0,"k1":1,"k10":10,"#));
    }

    #[test]
    fn invalid_utf8_reads_as_go_reads_it() {
        assert_eq!(&go_regex_text(b"caf\xe9!")[..], "caf\u{fffd}!".as_bytes());
        assert!(matches!(
            go_regex_text(b"ok"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
