//! `ottl_condition`: traces with a span or a span event that meets an OTTL condition, in the
//! subset [`crate::ottl`] has (its module documentation lists it). Every condition is parsed
//! and type-checked here, so a configuration that loads evaluates only what tailgate has.

use serde::Deserialize;

use super::super::component::Ctx;
use super::super::error::{ConfigError, ConfigErrorKind};
use super::super::locate::Target;
use super::super::values::KeyPath;
use crate::ottl::{Condition, ContextKind, ParseErrorKind};

/// The most conditions in one `span` or `spanevent` list.
pub const OTTL_CONDITIONS_MAX: usize = 64;

/// `ottl_condition`: at least one condition in `span` or `spanevent`.
#[derive(Debug, Clone, PartialEq)]
pub struct OttlConditionPolicy {
    /// What a condition that fails at evaluation does.
    pub error_mode: ErrorMode,
    /// `span`: conditions on each span (any one matching samples).
    pub span: Vec<Condition>,
    /// `spanevent`: conditions on each span event (any one matching samples).
    pub spanevent: Vec<Condition>,
}

/// `error_mode`, the Collector's OTTL error modes. The only evaluation error tailgate's subset
/// can meet is `IsMatch` on a NaN or infinite float (see [`crate::ottl`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    /// `propagate`: the policy fails for the trace, counted in `sampling_policy_evaluation_error`.
    /// The Collector then skips the policy; tailgate reads the failure as not sampled.
    Propagate,
    /// `ignore`: the failing condition counts as false and the next is tried; logged.
    Ignore,
    /// `silent`: as `ignore`, without the log. What the Collector does when `error_mode` is not
    /// given (it leaves the mode empty, which its condition sequence treats this way).
    Silent,
}

/// An `error_mode` value at `at` (any case, as the Collector's `ErrorMode.UnmarshalText`);
/// `None` when not given. The filter and tail-sampling processors and the routing connector
/// read theirs with it.
pub(crate) fn error_mode(
    raw: Option<&str>,
    at: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Option<ErrorMode>, ConfigError> {
    let Some(mode) = raw.map(str::to_ascii_lowercase) else {
        return Ok(None);
    };
    match mode.as_str() {
        "propagate" => Ok(Some(ErrorMode::Propagate)),
        "ignore" => Ok(Some(ErrorMode::Ignore)),
        "silent" => Ok(Some(ErrorMode::Silent)),
        _ => Err(ctx.invalid(
            at,
            format!("`{mode}` is not an error mode; use propagate, ignore or silent"),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawOttlCondition {
    pub(super) error_mode: Option<String>,
    pub(super) span: Option<Vec<String>>,
    pub(super) spanevent: Option<Vec<String>>,
}

pub(super) fn check_ottl_condition(
    raw: RawOttlCondition,
    policy: &str,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<OttlConditionPolicy, ConfigError> {
    let error_mode = error_mode(raw.error_mode.as_deref(), &path.key("error_mode"), ctx)?
        .unwrap_or(ErrorMode::Silent);
    let span = conditions(raw.span, ContextKind::Span, "span", policy, path, ctx)?;
    let spanevent = conditions(
        raw.spanevent,
        ContextKind::SpanEvent,
        "spanevent",
        policy,
        path,
        ctx,
    )?;
    if span.is_empty() && spanevent.is_empty() {
        return Err(ctx.error(
            path,
            Target::Key,
            ConfigErrorKind::MissingKey("span` or `spanevent".to_string()),
        ));
    }
    Ok(OttlConditionPolicy {
        error_mode,
        span,
        spanevent,
    })
}

/// The conditions under `key`, each parsed for `context`.
fn conditions(
    raw: Option<Vec<String>>,
    context: ContextKind,
    key: &str,
    policy: &str,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Vec<Condition>, ConfigError> {
    let raw = raw.unwrap_or_default();
    let list = path.key(key);
    if raw.len() > OTTL_CONDITIONS_MAX {
        return Err(ctx.invalid(
            &list,
            format!(
                "policy `{policy}`: {} conditions; at most {OTTL_CONDITIONS_MAX} are allowed",
                raw.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let at = list.index(i);
        let condition = Condition::parse(text, context).map_err(|err| {
            let column = text.char_indices().take_while(|(i, _)| *i < err.at).count() + 1;
            let message = format!(
                "policy `{policy}`: the OTTL condition `{text}`, at character {column}: {err}"
            );
            let kind = match err.kind {
                ParseErrorKind::Invalid(_) => ConfigErrorKind::InvalidValue(message),
                ParseErrorKind::Unsupported(_) => ConfigErrorKind::Unsupported(message),
            };
            ctx.error(&at, Target::Value, kind)
        })?;
        out.push(condition);
    }
    Ok(out)
}
