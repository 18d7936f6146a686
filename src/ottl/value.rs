//! Values as a condition sees them, and OTTL's comparison rules (contrib `pkg/ottl/compare.go`).
//!
//! A path yields what the Collector's getters yield: a string, an `int64` (kinds, status codes,
//! times and counts included), an attribute's value unwrapped (`string`, `bool`, `int64`,
//! `float64`, `[]byte`, a map or a slice), or nil for an attribute that is absent or empty.
//! The rules, as `compare.go` applies them:
//!
//! - nil equals nil (`==`, `<=` and `>=` are true) and nothing else; against nil every operator
//!   but `!=` is false. An empty bytes value is Go's nil slice, so it is nil here too.
//! - Integers and floats compare as numbers: int with int as `int64`, anything with a float as
//!   `float64` (so `1 == 1.0`). NaN compares false, except `!=`.
//! - Strings compare byte by byte, so `<` is lexicographic order; booleans order false < true;
//!   bytes compare byte by byte.
//! - Any other pairing (a string with a number, a map with anything) is not an error: every
//!   operator is false except `!=`, which is true.
//!
//! A literal nil on the left is swapped to the right without turning the operator round
//! (`compare.go` does so); since nil against anything answers only `!=`, that changes nothing.

use std::cmp::Ordering;

use tailgate_wire::{AnyValueView, ArrayView, KeyValues};

use super::lexer::CmpOp;

/// A value read from a path or written as a literal.
#[derive(Debug, Clone)]
pub(crate) enum Value<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string's bytes (UTF-8 as received, unchecked).
    Str(&'a [u8]),
    /// A bytes value; an empty one is Go's nil slice, which compares as nil.
    Bytes(&'a [u8]),
    Map(KeyValues<'a>),
    Slice(ArrayView<'a>),
}

impl<'a> Value<'a> {
    /// An attribute's value as OTTL's getters unwrap it.
    pub(crate) fn from_any(value: AnyValueView<'a>) -> Value<'a> {
        match value {
            AnyValueView::Empty => Value::Nil,
            AnyValueView::String(s) => Value::Str(s),
            AnyValueView::Bool(b) => Value::Bool(b),
            AnyValueView::Int(i) => Value::Int(i),
            AnyValueView::Double(f) => Value::Float(f),
            AnyValueView::Bytes(b) => Value::Bytes(b),
            AnyValueView::Array(a) => Value::Slice(a),
            AnyValueView::KvList(m) => Value::Map(m),
        }
    }
}

/// `a op b` by OTTL's rules.
pub(crate) fn compare(a: &Value<'_>, b: &Value<'_>, op: CmpOp) -> bool {
    let ordered = |ord: Option<Ordering>| match ord {
        // NaN: no ordering, so every operator is false but `!=`.
        None => op == CmpOp::Ne,
        Some(ord) => match op {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
        },
    };
    let mismatched = op == CmpOp::Ne;
    // pdata hands out an empty bytes value as a nil slice, and `compareByte` treats that as nil.
    let nil_bytes = |v: &Value<'_>| matches!(v, Value::Bytes(b) if b.is_empty());
    let (a, b) = (
        if nil_bytes(a) { &Value::Nil } else { a },
        if nil_bytes(b) { &Value::Nil } else { b },
    );
    match (a, b) {
        (Value::Nil, Value::Nil) => matches!(op, CmpOp::Eq | CmpOp::Le | CmpOp::Ge),
        (Value::Nil, _) | (_, Value::Nil) => mismatched,
        (Value::Bool(x), Value::Bool(y)) => ordered(Some(x.cmp(y))),
        (Value::Int(x), Value::Int(y)) => ordered(Some(x.cmp(y))),
        (Value::Int(x), Value::Float(y)) => ordered((*x as f64).partial_cmp(y)),
        (Value::Float(x), Value::Int(y)) => ordered(x.partial_cmp(&(*y as f64))),
        (Value::Float(x), Value::Float(y)) => ordered(x.partial_cmp(y)),
        (Value::Str(x), Value::Str(y)) | (Value::Bytes(x), Value::Bytes(y)) => {
            ordered(Some(x.cmp(y)))
        }
        _ => mismatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CmpOp::*;

    const ALL: [CmpOp; 6] = [Eq, Ne, Lt, Le, Gt, Ge];

    /// The operators for which `a op b` holds.
    fn holds(a: Value<'_>, b: Value<'_>) -> Vec<CmpOp> {
        ALL.into_iter().filter(|&op| compare(&a, &b, op)).collect()
    }

    #[test]
    fn nil_equals_only_nil() {
        assert_eq!(holds(Value::Nil, Value::Nil), [Eq, Le, Ge]);
        assert_eq!(holds(Value::Nil, Value::Int(0)), [Ne]);
        assert_eq!(holds(Value::Str(b""), Value::Nil), [Ne]);
        assert_eq!(holds(Value::Bool(false), Value::Nil), [Ne]);
        // An empty bytes value is Go's nil slice.
        let empty = Value::from_any(AnyValueView::Bytes(b""));
        assert_eq!(holds(empty.clone(), Value::Nil), [Eq, Le, Ge]);
        assert_eq!(holds(Value::Nil, empty.clone()), [Eq, Le, Ge]);
        assert_eq!(holds(Value::Str(b""), empty), [Ne]);
        assert_eq!(
            holds(Value::from_any(AnyValueView::Empty), Value::Nil),
            [Eq, Le, Ge]
        );
    }

    #[test]
    fn numbers_mix_int_and_float() {
        assert_eq!(holds(Value::Int(1), Value::Float(1.0)), [Eq, Le, Ge]);
        assert_eq!(holds(Value::Float(1.5), Value::Int(2)), [Ne, Lt, Le]);
        assert_eq!(holds(Value::Int(-3), Value::Int(2)), [Ne, Lt, Le]);
        assert_eq!(holds(Value::Float(f64::NAN), Value::Float(f64::NAN)), [Ne]);
        assert_eq!(holds(Value::Int(5), Value::Float(f64::NAN)), [Ne]);
        // Beyond 2^53 an int is rounded to a float before comparing, as Go's float64(a).
        assert_eq!(
            holds(Value::Int((1 << 53) + 1), Value::Float((1u64 << 53) as f64)),
            [Eq, Le, Ge]
        );
    }

    #[test]
    fn strings_and_bools_are_ordered() {
        assert_eq!(holds(Value::Str(b"abc"), Value::Str(b"abd")), [Ne, Lt, Le]);
        assert_eq!(holds(Value::Str(b"b"), Value::Str(b"abc")), [Ne, Gt, Ge]);
        assert_eq!(holds(Value::Str(b""), Value::Str(b"")), [Eq, Le, Ge]);
        assert_eq!(holds(Value::Bool(false), Value::Bool(true)), [Ne, Lt, Le]);
        assert_eq!(
            holds(Value::Bytes(b"\x01"), Value::Bytes(b"\x02")),
            [Ne, Lt, Le]
        );
    }

    #[test]
    fn different_types_are_unequal_not_errors() {
        assert_eq!(holds(Value::Str(b"1"), Value::Int(1)), [Ne]);
        assert_eq!(holds(Value::Int(1), Value::Bool(true)), [Ne]);
        assert_eq!(holds(Value::Bytes(b"a"), Value::Str(b"a")), [Ne]);
        assert_eq!(holds(Value::Float(0.0), Value::Str(b"0")), [Ne]);
    }
}
