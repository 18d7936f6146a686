//! A subset of the OpenTelemetry Transformation Language's conditions (contrib `pkg/ottl`
//! v0.161.0), parsed and type-checked at start, evaluated against spans, span events, resources,
//! log records and metrics read in place.
//!
//! # Model
//!
//! [`Condition::parse`] turns one condition's text into a typed expression for a context (the
//! span, span event, resource, log or metric context, as the Collector's `ottlspan`,
//! `ottlspanevent`, `ottlresource`, `ottllog` and `ottlmetric` define them): paths resolved to the fields they read, enums to their numbers, literals to values,
//! `IsMatch` patterns compiled. Anything outside the subset is refused there, with the byte
//! offset and what is not supported, so a configuration that starts evaluates only what the
//! subset has. A parsed condition is immutable and cheap to clone; each user (a shard's policy)
//! clones its own and keeps a [`Scratch`] beside it. [`Condition::eval`] reads a [`Subject`] —
//! the span's, resource's, scope's and event's views — and allocates nothing after its scratch
//! has grown, except for `IsMatch` on a map value (see `render.rs`).
//!
//! The subset serves the routing connector's conditions (its `resource`, `span`, `log` and
//! `metric` contexts) as well as `tail_sampling`'s `ottl_condition`: evaluation knows nothing of
//! traces, routes or policies.
//!
//! # The subset
//!
//! - `and`, `or`, `not`, parentheses, `true`, `false`.
//! - Comparisons `==`, `!=`, `<`, `<=`, `>`, `>=` between a path and a literal, in either order.
//!   Literals: strings (Go escapes), integers, floats, either with a sign, `true`, `false`,
//!   `nil`, and the enums `SPAN_KIND_*` and `STATUS_CODE_*`. Comparison follows
//!   `compare.go` (see `value.rs`): mixed int/float compare as numbers, other mixed types are
//!   unequal and never an error, nil equals only nil.
//! - Converters: `IsMatch(path, "regex")` (Go regexp syntax, unanchored; a target that is not
//!   a string is matched as the Collector renders it, see `render.rs`), and `IsRootSpan()`
//!   (span context).
//! - Span context paths (bare, or after `span.`): `name`, `kind`, `status.code`,
//!   `status.message`, `attributes["k"]`, `trace_state`, `trace_state["k"]`,
//!   `start_time_unix_nano`, `end_time_unix_nano`, `flags`, `dropped_attributes_count`,
//!   `dropped_events_count`, `dropped_links_count`; `resource.attributes["k"]`,
//!   `resource.dropped_attributes_count`; `instrumentation_scope.` (or `scope.`) `name`,
//!   `version`, `attributes["k"]`, `dropped_attributes_count`.
//! - Spanevent context paths (bare, or after `spanevent.`): `name`, `attributes["k"]`,
//!   `time_unix_nano`, `dropped_attributes_count`; and every span context path after `span.`,
//!   plus `resource.…` and `instrumentation_scope.…`/`scope.…` as above.
//! - Resource context paths (bare, or after `resource.`): `attributes["k"]`,
//!   `dropped_attributes_count`. The context has no enums and no `IsRootSpan`.
//! - Log context paths (bare, or after `log.`; the routing connector's `context: log`):
//!   `body` (its value, of whatever type), `severity_number`, `severity_text`,
//!   `attributes["k"]`, `time_unix_nano`, `observed_time_unix_nano`, `flags`,
//!   `dropped_attributes_count`, `event_name`; `resource.…` and `instrumentation_scope.…`/
//!   `scope.…` as above; the enums `SEVERITY_NUMBER_*`. No `IsRootSpan`.
//! - Metric context paths (bare, or after `metric.`; the routing connector's `context:
//!   metric`): `name`, `description`, `unit`, `type`, `aggregation_temporality` and
//!   `is_monotonic` (nil for the kinds without them, as pdata reads them); `resource.…` and
//!   `instrumentation_scope.…`/`scope.…` as above; the enums `METRIC_DATA_TYPE_*` and
//!   `AGGREGATION_TEMPORALITY_*`. No `IsRootSpan`.
//!
//! Refused: arithmetic, other converters and editors, list, map and bytes literals, comparing
//! two paths or a converter's result, indexes other than one string (`attributes[0]`,
//! `attributes["a"]["b"]`), whole maps and structures (`attributes`, `status`, `events`), ids,
//! `start_time`/`end_time`/`time` as time values, `kind.string`, `schema_url`, `cache`,
//! `otelcol`, `event_index`, named arguments, integers with a leading zero (Go would read them
//! as octal). The limits: [`CONDITION_LEN_MAX`], [`NESTING_DEPTH_MAX`], and for each pattern
//! [`REGEX_SIZE_MAX`] and [`REGEX_NEST_MAX`].
//!
//! # Evaluation errors
//!
//! Type-checking at start leaves one error possible at evaluation, as in the Collector:
//! `IsMatch` on a float that is NaN or infinite, or on a map or list holding one, since the
//! JSON encoder the Collector renders such targets with (go-json) refuses it ([`EvalError`]).
//! What follows is the user's choice (`error_mode`), as the Collector's `ConditionSequence` has
//! it.

mod lexer;
mod parser;
mod path;
mod pattern;

pub(crate) use pattern::compile as compile_go_regex;
mod render;
mod value;

use std::fmt;

use tailgate_wire::{EventView, LogRecordView, MetricView, ResourceView, ScopeView, SpanView};

use lexer::CmpOp;
use path::Path;
use value::{compare, Value};

/// The longest condition, in bytes.
pub const CONDITION_LEN_MAX: usize = 4096;
/// The deepest nesting of parentheses in a condition.
pub const NESTING_DEPTH_MAX: usize = 32;
/// The largest compiled `IsMatch` pattern, in bytes of the regex crate's program (and of its
/// lazy DFA's cache).
pub const REGEX_SIZE_MAX: usize = 1 << 20;
/// The deepest nesting inside one `IsMatch` pattern.
pub const REGEX_NEST_MAX: u32 = 64;
/// The scratch buffer's capacity kept between evaluations; a larger rendering (a huge map
/// matched with `IsMatch`) gives the excess back.
const SCRATCH_KEEP_MAX: usize = 64 * 1024;

/// Which OTTL context a condition is written for: what its bare paths mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextKind {
    /// `ottlspan`: bare paths read the span.
    Span,
    /// `ottlspanevent`: bare paths read the span event.
    SpanEvent,
    /// `ottlresource`: bare paths read the resource; nothing else can be read.
    Resource,
    /// `ottllog`: bare paths read the log record.
    Log,
    /// `ottlmetric`: bare paths read the metric.
    Metric,
}

/// What a condition reads: the span (and, in the spanevent context, one of its events), the
/// log record or the metric, with the resource and scope it arrived under, or (in the resource context) the
/// resource alone. A missing resource or scope reads as an empty one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    /// The resource.
    pub resource: Option<ResourceView<'a>>,
    /// The instrumentation scope.
    pub scope: Option<ScopeView<'a>>,
    /// The span: required by span and spanevent conditions.
    pub span: Option<SpanView<'a>>,
    /// The span event: required by spanevent conditions.
    pub event: Option<EventView<'a>>,
    /// The log record: required by log conditions.
    pub log: Option<LogRecordView<'a>>,
    /// The metric: required by metric conditions.
    pub metric: Option<MetricView<'a>>,
}

/// A condition that cannot be used: where (a byte offset into it) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset of the problem in the condition.
    pub at: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// Why a condition was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The Collector refuses it too: a syntax error, an unknown path or enum, a bad pattern.
    Invalid(String),
    /// Valid OTTL that tailgate's subset does not have.
    Unsupported(String),
}

impl ParseError {
    pub(crate) fn new(at: usize, kind: ParseErrorKind) -> ParseError {
        ParseError { at, kind }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ParseErrorKind::Invalid(why) => f.write_str(why),
            ParseErrorKind::Unsupported(what) => {
                write!(f, "tailgate's OTTL subset does not support {what}")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// A condition that failed at evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalError {
    /// `IsMatch` on a NaN or infinite float (or a map or list holding one), which the
    /// Collector's JSON encoder refuses to render.
    NonFiniteFloat,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::NonFiniteFloat => f.write_str(
                "IsMatch: the value holds a NaN or infinite float, which has no string form",
            ),
        }
    }
}

impl std::error::Error for EvalError {}

/// Where a condition that failed to evaluate was: the component's kind and id, the condition,
/// and what a failure under `propagate` drops (`batch`, `request`).
pub(crate) struct Failure<'a> {
    pub(crate) kind: &'a str,
    pub(crate) name: &'a str,
    pub(crate) condition: &'a str,
    pub(crate) drops: &'a str,
}

impl Failure<'_> {
    /// The Collector's error modes for a condition that failed with `err`: whether `propagate`
    /// drops what it was evaluated for (logged), or the condition reads as false (`ignore`:
    /// logged while `warned` is unset, which this sets; `silent`: not logged).
    pub(crate) fn handle(
        &self,
        mode: crate::config::ErrorMode,
        err: &EvalError,
        warned: &std::cell::Cell<bool>,
    ) -> bool {
        use crate::config::ErrorMode;
        match mode {
            ErrorMode::Propagate => {
                tracing::warn!(
                    component = self.name,
                    condition = self.condition,
                    error = %err,
                    "a {} condition failed; the {} is dropped (error_mode: propagate)",
                    self.kind,
                    self.drops
                );
                true
            }
            ErrorMode::Ignore => {
                if !warned.replace(true) {
                    tracing::warn!(
                        component = self.name,
                        condition = self.condition,
                        error = %err,
                        "a {} condition failed; read as false (error_mode: ignore); logged once \
                         a {}",
                        self.kind,
                        self.drops
                    );
                }
                false
            }
            ErrorMode::Silent => false,
        }
    }
}

/// Reusable memory for evaluations: the text `IsMatch` matches when it is not a string.
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    text: String,
}

/// A parsed condition.
#[derive(Debug, Clone)]
pub struct Condition {
    text: Box<str>,
    context: ContextKind,
    expr: Expr,
}

impl PartialEq for Condition {
    /// Two conditions are the same when written the same for the same context.
    fn eq(&self, other: &Condition) -> bool {
        self.text == other.text && self.context == other.context
    }
}

impl Condition {
    /// Parses and checks `text` as a condition of `context`.
    pub fn parse(text: &str, context: ContextKind) -> Result<Condition, ParseError> {
        Ok(Condition {
            expr: parser::parse(text, context)?,
            text: text.into(),
            context,
        })
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The context it was parsed for.
    pub fn context(&self) -> ContextKind {
        self.context
    }

    /// Whether some path reads the instrumentation scope.
    pub fn reads_scope(&self) -> bool {
        self.expr.reads_scope()
    }

    /// Whether the condition reads the resource and nothing else: some path, every one of them
    /// a resource path (`resource.attributes["k"]`), and no function of the item.
    pub fn reads_only_resource(&self) -> bool {
        let (mut resource, mut other) = (false, false);
        self.expr.visit_paths(&mut |path| match path {
            Some(path::Path::Resource(_)) => resource = true,
            _ => other = true,
        });
        resource && !other
    }

    /// Whether the condition holds for `subject`.
    pub fn eval(&self, subject: &Subject<'_>, scratch: &mut Scratch) -> Result<bool, EvalError> {
        debug_assert!(
            matches!(
                self.context,
                ContextKind::Resource | ContextKind::Log | ContextKind::Metric
            ) || subject.span.is_some()
        );
        debug_assert!(self.context != ContextKind::Log || subject.log.is_some());
        debug_assert!(self.context != ContextKind::Metric || subject.metric.is_some());
        debug_assert!(self.context != ContextKind::SpanEvent || subject.event.is_some());
        let result = self.expr.eval(subject, scratch);
        if scratch.text.capacity() > SCRATCH_KEEP_MAX {
            scratch.text = String::new();
        }
        result
    }
}

/// A literal as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<[u8]>),
}

impl Literal {
    fn value(&self) -> Value<'_> {
        match self {
            Literal::Nil => Value::Nil,
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Int(i) => Value::Int(*i),
            Literal::Float(f) => Value::Float(*f),
            Literal::Str(s) => Value::Str(s),
        }
    }
}

/// A path compared with a literal; `path_left` keeps the order written (`compare.go` is not
/// symmetric in how it swaps a nil, so the order is kept rather than the operator flipped).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Comparison {
    path: Path,
    op: CmpOp,
    literal: Literal,
    path_left: bool,
}

/// `IsMatch(target, pattern)`.
#[derive(Debug, Clone)]
pub(crate) struct IsMatch {
    target: Path,
    /// The pattern as written (unquoted), which identifies the compiled one.
    pattern: Box<str>,
    regex: regex::bytes::Regex,
}

impl PartialEq for IsMatch {
    fn eq(&self, other: &IsMatch) -> bool {
        self.target == other.target && self.pattern == other.pattern
    }
}

/// A typed condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Const(bool),
    Not(Box<Expr>),
    And(Box<[Expr]>),
    Or(Box<[Expr]>),
    Compare(Box<Comparison>),
    IsMatch(Box<IsMatch>),
    /// The span's `parent_span_id` is empty or all zero.
    IsRootSpan,
}

impl Expr {
    /// Calls `f` with each path the expression reads, and with `None` for each function of
    /// the item (`IsRootSpan()`).
    fn visit_paths(&self, f: &mut dyn FnMut(Option<&path::Path>)) {
        match self {
            Expr::Const(_) => {}
            Expr::IsRootSpan => f(None),
            Expr::Not(e) => e.visit_paths(f),
            Expr::And(es) | Expr::Or(es) => es.iter().for_each(|e| e.visit_paths(f)),
            Expr::Compare(c) => f(Some(&c.path)),
            Expr::IsMatch(m) => f(Some(&m.target)),
        }
    }

    fn reads_scope(&self) -> bool {
        match self {
            Expr::Const(_) | Expr::IsRootSpan => false,
            Expr::Not(e) => e.reads_scope(),
            Expr::And(es) | Expr::Or(es) => es.iter().any(Expr::reads_scope),
            Expr::Compare(c) => c.path.reads_scope(),
            Expr::IsMatch(m) => m.target.reads_scope(),
        }
    }

    /// Evaluates left to right, stopping where the answer is known, as the Collector does (so a
    /// failing part after the deciding one does not fail the condition).
    fn eval(&self, subject: &Subject<'_>, scratch: &mut Scratch) -> Result<bool, EvalError> {
        Ok(match self {
            Expr::Const(b) => *b,
            Expr::Not(e) => !e.eval(subject, scratch)?,
            Expr::And(es) => {
                for e in es.iter() {
                    if !e.eval(subject, scratch)? {
                        return Ok(false);
                    }
                }
                true
            }
            Expr::Or(es) => {
                for e in es.iter() {
                    if e.eval(subject, scratch)? {
                        return Ok(true);
                    }
                }
                false
            }
            Expr::Compare(c) => {
                let (read, literal) = (c.path.read(subject), c.literal.value());
                if c.path_left {
                    compare(&read, &literal, c.op)
                } else {
                    compare(&literal, &read, c.op)
                }
            }
            Expr::IsMatch(m) => {
                let value = m.target.read(subject);
                match render::match_text(&value, &mut scratch.text)? {
                    Some(text) => m.regex.is_match(text.as_bytes()),
                    None => false,
                }
            }
            Expr::IsRootSpan => subject
                .span
                .is_some_and(|s| s.parent_span_id().iter().all(|&b| b == 0)),
        })
    }
}

#[cfg(test)]
mod tests;
