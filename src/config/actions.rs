//! The attribute actions of contrib's `attraction` package, shared by the Collector's `resource`
//! processor (its `attributes` list) and `attributes` processor (its `actions` list): insert,
//! update, upsert, delete, hash, extract and convert, with the package's keys and checks.
//! Patterns are Go's syntax, read as the OTTL subset reads them ([`crate::ottl`]).

use serde::Deserialize;

use super::component::Ctx;
use super::error::ConfigError;
use super::values::KeyPath;

/// The most actions one processor takes.
pub const ACTIONS_MAX: usize = 64;

/// The client metadata keys `actions` read (`from_context`).
pub(crate) fn context_keys(actions: &[AttributeAction]) -> impl Iterator<Item = &str> {
    actions.iter().filter_map(|a| match &a.kind {
        ActionKind::Insert(ValueSource::FromContext(k))
        | ActionKind::Update(ValueSource::FromContext(k))
        | ActionKind::Upsert(ValueSource::FromContext(k)) => Some(k.as_str()),
        _ => None,
    })
}

/// One action on a set of attributes (a resource's, a span's, a log record's, a data point's).
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeAction {
    /// `key`: the attribute acted on (empty for `delete` and `hash` by `pattern` alone).
    pub key: String,
    /// `action`, with what it needs.
    pub kind: ActionKind,
    /// `default_value`: for `insert`, `update` and `upsert`, the value set when the source gives
    /// none (an attribute or metadata the request lacks; alone, it is the value).
    pub default: Option<ConfigValue>,
}

/// The action and its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// `insert`: set `key` when the resource does not have it.
    Insert(ValueSource),
    /// `update`: set `key` when the resource has it.
    Update(ValueSource),
    /// `upsert`: set `key` either way.
    Upsert(ValueSource),
    /// `delete`: remove `key`, and every attribute whose key matches `pattern`.
    Delete {
        /// `pattern`, in Go's syntax.
        pattern: Option<String>,
    },
    /// `hash`: replace the value of `key`, and of every attribute whose key matches `pattern`,
    /// with the hex SHA-256 of its value.
    Hash {
        /// `pattern`, in Go's syntax.
        pattern: Option<String>,
    },
    /// `extract`: set an attribute for each named group of `pattern`, from the string value of
    /// `key`.
    Extract {
        /// `pattern`, in Go's syntax, every group named.
        pattern: String,
    },
    /// `convert`: change the type of `key`'s value.
    Convert(ConvertTo),
}

/// Where an inserted or updated value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueSource {
    /// `value`.
    Value(ConfigValue),
    /// `from_attribute`: another attribute of the same resource (nothing when it has none).
    FromAttribute(String),
    /// `from_context`: the request's client metadata value of this key (lower-case; a key
    /// written `metadata.NAME` reads `NAME`), several values joined with `;` (nothing when it
    /// has none).
    FromContext(String),
}

/// A `value` as written.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Double(f64),
    /// `true` or `false`.
    Bool(bool),
}

/// `converted_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertTo {
    /// `string`.
    String,
    /// `int`.
    Int,
    /// `double`.
    Double,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAction {
    key: Option<String>,
    value: Option<RawValue>,
    default_value: Option<RawValue>,
    from_attribute: Option<String>,
    from_context: Option<String>,
    action: Option<String>,
    pattern: Option<String>,
    converted_type: Option<String>,
}

/// A YAML scalar with its type kept (lists and maps are refused with the reason).
pub(crate) struct RawValue(pub(crate) Result<ConfigValue, &'static str>);

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl<'de> serde::de::Visitor<'de> for Scalar {
            type Value = RawValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawValue, E> {
                Ok(RawValue(Ok(ConfigValue::Bool(v))))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawValue, E> {
                Ok(RawValue(Ok(ConfigValue::Int(v))))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawValue, E> {
                i64::try_from(v)
                    .map(|v| RawValue(Ok(ConfigValue::Int(v))))
                    .map_err(|_| E::custom(format!("{v} is beyond a 64-bit signed integer")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawValue, E> {
                Ok(RawValue(Ok(ConfigValue::Double(v))))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawValue, E> {
                Ok(RawValue(Ok(ConfigValue::Str(v.to_string()))))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawValue, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(RawValue(Err("a list")))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawValue, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(RawValue(Err("a map")))
            }
        }
        d.deserialize_any(Scalar)
    }
}

/// The list of actions at `list` (`attributes` of a resource processor, `actions` of an
/// attributes processor), checked: at least one, at most [`ACTIONS_MAX`].
pub(crate) fn check_actions(
    raw: Option<Vec<RawAction>>,
    owner: &KeyPath,
    list: &str,
    ctx: &Ctx<'_>,
) -> Result<Vec<AttributeAction>, ConfigError> {
    let Some(raw) = raw.filter(|a| !a.is_empty()) else {
        // The Collector's factories refuse a processor without actions.
        return Err(ctx.missing(owner, list));
    };
    let list = owner.key(list);
    if raw.len() > ACTIONS_MAX {
        return Err(ctx.invalid(
            &list,
            format!("{} actions; at most {ACTIONS_MAX} are allowed", raw.len()),
        ));
    }
    let mut actions = Vec::with_capacity(raw.len());
    for (i, raw) in raw.into_iter().enumerate() {
        actions.push(check_action(raw, &list.index(i), ctx)?);
    }
    Ok(actions)
}

fn check_action(
    raw: RawAction,
    at: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<AttributeAction, ConfigError> {
    let key = raw.key.unwrap_or_default();
    let Some(action) = raw.action.as_deref().map(str::to_ascii_lowercase) else {
        return Err(ctx.missing(at, "action"));
    };
    // One of `value`, `from_attribute`, `from_context` (an empty string is none, as in the
    // Collector).
    let scalar = |raw: Option<RawValue>, key: &str| -> Result<Option<ConfigValue>, ConfigError> {
        raw.map(|RawValue(value)| {
            value.map_err(|what| {
                ctx.unsupported(
                    &at.key(key),
                    format!(
                        "{what} as a value is not supported; give a string, a number or a \
                         boolean"
                    ),
                )
            })
        })
        .transpose()
    };
    let mut sources = Vec::new();
    if let Some(value) = scalar(raw.value, "value")? {
        sources.push(ValueSource::Value(value));
    }
    let mut default = scalar(raw.default_value, "default_value")?;
    if let Some(from) = raw.from_attribute.filter(|f| !f.is_empty()) {
        sources.push(ValueSource::FromAttribute(from));
    }
    if let Some(from) = raw.from_context.filter(|f| !f.is_empty()) {
        sources.push(ValueSource::FromContext(context_key(
            &from,
            &at.key("from_context"),
            ctx,
        )?));
    }
    let pattern = raw.pattern.filter(|p| !p.is_empty());
    let converted = raw.converted_type.filter(|c| !c.is_empty());
    let refuse = |key: &str, what: &str| {
        Err(ctx.invalid(
            &at.key(key),
            format!("action `{action}` does not use {what}; leave it out"),
        ))
    };
    let needs_key = |kind: ActionKind| {
        if key.is_empty() {
            Err(ctx.missing(at, "key"))
        } else {
            Ok(kind)
        }
    };
    let kind = match action.as_str() {
        "insert" | "update" | "upsert" => {
            if pattern.is_some() {
                return refuse("pattern", "`pattern`");
            }
            if converted.is_some() {
                return refuse("converted_type", "`converted_type`");
            }
            if sources.len() > 1 {
                return Err(ctx.invalid(
                    at,
                    "give one of `value`, `from_attribute` and `from_context`, not several",
                ));
            }
            // `default_value` alone is the value.
            let Some(source) = sources
                .pop()
                .or_else(|| default.take().map(ValueSource::Value))
            else {
                return Err(ctx.invalid(
                    at,
                    format!(
                        "action `{action}` needs `value`, `from_attribute`, `from_context` or \
                         `default_value`"
                    ),
                ));
            };
            needs_key(match action.as_str() {
                "insert" => ActionKind::Insert(source),
                "update" => ActionKind::Update(source),
                _ => ActionKind::Upsert(source),
            })?
        }
        "delete" | "hash" => {
            // The Collector refuses `value` and `from_attribute` here, and lets `from_context`
            // and `default_value` be.
            if sources
                .iter()
                .any(|s| !matches!(s, ValueSource::FromContext(_)))
            {
                return refuse("value", "`value` or `from_attribute`");
            }
            default = None;
            if converted.is_some() {
                return refuse("converted_type", "`converted_type`");
            }
            if key.is_empty() && pattern.is_none() {
                return Err(ctx.invalid(
                    at,
                    format!("action `{action}` needs `key`, `pattern` or both"),
                ));
            }
            if let Some(p) = &pattern {
                compile(p, &at.key("pattern"), ctx)?;
            }
            if action == "delete" {
                ActionKind::Delete { pattern }
            } else {
                ActionKind::Hash { pattern }
            }
        }
        "extract" => {
            if !sources.is_empty() {
                return refuse(
                    "value",
                    "a value source (`value`, `from_attribute`, `from_context`)",
                );
            }
            if converted.is_some() {
                return refuse("converted_type", "`converted_type`");
            }
            let Some(pattern) = pattern else {
                return Err(ctx.missing(at, "pattern"));
            };
            let regex = compile(&pattern, &at.key("pattern"), ctx)?;
            let names: Vec<Option<&str>> = regex.capture_names().skip(1).collect();
            if names.is_empty() {
                return Err(ctx.invalid(
                    &at.key("pattern"),
                    "the pattern has no named groups to extract",
                ));
            }
            if names.iter().any(Option::is_none) {
                return Err(ctx.invalid(
                    &at.key("pattern"),
                    "every group of the pattern must be named",
                ));
            }
            needs_key(ActionKind::Extract { pattern })?
        }
        "convert" => {
            if !sources.is_empty() || pattern.is_some() {
                return refuse("pattern", "value sources or `pattern`");
            }
            let to = match converted.as_deref() {
                Some("string") => ConvertTo::String,
                Some("int") => ConvertTo::Int,
                Some("double") => ConvertTo::Double,
                None => return Err(ctx.missing(at, "converted_type")),
                Some(other) => {
                    return Err(ctx.invalid(
                        &at.key("converted_type"),
                        format!("`{other}` is not a type to convert to; use string, int or double"),
                    ))
                }
            };
            needs_key(ActionKind::Convert(to))?
        }
        other => {
            return Err(ctx.invalid(
                &at.key("action"),
                format!(
                    "`{other}` is not an action; use insert, update, upsert, delete, hash, \
                     extract or convert"
                ),
            ))
        }
    };
    Ok(AttributeAction { key, kind, default })
}

/// The client metadata key `from_context` names: `metadata.NAME` or `NAME`, lower-case.
fn context_key(from: &str, at: &KeyPath, ctx: &Ctx<'_>) -> Result<String, ConfigError> {
    if from.starts_with("auth.") {
        return Err(ctx.unsupported(
            at,
            format!(
                "`{from}`: attributes an authenticator attaches are not supported (tailgate's \
                 authenticators attach none); read a header with `metadata.NAME`"
            ),
        ));
    }
    if from == "client.address" {
        return Err(ctx.unsupported(
            at,
            "`client.address` is not supported: the client's address is not kept with its data",
        ));
    }
    Ok(from
        .strip_prefix("metadata.")
        .unwrap_or(from)
        .to_ascii_lowercase())
}

/// `pattern` compiled in Go's syntax, or the reason it cannot be.
pub(crate) fn compile(
    pattern: &str,
    at: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<regex::bytes::Regex, ConfigError> {
    crate::ottl::compile_go_regex(pattern).map_err(|err| match err {
        crate::ottl::ParseErrorKind::Invalid(why) => ctx.invalid(at, why),
        crate::ottl::ParseErrorKind::Unsupported(why) => ctx.unsupported(at, why),
    })
}
