//! Sections keyed by component id (`receivers`, `processors`, `exporters`, `service.pipelines`)
//! and the context that turns raw settings into checked ones.
//!
//! A component's settings have a shape that depends on its type, which is the part of its key
//! before `/`. [`RawComponents`] reads such a mapping in file order and hands each value to the
//! type's own deserializer, so errors inside a component keep their exact path and line; a type
//! tailgate does not have is skipped here and reported by the checks, which can point at its key.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::env::ColumnMap;
use super::error::{ConfigError, ConfigErrorKind};
use super::locate::{locate, Target};
use super::values::{ComponentId, KeyPath};

/// The raw settings of one section's components, chosen by type.
pub(crate) trait RawComponent: Sized {
    /// Deserializes the settings of a component of type `kind`.
    fn from_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error>;
}

/// A mapping from component key (`otlp/backup`) to raw settings, in file order.
pub(crate) struct RawComponents<T>(pub(crate) Vec<(String, T)>);

impl<T> Default for RawComponents<T> {
    fn default() -> Self {
        RawComponents(Vec::new())
    }
}

impl<'de, T: RawComponent> Deserialize<'de> for RawComponents<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ComponentsVisitor(PhantomData))
    }
}

struct ComponentsVisitor<T>(PhantomData<T>);

impl<'de, T: RawComponent> Visitor<'de> for ComponentsVisitor<T> {
    type Value = RawComponents<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping from component ids to their settings")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RawComponents::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let kind = key.split('/').next().unwrap_or_default().to_string();
            let value = map.next_value_seed(KindSeed::<T> {
                kind,
                raw: PhantomData,
            })?;
            entries.push((key, value));
        }
        Ok(RawComponents(entries))
    }
}

struct KindSeed<T> {
    kind: String,
    raw: PhantomData<T>,
}

impl<'de, T: RawComponent> DeserializeSeed<'de> for KindSeed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::from_kind(&self.kind, d)
    }
}

/// What the checks need to turn a problem into a located [`ConfigError`].
pub(crate) struct Ctx<'a> {
    pub(crate) source: &'a str,
    /// The text after substitution, which positions refer to.
    pub(crate) text: &'a str,
    pub(crate) columns: &'a ColumnMap,
}

impl Ctx<'_> {
    /// An error of `kind` at the key or value at `path`.
    pub(crate) fn error(
        &self,
        path: &KeyPath,
        target: Target,
        kind: ConfigErrorKind,
    ) -> ConfigError {
        let mut err = ConfigError::new(self.source, kind).with_path(path.to_string());
        if let Some((line, column)) = locate(self.text, path, target) {
            err = err.at(line, self.columns.original_column(line, column));
        }
        err
    }

    /// A bad value at `path`.
    pub(crate) fn invalid(&self, path: &KeyPath, why: impl Into<String>) -> ConfigError {
        self.error(
            path,
            Target::Value,
            ConfigErrorKind::InvalidValue(why.into()),
        )
    }

    /// A setting at `path` that tailgate does not support.
    pub(crate) fn unsupported(&self, path: &KeyPath, why: impl Into<String>) -> ConfigError {
        self.error(path, Target::Key, ConfigErrorKind::Unsupported(why.into()))
    }

    /// A required `key` absent from the mapping at `parent`: located at the parent's key.
    pub(crate) fn missing(&self, parent: &KeyPath, key: &str) -> ConfigError {
        self.error(parent, Target::Key, ConfigErrorKind::MissingKey(key.into()))
            .with_path(parent.key(key).to_string())
    }

    /// Parses the component key at `section.key`.
    pub(crate) fn component_id(
        &self,
        section: &KeyPath,
        key: &str,
    ) -> Result<ComponentId, ConfigError> {
        ComponentId::parse(key).map_err(|why| {
            self.error(
                &section.key(key),
                Target::Key,
                ConfigErrorKind::InvalidValue(why),
            )
        })
    }
}

/// `value`, or a bad-value error when it is outside `min..=max`.
pub(crate) fn in_range<T: PartialOrd + fmt::Display + Copy>(
    ctx: &Ctx<'_>,
    path: &KeyPath,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if value < min || value > max {
        Err(ctx.invalid(
            path,
            format!("{value} is out of range; allowed: {min} to {max}"),
        ))
    } else {
        Ok(value)
    }
}
