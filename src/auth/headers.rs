//! The `headers_setter` extension at work: the headers one export request carries, from the
//! extension's entries and the client metadata of the batch being sent.
//!
//! The entries apply in order to the headers the extension itself sets, starting from none —
//! as the Collector's gRPC exporters apply them (their per-call credentials start from an empty
//! map): `insert` sets a header no earlier entry set, `update` one an earlier entry set,
//! `upsert` always, `delete` removes one. The exporter's own `headers` cannot name the same
//! headers (the configuration refuses that), so the result is added to every request as is.
//!
//! A `from_context` value is the batch's one value of its key, or the entry's `default_value`
//! when the batch has none. Several values cannot become one header value: the batch fails
//! with the reason, as in the Collector, and is counted as a send failure.

use http::{HeaderName, HeaderValue};

use crate::config::{HeaderAction, HeaderSource, HeadersSetter};
use crate::metadata::Metadata;

/// One entry, its name and value checked as header parts.
#[derive(Debug, PartialEq)]
struct Entry {
    name: HeaderName,
    action: HeaderAction,
    source: Source,
}

#[derive(Debug, PartialEq)]
enum Source {
    Value(HeaderValue),
    Context { key: Box<str>, default: HeaderValue },
    None,
}

/// Why a batch's headers cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The batch has several values of a `from_context` key.
    SeveralValues {
        /// The extension's id.
        extension: String,
        /// The metadata key.
        key: String,
        /// How many values it has.
        count: usize,
        /// The header it was to set.
        header: HeaderName,
    },
    /// The metadata's value cannot be a header value.
    NotAHeaderValue {
        /// The extension's id.
        extension: String,
        /// The metadata key.
        key: String,
    },
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::SeveralValues {
                extension,
                key,
                count,
                header,
            } => write!(
                f,
                "{extension}: {count} values of {key} in the client metadata, can't determine \
                 which one to use for {header}"
            ),
            HeaderError::NotAHeaderValue { extension, key } => write!(
                f,
                "{extension}: the client metadata's {key} is not a header value"
            ),
        }
    }
}

impl std::error::Error for HeaderError {}

/// A `headers_setter` extension, ready to set headers; shared by every exporter using it.
#[derive(Debug, PartialEq)]
pub struct HeaderSetter {
    /// The extension's id, for messages.
    name: String,
    entries: Vec<Entry>,
}

impl HeaderSetter {
    /// The extension `name` with the checked configuration `config`.
    pub fn new(name: &str, config: &HeadersSetter) -> Result<HeaderSetter, String> {
        let sensitive = |value: &str, key: &str| {
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| format!("headers.{key}: not a header value"))?;
            // Kept out of HTTP/2's header table and of debug output, as credentials are.
            value.set_sensitive(true);
            Ok::<_, String>(value)
        };
        let entries = config
            .headers
            .iter()
            .map(|entry| {
                let name = HeaderName::from_bytes(entry.key.as_bytes())
                    .map_err(|_| format!("headers: `{}` is not a header name", entry.key))?;
                let source = match &entry.source {
                    HeaderSource::Value(value) => {
                        Source::Value(sensitive(value.expose(), "value")?)
                    }
                    HeaderSource::Context { key, default } => Source::Context {
                        key: Box::from(key.as_str()),
                        default: sensitive(default.expose(), "default_value")?,
                    },
                    HeaderSource::None => Source::None,
                };
                Ok(Entry {
                    name,
                    action: entry.action,
                    source,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(HeaderSetter {
            name: name.to_string(),
            entries,
        })
    }

    /// The headers a request of a batch with `metadata` carries, or why it cannot be sent.
    pub fn headers(
        &self,
        metadata: &Metadata,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, HeaderError> {
        let mut set: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            let at = set.iter().position(|(name, _)| *name == entry.name);
            let value = || -> Result<HeaderValue, HeaderError> {
                match &entry.source {
                    Source::Value(value) => Ok(value.clone()),
                    Source::Context { key, default } => match metadata.get(key) {
                        [] => Ok(default.clone()),
                        [one] => {
                            let mut value = HeaderValue::from_bytes(one).map_err(|_| {
                                HeaderError::NotAHeaderValue {
                                    extension: self.name.clone(),
                                    key: key.to_string(),
                                }
                            })?;
                            value.set_sensitive(true);
                            Ok(value)
                        }
                        many => Err(HeaderError::SeveralValues {
                            extension: self.name.clone(),
                            key: key.to_string(),
                            count: many.len(),
                            header: entry.name.clone(),
                        }),
                    },
                    Source::None => Ok(HeaderValue::from_static("")),
                }
            };
            match (entry.action, at) {
                (HeaderAction::Delete, Some(at)) => {
                    set.remove(at);
                }
                (HeaderAction::Delete, None) | (HeaderAction::Update, None) => {}
                (HeaderAction::Insert, Some(_)) => {}
                (HeaderAction::Insert | HeaderAction::Upsert, None) => {
                    set.push((entry.name.clone(), value()?));
                }
                (HeaderAction::Update | HeaderAction::Upsert, Some(at)) => set[at].1 = value()?,
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HeaderEntry, Secret};
    use crate::metadata::Capture;

    fn entry(key: &str, action: HeaderAction, source: HeaderSource) -> HeaderEntry {
        HeaderEntry {
            key: key.into(),
            action,
            source,
        }
    }

    fn context(key: &str, default: &str) -> HeaderSource {
        HeaderSource::Context {
            key: key.into(),
            default: Secret::from(default.to_string()),
        }
    }

    fn value(v: &str) -> HeaderSource {
        HeaderSource::Value(Secret::from(v.to_string()))
    }

    fn metadata(pairs: &[(&'static str, &'static str)]) -> Metadata {
        Capture::new(["x-tenant"]).from_headers(pairs.iter().map(|(n, v)| (*n, v.as_bytes())))
    }

    fn shown(headers: &[(HeaderName, HeaderValue)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().expect("ascii").to_string()))
            .collect()
    }

    #[test]
    fn from_context_takes_the_batchs_value_or_the_default() {
        let setter = HeaderSetter::new(
            "headers_setter",
            &HeadersSetter {
                headers: vec![
                    entry(
                        "X-Scope-OrgID",
                        HeaderAction::Upsert,
                        context("x-tenant", "anon"),
                    ),
                    entry("X-Gateway", HeaderAction::Insert, value("eu-1")),
                ],
            },
        )
        .expect("valid");
        let acme = setter
            .headers(&metadata(&[("x-tenant", "acme")]))
            .expect("one value");
        assert_eq!(
            shown(&acme),
            [
                ("x-scope-orgid".into(), "acme".into()),
                ("x-gateway".into(), "eu-1".into())
            ]
        );
        assert!(acme.iter().all(|(_, v)| v.is_sensitive()));
        let none = setter.headers(&Metadata::none()).expect("default");
        assert_eq!(shown(&none)[0], ("x-scope-orgid".into(), "anon".into()));
        let two = setter.headers(&metadata(&[("x-tenant", "a"), ("x-tenant", "b")]));
        let why = two.expect_err("two values").to_string();
        assert!(why.contains("2 values of x-tenant"), "{why}");
    }

    #[test]
    fn actions_apply_in_order_to_what_the_extension_set() {
        let setter = HeaderSetter::new(
            "headers_setter",
            &HeadersSetter {
                headers: vec![
                    entry("A", HeaderAction::Update, value("never")),
                    entry("A", HeaderAction::Insert, value("first")),
                    entry("A", HeaderAction::Insert, value("ignored")),
                    entry("B", HeaderAction::Upsert, value("b1")),
                    entry("B", HeaderAction::Update, value("b2")),
                    entry("A", HeaderAction::Delete, HeaderSource::None),
                    entry("C", HeaderAction::Delete, HeaderSource::None),
                ],
            },
        )
        .expect("valid");
        let headers = setter.headers(&Metadata::none()).expect("no context");
        assert_eq!(shown(&headers), [("b".into(), "b2".into())]);
    }
}
