//! The `filter` processor on one shard: drops the spans, log records and metrics that meet an
//! OTTL condition, and the resource groups whose resource meets one.
//!
//! # Model
//!
//! A request is read in place. Resource conditions are tried on each resource group first: a
//! group that meets one is dropped whole, and its items are not read. Item conditions (span,
//! log, metric context) are then tried on each item of the groups left, with its resource and
//! scope beside it; an item that meets any is dropped. Conditions are tried in the order written
//! and the first that holds decides, as the Collector ORs them.
//!
//! Span event conditions come last: each event of a span no condition dropped is tried, and a
//! span that loses events is written again without them (`span_without_events`: its other
//! fields as they came). Spans are counted as filtered, events are not, as in the Collector.
//!
//! What is kept goes on as it came: when nothing is dropped, the request itself; otherwise a
//! new request of the kept items' bytes, each under the resource and scope it came with
//! (copied, never re-encoded; groups left empty are not written, as the Collector removes them).
//! A metric counts its data points, as the Collector's `datapoints.filtered` does.
//!
//! A condition that fails to evaluate (tailgate's subset fails only on `IsMatch` of a NaN or
//! infinite float) is read as false under `error_mode: ignore` (logged once a request) and
//! `silent`; under `propagate` the whole request is dropped, as the Collector fails it, and
//! counted (`tailgate_dropped_*{reason="filter_error"}`).
//!
//! # Where it runs
//!
//! In a pipeline's stage on the shard that owns the data: a filter listed before
//! `tail_sampling` drops items before the sampler sees them (so a policy never sees a filtered
//! span), one listed after it drops kept spans on their way to the batcher, as the Collector
//! runs processors in the order listed. Everything here belongs to one shard; the scratch space
//! is reused from request to request and never held across an await.

use std::cell::{Cell, RefCell};

use tailgate_wire::{
    span_without_events, Framer, LogRecordView, MetricView, Piece, Request, Signal, SpanView,
};

use super::Outcome;
use crate::config::FilterRule;
use crate::ottl::{Failure, Scratch, Subject};
use crate::telemetry::{Counter, DropMetrics, DropReason};

/// The most items whose scratch a filter keeps between requests.
const ITEMS_KEEP_MAX: usize = 65_536;
/// The most bytes of resource and scope headers a filter keeps between requests.
const HEADERS_KEEP_MAX: usize = 1 << 20;

/// One kept item: where its resource and scope headers are in the header scratch, and its
/// bytes: in the request, or (a span that lost events) in the rewritten spans' scratch.
struct Kept {
    resource: (u32, u32),
    scope: (u32, u32),
    item: (usize, usize),
    rewritten: bool,
}

/// One `filter` processor, for one signal, on one shard.
pub struct Filter {
    name: String,
    signal: Signal,
    /// The resource conditions, then the item conditions.
    rules: Vec<FilterRule>,
    /// How many of `rules` are resource conditions.
    resource_rules: usize,
    /// Where the span event conditions (the last of `rules`) start.
    event_rules: usize,
    filtered: Counter,
    drops: DropMetrics,
    scratch: RefCell<Scratch>,
    headers: RefCell<Vec<u8>>,
    kept: RefCell<Vec<Kept>>,
    /// Spans written again without the events a span event condition dropped, and which
    /// events of the span being read are dropped.
    rewritten: RefCell<Vec<u8>>,
    events: RefCell<Vec<bool>>,
    framer: RefCell<Framer>,
    /// Whether the request being filtered logged a failed condition (`error_mode: ignore`).
    warned: Cell<bool>,
}

impl Filter {
    /// Processor `name` on `signal`, with its `rules` for that signal (resource conditions
    /// first, as the configuration orders them); what it drops is counted in `filtered` and
    /// `drops`.
    pub fn new(
        name: String,
        signal: Signal,
        rules: Vec<FilterRule>,
        filtered: Counter,
        drops: DropMetrics,
    ) -> Filter {
        let resource_rules = rules
            .iter()
            .take_while(|r| r.condition.context() == crate::ottl::ContextKind::Resource)
            .count();
        let event_rules = rules.len()
            - rules
                .iter()
                .rev()
                .take_while(|r| r.condition.context() == crate::ottl::ContextKind::SpanEvent)
                .count();
        assert!(
            rules[resource_rules..event_rules].iter().all(|r| !matches!(
                r.condition.context(),
                crate::ottl::ContextKind::Resource | crate::ottl::ContextKind::SpanEvent
            )),
            "the configuration puts resource conditions first and span event conditions last"
        );
        Filter {
            name,
            signal,
            rules,
            resource_rules,
            event_rules,
            filtered,
            drops,
            scratch: RefCell::new(Scratch::default()),
            headers: RefCell::new(Vec::new()),
            kept: RefCell::new(Vec::new()),
            rewritten: RefCell::new(Vec::new()),
            events: RefCell::new(Vec::new()),
            framer: RefCell::new(Framer::new()),
            warned: Cell::new(false),
        }
    }

    /// Whether any of `rules` holds for `subject`; `Err` when one failed under `propagate`.
    fn meets(
        &self,
        rules: &[FilterRule],
        subject: &Subject<'_>,
        scratch: &mut Scratch,
    ) -> Result<bool, ()> {
        for rule in rules {
            match rule.condition.eval(subject, scratch) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(err) => {
                    let failure = Failure {
                        kind: "filter",
                        name: &self.name,
                        condition: rule.condition.text(),
                        drops: "request",
                    };
                    if failure.handle(rule.error_mode, &err, &self.warned) {
                        return Err(());
                    }
                }
            }
        }
        Ok(false)
    }

    /// Filters `bytes`, a valid export request of the filter's signal holding `items` items.
    pub fn apply(&self, bytes: &[u8], items: u64) -> Outcome {
        self.warned.set(false);
        let out = self.filter(bytes, items);
        // A huge request's scratch is not kept (tens of bytes an item, its groups' headers).
        if self.kept.borrow().capacity() > ITEMS_KEEP_MAX
            || self.events.borrow().capacity() > ITEMS_KEEP_MAX
            || self.headers.borrow().capacity() > HEADERS_KEEP_MAX
            || self.rewritten.borrow().capacity() > HEADERS_KEEP_MAX
        {
            *self.kept.borrow_mut() = Vec::new();
            *self.events.borrow_mut() = Vec::new();
            *self.headers.borrow_mut() = Vec::new();
            *self.rewritten.borrow_mut() = Vec::new();
        }
        out
    }

    fn filter(&self, bytes: &[u8], items: u64) -> Outcome {
        let request = Request::trusted(self.signal, bytes);
        let base = bytes.as_ptr() as usize;
        let (resource_rules, rest) = self.rules.split_at(self.resource_rules);
        let (item_rules, event_rules) = rest.split_at(self.event_rules - self.resource_rules);
        // Resource conditions alone: no item is read.
        if item_rules.is_empty() && event_rules.is_empty() {
            return self.filter_groups(&request, items);
        }
        let mut headers = self.headers.borrow_mut();
        let mut kept = self.kept.borrow_mut();
        let mut scratch = self.scratch.borrow_mut();
        let mut rewritten = self.rewritten.borrow_mut();
        let mut events = self.events.borrow_mut();
        headers.clear();
        kept.clear();
        rewritten.clear();
        // Items dropped, and whether any was: a metric without data points counts none.
        let (mut dropped, mut any) = (0u64, false);
        for group in request.resource_groups() {
            let resource = group.resource();
            if !resource_rules.is_empty() {
                let subject = Subject {
                    resource,
                    ..Subject::default()
                };
                match self.meets(resource_rules, &subject, &mut scratch) {
                    Ok(true) => {
                        dropped += group.item_count(self.signal);
                        any = true;
                        continue;
                    }
                    Ok(false) => {}
                    Err(()) => return self.fail(items),
                }
            }
            let start = headers.len() as u32;
            group.header().write_to(&mut headers);
            let resource_header = (start, headers.len() as u32);
            for scope_group in group.scope_groups() {
                let start = headers.len() as u32;
                scope_group.header().write_to(&mut headers);
                let scope_header = (start, headers.len() as u32);
                let scope = scope_group.scope();
                for item in scope_group.items() {
                    let mut subject = Subject {
                        resource,
                        scope,
                        ..Subject::default()
                    };
                    match self.signal {
                        Signal::Traces => subject.span = Some(SpanView::new(item)),
                        Signal::Logs => subject.log = Some(LogRecordView::new(item)),
                        Signal::Metrics => subject.metric = Some(MetricView::new(item)),
                    }
                    match self.meets(item_rules, &subject, &mut scratch) {
                        Ok(true) => {
                            // What the item counts for: a metric, its data points.
                            dropped += subject.metric.map_or(1, |m| m.data_point_count());
                            any = true;
                            continue;
                        }
                        Ok(false) => {}
                        Err(()) => return self.fail(items),
                    }
                    // A kept span loses the events a span event condition meets.
                    if let (Some(span), false) = (subject.span, event_rules.is_empty()) {
                        events.clear();
                        for event in span.events() {
                            subject.event = Some(event);
                            match self.meets(event_rules, &subject, &mut scratch) {
                                Ok(met) => events.push(met),
                                Err(()) => return self.fail(items),
                            }
                        }
                        if events.contains(&true) {
                            let start = rewritten.len();
                            span_without_events(item.bytes, |i| events[i], &mut rewritten);
                            kept.push(Kept {
                                resource: resource_header,
                                scope: scope_header,
                                item: (start, rewritten.len()),
                                rewritten: true,
                            });
                            any = true;
                            continue;
                        }
                    }
                    let at = item.bytes.as_ptr() as usize - base;
                    kept.push(Kept {
                        resource: resource_header,
                        scope: scope_header,
                        item: (at, at + item.bytes.len()),
                        rewritten: false,
                    });
                }
            }
        }
        if !any {
            return Outcome::Unchanged;
        }
        debug_assert!(dropped <= items, "{dropped} of {items} items dropped");
        self.filtered.add(dropped);
        self.drops.add(self.signal, DropReason::Filtered, dropped);
        if kept.is_empty() {
            return Outcome::Nothing;
        }
        let mut out = Vec::new();
        self.framer.borrow_mut().frame(
            kept.iter().map(|k| Piece {
                resource: &headers[k.resource.0 as usize..k.resource.1 as usize],
                scope: &headers[k.scope.0 as usize..k.scope.1 as usize],
                item: if k.rewritten {
                    &rewritten[k.item.0..k.item.1]
                } else {
                    &bytes[k.item.0..k.item.1]
                },
            }),
            &mut out,
        );
        Outcome::Changed(out, items.saturating_sub(dropped))
    }

    /// [`Filter::filter`] with resource conditions alone: each group kept or dropped whole,
    /// no item read (but a dropped group's, to count them).
    fn filter_groups(&self, request: &Request<'_>, items: u64) -> Outcome {
        let mut scratch = self.scratch.borrow_mut();
        let (mut dropped, mut kept_groups) = (0u64, 0usize);
        // The kept groups, written from the first group dropped on (those before it copied
        // then): a request that loses nothing is not copied.
        let mut out: Option<Vec<u8>> = None;
        for (i, group) in request.resource_groups().enumerate() {
            let subject = Subject {
                resource: group.resource(),
                ..Subject::default()
            };
            match self.meets(&self.rules, &subject, &mut scratch) {
                Ok(true) => {
                    dropped += group.item_count(self.signal);
                    out.get_or_insert_with(|| {
                        let mut out = Vec::with_capacity(request.bytes().len());
                        for earlier in request.resource_groups().take(i) {
                            earlier.write_to(&mut out);
                        }
                        out
                    });
                }
                Ok(false) => {
                    kept_groups += 1;
                    if let Some(out) = &mut out {
                        group.write_to(out);
                    }
                }
                Err(()) => return self.fail(items),
            }
        }
        let Some(out) = out else {
            return Outcome::Unchanged;
        };
        debug_assert!(dropped <= items, "{dropped} of {items} items dropped");
        self.filtered.add(dropped);
        self.drops.add(self.signal, DropReason::Filtered, dropped);
        if kept_groups == 0 {
            return Outcome::Nothing;
        }
        Outcome::Changed(out, items.saturating_sub(dropped))
    }

    /// A condition failed under `propagate`: the whole request is dropped, and counted.
    fn fail(&self, items: u64) -> Outcome {
        self.drops.add(self.signal, DropReason::FilterError, items);
        Outcome::Nothing
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue, InstrumentationScope, KeyValue,
    };
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    use super::*;
    use crate::config::ErrorMode;
    use crate::metadata::Metadata;
    use crate::ottl::{Condition, ContextKind};
    use crate::processors::{Step, Steps};
    use crate::telemetry::RegistryBuilder;

    fn attribute(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    /// A resource group of service `service` with one scope per list of span names.
    fn group(service: &str, scopes: &[&[&str]]) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attribute(
                    "service.name",
                    any_value::Value::StringValue(service.into()),
                )],
                ..Default::default()
            }),
            scope_spans: scopes
                .iter()
                .enumerate()
                .map(|(i, names)| ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: format!("scope-{i}"),
                        ..Default::default()
                    }),
                    spans: names
                        .iter()
                        .map(|name| Span {
                            trace_id: vec![1; 16],
                            span_id: vec![2; 8],
                            name: name.to_string(),
                            attributes: vec![attribute(
                                "ratio",
                                any_value::Value::DoubleValue(if name.ends_with("nan") {
                                    f64::NAN
                                } else {
                                    0.5
                                }),
                            )],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn request(groups: Vec<ResourceSpans>) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: groups,
        }
        .encode_to_vec()
    }

    /// A filter of `rules` (text, context, mode) on `signal`, with its counters.
    fn filter(signal: Signal, rules: &[(&str, ContextKind, ErrorMode)]) -> (Filter, DropMetrics) {
        let mut builder = RegistryBuilder::new();
        let drops = DropMetrics::register(&mut builder, 0);
        let filtered = builder.counter("filtered", "test", &[]);
        let rules = rules
            .iter()
            .map(|&(text, context, error_mode)| FilterRule {
                condition: Condition::parse(text, context).expect("a valid condition"),
                error_mode,
            })
            .collect();
        let filter = Filter::new("filter".into(), signal, rules, filtered, drops.clone());
        (filter, drops)
    }

    /// Each resource group's service, each scope's span names.
    fn shape(bytes: &[u8]) -> Vec<(String, Vec<Vec<String>>)> {
        ExportTraceServiceRequest::decode(bytes)
            .expect("a valid request")
            .resource_spans
            .into_iter()
            .map(|g| {
                let service = match &g.resource.unwrap().attributes[0].value {
                    Some(AnyValue {
                        value: Some(any_value::Value::StringValue(s)),
                    }) => s.clone(),
                    _ => panic!("a service name"),
                };
                let scopes = g
                    .scope_spans
                    .into_iter()
                    .map(|s| s.spans.into_iter().map(|s| s.name).collect())
                    .collect();
                (service, scopes)
            })
            .collect()
    }

    #[test]
    fn resource_and_span_conditions_drop_what_they_meet_and_empty_groups_go() {
        let (filter, drops) = filter(
            Signal::Traces,
            &[
                (
                    r#"attributes["service.name"] == "canary""#,
                    ContextKind::Resource,
                    ErrorMode::Ignore,
                ),
                (
                    r#"IsMatch(name, "^health")"#,
                    ContextKind::Span,
                    ErrorMode::Ignore,
                ),
                (r#"name == "ping""#, ContextKind::Span, ErrorMode::Ignore),
            ],
        );
        let bytes = request(vec![
            group("checkout", &[&["a", "healthz", "b"], &["ping"], &["c"]]),
            group("canary", &[&["d", "e"]]),
            group("billing", &[&["health"]]),
        ]);
        let Outcome::Changed(kept, items) = filter.apply(&bytes, 8) else {
            panic!("a part kept");
        };
        assert_eq!(items, 3);
        assert_eq!(
            shape(&kept),
            [(
                "checkout".to_string(),
                vec![
                    vec!["a".to_string(), "b".to_string()],
                    vec!["c".to_string()]
                ]
            )]
        );
        assert_eq!(filter.filtered.get(), 5);
        assert_eq!(drops.counter(Signal::Traces, DropReason::Filtered).get(), 5);

        // Nothing met: the request goes on as it came; everything met: nothing does.
        let clean = request(vec![group("checkout", &[&["a"]])]);
        assert_eq!(filter.apply(&clean, 1), Outcome::Unchanged);
        let noise = request(vec![group("canary", &[&["a"]]), group("x", &[&["ping"]])]);
        assert_eq!(filter.apply(&noise, 2), Outcome::Nothing);
        assert_eq!(filter.filtered.get(), 7);
    }

    #[test]
    fn a_failed_condition_is_false_under_ignore_and_drops_the_request_under_propagate() {
        let condition = r#"IsMatch(attributes["ratio"], "5")"#;
        let bytes = request(vec![group("checkout", &[&["nan", "a"]])]);
        // `ratio` 0.5 renders as "0.5": span `a` meets the condition; `nan` fails it.
        let (ignore, drops) = filter(
            Signal::Traces,
            &[(condition, ContextKind::Span, ErrorMode::Ignore)],
        );
        let Outcome::Changed(kept, 1) = ignore.apply(&bytes, 2) else {
            panic!("one span kept");
        };
        assert_eq!(shape(&kept)[0].1, [["nan"]]);
        assert_eq!(
            drops.counter(Signal::Traces, DropReason::FilterError).get(),
            0
        );
        let (propagate, drops) = filter(
            Signal::Traces,
            &[(condition, ContextKind::Span, ErrorMode::Propagate)],
        );
        assert_eq!(propagate.apply(&bytes, 2), Outcome::Nothing);
        assert_eq!(
            drops.counter(Signal::Traces, DropReason::FilterError).get(),
            2
        );
        assert_eq!(drops.counter(Signal::Traces, DropReason::Filtered).get(), 0);
    }

    #[test]
    fn a_dropped_metric_counts_its_data_points() {
        let gauge = |name: &str, points: usize| Metric {
            name: name.into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint::default(); points],
            })),
            ..Default::default()
        };
        let bytes = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![gauge("keep", 2), gauge("noisy", 5), gauge("keep2", 1)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let (filter, drops) = filter(
            Signal::Metrics,
            &[(r#"name == "noisy""#, ContextKind::Metric, ErrorMode::Ignore)],
        );
        let Outcome::Changed(kept, 3) = filter.apply(&bytes, 8) else {
            panic!("three points kept");
        };
        let names: Vec<String> = ExportMetricsServiceRequest::decode(&kept[..])
            .unwrap()
            .resource_metrics[0]
            .scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.clone())
            .collect();
        assert_eq!(names, ["keep", "keep2"]);
        assert_eq!(
            drops.counter(Signal::Metrics, DropReason::Filtered).get(),
            5
        );
    }

    /// Resource conditions alone: groups kept or dropped whole, the kept ones in order, a
    /// request that loses nothing passed on as it came.
    #[test]
    fn resource_conditions_alone_keep_or_drop_whole_groups() {
        let (filter, drops) = filter(
            Signal::Traces,
            &[(
                r#"attributes["service.name"] == "canary""#,
                ContextKind::Resource,
                ErrorMode::Ignore,
            )],
        );
        let bytes = request(vec![
            group("checkout", &[&["a", "b"]]),
            group("canary", &[&["c"], &["d"]]),
            group("billing", &[&["e"]]),
        ]);
        let Outcome::Changed(kept, 3) = filter.apply(&bytes, 5) else {
            panic!("two groups kept");
        };
        let services: Vec<String> = shape(&kept).into_iter().map(|(s, _)| s).collect();
        assert_eq!(services, ["checkout", "billing"]);
        assert_eq!(drops.counter(Signal::Traces, DropReason::Filtered).get(), 2);
        let clean = request(vec![group("checkout", &[&["a"]])]);
        assert_eq!(filter.apply(&clean, 1), Outcome::Unchanged);
        let canary = request(vec![group("canary", &[&["a"]])]);
        assert_eq!(filter.apply(&canary, 1), Outcome::Nothing);
        assert_eq!(filter.filtered.get(), 3);
    }

    /// A metric without data points counts none, and is dropped all the same (the request no
    /// longer goes on as it came).
    #[test]
    fn a_metric_without_points_is_dropped_when_it_meets_a_condition() {
        let bytes = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        Metric {
                            name: "keep".into(),
                            data: Some(metric::Data::Gauge(Gauge {
                                data_points: vec![NumberDataPoint::default(); 3],
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "empty".into(),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let (filter, _) = filter(
            Signal::Metrics,
            &[(r#"name == "empty""#, ContextKind::Metric, ErrorMode::Ignore)],
        );
        let Outcome::Changed(kept, 3) = filter.apply(&bytes, 3) else {
            panic!("the empty metric dropped");
        };
        assert_eq!(
            ExportMetricsServiceRequest::decode(&kept[..])
                .unwrap()
                .resource_metrics[0]
                .scope_metrics[0]
                .metrics
                .len(),
            1
        );
        assert_eq!(filter.filtered.get(), 0);
    }

    #[test]
    fn filters_apply_in_turn_each_to_what_the_last_kept() {
        let (first, _) = filter(
            Signal::Traces,
            &[(r#"name == "a""#, ContextKind::Span, ErrorMode::Ignore)],
        );
        let (second, _) = filter(
            Signal::Traces,
            &[(r#"name == "b""#, ContextKind::Span, ErrorMode::Ignore)],
        );
        let filters = Steps::new(vec![
            Step::Filter(Box::new(first)),
            Step::Filter(Box::new(second)),
        ]);
        let bytes = request(vec![group("checkout", &[&["a", "b", "c"]])]);
        let Outcome::Changed(kept, 1) = filters.apply(&bytes, 3, &Metadata::none()) else {
            panic!("one span kept");
        };
        assert_eq!(shape(&kept)[0].1, [["c"]]);
        for step in &filters.0 {
            let Step::Filter(filter) = step else {
                panic!("filters");
            };
            assert_eq!(filter.filtered.get(), 1);
        }
        assert_eq!(
            Steps::default().apply(&bytes, 3, &Metadata::none()),
            Outcome::Unchanged
        );
    }
}
