//! `processors.attributes` (also `attributes/NAME`): the Collector's attributes processor
//! (contrib `processor/attributesprocessor`, v0.161.0). Its `actions` ([`super::actions`]) edit
//! the attributes of each span, log record or metric data point; `include` and `exclude`
//! (contrib's `filterconfig.MatchProperties`) choose which, by service, span name and kind,
//! instrumentation library, resource and item attributes, log body and severity, or metric
//! name, each list read `strict` (equal) or `regexp` (Go's syntax, matching anywhere).

use serde::Deserialize;

use super::actions::compile;
use super::actions::{
    check_actions, context_keys, AttributeAction, ConfigValue, RawAction, RawValue,
};
use super::component::Ctx;
use super::error::ConfigError;
use super::values::KeyPath;
use tailgate_wire::Signal;

/// The most entries one `include` or `exclude` list holds.
pub const MATCH_ENTRIES_MAX: usize = 256;

/// The span kinds `span_kinds` names under `match_type: strict`, as contrib's `traceutil`
/// spells them (the unspecified kind is not among them: the Collector refuses it).
pub const SPAN_KINDS: [&str; 5] = [
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

/// `attributes`: which items it edits, and how.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttributesProcessor {
    /// `actions`, applied in the order written to each item's attributes.
    pub actions: Vec<AttributeAction>,
    /// `include`: only the items that match are edited.
    pub include: Option<MatchProperties>,
    /// `exclude`: the items that match are not edited (read after `include`).
    pub exclude: Option<MatchProperties>,
}

impl AttributesProcessor {
    /// The client metadata keys its actions read (`from_context`).
    pub fn context_keys(&self) -> impl Iterator<Item = &str> {
        context_keys(&self.actions)
    }

    /// Why a pipeline of `signal` cannot use it (the Collector's checks when it builds the
    /// processor for that signal), if it cannot.
    pub fn refusal(&self, signal: Signal) -> Option<String> {
        [("include", &self.include), ("exclude", &self.exclude)]
            .into_iter()
            .find_map(|(key, props)| {
                let why = props.as_ref()?.refusal(signal)?;
                Some(format!("its `{key}`: {why}"))
            })
    }
}

/// How a list's entries match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    /// `strict`: equal.
    Strict,
    /// `regexp`: the pattern matches somewhere in the text (Go's syntax).
    Regexp,
}

/// `include` or `exclude`: every property given must match (an item matches a list when it
/// matches one of its entries; `attributes`, `resources` and `libraries` need all of theirs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MatchProperties {
    /// `match_type`; absent where no property needs it.
    pub match_type: Option<MatchType>,
    /// `services`: the resource's `service.name`, as a string.
    pub services: Vec<String>,
    /// `span_names`.
    pub span_names: Vec<String>,
    /// `span_kinds`: `SPAN_KIND_SERVER` and the rest ([`SPAN_KINDS`]).
    pub span_kinds: Vec<String>,
    /// `log_bodies`: the body as a string (maps and lists as JSON).
    pub log_bodies: Vec<String>,
    /// `log_severity_texts`.
    pub log_severity_texts: Vec<String>,
    /// `log_severity_number`.
    pub log_severity_number: Option<SeverityMatch>,
    /// `metric_names`.
    pub metric_names: Vec<String>,
    /// `attributes`: the item's attributes.
    pub attributes: Vec<AttributeMatch>,
    /// `resources`: the resource's attributes.
    pub resources: Vec<AttributeMatch>,
    /// Why `resources` cannot be read, if they cannot: it refuses the processor where a spans
    /// or logs pipeline lists it (metrics pipelines never read them, and neither does the
    /// Collector's).
    pub resources_refusal: Option<String>,
    /// `libraries`: the instrumentation scope.
    pub libraries: Vec<LibraryMatch>,
}

impl MatchProperties {
    /// contrib's `ValidateFor{Spans,Logs,Metrics}`.
    fn refusal(&self, signal: Signal) -> Option<String> {
        if signal != Signal::Metrics {
            if let Some(why) = &self.resources_refusal {
                return Some(why.clone());
            }
        }
        let given = |list: &[String], key: &'static str| (!list.is_empty()).then_some(key);
        match signal {
            Signal::Traces => {
                let wrong = given(&self.log_bodies, "log_bodies")
                    .or(given(&self.log_severity_texts, "log_severity_texts"))
                    .or(self.log_severity_number.map(|_| "log_severity_number"))
                    .or(given(&self.metric_names, "metric_names"));
                if let Some(key) = wrong {
                    return Some(format!("`{key}` does not apply to spans"));
                }
                if self.services.is_empty()
                    && self.span_names.is_empty()
                    && self.span_kinds.is_empty()
                    && self.attributes.is_empty()
                    && self.libraries.is_empty()
                    && self.resources.is_empty()
                {
                    return Some(
                        "for spans, give at least one of `services`, `span_names`, `span_kinds`, \
                         `attributes`, `resources` and `libraries`"
                            .into(),
                    );
                }
            }
            Signal::Logs => {
                let wrong = given(&self.services, "services")
                    .or(given(&self.span_names, "span_names"))
                    .or(given(&self.span_kinds, "span_kinds"))
                    .or(given(&self.metric_names, "metric_names"));
                if let Some(key) = wrong {
                    return Some(format!("`{key}` does not apply to log records"));
                }
                if self.attributes.is_empty()
                    && self.libraries.is_empty()
                    && self.resources.is_empty()
                    && self.log_bodies.is_empty()
                    && self.log_severity_texts.is_empty()
                    && self.log_severity_number.is_none()
                {
                    return Some(
                        "for log records, give at least one of `attributes`, `resources`, \
                         `libraries`, `log_bodies`, `log_severity_texts` and \
                         `log_severity_number`"
                            .into(),
                    );
                }
            }
            Signal::Metrics => {
                let wrong = given(&self.services, "services")
                    .or(given(&self.span_names, "span_names"))
                    .or(given(&self.span_kinds, "span_kinds"))
                    .or(given(&self.log_bodies, "log_bodies"))
                    .or(given(&self.log_severity_texts, "log_severity_texts"))
                    .or(self.log_severity_number.map(|_| "log_severity_number"))
                    .or((!self.attributes.is_empty()).then_some("attributes"))
                    .or((!self.libraries.is_empty()).then_some("libraries"));
                if let Some(key) = wrong {
                    return Some(format!("`{key}` does not apply to metrics"));
                }
                if self.metric_names.is_empty() && self.resources.is_empty() {
                    return Some(
                        "for metrics, give at least one of `metric_names` and `resources`".into(),
                    );
                }
            }
        }
        None
    }
}

/// `log_severity_number`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeverityMatch {
    /// `min`: the lowest severity number that matches.
    pub min: i32,
    /// `match_undefined`: whether a record without a severity number matches.
    pub match_undefined: bool,
}

/// One entry of `attributes` or `resources`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeMatch {
    /// `key`: the attribute must be there.
    pub key: String,
    /// `value`: what it must be (equal, type included, under `strict`; a pattern its value as
    /// a string matches under `regexp`).
    pub value: Option<ConfigValue>,
}

/// One entry of `libraries`.
#[derive(Debug, Clone, PartialEq)]
pub struct LibraryMatch {
    /// `name`.
    pub name: String,
    /// `version`: absent matches every version.
    pub version: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAttributesProcessor {
    actions: Option<Vec<RawAction>>,
    include: Option<RawMatch>,
    exclude: Option<RawMatch>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawMatch {
    match_type: Option<String>,
    regexp: Option<RawRegexp>,
    services: Option<Vec<String>>,
    span_names: Option<Vec<String>>,
    span_kinds: Option<Vec<String>>,
    log_bodies: Option<Vec<String>>,
    log_severity_texts: Option<Vec<String>>,
    log_severity_number: Option<RawSeverity>,
    metric_names: Option<Vec<String>>,
    attributes: Option<Vec<RawAttribute>>,
    resources: Option<Vec<RawAttribute>>,
    libraries: Option<Vec<RawLibrary>>,
}

/// `regexp`: the Collector's cache of match results, which changes no result (accepted, not
/// used: a compiled pattern is matched each time).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRegexp {
    cacheenabled: Option<bool>,
    cachemaxnumentries: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawSeverity {
    min: Option<RawValue>,
    match_undefined: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawAttribute {
    key: Option<String>,
    value: Option<RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawLibrary {
    name: Option<String>,
    version: Option<String>,
}

pub(crate) fn check_attributes(
    raw: RawAttributesProcessor,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<AttributesProcessor, ConfigError> {
    let actions = check_actions(raw.actions, path, "actions", ctx)?;
    let include = raw
        .include
        .map(|m| check_match(m, &path.key("include"), ctx))
        .transpose()?;
    let exclude = raw
        .exclude
        .map(|m| check_match(m, &path.key("exclude"), ctx))
        .transpose()?;
    Ok(AttributesProcessor {
        actions,
        include,
        exclude,
    })
}

fn check_match(raw: RawMatch, at: &KeyPath, ctx: &Ctx<'_>) -> Result<MatchProperties, ConfigError> {
    // The match type, or why it cannot be read: the Collector asks for it only where it builds
    // a string set (a list, a library, an attribute with a value), so only there is it an
    // error to leave it out or misspell it.
    let type_at = at.key("match_type");
    let match_type: Result<MatchType, ConfigError> = match raw.match_type.as_deref() {
        None | Some("") => Err(ctx.missing(at, "match_type")),
        Some("strict") => Ok(MatchType::Strict),
        Some("regexp") => Ok(MatchType::Regexp),
        Some("expr") => Err(ctx.unsupported(
            &type_at,
            "`expr` is not supported: the Collector reads it for metrics alone, and there it has \
             no expressions to read; use strict or regexp",
        )),
        Some(other) => Err(ctx.invalid(
            &type_at,
            format!("`{other}` is not a match type; use strict or regexp"),
        )),
    };
    let regexp = matches!(match_type, Ok(MatchType::Regexp));
    // A regexp cache of a negative size: the Collector refuses it where it builds a regexp
    // set, so this is an error only where the match type is needed.
    let cache_error = raw
        .regexp
        .as_ref()
        .filter(|c| {
            regexp
                && c.cacheenabled == Some(true)
                && matches!(c.cachemaxnumentries, Some(n) if n < 0)
        })
        .map(|_| {
            ctx.invalid(
                &at.key("regexp").key("cachemaxnumentries"),
                "the cache needs a positive size (0 for no bound)",
            )
        });
    let mut total = 0usize;
    let mut list = |raw: Option<Vec<String>>, key: &str| -> Result<Vec<String>, ConfigError> {
        let list = raw.unwrap_or_default();
        total += list.len();
        if regexp {
            for (i, pattern) in list.iter().enumerate() {
                compile(pattern, &at.key(key).index(i), ctx)?;
            }
        }
        Ok(list)
    };
    let services = list(raw.services, "services")?;
    let span_names = list(raw.span_names, "span_names")?;
    let span_kinds = list(raw.span_kinds, "span_kinds")?;
    let log_bodies = list(raw.log_bodies, "log_bodies")?;
    let log_severity_texts = list(raw.log_severity_texts, "log_severity_texts")?;
    let metric_names = list(raw.metric_names, "metric_names")?;
    if matches!(match_type, Ok(MatchType::Strict)) {
        for (i, kind) in span_kinds.iter().enumerate() {
            if !SPAN_KINDS.contains(&kind.as_str()) {
                return Err(ctx.invalid(
                    &at.key("span_kinds").index(i),
                    format!(
                        "`{kind}` is not a span kind; under match_type strict use one of {}",
                        SPAN_KINDS.join(", ")
                    ),
                ));
            }
        }
    }
    let mut libraries = Vec::new();
    for (i, raw) in raw.libraries.unwrap_or_default().into_iter().enumerate() {
        let at = at.key("libraries").index(i);
        let name = raw.name.unwrap_or_default();
        if regexp {
            compile(&name, &at.key("name"), ctx)?;
            if let Some(version) = &raw.version {
                compile(version, &at.key("version"), ctx)?;
            }
        }
        libraries.push(LibraryMatch {
            name,
            version: raw.version,
        });
    }
    total += libraries.len();
    let attributes =
        match check_attribute_list(raw.attributes, &match_type, &at.key("attributes"), ctx) {
            (attributes, None) => attributes,
            (_, Some(err)) => return Err(err),
        };
    let needs_type = total > 0 || attributes.iter().any(|a| a.value.is_some());
    // `resources` are read for spans and log records alone: what is wrong with them refuses
    // the processor where a pipeline of those lists it (a metrics pipeline never reads them).
    let (resources, err) =
        check_attribute_list(raw.resources, &match_type, &at.key("resources"), ctx);
    let resources_need_type = resources.iter().any(|a| a.value.is_some());
    let resources_refusal = match (err, &match_type, &cache_error) {
        (Some(err), _, _) => Some(err.to_string()),
        (None, Err(err), _) if resources_need_type => Some(err.to_string()),
        (None, Ok(_), Some(err)) if resources_need_type => Some(err.to_string()),
        _ => None,
    };
    if let (true, Some(err)) = (needs_type, cache_error) {
        return Err(err);
    }
    let log_severity_number = match raw.log_severity_number {
        None => None,
        Some(raw) => Some(SeverityMatch {
            min: match raw.min {
                None => 0,
                Some(RawValue(Ok(ConfigValue::Int(n)))) if i32::try_from(n).is_ok() => n as i32,
                // A float reads as its integer part, as the Collector's decoder reads it.
                Some(RawValue(Ok(ConfigValue::Double(f))))
                    if f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX) =>
                {
                    f as i32
                }
                Some(_) => {
                    return Err(ctx.invalid(
                        &at.key("log_severity_number").key("min"),
                        "a severity number is an integer",
                    ))
                }
            },
            match_undefined: raw.match_undefined.unwrap_or(false),
        }),
    };
    total += attributes.len() + resources.len();
    if total > MATCH_ENTRIES_MAX {
        return Err(ctx.invalid(
            at,
            format!("{total} entries; at most {MATCH_ENTRIES_MAX} are allowed"),
        ));
    }
    let match_type = match match_type {
        Ok(t) => Some(t),
        Err(err) if needs_type => return Err(err),
        Err(_) => None,
    };
    Ok(MatchProperties {
        match_type,
        services,
        span_names,
        span_kinds,
        log_bodies,
        log_severity_texts,
        log_severity_number,
        metric_names,
        attributes,
        resources,
        resources_refusal,
        libraries,
    })
}

/// The entries of `attributes` or `resources`, and the first thing wrong with them (the
/// entries are all read either way, a wrong one's value left out).
fn check_attribute_list(
    raw: Option<Vec<RawAttribute>>,
    match_type: &Result<MatchType, ConfigError>,
    at: &KeyPath,
    ctx: &Ctx<'_>,
) -> (Vec<AttributeMatch>, Option<ConfigError>) {
    let mut out = Vec::new();
    let mut first_error = None;
    for (i, raw) in raw.unwrap_or_default().into_iter().enumerate() {
        let at = at.index(i);
        let key = raw.key.unwrap_or_default();
        let checked = check_attribute(&key, raw.value, match_type, &at, ctx);
        if let Err(err) = &checked {
            first_error.get_or_insert(err.clone());
        }
        out.push(AttributeMatch {
            key,
            value: checked.ok().flatten(),
        });
    }
    (out, first_error)
}

fn check_attribute(
    key: &str,
    value: Option<RawValue>,
    match_type: &Result<MatchType, ConfigError>,
    at: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Option<ConfigValue>, ConfigError> {
    if key.is_empty() {
        return Err(ctx.missing(at, "key"));
    }
    let value = value
        .map(|RawValue(value)| {
            value.map_err(|what| {
                ctx.unsupported(
                    &at.key("value"),
                    format!(
                        "{what} as a value is not supported; give a string, a number or a boolean"
                    ),
                )
            })
        })
        .transpose()?;
    if let (Ok(MatchType::Regexp), Some(value)) = (match_type, &value) {
        let ConfigValue::Str(pattern) = value else {
            return Err(ctx.invalid(
                &at.key("value"),
                format!("under match_type regexp, the value of `{key}` must be a string"),
            ));
        };
        compile(pattern, &at.key("value"), ctx)?;
    }
    Ok(value)
}
