//! The `routing` connector on one shard: the batches of the pipelines that export to it,
//! split by resource group and handed to the pipelines its table picks.
//!
//! # Model
//!
//! A batch is a valid export request (the batcher concatenates requests). The router reads its
//! resource groups in place and evaluates the table's conditions — tailgate's OTTL subset in the
//! resource context — against each group's `Resource`, as the Collector's routing connector
//! does: routes in table order, a `move` route that matches ends the search, a `copy` route
//! that matches adds its pipelines and the search goes on, and a group no `move` route took
//! also goes to `default_pipelines` (so a group only `copy` routes matched reaches the defaults
//! too, as in the Collector). A group without default pipelines to go to is dropped and counted
//! (`unrouted`). A group reaches each pipeline once, however many routes name it.
//!
//! Nothing inside a group is decoded: when every group goes to the same pipelines, the batch's
//! bytes go on as they are (a `Bytes` clone); otherwise each pipeline gets a new request made
//! of its groups' byte ranges, copied, each under its field tag and length.
//!
//! A table with a `context: span` route (traces), `context: log` route (logs) or `context:
//! metric` route (metrics) is evaluated on each span, log record or metric instead, its resource and scope beside it: every route, in order,
//! whatever its context (a resource route's condition reads the item's resource, a request
//! route the batch's metadata), which routes each item as the Collector's route-by-route passes
//! do. Each pipeline then gets its items framed under the resource and scope they came with
//! (their bytes copied, never re-encoded); a batch all of whose items go the same way goes on
//! as it is.
//!
//! # Where it runs
//!
//! On the shard that owns the data, after the receivers split requests by trace id: a trace's
//! spans from one resource stay on the trace's shard whichever pipeline they are routed to, so
//! a pipeline that samples behind the router still sees all of the trace's spans that the
//! router sends it. Spans of one trace under resources that route differently go to different
//! pipelines, and each pipeline sees its part — routing by resource cuts traces where their
//! resources differ, in the Collector as here.
//!
//! Everything here belongs to one shard and runs on its executor; the scratch space is reused
//! from batch to batch and never held across an await.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;
use tailgate_wire::{Framer, LogRecordView, MetricView, Piece, Request, Signal, SpanView};

use crate::config::{ErrorMode, RouteCondition};
use crate::export::{Batch, Connect};
use crate::ingest::Delivery;
use crate::metadata::Metadata;
use crate::ottl::{Failure, Scratch, Subject};
use crate::plan::CONNECTOR_TARGETS_MAX;
use crate::telemetry::{DropMetrics, DropReason};

use super::dispatch::Stage;

/// One route: its condition, whether it moves or copies, and its pipelines as a set of bits
/// over [`Router::targets`].
pub(super) struct Route {
    pub(super) condition: RouteCondition,
    pub(super) copy: bool,
    pub(super) targets: u64,
}

/// A routing connector on one shard.
pub(super) struct Router {
    name: String,
    signal: Signal,
    routes: Vec<Route>,
    /// `default_pipelines`, as bits over `targets`.
    default: u64,
    error_mode: ErrorMode,
    /// The stages of every pipeline the connector may send to; bit `i` of a set is `targets[i]`.
    targets: Vec<Rc<Stage>>,
    drops: DropMetrics,
    scratch: RefCell<Scratch>,
    /// Each resource group's set of targets, for the batch being split.
    marks: RefCell<Vec<u64>>,
    /// Scratch of a batch split by item: its headers, and each item.
    headers: RefCell<Vec<u8>>,
    items: RefCell<Vec<Routed>>,
    /// Whether the batch being split logged a failed condition (`error_mode: ignore`).
    warned: Cell<bool>,
    /// Whether a route reads spans, log records or metrics (`context: span`, `log`, `metric`):
    /// the batch is split item by item.
    by_item: bool,
    framer: RefCell<Framer>,
}

/// Where one batch goes: a request for each target stage, with its item count.
type Split = Vec<(usize, Bytes, u64)>;

impl Router {
    /// The router `name` for `signal`; each route's and the default's bits index `targets`
    /// (at most [`CONNECTOR_TARGETS_MAX`]).
    pub(super) fn new(
        name: String,
        signal: Signal,
        routes: Vec<Route>,
        default: u64,
        error_mode: ErrorMode,
        targets: Vec<Rc<Stage>>,
        drops: DropMetrics,
    ) -> Router {
        assert!(
            targets.len() <= CONNECTOR_TARGETS_MAX,
            "the plan bounds a connector's targets"
        );
        let by_item = routes.iter().any(|route| {
            let Some((item, _)) = route.condition.item_signal() else {
                return false;
            };
            assert_eq!(item, signal, "the configuration checks a route's context");
            true
        });
        Router {
            name,
            signal,
            by_item,
            framer: RefCell::new(Framer::new()),
            routes,
            default,
            error_mode,
            targets,
            drops,
            scratch: RefCell::new(Scratch::default()),
            marks: RefCell::new(Vec::new()),
            headers: RefCell::new(Vec::new()),
            items: RefCell::new(Vec::new()),
            warned: Cell::new(false),
        }
    }

    /// The targets of one resource group (or item), or `None` when a condition failed under
    /// `propagate`. Under `ignore`, a failure is logged once a batch (`warned`).
    fn route(
        &self,
        subject: &Subject<'_>,
        scratch: &mut Scratch,
        metadata: &Metadata,
    ) -> Option<u64> {
        let mut targets = 0;
        for route in &self.routes {
            let met = match &route.condition {
                RouteCondition::Ottl(condition) => condition.eval(subject, scratch),
                RouteCondition::Request(condition) => Ok(condition.matches(metadata)),
            };
            match met {
                Ok(true) => {
                    targets |= route.targets;
                    if !route.copy {
                        return Some(targets);
                    }
                }
                Ok(false) => {}
                Err(err) => {
                    let failure = Failure {
                        kind: "routing",
                        name: &self.name,
                        condition: route.condition.text(),
                        drops: "batch",
                    };
                    if failure.handle(self.error_mode, &err, &self.warned) {
                        return None;
                    }
                }
            }
        }
        Some(targets | self.default)
    }

    /// Splits `batch` by resource group (by item, with a span or log route): the request each
    /// target stage gets. Counts what goes nowhere.
    fn split(&self, batch: &Batch) -> Split {
        self.warned.set(false);
        if self.by_item {
            let out = self.split_items(batch);
            // A huge batch's scratch is not kept (tens of bytes an item).
            if self.items.borrow().capacity() > ITEMS_KEEP_MAX {
                *self.items.borrow_mut() = Vec::new();
                *self.headers.borrow_mut() = Vec::new();
            }
            return out;
        }
        let request = Request::trusted(self.signal, &batch.bytes);
        let mut marks = self.marks.borrow_mut();
        marks.clear();
        {
            let mut scratch = self.scratch.borrow_mut();
            for group in request.resource_groups() {
                let subject = Subject {
                    resource: group.resource(),
                    ..Subject::default()
                };
                match self.route(&subject, &mut scratch, &batch.metadata) {
                    Some(targets) => marks.push(targets),
                    None => {
                        self.drops
                            .add(self.signal, DropReason::RoutingError, batch.items);
                        return Vec::new();
                    }
                }
            }
        }
        let mut out = Split::new();
        // The common case: one tenant per request, or one route for all.
        if let Some(&first) = marks.first() {
            if marks.iter().all(|&m| m == first) {
                if first == 0 {
                    self.drops
                        .add(self.signal, DropReason::Unrouted, batch.items);
                }
                for target in bits(first) {
                    out.push((target, batch.bytes.clone(), batch.items));
                }
                return out;
            }
        }
        let unrouted: u64 = request
            .resource_groups()
            .zip(marks.iter())
            .filter(|(_, &m)| m == 0)
            .map(|(group, _)| group.item_count(self.signal))
            .sum();
        if unrouted > 0 {
            self.drops.add(self.signal, DropReason::Unrouted, unrouted);
        }
        let all = marks.iter().fold(0, |acc, &m| acc | m);
        for target in bits(all) {
            let mut bytes = Vec::new();
            let mut items = 0;
            for (group, _) in request
                .resource_groups()
                .zip(marks.iter())
                .filter(|(_, &m)| m & (1 << target) != 0)
            {
                group.write_to(&mut bytes);
                items += group.item_count(self.signal);
            }
            out.push((target, Bytes::from(bytes), items));
        }
        out
    }
}

/// The most items whose scratch a router keeps between batches.
const ITEMS_KEEP_MAX: usize = 65_536;

/// One item of a batch split by item: its targets, where its resource and scope headers are in
/// the split's header scratch, and where its bytes are in the batch.
struct Routed {
    targets: u64,
    /// Spans and log records count 1; a metric its data points.
    count: u64,
    resource: (u32, u32),
    scope: (u32, u32),
    item: (usize, usize),
}

impl Router {
    /// [`Router::split`] item by item (spans, log records or metrics).
    fn split_items(&self, batch: &Batch) -> Split {
        let request = Request::trusted(self.signal, &batch.bytes);
        let base = batch.bytes.as_ptr() as usize;
        let (mut headers, mut spans) = (self.headers.borrow_mut(), self.items.borrow_mut());
        headers.clear();
        spans.clear();
        {
            let mut scratch = self.scratch.borrow_mut();
            for group in request.resource_groups() {
                let start = headers.len() as u32;
                group.header().write_to(&mut headers);
                let resource_header = (start, headers.len() as u32);
                let resource = group.resource();
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
                        // What the item counts for: a metric, its data points.
                        let count = match self.signal {
                            Signal::Traces => {
                                subject.span = Some(SpanView::new(item));
                                1
                            }
                            Signal::Logs => {
                                subject.log = Some(LogRecordView::new(item));
                                1
                            }
                            Signal::Metrics => {
                                let metric = MetricView::new(item);
                                subject.metric = Some(metric);
                                metric.data_point_count()
                            }
                        };
                        let Some(targets) = self.route(&subject, &mut scratch, &batch.metadata)
                        else {
                            self.drops
                                .add(self.signal, DropReason::RoutingError, batch.items);
                            return Vec::new();
                        };
                        let at = item.bytes.as_ptr() as usize - base;
                        spans.push(Routed {
                            targets,
                            count,
                            resource: resource_header,
                            scope: scope_header,
                            item: (at, at + item.bytes.len()),
                        });
                    }
                }
            }
        }
        let mut out = Split::new();
        let unrouted: u64 = spans
            .iter()
            .filter(|s| s.targets == 0)
            .map(|s| s.count)
            .sum();
        if unrouted > 0 {
            self.drops.add(self.signal, DropReason::Unrouted, unrouted);
        }
        if let Some(first) = spans.first().map(|s| s.targets) {
            if spans.iter().all(|s| s.targets == first) {
                for target in bits(first) {
                    out.push((target, batch.bytes.clone(), batch.items));
                }
                return out;
            }
        }
        // Each target's items counted in one pass, rather than once a target.
        let mut counts = [0u64; u64::BITS as usize];
        let mut all = 0;
        for s in spans.iter() {
            all |= s.targets;
            for target in bits(s.targets) {
                counts[target] += s.count;
            }
        }
        let mut framer = self.framer.borrow_mut();
        for target in bits(all) {
            let mine = || spans.iter().filter(move |s| s.targets & (1 << target) != 0);
            let mut bytes = Vec::new();
            framer.frame(
                mine().map(|s| Piece {
                    resource: &headers[s.resource.0 as usize..s.resource.1 as usize],
                    scope: &headers[s.scope.0 as usize..s.scope.1 as usize],
                    item: &batch.bytes[s.item.0..s.item.1],
                }),
                &mut bytes,
            );
            out.push((target, Bytes::from(bytes), counts[target]));
        }
        out
    }
}

/// The indexes of the bits set in `set`, lowest first.
fn bits(mut set: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if set == 0 {
            return None;
        }
        let bit = set.trailing_zeros() as usize;
        set &= set - 1;
        Some(bit)
    })
}

impl Connect for Router {
    fn consume<'a>(&'a self, batch: &'a Batch) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
        Box::pin(async move {
            for (target, bytes, items) in self.split(batch) {
                let delivery = Delivery {
                    signal: self.signal,
                    bytes,
                    items,
                    metadata: batch.metadata.clone(),
                };
                self.targets[target].deliver(&delivery, &self.drops).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    use super::*;
    use crate::ottl::{Condition, ContextKind};
    use crate::telemetry::RegistryBuilder;

    /// A resource group with `spans` spans under `tenant` (none: no such attribute).
    fn group(tenant: Option<&str>, spans: usize) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: tenant
                    .map(|t| KeyValue {
                        key: "tenant".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(t.into())),
                        }),
                        ..Default::default()
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..spans)
                    .map(|i| Span {
                        trace_id: vec![1; 16],
                        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                        name: format!("{tenant:?}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn batch(groups: Vec<ResourceSpans>) -> Batch {
        let request = ExportTraceServiceRequest {
            resource_spans: groups,
        };
        let items = request
            .resource_spans
            .iter()
            .map(|g| g.scope_spans[0].spans.len() as u64)
            .sum();
        Batch {
            signal: Signal::Traces,
            bytes: Bytes::from(request.encode_to_vec()),
            items,
            metadata: Default::default(),
        }
    }

    /// Routes: tenant acme moves to 0; a tenant starting with `o` is copied to 1; the default
    /// is 2 (or nothing).
    fn router(default: u64) -> (Router, DropMetrics) {
        let mut builder = RegistryBuilder::new();
        let drops = DropMetrics::register(&mut builder, 0);
        let route = |text: &str, copy, targets| Route {
            condition: RouteCondition::Ottl(Condition::parse(text, ContextKind::Resource).unwrap()),
            copy,
            targets,
        };
        let routes = vec![
            route(r#"attributes["tenant"] == "acme""#, false, 0b001),
            route(r#"IsMatch(attributes["tenant"], "^o")"#, true, 0b010),
        ];
        let router = Router::new(
            "routing".into(),
            Signal::Traces,
            routes,
            default,
            ErrorMode::Propagate,
            Vec::new(),
            drops.clone(),
        );
        (router, drops)
    }

    /// The spans of a request the router wrote, by name, decoded with prost.
    fn names(bytes: &[u8]) -> Vec<String> {
        ExportTraceServiceRequest::decode(bytes)
            .expect("valid")
            .resource_spans
            .iter()
            .flat_map(|g| g.scope_spans[0].spans.iter().map(|s| s.name.clone()))
            .collect()
    }

    #[test]
    fn groups_go_where_the_table_says_copy_routes_reach_the_default_too() {
        let (router, drops) = router(0b100);
        let batch = batch(vec![
            group(Some("acme"), 2),
            group(Some("other"), 1),
            group(None, 3),
        ]);
        let split = router.split(&batch);
        let targets: Vec<(usize, u64)> = split.iter().map(|(t, _, n)| (*t, *n)).collect();
        // acme moved to 0; other copied to 1 and, no move route taking it, on to the default;
        // the group without a tenant to the default.
        assert_eq!(targets, [(0, 2), (1, 1), (2, 4)]);
        assert_eq!(names(&split[0].1), ["Some(\"acme\")"; 2]);
        assert_eq!(names(&split[1].1), ["Some(\"other\")"]);
        assert_eq!(
            names(&split[2].1),
            ["Some(\"other\")", "None", "None", "None"]
        );
        assert_eq!(drops.counter(Signal::Traces, DropReason::Unrouted).get(), 0);
    }

    #[test]
    fn a_batch_for_one_place_goes_on_uncopied() {
        let (router, _) = router(0b100);
        let batch = batch(vec![group(Some("acme"), 2), group(Some("acme"), 1)]);
        let split = router.split(&batch);
        assert_eq!(split.len(), 1);
        assert_eq!(split[0].0, 0);
        assert_eq!(split[0].2, 3);
        // The same bytes, not a copy.
        assert_eq!(split[0].1.as_ptr(), batch.bytes.as_ptr());
    }

    #[test]
    fn without_default_pipelines_what_no_route_takes_is_counted() {
        let (router, drops) = router(0);
        let batch = batch(vec![group(Some("acme"), 2), group(None, 3)]);
        let split = router.split(&batch);
        assert_eq!(split.len(), 1);
        assert_eq!((split[0].0, split[0].2), (0, 2));
        assert_eq!(drops.counter(Signal::Traces, DropReason::Unrouted).get(), 3);
        let all_unrouted = router.split(&super::tests::batch(vec![group(None, 4)]));
        assert!(all_unrouted.is_empty());
        assert_eq!(drops.counter(Signal::Traces, DropReason::Unrouted).get(), 7);
    }

    /// With a span route, each span goes its own way (a resource route in the same table read
    /// on each span's resource), under the resource it came with; a batch all of whose spans
    /// go one way goes on uncopied.
    #[test]
    fn a_span_route_splits_groups_span_by_span() {
        let mut builder = RegistryBuilder::new();
        let drops = DropMetrics::register(&mut builder, 0);
        let routes = vec![
            Route {
                condition: RouteCondition::Ottl(
                    Condition::parse(r#"IsMatch(name, "^x")"#, ContextKind::Span).unwrap(),
                ),
                copy: false,
                targets: 0b01,
            },
            Route {
                condition: RouteCondition::Ottl(
                    Condition::parse(r#"attributes["tenant"] == "acme""#, ContextKind::Resource)
                        .unwrap(),
                ),
                copy: false,
                targets: 0b10,
            },
        ];
        let router = Router::new(
            "routing".into(),
            Signal::Traces,
            routes,
            0,
            ErrorMode::Propagate,
            Vec::new(),
            drops.clone(),
        );
        let named = |tenant: Option<&str>, names: &[&str]| {
            let mut g = group(tenant, names.len());
            for (span, name) in g.scope_spans[0].spans.iter_mut().zip(names) {
                span.name = name.to_string();
            }
            g
        };
        let mixed = batch(vec![
            named(Some("acme"), &["x1", "a1", "x2"]),
            named(None, &["b1", "x3"]),
        ]);
        let split = router.split(&mixed);
        let targets: Vec<(usize, u64)> = split.iter().map(|(t, _, n)| (*t, *n)).collect();
        assert_eq!(targets, [(0, 3), (1, 1)]);
        assert_eq!(names(&split[0].1), ["x1", "x2", "x3"]);
        assert_eq!(names(&split[1].1), ["a1"]);
        // x1 and x2 under acme's resource, x3 under the one without a tenant.
        let groups = ExportTraceServiceRequest::decode(&split[0].1[..])
            .unwrap()
            .resource_spans;
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].resource, mixed_resource(&mixed, 0));
        assert_eq!(groups[1].resource, mixed_resource(&mixed, 1));
        assert_eq!(drops.counter(Signal::Traces, DropReason::Unrouted).get(), 1);
        let one_way = batch(vec![named(None, &["x4", "x5"])]);
        let split = router.split(&one_way);
        assert_eq!(split.len(), 1);
        assert_eq!(split[0].1.as_ptr(), one_way.bytes.as_ptr());
    }

    fn mixed_resource(batch: &Batch, group: usize) -> Option<Resource> {
        ExportTraceServiceRequest::decode(&batch.bytes[..])
            .unwrap()
            .resource_spans[group]
            .resource
            .clone()
    }

    #[test]
    fn bits_lists_set_bits_in_order() {
        assert_eq!(bits(0).count(), 0);
        assert_eq!(bits(0b1011).collect::<Vec<_>>(), [0, 1, 3]);
        assert_eq!(bits(1 << 63).collect::<Vec<_>>(), [63]);
    }
}
