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

/// pdata's `float64AsString`: ES6 number formatting (the shortest digits, fixed notation but
/// below 1e-6 and from 1e21, an exponent without zero padding after a `+` or `-`).
pub(crate) fn float(f: f64) -> String {
    if f.is_nan() {
        return "json: unsupported value: NaN".into();
    }
    if f.is_infinite() {
        return format!(
            "json: unsupported value: {}Inf",
            if f > 0.0 { "+" } else { "-" }
        );
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
            let mut entries: Vec<(&[u8], AnyValueView<'_>)> = Vec::new();
            for kv in pairs {
                match entries.iter_mut().find(|(k, _)| *k == kv.key) {
                    Some(entry) => entry.1 = kv.value,
                    None => entries.push((kv.key, kv.value)),
                }
            }
            entries.sort_by(|a, b| a.0.cmp(b.0));
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
