//! `processors.filter` (also `filter/NAME`): the Collector's filter processor (contrib
//! `processor/filterprocessor`, v0.161.0), which drops the spans, log records and metrics that
//! meet an OTTL condition. Conditions are parsed here in tailgate's OTTL subset
//! ([`crate::ottl`]) and refused at start, by expression and key path, where they leave it.
//!
//! Two layouts are read, as the Collector reads them:
//!
//! - by signal and context: `traces.resource`, `traces.span`, `metrics.resource`,
//!   `metrics.metric`, `logs.resource`, `logs.log_record`;
//! - `trace_conditions`, `metric_conditions`, `log_conditions`: a list of conditions whose paths
//!   name their context (`span.name`, `resource.attributes["k"]`), or a list of groups, each
//!   `{context, conditions, error_mode}`.
//!
//! A `spanevent` condition drops the events that meet it from the spans kept (the span is
//! written again without them). What tailgate does not do is refused with the reason: the
//! `datapoint` context (it would edit inside a metric), the `scope` context, profiles, and the
//! deprecated match-properties layout (`spans`, `metrics.include`/`exclude`,
//! `logs.include`/`exclude`), each of which has an OTTL equivalent.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::component::Ctx;
use super::error::{ConfigError, ConfigErrorKind};
use super::locate::Target;
use super::tail_sampling::{error_mode, ErrorMode, OTTL_CONDITIONS_MAX};
use super::values::KeyPath;
use crate::ottl::{Condition, ContextKind, ParseErrorKind};
use tailgate_wire::Signal;

/// The most conditions one filter processor holds for one signal, all lists together.
pub const FILTER_CONDITIONS_MAX: usize = 256;

/// `filter`: what each signal's conditions drop.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FilterProcessor {
    /// Conditions on spans and their resources (`traces`, `trace_conditions`).
    pub traces: Vec<FilterRule>,
    /// Conditions on metrics and their resources (`metrics`, `metric_conditions`).
    pub metrics: Vec<FilterRule>,
    /// Conditions on log records and their resources (`logs`, `log_conditions`).
    pub logs: Vec<FilterRule>,
}

impl FilterProcessor {
    /// The conditions for `signal`, resource conditions first.
    pub fn rules(&self, signal: Signal) -> &[FilterRule] {
        match signal {
            Signal::Traces => &self.traces,
            Signal::Metrics => &self.metrics,
            Signal::Logs => &self.logs,
        }
    }
}

/// One condition: data that meets it is dropped. A condition of the resource context drops
/// its whole resource group; one of the span, log or metric context drops the item; one of the
/// span event context drops the event from its span.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterRule {
    /// The condition, parsed in its context.
    pub condition: Condition,
    /// What a failure to evaluate does (the processor's `error_mode`, or its group's).
    pub error_mode: ErrorMode,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawFilter {
    error_mode: Option<String>,
    traces: Option<RawTraceFilters>,
    metrics: Option<RawMetricFilters>,
    logs: Option<RawLogFilters>,
    trace_conditions: Option<Vec<RawContextConditions>>,
    metric_conditions: Option<Vec<RawContextConditions>>,
    log_conditions: Option<Vec<RawContextConditions>>,
    spans: Option<IgnoredAny>,
    profiles: Option<IgnoredAny>,
    profile_conditions: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTraceFilters {
    resource: Option<Vec<String>>,
    span: Option<Vec<String>>,
    spanevent: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawMetricFilters {
    resource: Option<Vec<String>>,
    metric: Option<Vec<String>>,
    datapoint: Option<Vec<String>>,
    include: Option<IgnoredAny>,
    exclude: Option<IgnoredAny>,
    regexp: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawLogFilters {
    resource: Option<Vec<String>>,
    log_record: Option<Vec<String>>,
    include: Option<IgnoredAny>,
    exclude: Option<IgnoredAny>,
}

/// One entry of `trace_conditions` (and the others): a condition whose paths name their
/// context, or a group of conditions in one context.
enum RawContextConditions {
    Inferred(String),
    Group(RawConditionGroup),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConditionGroup {
    context: Option<String>,
    conditions: Option<Vec<String>>,
    error_mode: Option<String>,
}

impl<'de> Deserialize<'de> for RawContextConditions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ContextConditionsVisitor)
    }
}

struct ContextConditionsVisitor;

impl<'de> Visitor<'de> for ContextConditionsVisitor {
    type Value = RawContextConditions;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an OTTL condition, or a mapping with `context` and `conditions`")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(RawContextConditions::Inferred(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        RawConditionGroup::deserialize(de::value::MapAccessDeserializer::new(map))
            .map(RawContextConditions::Group)
    }
}

/// Refuses `key` under `path` with `why` when it was given.
fn refuse<T>(
    given: &Option<T>,
    path: &KeyPath,
    key: &str,
    why: &str,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    match given {
        Some(_) => Err(ctx.error(
            &path.key(key),
            Target::Key,
            ConfigErrorKind::Unsupported(why.to_string()),
        )),
        None => Ok(()),
    }
}

const MATCH_PROPERTIES: &str = "the filter processor's deprecated match-properties layout \
     (`spans`, `include`, `exclude`, `regexp`) is not supported; write each test as an OTTL \
     condition, which drops what it matches: an `exclude` test as it is (`traces: {span: \
     ['resource.attributes[\"service.name\"] == \"app_1\"']}`, `metrics: {metric: \
     ['IsMatch(name, \"prefix/.*\")']}`), an `include` test negated (`not IsMatch(name, \
     \"prefix/.*\")`)";

pub(crate) fn check_filter(
    raw: RawFilter,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<FilterProcessor, ConfigError> {
    // `ignore` since the Collector made `processor.filter.defaultErrorModeIgnore` stable
    // (v0.159.0).
    let mode = error_mode(raw.error_mode.as_deref(), &path.key("error_mode"), ctx)?
        .unwrap_or(ErrorMode::Ignore);
    refuse(&raw.spans, path, "spans", MATCH_PROPERTIES, ctx)?;
    let profiles = "tailgate carries no profiles: there are no profiles pipelines to filter";
    refuse(&raw.profiles, path, "profiles", profiles, ctx)?;
    refuse(
        &raw.profile_conditions,
        path,
        "profile_conditions",
        profiles,
        ctx,
    )?;
    // The Collector refuses a signal's two layouts together.
    let given =
        |list: &Option<Vec<RawContextConditions>>| list.as_ref().is_some_and(|l| !l.is_empty());
    for (layout, signal, conditions, old) in [
        (
            "trace_conditions",
            "traces",
            given(&raw.trace_conditions),
            raw.traces
                .as_ref()
                .is_some_and(|t| t.resource.is_some() || t.span.is_some() || t.spanevent.is_some()),
        ),
        (
            "metric_conditions",
            "metrics",
            given(&raw.metric_conditions),
            raw.metrics.as_ref().is_some_and(|m| {
                m.resource.is_some() || m.metric.is_some() || m.datapoint.is_some()
            }),
        ),
        (
            "log_conditions",
            "logs",
            given(&raw.log_conditions),
            raw.logs
                .as_ref()
                .is_some_and(|l| l.resource.is_some() || l.log_record.is_some()),
        ),
    ] {
        if conditions && old {
            return Err(ctx.invalid(
                &path.key(layout),
                format!(
                    "give the {signal} conditions in one layout, `{layout}` or `{signal}`, not \
                     both (the Collector refuses them together)"
                ),
            ));
        }
    }
    let mut out = FilterProcessor::default();
    let mut lists = Lists {
        mode,
        ctx,
        rules: Vec::new(),
    };
    if let Some(traces) = raw.traces {
        let at = path.key("traces");
        lists.add(traces.resource, &at, "resource", ContextKind::Resource)?;
        lists.add(traces.span, &at, "span", ContextKind::Span)?;
        lists.add(traces.spanevent, &at, "spanevent", ContextKind::SpanEvent)?;
    }
    lists.add_groups(
        raw.trace_conditions,
        path,
        "trace_conditions",
        Signal::Traces,
    )?;
    out.traces = lists.take(path, "traces")?;

    if let Some(metrics) = raw.metrics {
        let at = path.key("metrics");
        refuse(&metrics.include, &at, "include", MATCH_PROPERTIES, ctx)?;
        refuse(&metrics.exclude, &at, "exclude", MATCH_PROPERTIES, ctx)?;
        refuse(&metrics.regexp, &at, "regexp", MATCH_PROPERTIES, ctx)?;
        refuse(&metrics.datapoint, &at, "datapoint", DATAPOINT, ctx)?;
        lists.add(metrics.resource, &at, "resource", ContextKind::Resource)?;
        lists.add(metrics.metric, &at, "metric", ContextKind::Metric)?;
    }
    lists.add_groups(
        raw.metric_conditions,
        path,
        "metric_conditions",
        Signal::Metrics,
    )?;
    out.metrics = lists.take(path, "metrics")?;

    if let Some(logs) = raw.logs {
        let at = path.key("logs");
        refuse(&logs.include, &at, "include", MATCH_PROPERTIES, ctx)?;
        refuse(&logs.exclude, &at, "exclude", MATCH_PROPERTIES, ctx)?;
        lists.add(logs.resource, &at, "resource", ContextKind::Resource)?;
        lists.add(logs.log_record, &at, "log_record", ContextKind::Log)?;
    }
    lists.add_groups(raw.log_conditions, path, "log_conditions", Signal::Logs)?;
    out.logs = lists.take(path, "logs")?;
    Ok(out)
}

const DATAPOINT: &str = "the `datapoint` context is not supported: dropping some of a metric's \
     data points rewrites the metric, and tailgate forwards metrics as they came; filter whole \
     metrics (`metrics.metric`)";

/// The item context of `signal`.
fn item_context(signal: Signal) -> ContextKind {
    match signal {
        Signal::Traces => ContextKind::Span,
        Signal::Metrics => ContextKind::Metric,
        Signal::Logs => ContextKind::Log,
    }
}

/// The rules of one signal as they are read.
struct Lists<'a, 'c> {
    mode: ErrorMode,
    ctx: &'a Ctx<'c>,
    rules: Vec<FilterRule>,
}

impl Lists<'_, '_> {
    /// The conditions of `parent.key`, each parsed in `context`, under the processor's mode.
    fn add(
        &mut self,
        raw: Option<Vec<String>>,
        parent: &KeyPath,
        key: &str,
        context: ContextKind,
    ) -> Result<(), ConfigError> {
        let list = parent.key(key);
        let raw = raw.unwrap_or_default();
        self.bound(&raw, &list)?;
        for (i, text) in raw.iter().enumerate() {
            let condition = self.parse(text, context, &list.index(i))?;
            self.rules.push(FilterRule {
                condition,
                error_mode: self.mode,
            });
        }
        Ok(())
    }

    /// `trace_conditions` and the like: conditions whose context is read from their paths, or
    /// groups naming theirs.
    fn add_groups(
        &mut self,
        raw: Option<Vec<RawContextConditions>>,
        parent: &KeyPath,
        key: &str,
        signal: Signal,
    ) -> Result<(), ConfigError> {
        let list = parent.key(key);
        let item = item_context(signal);
        let raw = raw.unwrap_or_default();
        let inferred = raw
            .iter()
            .filter(|e| matches!(e, RawContextConditions::Inferred(_)))
            .count();
        if inferred > OTTL_CONDITIONS_MAX {
            return Err(self.ctx.invalid(
                &list,
                format!(
                    "{inferred} conditions; at most {OTTL_CONDITIONS_MAX} are allowed in one list"
                ),
            ));
        }
        if inferred > 0 && inferred < raw.len() {
            return Err(self.ctx.invalid(
                &list,
                "mixes conditions and `{context, conditions}` groups; write the list in one \
                 style (the Collector refuses the mix)",
            ));
        }
        for (i, entry) in raw.into_iter().enumerate() {
            let at = list.index(i);
            match entry {
                // A condition's paths name their contexts: one that reads the resource alone
                // is a resource condition (tried on each group, first), any other is read in
                // the item's context, where a resource or scope path reads the item's.
                RawContextConditions::Inferred(text) => {
                    let condition = self.parse_inferred(&text, signal, &at)?;
                    self.rules.push(FilterRule {
                        condition,
                        error_mode: self.mode,
                    });
                }
                RawContextConditions::Group(group) => {
                    let mode =
                        error_mode(group.error_mode.as_deref(), &at.key("error_mode"), self.ctx)?
                            .unwrap_or(self.mode);
                    let context = match group.context.as_deref().map(str::to_ascii_lowercase) {
                        None => item,
                        Some(name) => self.group_context(&name, signal, &at.key("context"))?,
                    };
                    let conditions = group.conditions.unwrap_or_default();
                    let at = at.key("conditions");
                    self.bound(&conditions, &at)?;
                    for (j, text) in conditions.iter().enumerate() {
                        let condition = self.parse(text, context, &at.index(j))?;
                        self.rules.push(FilterRule {
                            condition,
                            error_mode: mode,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The context a group names, for `signal`.
    fn group_context(
        &self,
        name: &str,
        signal: Signal,
        at: &KeyPath,
    ) -> Result<ContextKind, ConfigError> {
        match (name, signal) {
            ("resource", _) => Ok(ContextKind::Resource),
            ("span", Signal::Traces) => Ok(ContextKind::Span),
            ("spanevent", Signal::Traces) => Ok(ContextKind::SpanEvent),
            ("metric", Signal::Metrics) => Ok(ContextKind::Metric),
            ("log", Signal::Logs) => Ok(ContextKind::Log),
            ("datapoint", Signal::Metrics) | ("scope", _) => Err(self.ctx.unsupported(
                at,
                format!(
                    "the `{name}` context is not supported; filter by `resource` or by `{}` \
                         (a scope's fields read as `scope.name`, `scope.attributes[...]` there)",
                    context_name(item_context(signal))
                ),
            )),
            _ => Err(self.ctx.invalid(
                at,
                format!(
                    "`{name}` is not a context of {} conditions; use resource or {}",
                    signal.as_str(),
                    context_name(item_context(signal))
                ),
            )),
        }
    }

    /// A condition of `signal` whose paths name their contexts (see [`Lists::add_groups`]).
    fn parse_inferred(
        &self,
        text: &str,
        signal: Signal,
        at: &KeyPath,
    ) -> Result<Condition, ConfigError> {
        let item = item_context(signal);
        let condition = match self.parse(text, item, at) {
            Ok(condition) => condition,
            Err(err) => {
                // A span event's paths: a span event condition.
                if signal == Signal::Traces {
                    if let Ok(event) = Condition::parse(text, ContextKind::SpanEvent) {
                        return Ok(event);
                    }
                }
                // A data point path: a context tailgate does not filter in.
                let other = match signal {
                    Signal::Metrics => text.contains("datapoint.").then_some("datapoint"),
                    _ => None,
                };
                return Err(match other {
                    Some(name) => self.ctx.unsupported(
                        at,
                        format!(
                            "`{text}` reads the `{name}` context, which is not supported; \
                             filter by `resource` or by `{}`",
                            context_name(item)
                        ),
                    ),
                    None => err,
                });
            }
        };
        if condition.reads_only_resource() {
            if let Ok(resource) = Condition::parse(text, ContextKind::Resource) {
                return Ok(resource);
            }
        }
        Ok(condition)
    }

    fn bound(&self, raw: &[String], at: &KeyPath) -> Result<(), ConfigError> {
        if raw.len() > OTTL_CONDITIONS_MAX {
            return Err(self.ctx.invalid(
                at,
                format!(
                    "{} conditions; at most {OTTL_CONDITIONS_MAX} are allowed in one list",
                    raw.len()
                ),
            ));
        }
        Ok(())
    }

    fn parse(
        &self,
        text: &str,
        context: ContextKind,
        at: &KeyPath,
    ) -> Result<Condition, ConfigError> {
        Condition::parse(text, context).map_err(|err| {
            let column = text.char_indices().take_while(|(i, _)| *i < err.at).count() + 1;
            let message = format!("the OTTL condition `{text}`, at character {column}: {err}");
            let kind = match err.kind {
                ParseErrorKind::Invalid(_) => ConfigErrorKind::InvalidValue(message),
                ParseErrorKind::Unsupported(_) => ConfigErrorKind::Unsupported(message),
            };
            self.ctx.error(at, Target::Value, kind)
        })
    }

    /// The rules read for one signal, resource conditions first (they drop whole groups before
    /// any item is read, as the Collector evaluates them), span event conditions last (tried on
    /// the events of the spans kept).
    fn take(&mut self, path: &KeyPath, signal: &str) -> Result<Vec<FilterRule>, ConfigError> {
        let mut rules = std::mem::take(&mut self.rules);
        if rules.len() > FILTER_CONDITIONS_MAX {
            return Err(self.ctx.invalid(
                path,
                format!(
                    "{} conditions on {signal}; at most {FILTER_CONDITIONS_MAX} are allowed",
                    rules.len()
                ),
            ));
        }
        // Stable: each context's conditions keep the order written.
        rules.sort_by_key(|r| match r.condition.context() {
            ContextKind::Resource => 0,
            ContextKind::SpanEvent => 2,
            _ => 1,
        });
        Ok(rules)
    }
}

fn context_name(context: ContextKind) -> &'static str {
    match context {
        ContextKind::Span => "span",
        ContextKind::SpanEvent => "spanevent",
        ContextKind::Resource => "resource",
        ContextKind::Log => "log",
        ContextKind::Metric => "metric",
    }
}
