//! The text `IsMatch` matches its target as: the Collector's `StringLikeGetter` (contrib
//! `pkg/ottl/expression.go`) over the value a path yields.
//!
//! - nil: no text, so no match.
//! - A string: itself. Go's regexp reads each byte of invalid UTF-8 as U+FFFD; so does this
//!   (the Rust regex crate matches only valid UTF-8 text).
//! - Bytes: lowercase hex (`hex.EncodeToString`).
//! - An int, a float, a bool, a map or a slice: Go's `json.Marshal` of the value (a map or a
//!   slice as pdata's `AsRaw` gives it): map keys sorted byte-wise, the last of duplicate keys
//!   kept, strings escaped as `encoding/json` escapes them (HTML characters, control bytes,
//!   U+2028/U+2029, each invalid byte as `\ufffd`), bytes inside as standard base64, floats in
//!   `encoding/json`'s form (`1e+21`, `1e-7`, `0.5`).
//!
//! A NaN or infinite float has no JSON form: `json.Marshal` fails, and so does `IsMatch` — the
//! one evaluation error of tailgate's OTTL subset ([`EvalError`]).
//!
//! Strings that are valid UTF-8 are matched in place; everything else is written into a
//! scratch buffer the caller keeps from one evaluation to the next, so rendering allocates
//! only while that buffer grows, and for maps (whose keys are sorted in a temporary list).

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

/// A float64 as `encoding/json` writes it: shortest round-trip digits, plain notation from
/// 1e-6 up to 1e21, exponent notation (`1e+21`, `1.5e-7`) outside.
fn push_json_float(f: f64, out: &mut String) -> Result<(), EvalError> {
    if !f.is_finite() {
        return Err(EvalError::NonFiniteFloat);
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes `1e21` and `1.5e-7`; Go writes a sign on every exponent, and after its
        // clean-up no leading zero.
        let start = out.len();
        let _ = write!(out, "{f:e}");
        if let Some(e) = out[start..].find('e') {
            if out.as_bytes().get(start + e + 1) != Some(&b'-') {
                out.insert(start + e + 1, '+');
            }
        }
    } else {
        let _ = write!(out, "{f}");
    }
    Ok(())
}

/// A string as `encoding/json` writes it, HTML escaping on (as `json.Marshal`).
fn push_json_string(s: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
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
/// assigns them in order), in byte-wise key order.
fn push_json_map(map: KeyValues<'_>, out: &mut String) -> Result<(), EvalError> {
    let mut entries: Vec<_> = map.enumerate().collect();
    // By key, and for equal keys the last first, so `dedup` keeps the one Go keeps.
    entries.sort_by(|(i, a), (j, b)| a.key.cmp(b.key).then(j.cmp(i)));
    entries.dedup_by(|(_, later), (_, kept)| later.key == kept.key);
    out.push('{');
    for (n, (_, kv)) in entries.into_iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        push_json_string(kv.key, out);
        out.push(':');
        push_json_any(kv.value, out)?;
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
    fn floats_as_encoding_json() {
        assert_eq!(float(0.0), "0");
        assert_eq!(float(-0.0), "-0");
        assert_eq!(float(1.0), "1");
        assert_eq!(float(1.5), "1.5");
        assert_eq!(float(0.1), "0.1");
        assert_eq!(float(1e-6), "0.000001");
        assert_eq!(float(1e-7), "1e-7");
        assert_eq!(float(1.25e-10), "1.25e-10");
        assert_eq!(float(1e20), "100000000000000000000");
        assert_eq!(float(1e21), "1e+21");
        assert_eq!(float(-2.5e300), "-2.5e+300");
        assert_eq!(float(123456.789), "123456.789");
        assert!(push_json_float(f64::NAN, &mut String::new()).is_err());
        assert!(push_json_float(f64::NEG_INFINITY, &mut String::new()).is_err());
    }

    #[test]
    fn strings_as_encoding_json() {
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
            "\"\\u0001\\b\\f\\n\\r\\t\\u001f\u{7f}\""
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
