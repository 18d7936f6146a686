//! The `attributes` processor on one shard: the attributes of each span, log record or metric
//! data point edited by the processor's actions ([`super::actions`]), on the items `include`
//! and `exclude` choose, with the semantics of contrib's `filterspan`, `filterlog` and
//! `filtermetric` matchers.
//!
//! # Model
//!
//! A request is read in place. An item is skipped when `include` is given and does not match
//! it, or `exclude` is given and matches it. What belongs to a group (the service, the resource
//! attributes, the library) is matched once a group; names, kinds, bodies, severities and the
//! item's attributes once an item. A metric is matched by its name, and every data point of a
//! matched metric is edited.
//!
//! An item whose attributes an action changed is copied with its attributes field written again
//! (untouched attributes as received, changed ones encoded) and every other field as received;
//! a metric, with the data messages holding a changed point written again around it. When no
//! item changes, the request goes on as it came; otherwise a new request of the same shape
//! holds the changed items in their places: the groups holding one get new lengths, every
//! other group and field (empty groups included) is copied as received.

use std::cell::RefCell;

use regex::bytes::Regex;
use tailgate_wire::{
    attributes_of, data_points, metric_with_data_points, request_with_items, with_attributes,
    AnyValueView, KeyValues, LogRecordView, MetricView, Request, ResourceGroup, ScopeView, Signal,
    SpanView, LOG_RECORD_ATTRIBUTES, SPAN_ATTRIBUTES,
};

use super::actions::{self, Actions, Attr};
use super::{pdata, Outcome};
use crate::config::{
    AttributeMatch, AttributesProcessor, ConfigValue, MatchProperties, MatchType, SeverityMatch,
};
use crate::metadata::Metadata;

/// The most items whose scratch an editor keeps between requests.
const ITEMS_KEEP_MAX: usize = 65_536;
/// The most bytes of headers, rewritten items and encoded attributes an editor keeps between
/// requests.
const BYTES_KEEP_MAX: usize = 1 << 20;

/// The scratch space one shard's editor reuses from request to request.
#[derive(Default)]
struct Scratch {
    /// Where each item of the request, in wire order, was rewritten to in `items`, if it was.
    replaced: Vec<Option<(usize, usize)>>,
    /// Rewritten items.
    items: Vec<u8>,
    /// Encoded attributes of the item (or data point) being written.
    encoded: Vec<u8>,
    /// Rewritten data points of the metric being written, and where each is.
    points: Vec<u8>,
    points_replaced: Vec<Option<(usize, usize)>>,
}

/// One `attributes` processor, for one signal, on one shard.
pub struct AttributesEditor {
    signal: Signal,
    actions: Actions,
    include: Option<Matcher>,
    exclude: Option<Matcher>,
    scratch: RefCell<Scratch>,
}

impl AttributesEditor {
    /// The processor `config` for `signal` (which the configuration checked it can take); its
    /// patterns compiled when the configuration was checked.
    pub fn new(signal: Signal, config: &AttributesProcessor) -> AttributesEditor {
        AttributesEditor {
            signal,
            actions: Actions::new(&config.actions),
            include: Matcher::for_signal(config.include.as_ref(), signal),
            exclude: Matcher::for_signal(config.exclude.as_ref(), signal),
            scratch: RefCell::new(Scratch::default()),
        }
    }

    /// Edits `bytes`, a valid export request of the editor's signal holding `items` items that
    /// came with client `metadata`.
    pub fn apply(&self, bytes: &[u8], items: u64, metadata: &Metadata) -> Outcome {
        let mut scratch = self.scratch.borrow_mut();
        let out = self.edit(bytes, items, metadata, &mut scratch);
        // A huge request's scratch is not kept.
        let s = &mut *scratch;
        if s.replaced.capacity() > ITEMS_KEEP_MAX
            || s.points_replaced.capacity() > ITEMS_KEEP_MAX
            || [&s.items, &s.encoded, &s.points]
                .iter()
                .any(|b| b.capacity() > BYTES_KEEP_MAX)
        {
            *s = Scratch::default();
        }
        out
    }

    fn edit(&self, bytes: &[u8], items: u64, metadata: &Metadata, s: &mut Scratch) -> Outcome {
        let request = Request::trusted(self.signal, bytes);
        let context = self.actions.context(metadata);
        s.replaced.clear();
        s.items.clear();
        let mut changed = false;
        // How much the rewritten items outgrow the ones they replace, and how many there are:
        // the new request's size, bar the length prefixes they lengthen.
        let (mut growth, mut rewritten_items) = (0usize, 0usize);
        // One list for every item of the request: it borrows the request and the actions.
        let mut attrs: Vec<Attr<'_>> = Vec::new();
        for group in request.resource_groups() {
            // Each matcher given, with what the group (then the scope) decides.
            let (include_group, exclude_group) = (
                Matcher::at_group(&self.include, &group),
                Matcher::at_group(&self.exclude, &group),
            );
            for scope_group in group.scope_groups() {
                let scope = scope_group.scope();
                let (include, exclude) = (
                    Matcher::at_scope(include_group, scope),
                    Matcher::at_scope(exclude_group, scope),
                );
                for item in scope_group.items() {
                    let skip = include.is_some_and(|(m, ok)| !(ok && m.item_matches(item.bytes)))
                        || exclude.is_some_and(|(m, ok)| ok && m.item_matches(item.bytes));
                    let start = s.items.len();
                    if !skip && self.rewrite(item.bytes, &context, &mut attrs, s) {
                        s.replaced.push(Some((start, s.items.len())));
                        growth += (s.items.len() - start).saturating_sub(item.bytes.len());
                        rewritten_items += 1;
                        changed = true;
                    } else {
                        s.replaced.push(None);
                    }
                }
            }
        }
        if !changed {
            return Outcome::Unchanged;
        }
        // Sized once: a rewritten item lengthens at most three length prefixes (its own, its
        // scope group's, its resource group's), each by at most 4 bytes below 2^35 bytes.
        let mut out = Vec::with_capacity(bytes.len() + growth + 12 * rewritten_items);
        let (replaced, rewritten) = (&s.replaced, &s.items);
        request_with_items(
            bytes,
            |i| replaced[i].map(|(from, to)| &rewritten[from..to]),
            &mut out,
        );
        Outcome::Changed(out, items)
    }

    /// Applies the actions to `item`; when they change it, appends the rewritten item to
    /// `s.items` and says so.
    fn rewrite<'a>(
        &'a self,
        item: &'a [u8],
        context: &'a [Option<Vec<u8>>],
        attrs: &mut Vec<Attr<'a>>,
        s: &mut Scratch,
    ) -> bool {
        let field = match self.signal {
            Signal::Traces => SPAN_ATTRIBUTES,
            Signal::Logs => LOG_RECORD_ATTRIBUTES,
            Signal::Metrics => return self.rewrite_metric(item, context, attrs, s),
        };
        let attributes = attributes_of(item, field);
        if !self.actions.may_change(attributes.clone()) {
            return false;
        }
        attrs.clear();
        attrs.extend(attributes.raw().map(Attr::received));
        if !self.actions.apply(context, attrs) {
            return false;
        }
        s.encoded.clear();
        actions::encode(attrs, field, &mut s.encoded);
        with_attributes(item, field, &s.encoded, &mut s.items);
        true
    }

    fn rewrite_metric<'a>(
        &'a self,
        metric: &'a [u8],
        context: &'a [Option<Vec<u8>>],
        attrs: &mut Vec<Attr<'a>>,
        s: &mut Scratch,
    ) -> bool {
        s.points.clear();
        s.points_replaced.clear();
        let mut changed = false;
        for point in data_points(metric) {
            let attributes = attributes_of(point.bytes, point.attributes_field);
            if !self.actions.may_change(attributes.clone()) {
                s.points_replaced.push(None);
                continue;
            }
            attrs.clear();
            attrs.extend(attributes.raw().map(Attr::received));
            if !self.actions.apply(context, attrs) {
                s.points_replaced.push(None);
                continue;
            }
            s.encoded.clear();
            actions::encode(attrs, point.attributes_field, &mut s.encoded);
            let start = s.points.len();
            with_attributes(
                point.bytes,
                point.attributes_field,
                &s.encoded,
                &mut s.points,
            );
            s.points_replaced.push(Some((start, s.points.len())));
            changed = true;
        }
        if changed {
            let (points, replaced) = (&s.points, &s.points_replaced);
            metric_with_data_points(
                metric,
                |i| replaced[i].map(|(from, to)| &points[from..to]),
                &mut s.items,
            );
        }
        changed
    }
}

/// A list of strings to match, compiled.
enum Set {
    Strict(Vec<Vec<u8>>),
    Regexp(Vec<Regex>),
}

impl Set {
    fn new(list: &[String], match_type: Option<MatchType>) -> Option<Set> {
        if list.is_empty() {
            return None;
        }
        Some(match match_type {
            Some(MatchType::Regexp) => Set::Regexp(list.iter().map(|p| compile(p)).collect()),
            _ => Set::Strict(list.iter().map(|s| s.as_bytes().to_vec()).collect()),
        })
    }

    fn matches(&self, text: &[u8]) -> bool {
        match self {
            Set::Strict(list) => list.iter().any(|s| s == text),
            Set::Regexp(list) => {
                let text = pdata::go_regex_text(text);
                list.iter().any(|r| r.is_match(&text))
            }
        }
    }
}

fn compile(pattern: &str) -> Regex {
    crate::ottl::compile_go_regex(pattern).expect("patterns compile: checked with the config")
}

/// One entry of `attributes` or `resources`, compiled.
enum AttrMatch {
    /// The key is there.
    Present(Vec<u8>),
    /// The key is there with this value, type included.
    Equal(Vec<u8>, ConfigValue),
    /// The key is there with a string, bool, int or double whose text the pattern matches.
    Pattern(Vec<u8>, Regex),
}

impl AttrMatch {
    fn new(m: &AttributeMatch, match_type: Option<MatchType>) -> AttrMatch {
        let key = m.key.as_bytes().to_vec();
        match (&m.value, match_type) {
            (None, _) => AttrMatch::Present(key),
            (Some(ConfigValue::Str(p)), Some(MatchType::Regexp)) => {
                AttrMatch::Pattern(key, compile(p))
            }
            (Some(value), _) => AttrMatch::Equal(key, value.clone()),
        }
    }

    fn key(&self) -> &[u8] {
        match self {
            AttrMatch::Present(k) | AttrMatch::Equal(k, _) | AttrMatch::Pattern(k, _) => k,
        }
    }

    fn matches(&self, value: AnyValueView<'_>) -> bool {
        match self {
            AttrMatch::Present(_) => true,
            AttrMatch::Equal(_, want) => match (want, value) {
                (ConfigValue::Str(w), AnyValueView::String(v)) => w.as_bytes() == v,
                (ConfigValue::Bool(w), AnyValueView::Bool(v)) => *w == v,
                (ConfigValue::Int(w), AnyValueView::Int(v)) => *w == v,
                (ConfigValue::Double(w), AnyValueView::Double(v)) => *w == v,
                _ => false,
            },
            AttrMatch::Pattern(_, regex) => {
                // contrib's `attributeStringValue`: Go's `FormatFloat(f, 'f', -1, 64)` for a
                // double; other types do not match.
                let text = match value {
                    AnyValueView::String(s) => return regex.is_match(&pdata::go_regex_text(s)),
                    AnyValueView::Bool(b) => b.to_string(),
                    AnyValueView::Int(i) => i.to_string(),
                    AnyValueView::Double(d) if d.is_nan() => "NaN".into(),
                    AnyValueView::Double(d) if d.is_infinite() => {
                        if d > 0.0 { "+Inf" } else { "-Inf" }.into()
                    }
                    AnyValueView::Double(d) => format!("{d}"),
                    _ => return false,
                };
                regex.is_match(text.as_bytes())
            }
        }
    }
}

/// contrib's `AttributesMatcher.Match`: every entry matches the first attribute of its key (no
/// entries match anything; entries never match an item without attributes).
fn attributes_match<'a>(
    entries: &[AttrMatch],
    mut get: impl FnMut(&[u8]) -> Option<AnyValueView<'a>>,
    empty: bool,
) -> bool {
    if entries.is_empty() {
        return true;
    }
    if empty {
        return false;
    }
    entries
        .iter()
        .all(|e| get(e.key()).is_some_and(|value| e.matches(value)))
}

/// `include` or `exclude`, compiled for one signal.
struct Matcher {
    signal: Signal,
    services: Option<Set>,
    names: Option<Set>,
    kinds: Option<Set>,
    bodies: Option<Set>,
    severity_texts: Option<Set>,
    severity: Option<SeverityMatch>,
    attributes: Vec<AttrMatch>,
    resources: Vec<AttrMatch>,
    libraries: Vec<(Set, Option<Set>)>,
}

impl Matcher {
    /// `properties` for `signal`: none for metrics without `metric_names`, as contrib's
    /// `filtermetric` builds no matcher there (its `resources` narrow nothing).
    fn for_signal(properties: Option<&MatchProperties>, signal: Signal) -> Option<Matcher> {
        let properties = properties?;
        if signal == Signal::Metrics && properties.metric_names.is_empty() {
            return None;
        }
        Some(Matcher::new(properties, signal))
    }

    fn new(m: &MatchProperties, signal: Signal) -> Matcher {
        let t = m.match_type;
        let mut matcher = Matcher {
            signal,
            services: Set::new(&m.services, t),
            names: Set::new(&m.span_names, t),
            kinds: Set::new(&m.span_kinds, t),
            bodies: Set::new(&m.log_bodies, t),
            severity_texts: Set::new(&m.log_severity_texts, t),
            severity: m.log_severity_number,
            attributes: m.attributes.iter().map(|a| AttrMatch::new(a, t)).collect(),
            resources: m.resources.iter().map(|a| AttrMatch::new(a, t)).collect(),
            libraries: m
                .libraries
                .iter()
                .map(|l| {
                    let name = Set::new(std::slice::from_ref(&l.name), t).expect("one entry");
                    let version = l
                        .version
                        .as_ref()
                        .map(|v| Set::new(std::slice::from_ref(v), t).expect("one entry"));
                    (name, version)
                })
                .collect(),
        };
        if signal == Signal::Metrics {
            // contrib's `filtermetric` reads `metric_names` alone.
            matcher.names = Set::new(&m.metric_names, t);
            matcher.resources.clear();
        }
        matcher
    }

    /// `matcher`, if given, with what `group` decides.
    fn at_group<'m>(
        matcher: &'m Option<Matcher>,
        group: &ResourceGroup<'_>,
    ) -> Option<(&'m Matcher, bool)> {
        matcher.as_ref().map(|m| (m, m.group_matches(group)))
    }

    /// `matched` (a matcher and what its group decided), with what `scope` decides beside.
    fn at_scope<'m>(
        matched: Option<(&'m Matcher, bool)>,
        scope: Option<ScopeView<'_>>,
    ) -> Option<(&'m Matcher, bool)> {
        matched.map(|(m, ok)| (m, ok && m.scope_matches(scope)))
    }

    /// What a resource group decides: its service and resource attributes (pdata merges
    /// several `resource` fields; a key's first occurrence is its value).
    fn group_matches(&self, group: &ResourceGroup<'_>) -> bool {
        let first = |key: &[u8]| {
            group
                .resource_attributes()
                .find(|kv| kv.key == key)
                .map(|kv| AnyValueView::parse(kv.value))
        };
        if let Some(services) = &self.services {
            let name = match first(b"service.name") {
                Some(value) => pdata::as_string(value),
                None => b"<nil-service-name>"[..].into(),
            };
            if !services.matches(&name) {
                return false;
            }
        }
        attributes_match(
            &self.resources,
            first,
            group.resource_attributes().next().is_none(),
        )
    }

    /// What a scope group decides: every `libraries` entry must match its scope.
    fn scope_matches(&self, scope: Option<ScopeView<'_>>) -> bool {
        let (name, version) = scope.map_or((&[][..], &[][..]), |s| (s.name(), s.version()));
        self.libraries
            .iter()
            .all(|(n, v)| n.matches(name) && v.as_ref().is_none_or(|v| v.matches(version)))
    }

    /// What the item decides, its group and scope having matched.
    fn item_matches(&self, item: &[u8]) -> bool {
        match self.signal {
            Signal::Traces => {
                let span = SpanView::new(tailgate_wire::Item {
                    bytes: item,
                    offset: 0,
                });
                if self.names.as_ref().is_some_and(|n| !n.matches(span.name())) {
                    return false;
                }
                if let Some(kinds) = &self.kinds {
                    if !kinds.matches(span_kind(span.kind()).as_bytes()) {
                        return false;
                    }
                }
                self.item_attributes(span.attributes())
            }
            Signal::Logs => {
                let log = LogRecordView::new(tailgate_wire::Item {
                    bytes: item,
                    offset: 0,
                });
                if let Some(bodies) = &self.bodies {
                    if !bodies.matches(&pdata::as_string(log.body())) {
                        return false;
                    }
                }
                if let Some(texts) = &self.severity_texts {
                    if !texts.matches(log.severity_text()) {
                        return false;
                    }
                }
                if let Some(severity) = self.severity {
                    let number = log.severity_number();
                    let ok = if number == 0 {
                        severity.match_undefined
                    } else {
                        number >= severity.min
                    };
                    if !ok {
                        return false;
                    }
                }
                self.item_attributes(log.attributes())
            }
            Signal::Metrics => {
                let metric = MetricView::new(tailgate_wire::Item {
                    bytes: item,
                    offset: 0,
                });
                self.names.as_ref().is_none_or(|n| n.matches(metric.name()))
            }
        }
    }

    fn item_attributes(&self, attributes: KeyValues<'_>) -> bool {
        let empty = attributes.clone().next().is_none();
        attributes_match(&self.attributes, |key| attributes.clone().get(key), empty)
    }
}

/// contrib's `traceutil.SpanKindStr`.
fn span_kind(kind: i32) -> &'static str {
    match kind {
        0 => "SPAN_KIND_UNSPECIFIED",
        1 => "SPAN_KIND_INTERNAL",
        2 => "SPAN_KIND_SERVER",
        3 => "SPAN_KIND_CLIENT",
        4 => "SPAN_KIND_PRODUCER",
        5 => "SPAN_KIND_CONSUMER",
        _ => "",
    }
}
