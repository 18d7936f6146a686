//! The attribute policies — `string_attribute`, `numeric_attribute`, `boolean_attribute` — and
//! the walk they share.
//!
//! As in the Collector, they read the attribute from each span's resource and from the spans
//! themselves (not from scopes, events or links), take the first attribute with the key, and
//! read it through pdata's typed accessors: `Str()` is `""` for a value that is not a string,
//! `Int()` is 0 for one that is not an integer (a double included), `Bool()` is false for one
//! that is not a boolean. So a present attribute of another type still counts, with that
//! value — e.g. `numeric_attribute` with `min_value: -5, max_value: 5` matches a string
//! attribute. The string filter differs between the two places: on a span an empty string never
//! matches, on a resource it is matched like any other value (which only a regex can match).
//!
//! Without `invert_match` the decision is Sampled when any resource or span matches. With it,
//! the Collector answers with its deprecated inverted decisions: InvertNotSampled when any
//! matches, otherwise InvertSampled (see [`super::Decision`] for what they do to the final
//! decision).

use std::collections::HashSet;

use regex::bytes::RegexSet;

use super::lru::MatchCache;
use super::trace::Trace;
use super::Decision;
use crate::config::{BooleanAttributePolicy, NumericAttributePolicy, StringAttributePolicy};
use tailgate_wire::AnyValueView;

/// Where an attribute was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Resource,
    Span,
}

/// Whether `matches` says yes to the first attribute named `key` of some span's resource or of
/// some span. A resource shared by consecutive spans is read once.
pub(crate) fn any_attribute(
    trace: &Trace<'_>,
    key: &[u8],
    mut matches: impl FnMut(Origin, &AnyValueView<'_>) -> bool,
) -> bool {
    let mut last_resource: Option<&[u8]> = None;
    for s in trace.spans() {
        if let Some(resource) = s.resource {
            let raw = resource.raw();
            if !last_resource.is_some_and(|last| std::ptr::eq(last, raw)) {
                last_resource = Some(raw);
                if let Some(value) = resource.attributes().get(key) {
                    if matches(Origin::Resource, &value) {
                        return true;
                    }
                }
            }
        }
        if let Some(value) = s.span.attributes().get(key) {
            if matches(Origin::Span, &value) {
                return true;
            }
        }
    }
    false
}

/// The decision of an attribute filter that found a match (`hit`) or not.
fn decision(hit: bool, invert_match: bool) -> Decision {
    match (invert_match, hit) {
        (false, true) => Decision::Sampled,
        (false, false) => Decision::NotSampled,
        (true, true) => Decision::InvertNotSampled,
        (true, false) => Decision::InvertSampled,
    }
}

/// A compiled `string_attribute` policy.
#[derive(Debug, Clone)]
pub(crate) struct StringFilter {
    key: Box<[u8]>,
    matcher: StringMatcher,
    invert_match: bool,
}

#[derive(Debug, Clone)]
enum StringMatcher {
    /// The configured values, exactly.
    Exact(HashSet<Box<[u8]>>),
    /// Any of the patterns matches somewhere in the value (unanchored, as Go's `MatchString`);
    /// results cached by value.
    Regex {
        patterns: RegexSet,
        cache: MatchCache,
    },
}

impl StringMatcher {
    fn matches(&mut self, value: &[u8]) -> bool {
        match self {
            StringMatcher::Exact(values) => values.contains(value),
            StringMatcher::Regex { patterns, cache } => {
                if let Some(matched) = cache.get(value) {
                    return matched;
                }
                let matched = patterns.is_match(value);
                cache.insert(value, matched);
                matched
            }
        }
    }
}

impl StringFilter {
    /// Compiles the policy; fails only when the patterns do not compile together.
    pub(crate) fn new(cfg: &StringAttributePolicy) -> Result<Self, regex::Error> {
        let matcher = if cfg.enabled_regex_matching {
            StringMatcher::Regex {
                patterns: RegexSet::new(&cfg.values)?,
                cache: MatchCache::new(cfg.cache_max_size),
            }
        } else {
            StringMatcher::Exact(
                cfg.values
                    .iter()
                    .filter(|v| !v.is_empty())
                    .map(|v| v.as_bytes().into())
                    .collect(),
            )
        };
        Ok(StringFilter {
            key: cfg.key.as_bytes().into(),
            matcher,
            invert_match: cfg.invert_match,
        })
    }

    pub(crate) fn evaluate(&mut self, trace: &Trace<'_>) -> Decision {
        let StringFilter {
            key,
            matcher,
            invert_match,
        } = self;
        let hit = any_attribute(trace, key, |origin, value| match (origin, value) {
            (_, AnyValueView::String(s)) if !s.is_empty() => matcher.matches(s),
            (Origin::Resource, _) => matcher.matches(b""),
            (Origin::Span, _) => false,
        });
        decision(hit, *invert_match)
    }
}

/// A compiled `numeric_attribute` policy.
#[derive(Debug, Clone)]
pub(crate) struct NumericFilter {
    key: Box<[u8]>,
    min: i64,
    max: i64,
    invert_match: bool,
}

impl NumericFilter {
    pub(crate) fn new(cfg: &NumericAttributePolicy) -> Self {
        // The Collector's factory passes a bound on only when it is not 0 (`if MinValue != 0`),
        // so a bound written as 0 is no bound at all: `min_value: 0` also matches negative
        // values. Reproduced for parity (contrib issue #43499).
        let bound = |v: Option<i64>| v.filter(|&v| v != 0);
        NumericFilter {
            key: cfg.key.as_bytes().into(),
            min: bound(cfg.min_value).unwrap_or(i64::MIN),
            max: bound(cfg.max_value).unwrap_or(i64::MAX),
            invert_match: cfg.invert_match,
        }
    }

    pub(crate) fn evaluate(&self, trace: &Trace<'_>) -> Decision {
        let hit = any_attribute(trace, &self.key, |_, value| {
            let v = match value {
                AnyValueView::Int(v) => *v,
                _ => 0,
            };
            (self.min..=self.max).contains(&v)
        });
        decision(hit, self.invert_match)
    }
}

/// A compiled `boolean_attribute` policy.
#[derive(Debug, Clone)]
pub(crate) struct BooleanFilter {
    key: Box<[u8]>,
    value: bool,
    invert_match: bool,
}

impl BooleanFilter {
    pub(crate) fn new(cfg: &BooleanAttributePolicy) -> Self {
        BooleanFilter {
            key: cfg.key.as_bytes().into(),
            value: cfg.value,
            invert_match: cfg.invert_match,
        }
    }

    pub(crate) fn evaluate(&self, trace: &Trace<'_>) -> Decision {
        let hit = any_attribute(trace, &self.key, |_, value| {
            matches!(value, AnyValueView::Bool(true)) == self.value
        });
        decision(hit, self.invert_match)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

    use super::super::testing::*;
    use super::*;
    use crate::config::PolicyKind;

    fn string(key: &str, values: &[&str], regex: bool, invert: bool) -> PolicyKind {
        PolicyKind::StringAttribute(StringAttributePolicy {
            key: key.to_string(),
            values: values.iter().map(|v| v.to_string()).collect(),
            enabled_regex_matching: regex,
            cache_max_size: 4,
            invert_match: invert,
        })
    }

    fn numeric(min: Option<i64>, max: Option<i64>, invert: bool) -> PolicyKind {
        PolicyKind::NumericAttribute(NumericAttributePolicy {
            key: "n".to_string(),
            min_value: min,
            max_value: max,
            invert_match: invert,
        })
    }

    fn boolean(value: bool, invert: bool) -> PolicyKind {
        PolicyKind::BooleanAttribute(BooleanAttributePolicy {
            key: "b".to_string(),
            value,
            invert_match: invert,
        })
    }

    /// One group: a resource with `resource` attributes, and one span per attribute list.
    fn trace(resource: Vec<KeyValue>, spans: Vec<Vec<KeyValue>>) -> Vec<ResourceSpans> {
        let spans = spans
            .into_iter()
            .enumerate()
            .map(|(i, attrs)| with_attrs(span(i as u8, 0, 10), attrs))
            .collect();
        vec![group(Some(resource), spans)]
    }

    #[test]
    fn string_exact_matches_span_or_resource_attributes() {
        let p = || string("http.route", &["/checkout", "/cart"], false, false);
        let on_span = trace(vec![], vec![vec![], vec![str_attr("http.route", "/cart")]]);
        assert_eq!(evaluate_one(p(), on_span), Decision::Sampled);
        let on_resource = trace(vec![str_attr("http.route", "/checkout")], vec![vec![]]);
        assert_eq!(evaluate_one(p(), on_resource), Decision::Sampled);
        let other = trace(vec![], vec![vec![str_attr("http.route", "/cart/x")]]);
        assert_eq!(
            evaluate_one(p(), other),
            Decision::NotSampled,
            "exact, not prefix"
        );
        let missing = trace(vec![str_attr("service.name", "a")], vec![vec![]]);
        assert_eq!(evaluate_one(p(), missing), Decision::NotSampled);
        let no_resource = vec![group(None, vec![span(0, 0, 1)])];
        assert_eq!(evaluate_one(p(), no_resource), Decision::NotSampled);
    }

    #[test]
    fn string_attributes_on_scopes_events_and_links_do_not_count() {
        use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
        use opentelemetry_proto::tonic::trace::v1::span::Event;
        let mut groups = trace(vec![], vec![vec![]]);
        groups[0].scope_spans[0].scope = Some(InstrumentationScope {
            attributes: vec![str_attr("k", "v")],
            ..Default::default()
        });
        groups[0].scope_spans[0].spans[0].events = vec![Event {
            attributes: vec![str_attr("k", "v")],
            ..Default::default()
        }];
        assert_eq!(
            evaluate_one(string("k", &["v"], false, false), groups),
            Decision::NotSampled
        );
    }

    #[test]
    fn string_regex_is_unanchored_and_cached() {
        let p = || string("url.path", &["/health", "^/v1/name/.+$"], true, false);
        for (value, expected) in [
            ("/health", Decision::Sampled),
            ("/api/healthz", Decision::Sampled), // unanchored, as Go's MatchString
            ("/v1/name/42", Decision::Sampled),
            ("/v1/name/", Decision::NotSampled),
            ("/metrics", Decision::NotSampled),
        ] {
            let t = trace(vec![], vec![vec![str_attr("url.path", value)]]);
            assert_eq!(evaluate_one(p(), t), expected, "{value}");
        }
        // The same filter, asked again: cached results agree, beyond the cache's 4 entries.
        let cfg = StringAttributePolicy {
            key: "k".to_string(),
            values: vec!["^a".to_string()],
            enabled_regex_matching: true,
            cache_max_size: 4,
            invert_match: false,
        };
        let mut filter = StringFilter::new(&cfg).unwrap();
        for round in 0..3 {
            for value in ["a1", "b1", "a2", "b2", "a3", "b3"] {
                let expected = if value.starts_with('a') {
                    Decision::Sampled
                } else {
                    Decision::NotSampled
                };
                let t = trace(vec![], vec![vec![str_attr("k", value)]]);
                with_trace(t, |t| {
                    assert_eq!(filter.evaluate(t), expected, "{round} {value}")
                });
            }
        }
    }

    #[test]
    fn empty_and_non_string_values_match_only_on_the_resource() {
        // Span: an empty string or another type never matches, even `.*`.
        let p = || string("k", &[".*"], true, false);
        let span_empty = trace(vec![], vec![vec![str_attr("k", "")]]);
        assert_eq!(evaluate_one(p(), span_empty), Decision::NotSampled);
        let span_int = trace(vec![], vec![vec![int_attr("k", 7)]]);
        assert_eq!(evaluate_one(p(), span_int), Decision::NotSampled);
        // Resource: pdata's Str() of an int is "", which `.*` matches.
        let resource_int = trace(vec![int_attr("k", 7)], vec![vec![]]);
        assert_eq!(evaluate_one(p(), resource_int), Decision::Sampled);
        // Exact values are never empty, so "" matches nothing there.
        let exact = string("k", &["7"], false, false);
        assert_eq!(
            evaluate_one(exact, trace(vec![int_attr("k", 7)], vec![vec![]])),
            Decision::NotSampled
        );
    }

    #[test]
    fn string_invert_match_gives_the_inverted_decisions() {
        let p = || string("service.name", &["checkout"], false, true);
        let matching = trace(vec![str_attr("service.name", "checkout")], vec![vec![]]);
        assert_eq!(evaluate_one(p(), matching), Decision::InvertNotSampled);
        let other = trace(vec![str_attr("service.name", "cart")], vec![vec![]]);
        assert_eq!(evaluate_one(p(), other), Decision::InvertSampled);
        let missing = trace(vec![], vec![vec![]]);
        assert_eq!(evaluate_one(p(), missing), Decision::InvertSampled);
        // One matching span among many is enough to refuse.
        let one_of = trace(
            vec![],
            vec![vec![], vec![str_attr("service.name", "checkout")], vec![]],
        );
        assert_eq!(evaluate_one(p(), one_of), Decision::InvertNotSampled);
    }

    #[test]
    fn numeric_bounds_are_inclusive() {
        for (value, expected) in [
            (49, Decision::NotSampled),
            (50, Decision::Sampled),
            (100, Decision::Sampled),
            (101, Decision::NotSampled),
        ] {
            let t = trace(vec![], vec![vec![int_attr("n", value)]]);
            assert_eq!(
                evaluate_one(numeric(Some(50), Some(100), false), t),
                expected
            );
        }
        let only_min = trace(vec![int_attr("n", i64::MAX)], vec![vec![]]);
        assert_eq!(
            evaluate_one(numeric(Some(400), None, false), only_min),
            Decision::Sampled
        );
        let only_max = trace(vec![], vec![vec![int_attr("n", i64::MIN)]]);
        assert_eq!(
            evaluate_one(numeric(None, Some(-1), false), only_max),
            Decision::Sampled
        );
    }

    #[test]
    fn numeric_reads_other_types_as_zero() {
        // A double is not an int: pdata's Int() reads it as 0.
        let double = || trace(vec![], vec![vec![double_attr("n", 75.0)]]);
        assert_eq!(
            evaluate_one(numeric(Some(50), Some(100), false), double()),
            Decision::NotSampled
        );
        assert_eq!(
            evaluate_one(numeric(Some(-5), Some(5), false), double()),
            Decision::Sampled
        );
        let string = trace(vec![], vec![vec![str_attr("n", "75")]]);
        assert_eq!(
            evaluate_one(numeric(Some(-5), Some(5), false), string),
            Decision::Sampled
        );
        let missing = trace(vec![], vec![vec![str_attr("m", "75")]]);
        assert_eq!(
            evaluate_one(numeric(Some(-5), Some(5), false), missing),
            Decision::NotSampled
        );
    }

    #[test]
    fn numeric_bound_of_zero_is_no_bound_as_in_the_collector() {
        let negative = || trace(vec![], vec![vec![int_attr("n", -7)]]);
        assert_eq!(
            evaluate_one(numeric(Some(0), Some(100), false), negative()),
            Decision::Sampled
        );
        assert_eq!(
            evaluate_one(numeric(Some(1), Some(100), false), negative()),
            Decision::NotSampled
        );
        let big = trace(vec![], vec![vec![int_attr("n", 1 << 40)]]);
        assert_eq!(
            evaluate_one(numeric(Some(-10), Some(0), false), big),
            Decision::Sampled
        );
    }

    #[test]
    fn numeric_invert_match() {
        let p = || numeric(Some(500), Some(599), true);
        let error = trace(
            vec![],
            vec![vec![int_attr("n", 503)], vec![int_attr("n", 200)]],
        );
        assert_eq!(evaluate_one(p(), error), Decision::InvertNotSampled);
        let fine = trace(vec![], vec![vec![int_attr("n", 200)]]);
        assert_eq!(evaluate_one(p(), fine), Decision::InvertSampled);
        let missing = trace(vec![], vec![vec![]]);
        assert_eq!(evaluate_one(p(), missing), Decision::InvertSampled);
    }

    #[test]
    fn boolean_matches_the_value_and_reads_other_types_as_false() {
        let yes = || trace(vec![], vec![vec![bool_attr("b", true)]]);
        assert_eq!(evaluate_one(boolean(true, false), yes()), Decision::Sampled);
        assert_eq!(
            evaluate_one(boolean(false, false), yes()),
            Decision::NotSampled
        );
        let text = || trace(vec![str_attr("b", "true")], vec![vec![]]);
        assert_eq!(
            evaluate_one(boolean(true, false), text()),
            Decision::NotSampled
        );
        assert_eq!(
            evaluate_one(boolean(false, false), text()),
            Decision::Sampled
        );
        let missing = trace(vec![], vec![vec![]]);
        assert_eq!(
            evaluate_one(boolean(false, false), missing),
            Decision::NotSampled
        );
    }

    #[test]
    fn boolean_invert_match() {
        let p = || boolean(true, true);
        let flagged = trace(vec![bool_attr("b", true)], vec![vec![]]);
        assert_eq!(evaluate_one(p(), flagged), Decision::InvertNotSampled);
        let unflagged = trace(vec![bool_attr("b", false)], vec![vec![]]);
        assert_eq!(evaluate_one(p(), unflagged), Decision::InvertSampled);
    }

    #[test]
    fn a_resource_is_read_for_every_group_it_heads() {
        // Two groups: the attribute is on the second group's resource only.
        let groups = vec![
            group(Some(vec![str_attr("env", "dev")]), vec![span(0, 0, 1)]),
            group(
                Some(vec![str_attr("env", "prod")]),
                vec![span(1, 0, 1), span(2, 0, 1)],
            ),
        ];
        assert_eq!(
            evaluate_one(string("env", &["prod"], false, false), groups),
            Decision::Sampled
        );
    }
}
