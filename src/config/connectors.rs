//! `connectors`: the Collector's `routing` and `failover` connectors (each also as
//! `TYPE/NAME`), with its keys, defaults and validation (contrib `connector/routingconnector`
//! and `connector/failoverconnector`, v0.148.0).
//!
//! A connector is the exporter of some pipelines and the receiver of others; which pipelines
//! those are, and whether they agree on a signal, is checked with the pipelines
//! (`super::service`). Here each connector's own settings are checked: routing conditions are
//! parsed in tailgate's OTTL subset ([`crate::ottl`], the resource context) and refused at
//! start, by expression and key path, where they leave it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;

use super::component::{in_range, Ctx, RawComponent, RawComponents};
use super::error::{ConfigError, ConfigErrorKind};
use super::locate::Target;
use super::processors::duration_at_most;
use super::scalar::{Dur, SInt};
use super::service::PipelineId;
use super::tail_sampling::{error_mode, ErrorMode};
use super::values::{format_duration, ComponentId, KeyPath};
use crate::ottl::{Condition, ContextKind, ParseErrorKind};
use tailgate_wire::Signal;

/// Connector types tailgate has.
pub const CONNECTOR_KINDS: &[&str] = &["routing", "failover"];

/// The most routes in one routing `table`.
pub const ROUTES_MAX: usize = 256;
/// The most `priority_levels` of one failover connector.
pub const PRIORITY_LEVELS_MAX: usize = 16;
/// `retry_interval` when not given (the Collector's default).
pub const RETRY_INTERVAL_DEFAULT: Duration = Duration::from_secs(600);
/// `retry_gap` when not given (the Collector's default).
pub const RETRY_GAP_DEFAULT: Duration = Duration::from_secs(30);
/// `max_retries` when not given (the Collector's default; 0 retries without limit).
pub const MAX_RETRIES_DEFAULT: u32 = 10;
/// The longest `retry_interval` (and so `retry_gap`): a day.
pub const RETRY_INTERVAL_MAX: Duration = Duration::from_secs(24 * 3600);
/// The largest `max_retries`.
pub const MAX_RETRIES_MAX: u32 = 1_000_000;

/// The `connectors` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Connectors {
    /// Every connector defined, by id.
    pub by_id: BTreeMap<ComponentId, Connector>,
}

impl Connectors {
    /// The connector with this id.
    pub fn get(&self, id: &ComponentId) -> Option<&Connector> {
        self.by_id.get(id)
    }
}

/// One connector's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Connector {
    /// `routing`.
    Routing(Routing),
    /// `failover`.
    Failover(Failover),
}

impl Connector {
    /// Every pipeline the connector may send to, each once, in the order written.
    pub fn targets(&self) -> Vec<&PipelineId> {
        let mut out: Vec<&PipelineId> = Vec::new();
        let listed: Vec<&PipelineId> = match self {
            Connector::Routing(r) => r
                .table
                .iter()
                .flat_map(|route| route.pipelines.iter())
                .chain(r.default_pipelines.iter())
                .collect(),
            Connector::Failover(f) => f.priority_levels.iter().flatten().collect(),
        };
        for id in listed {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }
}

/// `routing`: resource groups to pipelines by OTTL conditions on their resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    /// `table`: the routes, tried in order; at least one.
    pub table: Vec<Route>,
    /// `default_pipelines`: where a resource group no route took goes (none: it is dropped,
    /// and counted).
    pub default_pipelines: Vec<PipelineId>,
    /// `error_mode` (default `propagate`, the Collector's default for this connector).
    pub error_mode: ErrorMode,
}

/// One entry of a routing `table`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `condition`, or the condition of a `statement` written `route() where CONDITION`,
    /// parsed in the route's context.
    pub condition: RouteCondition,
    /// `action` (default `move`).
    pub action: RouteAction,
    /// `pipelines`: at least one.
    pub pipelines: Vec<PipelineId>,
}

/// A route's condition, in its `context`.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteCondition {
    /// `context: resource` (the default), `span`, `log` or `metric`: tailgate's OTTL subset in
    /// that context ([`Condition::context`]), on each resource group, or on each span, log
    /// record or metric with its resource and scope.
    Ottl(Condition),
    /// `context: request`: a client metadata value of the whole request.
    Request(RequestCondition),
}

impl RouteCondition {
    /// The condition as written.
    pub fn text(&self) -> &str {
        match self {
            RouteCondition::Ottl(condition) => condition.text(),
            RouteCondition::Request(condition) => &condition.text,
        }
    }

    /// For a condition on items (the span, log and metric contexts), the signal whose items it
    /// reads and its context's name; `None` for the resource and request contexts.
    pub fn item_signal(&self) -> Option<(Signal, &'static str)> {
        match self {
            RouteCondition::Ottl(condition) => match condition.context() {
                ContextKind::Span => Some((Signal::Traces, "span")),
                ContextKind::Log => Some((Signal::Logs, "log")),
                ContextKind::Metric => Some((Signal::Metrics, "metric")),
                ContextKind::Resource | ContextKind::SpanEvent => None,
            },
            RouteCondition::Request(_) => None,
        }
    }
}

/// `context: request`'s one form, the Collector's: `request["NAME"] == "VALUE"` (or `!=`),
/// true when one of the request's values of client metadata key `NAME` compares so — false
/// when it has none, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCondition {
    /// `NAME`, lower-case.
    pub key: String,
    /// `==` (or `!=`).
    pub equal: bool,
    /// `VALUE`, unquoted.
    pub value: String,
    /// The condition as written.
    pub text: String,
}

impl RequestCondition {
    /// Parses `request["NAME"] == "VALUE"` (or `!=`); the reason when it is not that.
    pub fn parse(text: &str) -> Result<RequestCondition, String> {
        let form = "a request condition has the form `request[\"NAME\"] == \"VALUE\"` (or `!=`)";
        let comparators = text.matches("==").count() + text.matches("!=").count();
        if comparators != 1 {
            return Err(format!(
                "{}; {form}",
                if comparators == 0 {
                    "no comparator"
                } else {
                    "more than one comparator"
                }
            ));
        }
        let (left, right, equal) = match text.split_once("==") {
            Some((left, right)) => (left, right, true),
            None => {
                let (left, right) = text.split_once("!=").expect("one comparator");
                (left, right, false)
            }
        };
        let key = left
            .trim()
            .strip_prefix("request[\"")
            .and_then(|rest| rest.strip_suffix("\"]"))
            .filter(|key| !key.is_empty() && !key.contains('"'))
            .ok_or_else(|| form.to_string())?;
        let value = right
            .trim()
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .filter(|value| !value.contains('"'))
            .ok_or_else(|| form.to_string())?;
        Ok(RequestCondition {
            key: key.to_ascii_lowercase(),
            equal,
            value: value.to_string(),
            text: text.to_string(),
        })
    }

    /// Whether a request with client metadata `metadata` meets it.
    pub fn matches(&self, metadata: &crate::metadata::Metadata) -> bool {
        metadata
            .get(&self.key)
            .iter()
            .any(|value| (**value == *self.value.as_bytes()) == self.equal)
    }
}

/// `table[].action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAction {
    /// `move`: a resource group this route takes is not offered to the routes after it.
    Move,
    /// `copy`: the group goes to this route's pipelines and on to the routes after it.
    Copy,
}

/// `failover`: data to the highest healthy priority level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// `priority_levels`: levels of pipelines, highest priority first; at least one.
    pub priority_levels: Vec<Vec<PipelineId>>,
    /// `retry_interval`: how often higher levels are tried again (default 10m).
    pub retry_interval: Duration,
    /// `retry_gap`: the wait between trying two levels within one interval (default 30s).
    pub retry_gap: Duration,
    /// `max_retries`: tries per level before it is no longer retried (default 10; 0: no limit).
    pub max_retries: u32,
}

pub(crate) enum RawConnector {
    Routing(RawRouting),
    Failover(RawFailover),
    Unknown,
}

impl RawComponent for RawConnector {
    fn from_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        Ok(match kind {
            "routing" => {
                RawConnector::Routing(Option::<RawRouting>::deserialize(d)?.unwrap_or_default())
            }
            "failover" => {
                RawConnector::Failover(Option::<RawFailover>::deserialize(d)?.unwrap_or_default())
            }
            _ => {
                IgnoredAny::deserialize(d)?;
                RawConnector::Unknown
            }
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRouting {
    table: Option<Vec<RawRoute>>,
    default_pipelines: Option<Vec<String>>,
    error_mode: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRoute {
    context: Option<String>,
    condition: Option<String>,
    statement: Option<String>,
    action: Option<String>,
    pipelines: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawFailover {
    priority_levels: Option<Vec<Vec<String>>>,
    retry_interval: Option<Dur>,
    retry_gap: Option<Dur>,
    max_retries: Option<SInt>,
}

pub(crate) fn check(
    raw: RawComponents<RawConnector>,
    ctx: &Ctx<'_>,
) -> Result<Connectors, ConfigError> {
    let section = KeyPath::root().key("connectors");
    let mut by_id = BTreeMap::new();
    for (key, raw) in raw.0 {
        let id = ctx.component_id(&section, &key)?;
        let path = section.key(key.as_str());
        let connector = match raw {
            RawConnector::Routing(r) => Connector::Routing(check_routing(r, &path, ctx)?),
            RawConnector::Failover(f) => Connector::Failover(check_failover(f, &path, ctx)?),
            RawConnector::Unknown => {
                return Err(ctx.error(
                    &path,
                    Target::Key,
                    ConfigErrorKind::UnknownComponent {
                        section: "connector",
                        kind: id.kind,
                        supported: CONNECTOR_KINDS,
                    },
                ))
            }
        };
        by_id.insert(id, connector);
    }
    Ok(Connectors { by_id })
}

/// A pipeline id as a connector names it (`traces/acme`).
fn pipeline_id(text: &str, at: &KeyPath, ctx: &Ctx<'_>) -> Result<PipelineId, ConfigError> {
    let id = ComponentId::parse(text).map_err(|why| ctx.invalid(at, why))?;
    let signal = match id.kind.as_str() {
        "traces" => Signal::Traces,
        "metrics" => Signal::Metrics,
        "logs" => Signal::Logs,
        other => {
            return Err(ctx.invalid(
                at,
                format!(
                    "`{text}`: `{other}` is not a signal; a pipeline is `traces`, `metrics` or \
                     `logs` (optionally with `/NAME`)"
                ),
            ))
        }
    };
    Ok(PipelineId {
        signal,
        name: id.name,
    })
}

/// A list of pipeline ids at `at`, each once.
fn pipeline_list(
    raw: Vec<String>,
    at: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Vec<PipelineId>, ConfigError> {
    let mut out: Vec<PipelineId> = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let id = pipeline_id(text, &at.index(i), ctx)?;
        if out.contains(&id) {
            return Err(ctx.invalid(&at.index(i), format!("lists pipeline `{id}` twice")));
        }
        out.push(id);
    }
    Ok(out)
}

fn check_routing(raw: RawRouting, path: &KeyPath, ctx: &Ctx<'_>) -> Result<Routing, ConfigError> {
    let error_mode = error_mode(raw.error_mode.as_deref(), &path.key("error_mode"), ctx)?
        .unwrap_or(ErrorMode::Propagate);
    let default_pipelines = pipeline_list(
        raw.default_pipelines.unwrap_or_default(),
        &path.key("default_pipelines"),
        ctx,
    )?;
    let table_path = path.key("table");
    let Some(raw_table) = raw.table else {
        return Err(ctx.missing(path, "table"));
    };
    if raw_table.is_empty() {
        return Err(ctx.invalid(
            &table_path,
            "the routing table is empty; it needs at least one route",
        ));
    }
    if raw_table.len() > ROUTES_MAX {
        return Err(ctx.invalid(
            &table_path,
            format!(
                "{} routes; at most {ROUTES_MAX} are allowed",
                raw_table.len()
            ),
        ));
    }
    let mut table: Vec<Route> = Vec::with_capacity(raw_table.len());
    for (i, raw) in raw_table.into_iter().enumerate() {
        let at = table_path.index(i);
        let route = check_route(raw, &at, ctx)?;
        if let Some(earlier) = table.iter().position(|r| r.condition == route.condition) {
            return Err(ctx.invalid(
                &at,
                format!(
                    "routes {earlier} and {i} have the same condition `{}`; the Collector \
                     ignores the later one with a warning, tailgate refuses it: merge their \
                     pipelines into one route",
                    route.condition.text()
                ),
            ));
        }
        table.push(route);
    }
    Ok(Routing {
        table,
        default_pipelines,
        error_mode,
    })
}

/// The route at `at`: its condition in tailgate's OTTL subset, its action and pipelines.
fn check_route(raw: RawRoute, at: &KeyPath, ctx: &Ctx<'_>) -> Result<Route, ConfigError> {
    let context = match raw.context.as_deref() {
        None | Some("" | "resource") => Some(ContextKind::Resource),
        Some("span") => Some(ContextKind::Span),
        Some("log") => Some(ContextKind::Log),
        Some("metric") => Some(ContextKind::Metric),
        Some("request") => None,
        Some(other @ "datapoint") => {
            return Err(ctx.error(
                &at.key("context"),
                Target::Value,
                ConfigErrorKind::Unsupported(format!(
                    "the `{other}` context is not supported; tailgate routes by resource \
                     (`context: resource`, the default), by span (`context: span`, traces), by \
                     log record (`context: log`, logs), by metric (`context: metric`, metrics) \
                     and by client metadata (`context: request`)"
                )),
            ))
        }
        Some(other) => {
            return Err(ctx.invalid(
                &at.key("context"),
                format!(
                    "`{other}` is not a routing context; the Collector has resource, span, \
                     metric, datapoint, log and request (tailgate: all but datapoint)"
                ),
            ))
        }
    };
    let (key, text, condition_text) = match (raw.condition, raw.statement) {
        (Some(_), Some(_)) => {
            return Err(ctx.invalid(
                &at.key("statement"),
                "give `condition` or `statement`, not both",
            ))
        }
        (None, None) => {
            return Err(ctx.error(
                at,
                Target::Key,
                ConfigErrorKind::MissingKey("condition` or `statement".to_string()),
            ))
        }
        (Some(condition), None) => ("condition", condition.clone(), condition),
        (None, Some(statement)) => {
            let condition = route_condition(&statement).ok_or_else(|| {
                ctx.error(
                    &at.key("statement"),
                    Target::Value,
                    ConfigErrorKind::Unsupported(format!(
                        "the OTTL statement `{statement}` is not supported: tailgate routes with \
                         `route() where CONDITION` statements (or write the condition under \
                         `condition`)"
                    )),
                )
            })?;
            ("statement", statement.clone(), condition.to_string())
        }
    };
    let offset = text.len() - condition_text.len();
    let condition = match context {
        None => RouteCondition::Request(
            RequestCondition::parse(condition_text.trim())
                .map_err(|why| ctx.invalid(&at.key(key), why))?,
        ),
        Some(kind) => RouteCondition::Ottl(ottl_condition(
            &text,
            &condition_text,
            offset,
            key,
            kind,
            at,
            ctx,
        )?),
    };
    let action = match raw.action.as_deref() {
        None | Some("" | "move") => RouteAction::Move,
        Some("copy") => RouteAction::Copy,
        Some(other) => {
            return Err(ctx.invalid(
                &at.key("action"),
                format!("`{other}` is not a routing action; use move or copy"),
            ))
        }
    };
    let pipelines = pipeline_list(raw.pipelines.unwrap_or_default(), &at.key("pipelines"), ctx)?;
    if pipelines.is_empty() {
        return Err(ctx.error(
            at,
            Target::Key,
            ConfigErrorKind::MissingKey("pipelines".to_string()),
        ));
    }
    Ok(Route {
        condition,
        action,
        pipelines,
    })
}

/// The condition `condition_text` of context `kind`, written at `offset` of `text` (under key
/// `key` of the route at `at`), parsed in tailgate's OTTL subset.
fn ottl_condition(
    text: &str,
    condition_text: &str,
    offset: usize,
    key: &str,
    kind: ContextKind,
    at: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Condition, ConfigError> {
    Condition::parse(condition_text, kind).map_err(|err| {
        let column = text
            .char_indices()
            .take_while(|(i, _)| *i < offset + err.at)
            .count()
            + 1;
        let message = format!("the OTTL {key} `{text}`, at character {column}: {err}");
        let kind = match err.kind {
            ParseErrorKind::Invalid(_) => ConfigErrorKind::InvalidValue(message),
            ParseErrorKind::Unsupported(_) => ConfigErrorKind::Unsupported(message),
        };
        ctx.error(&at.key(key), Target::Value, kind)
    })
}

/// The condition of `route() where CONDITION`, the statement the Collector makes of a
/// `condition` (and the one statement a routing table can use to any effect).
fn route_condition(statement: &str) -> Option<&str> {
    let rest = statement.trim_start().strip_prefix("route")?.trim_start();
    let rest = rest.strip_prefix('(')?.trim_start().strip_prefix(')')?;
    let rest = rest.trim_start().strip_prefix("where")?;
    // `where` must end there: `route() wherever` is not the keyword.
    rest.starts_with(char::is_whitespace).then_some(rest)
}

fn check_failover(
    raw: RawFailover,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Failover, ConfigError> {
    let levels_path = path.key("priority_levels");
    let Some(raw_levels) = raw.priority_levels else {
        return Err(ctx.missing(path, "priority_levels"));
    };
    if raw_levels.is_empty() {
        return Err(ctx.invalid(
            &levels_path,
            "no pipelines are defined in the priority list",
        ));
    }
    if raw_levels.len() > PRIORITY_LEVELS_MAX {
        return Err(ctx.invalid(
            &levels_path,
            format!(
                "{} levels; at most {PRIORITY_LEVELS_MAX} are allowed",
                raw_levels.len()
            ),
        ));
    }
    let mut priority_levels: Vec<Vec<PipelineId>> = Vec::with_capacity(raw_levels.len());
    for (i, level) in raw_levels.into_iter().enumerate() {
        let at = levels_path.index(i);
        let level = pipeline_list(level, &at, ctx)?;
        if level.is_empty() {
            return Err(ctx.invalid(&at, "a priority level needs at least one pipeline"));
        }
        for id in &level {
            if let Some(earlier) = priority_levels.iter().position(|l| l.contains(id)) {
                return Err(ctx.invalid(
                    &at,
                    format!("pipeline `{id}` is on priority levels {earlier} and {i}"),
                ));
            }
        }
        priority_levels.push(level);
    }
    let duration = |raw: Option<Dur>, key: &str, default: Duration| match raw {
        Some(Dur(d)) => duration_at_most(ctx, &path.key(key), d, RETRY_INTERVAL_MAX),
        None => Ok(default),
    };
    let retry_interval = duration(raw.retry_interval, "retry_interval", RETRY_INTERVAL_DEFAULT)?;
    let retry_gap = duration(raw.retry_gap, "retry_gap", RETRY_GAP_DEFAULT)?;
    // The Collector's check, and its words.
    let levels = priority_levels.len() as u32;
    if retry_gap.is_zero() || retry_interval.is_zero() || retry_interval <= retry_gap * levels {
        let key = if retry_gap.is_zero() {
            "retry_gap"
        } else {
            "retry_interval"
        };
        return Err(ctx.invalid(
            &path.key(key),
            format!(
                "retry_interval ({}) and retry_gap ({}) must be positive, and retry_interval \
                 greater than retry_gap times the number of priority levels ({levels})",
                format_duration(retry_interval),
                format_duration(retry_gap)
            ),
        ));
    }
    let max_retries = match raw.max_retries {
        Some(SInt(n)) => in_range(
            ctx,
            &path.key("max_retries"),
            n,
            0,
            i64::from(MAX_RETRIES_MAX),
        )? as u32,
        None => MAX_RETRIES_DEFAULT,
    };
    Ok(Failover {
        priority_levels,
        retry_interval,
        retry_gap,
        max_retries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_statements_give_their_condition() {
        assert_eq!(
            route_condition(r#"route() where attributes["a"] == "b""#),
            Some(r#" attributes["a"] == "b""#)
        );
        assert_eq!(
            route_condition("route ( )  where\tx == 1"),
            Some("\tx == 1")
        );
        assert_eq!(route_condition("route() wherever == 1"), None);
        assert_eq!(route_condition("set(attributes[\"a\"], 1)"), None);
        assert_eq!(route_condition("route()"), None);
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::{Config, Connector, RequestCondition, RouteAction, RouteCondition};
    use crate::ottl::ContextKind;

    const HEAD: &str =
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug:\n  debug/b:\n";

    fn load(rest: &str) -> Result<Config, String> {
        Config::from_yaml(&format!("{HEAD}{rest}"), "test.yaml").map_err(|e| e.to_string())
    }

    fn refused(rest: &str) -> String {
        match load(rest) {
            Ok(_) => panic!("accepted:\n{rest}"),
            Err(err) => err,
        }
    }

    const ROUTED: &str = "connectors:
  routing:
    default_pipelines: [traces/other]
    error_mode: ignore
    table:
      - condition: attributes[\"tenant\"] == \"acme\"
        pipelines: [traces/acme]
      - statement: route() where IsMatch(resource.attributes[\"cloud\"], \"^aws\")
        action: copy
        pipelines: [traces/acme, traces/other]
service:
  pipelines:
    traces/in:
      receivers: [otlp]
      exporters: [routing]
    traces/acme:
      receivers: [routing]
      exporters: [debug]
    traces/other:
      receivers: [routing]
      exporters: [debug/b]
";

    #[test]
    fn a_routing_connector_joins_pipelines() {
        let config = load(ROUTED).expect("valid");
        let Some(Connector::Routing(routing)) = config.connectors.by_id.values().next() else {
            panic!("a routing connector");
        };
        assert_eq!(routing.table.len(), 2);
        assert_eq!(routing.table[0].action, RouteAction::Move);
        assert_eq!(routing.table[1].action, RouteAction::Copy);
        assert_eq!(
            routing.table[1].condition.text(),
            " IsMatch(resource.attributes[\"cloud\"], \"^aws\")"
        );
        assert_eq!(routing.default_pipelines[0].to_string(), "traces/other");
        let entry: Vec<String> = config
            .service
            .pipelines
            .iter()
            .filter(|p| p.is_entry(&config.connectors))
            .map(|p| p.id.to_string())
            .collect();
        assert_eq!(entry, ["traces/in"]);
        let _ = ContextKind::Resource;
    }

    #[test]
    fn outside_the_ottl_subset_is_refused_naming_the_expression_and_key() {
        let err = refused(&ROUTED.replace(
            "attributes[\"tenant\"] == \"acme\"",
            "Concat([attributes[\"a\"]], \"\") == \"acme\"",
        ));
        assert!(
            err.contains("connectors.routing.table[0].condition"),
            "{err}"
        );
        assert!(
            err.contains("Concat([attributes[\"a\"]], \"\") == \"acme\""),
            "{err}"
        );
        assert!(err.contains("test.yaml:13:20:"), "{err}");
        let err = refused(&ROUTED.replace(
            "statement: route() where",
            "statement: set(attributes[\"x\"], 1) where",
        ));
        assert!(
            err.contains("connectors.routing.table[1].statement"),
            "{err}"
        );
        assert!(err.contains("set(attributes"), "{err}");
        let err = refused(&ROUTED.replace(
            "      - condition: attributes",
            "      - context: datapoint\n        condition: attributes",
        ));
        assert!(err.contains("table[0].context"), "{err}");
        assert!(
            err.contains("`datapoint` context is not supported"),
            "{err}"
        );
        let err = refused(&ROUTED.replace(
            "      - condition: attributes",
            "      - context: log\n        condition: attributes",
        ));
        assert!(err.contains("routes by log"), "{err}");
        assert!(err.contains("traces pipeline"), "{err}");
        // The span context: span paths, and its resource's under `resource.`.
        let spans = ROUTED.replace(
            "      - condition: attributes[\"tenant\"]",
            "      - context: span\n        condition: name == \"GET\" and resource.attributes[\"tenant\"]",
        );
        let config = load(&spans).expect("a span route");
        let Some(Connector::Routing(routing)) = config.connectors.by_id.values().next() else {
            panic!("a routing connector");
        };
        assert!(matches!(
            &routing.table[0].condition,
            RouteCondition::Ottl(c) if c.context() == ContextKind::Span
        ));
        assert!(matches!(
            &routing.table[1].condition,
            RouteCondition::Ottl(c) if c.context() == ContextKind::Resource
        ));
        let err = refused(&spans.replace("name ==", "nombre =="));
        assert!(err.contains("table[0].condition"), "{err}");
        // Between metrics pipelines, refused.
        let metrics = spans.replace("traces/", "metrics/");
        let err = refused(&metrics);
        assert!(err.contains("routes by span"), "{err}");
        assert!(err.contains("metrics pipeline"), "{err}");
        let err = refused(&ROUTED.replace("attributes[\"tenant\"]", "name"));
        assert!(err.contains("resource context has no `name`"), "{err}");
    }

    #[test]
    fn a_request_condition_has_the_collectors_one_form() {
        let parsed = RequestCondition::parse(r#"request["X-Tenant"] == "acme""#).expect("parses");
        assert_eq!(
            (parsed.key.as_str(), parsed.equal, parsed.value.as_str()),
            ("x-tenant", true, "acme")
        );
        let not = RequestCondition::parse(r#" request["t"]!="" "#).expect("parses");
        assert_eq!((not.equal, not.value.as_str()), (false, ""));
        for wrong in [
            r#"request["t"] = "a""#,
            r#"request["t"] == "a" or request["u"] == "b""#,
            r#"attributes["t"] == "a""#,
            r#"request["t"] == a"#,
            r#"request[""] == "a""#,
        ] {
            let why = RequestCondition::parse(wrong).expect_err(wrong);
            assert!(
                why.contains("comparator") || why.contains("form"),
                "{wrong}: {why}"
            );
        }
        let capture = crate::metadata::Capture::new(["x-tenant"]);
        let of = |values: &[&'static str]| {
            capture.from_headers(values.iter().map(|v| ("X-Tenant", v.as_bytes())))
        };
        assert!(parsed.matches(&of(&["acme"])));
        assert!(parsed.matches(&of(&["other", "acme"])), "any of the values");
        assert!(!parsed.matches(&of(&["other"])));
        assert!(!parsed.matches(&of(&[])), "none: false");
        let not_acme = RequestCondition::parse(r#"request["x-tenant"] != "acme""#).unwrap();
        assert!(not_acme.matches(&of(&["other"])));
        assert!(
            !not_acme.matches(&of(&[])),
            "none: false for != too, as in the Collector"
        );
        let routed = load(&ROUTED.replace(
            "      - condition: attributes[\"tenant\"] == \"acme\"",
            "      - context: request\n        condition: request[\"X-Tenant\"] == \"acme\"",
        ))
        .expect("loads");
        let Some(Connector::Routing(routing)) = routed.connectors.by_id.values().next() else {
            panic!("a routing connector");
        };
        assert!(matches!(
            &routing.table[0].condition,
            RouteCondition::Request(c) if c.key == "x-tenant"
        ));
        let err = refused(&ROUTED.replace(
            "      - condition: attributes[\"tenant\"] == \"acme\"",
            "      - context: request\n        condition: attributes[\"tenant\"] == \"acme\"",
        ));
        assert!(err.contains("table[0].condition"), "{err}");
        assert!(err.contains(r#"request["NAME"] == "VALUE""#), "{err}");
    }

    #[test]
    fn connectors_must_be_used_on_both_sides_and_name_their_receivers() {
        let err = refused(&ROUTED.replace(
            "      receivers: [routing]\n      exporters: [debug/b]",
            "      receivers: [otlp]\n      exporters: [debug/b]",
        ));
        assert!(
            err.contains("does not list `routing` among its receivers"),
            "{err}"
        );
        assert!(
            err.contains("connectors.routing.table[1].pipelines[1]"),
            "{err}"
        );
        let err = refused(&ROUTED.replace(
            "pipelines: [traces/acme]\n",
            "pipelines: [traces/nowhere]\n",
        ));
        assert!(
            err.contains("`traces/nowhere`, which is not defined"),
            "{err}"
        );
        let err =
            refused(&ROUTED.replace("      exporters: [routing]", "      exporters: [debug]"));
        assert!(err.contains("no pipeline lists it as an exporter"), "{err}");
        let err = refused(&ROUTED.replace("traces/other", "logs/other"));
        assert!(err.contains("joins traces and logs pipelines"), "{err}");
    }

    #[test]
    fn a_cycle_through_connectors_is_refused() {
        let err = refused(
            "connectors:
  routing:
    table:
      - condition: attributes[\"x\"] == 1
        pipelines: [traces/b]
  routing/back:
    table:
      - condition: attributes[\"x\"] == 2
        pipelines: [traces/a]
service:
  pipelines:
    traces/a:
      receivers: [otlp, routing/back]
      exporters: [routing]
    traces/b:
      receivers: [routing]
      exporters: [routing/back]
",
        );
        assert!(err.contains("cycle"), "{err}");
        assert!(err.contains("traces/a → traces/b → traces/a"), "{err}");
    }

    #[test]
    fn failover_has_the_collector_defaults_and_checks() {
        let base = "connectors:
  failover:
    priority_levels:
      - [traces/primary]
      - [traces/backup]
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [failover]
    traces/primary:
      receivers: [failover]
      exporters: [debug]
    traces/backup:
      receivers: [failover]
      exporters: [debug/b]
";
        let config = load(base).expect("valid");
        let Some(Connector::Failover(failover)) = config.connectors.by_id.values().next() else {
            panic!("a failover connector");
        };
        assert_eq!(failover.retry_interval, super::RETRY_INTERVAL_DEFAULT);
        assert_eq!(failover.retry_gap, super::RETRY_GAP_DEFAULT);
        assert_eq!(failover.max_retries, 10);
        assert_eq!(failover.priority_levels.len(), 2);
        // 2 levels × 30s is not below 1m.
        let err = refused(&base.replace(
            "      - [traces/backup]\n",
            "      - [traces/backup]\n    retry_interval: 1m\n",
        ));
        assert!(err.contains("connectors.failover.retry_interval"), "{err}");
        assert!(err.contains("greater than retry_gap times"), "{err}");
        let err = refused(&base.replace(
            "      - [traces/backup]\n",
            "      - [traces/backup]\n    retry_gap: 0s\n",
        ));
        assert!(err.contains("connectors.failover.retry_gap"), "{err}");
        let err = refused(&base.replace(
            "      - [traces/backup]\n",
            "      - [traces/backup]\n    max_retries: -1\n",
        ));
        assert!(err.contains("max_retries"), "{err}");
        let err = refused(&base.replace("[traces/backup]", "[traces/primary]"));
        assert!(err.contains("priority levels 0 and 1"), "{err}");
        let err = refused(&base.replace(
            "      receivers: [failover]\n      exporters: [debug]",
            "      receivers: [failover, otlp]\n      exporters: [debug]",
        ));
        assert!(
            err.contains("service.pipelines.traces/primary.receivers[1]"),
            "{err}"
        );
        assert!(
            err.contains("take data from their failover connector only"),
            "{err}"
        );
        let err = refused(&base.replace(
            "failover:\n    priority_levels",
            "failover:\n    priorities",
        ));
        assert!(err.contains("priorities"), "{err}");
        let err =
            refused(&base.replace("  failover:\n    priority", "  spanmetrics:\n    priority"));
        assert!(
            err.contains("unknown connector type `spanmetrics`"),
            "{err}"
        );
    }
}
