//! `extensions.headers_setter`: contrib's `headerssetterextension`, a client authenticator that
//! sets headers on every export request — from a fixed value, or from the client metadata of
//! the data being sent (`from_context`), which is how a multi-tenant gateway passes each
//! tenant's header on (see `crate::metadata`).
//!
//! ```yaml
//! extensions:
//!   headers_setter:
//!     headers:
//!       - key: X-Scope-OrgID
//!         from_context: x-tenant      # a client metadata key
//!         default_value: anonymous    # when the data has none
//!         action: upsert              # insert, update, upsert (default) or delete
//!       - key: X-Gateway
//!         value: eu-1
//! exporters:
//!   otlphttp:
//!     auth:
//!       authenticator: headers_setter
//! ```
//!
//! Each entry needs a `key` that is an HTTP header name and, unless it deletes, one source:
//! `value` or `from_context`. `from_attribute` (attributes a server authenticator attached to
//! the request) is refused: tailgate's authenticators attach none.

use std::collections::HashSet;

use serde::Deserialize;

use super::component::Ctx;
use super::error::ConfigError;
use super::extensions::Secret;
use super::values::{is_header_name, KeyPath};

/// Headers an exporter writes itself, which an entry may not set (nor may a tier forward client
/// metadata under): two of them would make a request ambiguous (its framing, its encoding) or
/// break gRPC; `grpc-*` are refused too.
pub(crate) const RESERVED: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "upgrade",
    "trailer",
    "te",
    "content-type",
    "content-encoding",
    "user-agent",
];

/// The most entries one `headers_setter` takes.
pub const HEADERS_SETTER_ENTRIES_MAX: usize = 64;

/// `headers_setter`: the headers every request of the exporters using it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadersSetter {
    /// `headers`, in order: each applies to what the ones before it set.
    pub headers: Vec<HeaderEntry>,
}

impl HeadersSetter {
    /// The client metadata keys its entries read (lower-case).
    pub fn context_keys(&self) -> impl Iterator<Item = &str> {
        self.headers.iter().filter_map(|entry| match &entry.source {
            HeaderSource::Context { key, .. } => Some(key.as_str()),
            _ => None,
        })
    }
}

/// One `headers` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderEntry {
    /// `key`: the header's name, as written.
    pub key: String,
    /// `action`, `upsert` when not given.
    pub action: HeaderAction,
    /// Where its value comes from.
    pub source: HeaderSource,
}

/// `action`: what the entry does to its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderAction {
    /// Sets it unless it is set already.
    Insert,
    /// Sets it only if it is set already.
    Update,
    /// Sets it (the default).
    Upsert,
    /// Removes it.
    Delete,
}

/// Where the entry's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderSource {
    /// `value`: this value.
    Value(Secret),
    /// `from_context`: the client metadata's value of `key` (lower-case), or `default_value`
    /// (empty when not given) when the data has none.
    Context {
        /// The metadata key, lower-case.
        key: String,
        /// `default_value`.
        default: Secret,
    },
    /// None: a `delete` entry.
    None,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHeadersSetter {
    headers: Option<Vec<RawHeaderEntry>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawHeaderEntry {
    key: Option<String>,
    action: Option<String>,
    value: Option<String>,
    from_context: Option<String>,
    from_attribute: Option<String>,
    default_value: Option<String>,
}

/// Checks a `headers_setter` at `path` as the Collector does, and what tailgate adds: header
/// names and values that can be sent.
pub(crate) fn check(
    raw: RawHeadersSetter,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<HeadersSetter, ConfigError> {
    let list = path.key("headers");
    let raw = raw.headers.unwrap_or_default();
    if raw.is_empty() {
        return Err(ctx.invalid(&list, "missing headers configuration"));
    }
    if raw.len() > HEADERS_SETTER_ENTRIES_MAX {
        return Err(ctx.invalid(
            &list,
            format!(
                "{} entries; at most {HEADERS_SETTER_ENTRIES_MAX} are allowed",
                raw.len()
            ),
        ));
    }
    let mut headers = Vec::with_capacity(raw.len());
    for (at, entry) in raw.into_iter().enumerate() {
        headers.push(check_entry(entry, &list.index(at), ctx)?);
    }
    Ok(HeadersSetter { headers })
}

fn check_entry(
    raw: RawHeaderEntry,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<HeaderEntry, ConfigError> {
    let key = match raw.key {
        Some(key) if !key.is_empty() => key,
        _ => return Err(ctx.invalid(&path.key("key"), "missing header name")),
    };
    if !is_header_name(&key) {
        return Err(ctx.invalid(
            &path.key("key"),
            format!("`{key}` is not an HTTP header name"),
        ));
    }
    let lower = key.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || lower.starts_with("grpc-") {
        return Err(ctx.invalid(
            &path.key("key"),
            format!(
                "`{key}` is written by the exporter itself (framing, encoding or the gRPC \
                 protocol); a request cannot carry a second one"
            ),
        ));
    }
    let action = match raw.action.as_deref() {
        None | Some("upsert") => HeaderAction::Upsert,
        Some("insert") => HeaderAction::Insert,
        Some("update") => HeaderAction::Update,
        Some("delete") => HeaderAction::Delete,
        Some(other) => {
            return Err(ctx.invalid(
                &path.key("action"),
                format!("`{other}` is no action; use insert, update, upsert or delete"),
            ))
        }
    };
    if raw.from_attribute.is_some() {
        return Err(ctx.unsupported(
            &path.key("from_attribute"),
            "from_attribute reads attributes a server authenticator attached to the request; \
             tailgate's authenticators attach none: use from_context with a header the \
             receiver keeps (include_metadata)",
        ));
    }
    let sources = [raw.value.is_some(), raw.from_context.is_some()]
        .iter()
        .filter(|given| **given)
        .count();
    if action != HeaderAction::Delete {
        if sources == 0 {
            return Err(ctx.invalid(
                path,
                "missing header source, must be 'from_context' or 'value'",
            ));
        }
        if sources > 1 {
            return Err(ctx.invalid(
                path,
                "invalid header source, must either 'from_context' or 'value'",
            ));
        }
    }
    let checked_value = |value: String, key: &str| {
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(ctx.invalid(
                &path.key(key),
                "a header value may not hold control characters or line breaks",
            ));
        }
        Ok(Secret::from(value))
    };
    let source = match (action, raw.value, raw.from_context) {
        (HeaderAction::Delete, _, _) => HeaderSource::None,
        (_, Some(value), _) => HeaderSource::Value(checked_value(value, "value")?),
        (_, None, Some(key)) => HeaderSource::Context {
            key: key.to_ascii_lowercase(),
            default: checked_value(raw.default_value.unwrap_or_default(), "default_value")?,
        },
        (_, None, None) => unreachable!("one source was checked to be given"),
    };
    Ok(HeaderEntry {
        key,
        action,
        source,
    })
}

/// The header names `setter` writes, lower-case, for the check that an exporter's own
/// `headers` name none of them.
pub(crate) fn names(setter: &HeadersSetter) -> HashSet<String> {
    setter
        .headers
        .iter()
        .map(|entry| entry.key.to_ascii_lowercase())
        .collect()
}
