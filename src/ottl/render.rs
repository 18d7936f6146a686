//! The text `IsMatch` matches its target as: the Collector's `StringLikeGetter` (contrib
//! `pkg/ottl/expression.go`) over the value a path yields.
//!
//! - nil: no text, so no match.
//! - A string: itself. Go's regexp reads each byte of invalid UTF-8 as U+FFFD; so does this
//!   (the Rust regex crate matches only valid UTF-8 text).
//! - Bytes: lowercase hex (`hex.EncodeToString`).
//! - An int, a float, a bool, a map or a slice: `json.Marshal` of the value (a map or a slice as
//!   pdata's `AsRaw` gives it), where `json` is `github.com/goccy/go-json`, not Go's
//!   `encoding/json`, and the two differ: floats in `strconv`'s shortest form, exponent notation
//!   below 1e-6 and from 1e21 with at least two exponent digits (`1e-07`, `1e+21`); map keys
//!   sorted by their encoded form (quote and escapes included) after the last of duplicate keys
//!   won; strings with `"`, `\`, `\n`, `\r`, `\t` escaped by a backslash, other control bytes and
//!   `<`, `>`, `&` as `\u00XX`, U+2028 and U+2029 escaped, each invalid byte as `\ufffd`; bytes
//!   inside as standard base64, an empty bytes value (pdata's nil slice) as `null`.
//!
//! A NaN or infinite float has no JSON form: `json.Marshal` fails, and so does `IsMatch` — the
//! one evaluation error of tailgate's OTTL subset ([`EvalError`]).
//!
//! Strings that are valid UTF-8 are matched in place; everything else is written into a
//! scratch buffer the caller keeps from one evaluation to the next, so rendering allocates
//! only while that buffer grows, and for maps (whose encoded keys are sorted in a temporary
//! list).

use std::fmt::Write as _;

use base64::Engine as _;
use tailgate_wire::{AnyValueView, ArrayView, KeyValues};

use super::value::Value;
use super::EvalError;

/// The text `IsMatch` matches for `value`; `None` for nil. Writes into `scratch` unless the
/// value is a valid UTF-8 string.
pub(crate) fn match_text<'b>(
    value: &Value<'b>,
    scratch: &'b mut String,
) -> Result<Option<&'b str>, EvalError> {
    scratch.clear();
    match value {
        Value::Nil => return Ok(None),
        Value::Str(s) => match std::str::from_utf8(s) {
            Ok(text) => return Ok(Some(text)),
            Err(_) => push_lossy(s, scratch),
        },
        Value::Bytes(b) => {
            for byte in b.iter() {
                let _ = write!(scratch, "{byte:02x}");
            }
        }
        Value::Int(i) => {
            let _ = write!(scratch, "{i}");
        }
        Value::Float(f) => push_json_float(*f, scratch)?,
        Value::Bool(b) => scratch.push_str(if *b { "true" } else { "false" }),
        Value::Map(m) => push_json_map(m.clone(), scratch)?,
        Value::Slice(a) => push_json_slice(a, scratch)?,
    }
    Ok(Some(scratch.as_str()))
}

/// `bytes` as Go's regexp reads them: each byte of invalid UTF-8 as U+FFFD.
fn push_lossy(bytes: &[u8], out: &mut String) {
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for _ in chunk.invalid() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

/// A float64 as go-json writes it: shortest round-trip digits, plain notation from 1e-6 up to
/// 1e21, `strconv`'s exponent notation outside (`1e-07`, `1.5e+300`).
fn push_json_float(f: f64, out: &mut String) -> Result<(), EvalError> {
    if !f.is_finite() {
        return Err(EvalError::NonFiniteFloat);
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes `1e21` and `1.5e-7`; Go writes a sign and at least two digits.
        let start = out.len();
        let _ = write!(out, "{f:e}");
        if let Some(e) = out[start..].find('e') {
            let at = start + e + 1;
            let negative = out.as_bytes()[at] == b'-';
            if !negative {
                out.insert(at, '+');
            }
            if out.len() - (at + 1) < 2 {
                out.insert(at + 1, '0');
            }
        }
    } else {
        let _ = write!(out, "{f}");
    }
    Ok(())
}

/// A string as go-json's `Marshal` writes it (HTML escaping and UTF-8 normalising on).
fn push_json_string(s: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                    let b = c as u8;
                    out.push_str("\\u00");
                    out.push(HEX[usize::from(b >> 4)] as char);
                    out.push(HEX[usize::from(b & 0xf)] as char);
                }
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                c => out.push(c),
            }
        }
        for _ in chunk.invalid() {
            out.push_str("\\ufffd");
        }
    }
    out.push('"');
}

/// An attribute value inside a map or a slice, as `json.Marshal` writes pdata's `AsRaw` of it.
fn push_json_any(value: AnyValueView<'_>, out: &mut String) -> Result<(), EvalError> {
    match value {
        // An empty bytes value is Go's nil slice: `null`, like an empty value.
        AnyValueView::Empty => out.push_str("null"),
        AnyValueView::Bytes([]) => out.push_str("null"),
        AnyValueView::String(s) => push_json_string(s, out),
        AnyValueView::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        AnyValueView::Int(i) => {
            let _ = write!(out, "{i}");
        }
        AnyValueView::Double(f) => push_json_float(f, out)?,
        AnyValueView::Bytes(b) => {
            out.push('"');
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
            out.push('"');
        }
        AnyValueView::Array(a) => push_json_slice(&a, out)?,
        AnyValueView::KvList(m) => push_json_map(m, out)?,
    }
    Ok(())
}

fn push_json_slice(array: &ArrayView<'_>, out: &mut String) -> Result<(), EvalError> {
    out.push('[');
    for (i, value) in array.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_any(value, out)?;
    }
    out.push(']');
    Ok(())
}

/// A map as Go's `map[string]any`: one entry per key (the last written wins, as `AsRaw`
/// assigns them in order), ordered as go-json orders them: by the encoded key.
fn push_json_map(map: KeyValues<'_>, out: &mut String) -> Result<(), EvalError> {
    let mut entries: Vec<(usize, String, AnyValueView<'_>)> = map
        .enumerate()
        .map(|(i, kv)| {
            let mut key = String::new();
            push_json_string(kv.key, &mut key);
            (i, key, kv.value)
        })
        .collect();
    // Equal keys, the last first, so that `dedup` keeps the one Go keeps.
    entries.sort_by(|(i, a, _), (j, b, _)| a.cmp(b).then(j.cmp(i)));
    entries.dedup_by(|(_, later, _), (_, kept, _)| later == kept);
    out.push('{');
    for (n, (_, key, value)) in entries.into_iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&key);
        out.push(':');
        push_json_any(value, out)?;
    }
    out.push('}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(f: f64) -> String {
        let mut out = String::new();
        push_json_float(f, &mut out).unwrap();
        out
    }

    #[test]
    fn floats_as_go_json() {
        assert_eq!(float(0.0), "0");
        assert_eq!(float(-0.0), "-0");
        assert_eq!(float(1.0), "1");
        assert_eq!(float(1.5), "1.5");
        assert_eq!(float(0.1), "0.1");
        assert_eq!(float(1e-6), "0.000001");
        assert_eq!(float(1e-7), "1e-07");
        assert_eq!(float(1.25e-10), "1.25e-10");
        assert_eq!(float(5e-324), "5e-324");
        assert_eq!(float(1e20), "100000000000000000000");
        assert_eq!(float(1e21), "1e+21");
        assert_eq!(float(-2.5e300), "-2.5e+300");
        assert_eq!(float(123456.789), "123456.789");
        assert!(push_json_float(f64::NAN, &mut String::new()).is_err());
        assert!(push_json_float(f64::NEG_INFINITY, &mut String::new()).is_err());
    }

    #[test]
    fn strings_as_go_json() {
        let json = |s: &[u8]| {
            let mut out = String::new();
            push_json_string(s, &mut out);
            out
        };
        assert_eq!(json(b"plain"), "\"plain\"");
        assert_eq!(json(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json(b"<a&b>"), r#""\u003ca\u0026b\u003e""#);
        assert_eq!(
            json(b"\x01\x08\x0c\n\r\t\x1f\x7f"),
            "\"\\u0001\\u0008\\u000c\\n\\r\\t\\u001f\u{7f}\""
        );
        assert_eq!(json("é\u{2028}".as_bytes()), "\"é\\u2028\"");
        assert_eq!(json(b"a\xe2\x82z\xff"), r#""a\ufffd\ufffdz\ufffd""#);
    }

    #[test]
    fn invalid_utf8_reads_each_byte_as_a_replacement() {
        let mut out = String::new();
        push_lossy(b"a\xe2\x82z\xff", &mut out);
        assert_eq!(out, "a\u{fffd}\u{fffd}z\u{fffd}");
    }
}
