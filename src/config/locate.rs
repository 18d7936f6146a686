//! Finding a key or value in the YAML text by its key path, and checking the text's syntax and
//! keys before the typed parse.
//!
//! serde_norway reports positions only with its errors, and typed deserialization keeps none.
//! Checks that span several values (a batch's max below its size, a pipeline naming a missing
//! exporter) run after deserialization, on typed values; to say where the problem is, the text is
//! walked again with serde_norway by a visitor that follows the key path and fails on purpose at
//! the node it was sent to. serde_norway stamps that failure with the node's line and column,
//! exactly as it would a real error there, so flow (`{a: 1}`) and block styles, anchors and
//! aliases are all located the way the parser sees them. When the path goes further than the
//! document (a key left to its default), the walk fails at the deepest node that exists, the
//! closest place to point at. A walk costs one parse of the text, and runs only once an error is
//! certain.
//!
//! The same walker, visiting everything, rejects duplicate keys in a mapping: serde would keep the
//! last silently, and the Collector's YAML decoder refuses them too.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::values::{KeyPath, Seg};

/// The message of the deliberate failure; it cannot occur in a real error message.
const FOUND: &str = "\u{0}tailgate-locate-found";

/// Which part of a mapping entry to point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The key itself: for "this setting is not supported" or "this component is unknown".
    Key,
    /// The value: for "this value is out of range".
    Value,
}

/// The result of [`lint`] when the text cannot go on to the typed parse.
pub(crate) enum LintError {
    /// serde_norway could not read the text.
    Syntax(serde_norway::Error),
    /// `key` appears a second time in the mapping at `parent`, at `line`, `column`.
    Duplicate {
        parent: KeyPath,
        key: String,
        line: usize,
        column: usize,
    },
}

/// Checks that `text` is one well-formed YAML document without duplicate keys.
pub(crate) fn lint(text: &str) -> Result<(), LintError> {
    let walk = Walk {
        target: None,
        duplicate: RefCell::new(None),
        exact: Cell::new(false),
    };
    let seed = NodeSeed {
        walk: &walk,
        path: KeyPath::root(),
    };
    match seed.deserialize(serde_norway::Deserializer::from_str(text)) {
        Ok(()) => Ok(()),
        Err(err) => match (walk.duplicate.into_inner(), err.location()) {
            (Some((parent, key)), Some(loc)) if err.to_string().contains(FOUND) => {
                Err(LintError::Duplicate {
                    parent,
                    key,
                    line: loc.line(),
                    column: loc.column(),
                })
            }
            _ => Err(LintError::Syntax(err)),
        },
    }
}

/// The 1-based line and column of the key or value at `path` in `text`, or of its deepest
/// ancestor present; `None` only when the text has no node at all.
pub(crate) fn locate(text: &str, path: &KeyPath, target: Target) -> Option<(usize, usize)> {
    let walk = Walk {
        target: Some((path.segs(), target)),
        duplicate: RefCell::new(None),
        exact: Cell::new(false),
    };
    let seed = NodeSeed {
        walk: &walk,
        path: KeyPath::root(),
    };
    match seed.deserialize(serde_norway::Deserializer::from_str(text)) {
        Err(err) if err.to_string().contains(FOUND) => {
            err.location().map(|loc| (loc.line(), loc.column()))
        }
        _ => None,
    }
}

/// Whether `text` has the key at `path`, whatever its value (`auth:` with nothing after it
/// included, which the typed parse reads as absent).
pub(crate) fn has_key(text: &str, path: &KeyPath) -> bool {
    let walk = Walk {
        target: Some((path.segs(), Target::Key)),
        duplicate: RefCell::new(None),
        exact: Cell::new(false),
    };
    let seed = NodeSeed {
        walk: &walk,
        path: KeyPath::root(),
    };
    let _ = seed.deserialize(serde_norway::Deserializer::from_str(text));
    walk.exact.get()
}

/// What a walk looks for, and what it found.
struct Walk<'p> {
    /// `None` for a lint walk over every node.
    target: Option<(&'p [Seg], Target)>,
    /// The duplicate key a lint walk stopped at, with its mapping's path.
    duplicate: RefCell<Option<(KeyPath, String)>>,
    /// Whether the walk stopped at the target itself rather than at an ancestor.
    exact: Cell<bool>,
}

impl Walk<'_> {
    /// Whether the walk must descend into the node at `path`.
    fn on_route(&self, path: &KeyPath) -> bool {
        match self.target {
            None => true,
            Some((target, _)) => target.starts_with(path.segs()),
        }
    }

    /// Whether the walk was sent to a child of the node at `path` (so not finding the child
    /// means stopping here).
    fn wants_child_of(&self, path: &KeyPath) -> bool {
        match self.target {
            None => false,
            Some((target, _)) => {
                target.len() > path.segs().len() && target.starts_with(path.segs())
            }
        }
    }

    fn is_target(&self, path: &KeyPath, kind: Target) -> bool {
        matches!(self.target, Some((target, k)) if k == kind && target == path.segs())
    }
}

fn found<E: de::Error>() -> E {
    E::custom(FOUND)
}

/// Visits the node at `path`.
struct NodeSeed<'w, 'p> {
    walk: &'w Walk<'p>,
    path: KeyPath,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // A key target is normally caught at its key, by `KeySeed`; one that names a list
        // element or the root has no key, and stops at the node itself.
        if self.walk.is_target(&self.path, Target::Value)
            || self.walk.is_target(&self.path, Target::Key)
        {
            self.walk.exact.set(true);
            return d.deserialize_any(Stop);
        }
        d.deserialize_any(NodeVisitor {
            walk: self.walk,
            path: self.path,
        })
    }
}

struct NodeVisitor<'w, 'p> {
    walk: &'w Walk<'p>,
    path: KeyPath,
}

impl NodeVisitor<'_, '_> {
    /// A scalar ends the descent: fail here if the walk wanted something below it.
    fn leaf<E: de::Error>(&self) -> Result<(), E> {
        if self.walk.wants_child_of(&self.path) {
            Err(found())
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for NodeVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.leaf()
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.leaf()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        self.leaf()
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!tag value`): its content is not walked.
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        variant.newtype_variant::<IgnoredAny>()?;
        self.leaf()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let child = self.path.index(index);
            let more = if self.walk.on_route(&child) {
                seq.next_element_seed(NodeSeed {
                    walk: self.walk,
                    path: child,
                })?
                .is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                break;
            }
            index += 1;
        }
        self.leaf()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key_seed(KeySeed {
            walk: self.walk,
            parent: &self.path,
            seen: &seen,
        })? {
            match key {
                Some(key) => {
                    let child = self.path.key(key.as_str());
                    if self.walk.on_route(&child) {
                        map.next_value_seed(NodeSeed {
                            walk: self.walk,
                            path: child,
                        })?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                    seen.insert(key);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        self.leaf()
    }
}

/// Reads a mapping key as text (`None` for a mapping or list used as a key), failing on purpose
/// at a duplicate (lint walk) or at the key looked for.
struct KeySeed<'a, 'w, 'p> {
    walk: &'w Walk<'p>,
    parent: &'a KeyPath,
    seen: &'a HashSet<String>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_, '_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl KeySeed<'_, '_, '_> {
    fn key<E: de::Error>(self, key: String) -> Result<Option<String>, E> {
        if self.walk.target.is_none() && self.seen.contains(&key) {
            *self.walk.duplicate.borrow_mut() = Some((self.parent.clone(), key));
            return Err(found());
        }
        if self
            .walk
            .is_target(&self.parent.key(key.as_str()), Target::Key)
        {
            self.walk.exact.set(true);
            return Err(found());
        }
        Ok(Some(key))
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_, '_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.key(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.key(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.key(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.key(v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.key(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.key("null".to_string())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.key("null".to_string())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// Fails at whatever node it is given.
struct Stop;

impl<'de> Visitor<'de> for Stop {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(found())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(found())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(found())
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        Err(found())
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        Err(found())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(found())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(found())
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        Err(found())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(found())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(found())
    }

    fn visit_some<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        Err(found())
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        Err(found())
    }

    fn visit_enum<A: EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(found())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(found())
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_key_sees_keys_with_empty_values_and_not_absent_ones() {
        let text = "a:\n  b:\n  c: 1\nd: [x]\n";
        let path = |keys: &[&str]| keys.iter().fold(KeyPath::root(), |p, k| p.key(*k));
        assert!(has_key(text, &path(&["a", "b"])));
        assert!(has_key(text, &path(&["a", "c"])));
        assert!(has_key(text, &path(&["d"])));
        assert!(!has_key(text, &path(&["a", "e"])));
        assert!(!has_key(text, &path(&["a", "b", "f"])));
        assert!(!has_key(text, &path(&["z"])));
    }

    const DOC: &str = "\
a:
  b: 1
  list: [x, {k: v}]
  block:
    - one
    - two: 2
c: {d: 5}
";

    fn at(path: &KeyPath, target: Target) -> Option<(usize, usize)> {
        locate(DOC, path, target)
    }

    #[test]
    fn finds_keys_and_values() {
        let a = KeyPath::root().key("a");
        assert_eq!(at(&a.key("b"), Target::Key), Some((2, 3)));
        assert_eq!(at(&a.key("b"), Target::Value), Some((2, 6)));
        assert_eq!(
            at(&a.key("list").index(1).key("k"), Target::Value),
            Some((3, 17))
        );
        assert_eq!(
            at(&a.key("block").index(1).key("two"), Target::Key),
            Some((6, 7))
        );
        assert_eq!(
            at(&KeyPath::root().key("c").key("d"), Target::Value),
            Some((7, 8))
        );
    }

    #[test]
    fn missing_paths_stop_at_the_deepest_ancestor() {
        let a = KeyPath::root().key("a");
        // `a.b` exists but is a scalar: point at it.
        assert_eq!(at(&a.key("b").key("zz"), Target::Key), Some((2, 6)));
        // `c` exists, `c.e` does not: point at `c`'s mapping.
        assert_eq!(
            at(&KeyPath::root().key("c").key("e"), Target::Key),
            Some((7, 4))
        );
    }

    #[test]
    fn lint_rejects_duplicates_and_bad_syntax() {
        assert!(lint(DOC).is_ok());
        match lint("a:\n  b: 1\n  b: 2\n") {
            Err(LintError::Duplicate {
                parent,
                key,
                line,
                column,
            }) => {
                assert_eq!((parent.to_string(), key.as_str()), ("a".to_string(), "b"));
                assert_eq!((line, column), (3, 3));
            }
            _ => panic!("expected a duplicate"),
        }
        assert!(matches!(lint("a: [1, 2\n"), Err(LintError::Syntax(_))));
    }
}
