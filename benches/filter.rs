//! What the `filter` processor costs a span, outside the network: `bench-rig/scenarios/
//! filter.yaml` measures it in place. One 500-span request of the semantic corpus through:
//!
//! - `noise-none-met`: the conditions a gateway drops noise with (a health-check route, a
//!   ping name by pattern, a canary service's resource), none of which the corpus meets: every
//!   span read and tested, the request passed on as it came (the common case, where a small
//!   share is dropped);
//! - `drop-an-eighth`: one span condition meeting one operation in eight (`redis GET`): the
//!   kept spans framed into a new request;
//! - `resource-only`: the canary resource condition alone: one test a resource group, no span
//!   read;
//! - `events-none-met`: a span event condition (`name == "exception"`) none of the corpus's
//!   events meets: every span's events read, the request passed on as it came;
//! - `events-every-span`: one every span's event meets: every span written again without it;
//!
//! and through the `resource` processor (`resource/*`):
//!
//! - `upsert-region`: one `upsert` of a value: every resource written again;
//! - `four-actions`: an `insert`, an `upsert`, a `delete` and a `hash`;
//! - `nothing-to-do`: an `update` of a key no resource has: the request passed on as it came;
//!
//! and through the `attributes` processor (`attributes/*`), on each span's attributes:
//!
//! - `pii-every-span`: a `hash` of `enduser.id`, a `delete` by pattern and an `insert`: every
//!   span written again;
//! - `include-an-eighth`: `include` by span name (`redis GET`, one operation in eight), a `hash`
//!   on those: an eighth of the spans written again, the rest matched and skipped;
//! - `nothing-to-do`: an `update` of a key no span has: every span's attributes read, the
//!   request passed on as it came.
//!
//! Criterion reports time per span.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use mimalloc::MiMalloc;
use tailgate::config::{
    ActionKind, AttributeAction, AttributesProcessor, ConfigValue, ErrorMode, FilterRule,
    MatchProperties, MatchType, ResourceProcessor, ValueSource,
};
use tailgate::metadata::Metadata;
use tailgate::ottl::{Condition, ContextKind};
use tailgate::processors::{AttributesEditor, Filter, Outcome, ResourceEditor};
use tailgate::telemetry::{DropMetrics, RegistryBuilder};
use tailgate_bench::corpus::Corpus;
use tailgate_bench::generate::{request_of, Rng};
use tailgate_wire::Signal;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const REQUEST_SPANS: u64 = 500;

fn filter(rules: &[(&str, ContextKind)]) -> Filter {
    let mut builder = RegistryBuilder::new();
    let drops = DropMetrics::register(&mut builder, 0);
    let filtered = builder.counter("filtered", "bench", &[]);
    let rules = rules
        .iter()
        .map(|&(text, context)| FilterRule {
            condition: Condition::parse(text, context).expect("a valid condition"),
            error_mode: ErrorMode::Ignore,
        })
        .collect();
    Filter::new("filter".into(), Signal::Traces, rules, filtered, drops)
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let mut rng = Rng(31);
    let request = request_of(Corpus::Semantic, &mut rng, REQUEST_SPANS as usize);
    let canary = (
        r#"attributes["service.name"] == "canary""#,
        ContextKind::Resource,
    );
    let cases = [
        (
            "noise-none-met",
            vec![
                canary,
                (
                    r#"attributes["http.route"] == "/healthz""#,
                    ContextKind::Span,
                ),
                (r#"IsMatch(name, "^GET /(health|ping)")"#, ContextKind::Span),
            ],
        ),
        (
            "drop-an-eighth",
            vec![(r#"name == "redis GET""#, ContextKind::Span)],
        ),
        ("resource-only", vec![canary]),
        (
            "events-none-met",
            vec![(r#"name == "exception""#, ContextKind::SpanEvent)],
        ),
        (
            "events-every-span",
            vec![(r#"name == "message""#, ContextKind::SpanEvent)],
        ),
    ];
    let mut group = criterion.benchmark_group("filter");
    group.throughput(Throughput::Elements(REQUEST_SPANS));
    for (name, rules) in cases {
        let filter = filter(&rules);
        let kept = match filter.apply(&request, REQUEST_SPANS) {
            Outcome::Unchanged => REQUEST_SPANS,
            Outcome::Changed(_, n) => n,
            Outcome::Nothing => 0,
        };
        println!("filter/{name}: {kept} of {REQUEST_SPANS} spans kept");
        group.bench_function(name, |b| {
            b.iter(|| black_box(filter.apply(black_box(&request), REQUEST_SPANS)))
        });
    }
    group.finish();

    let value = |v: &str| ValueSource::Value(ConfigValue::Str(v.into()));
    let action = |key: &str, kind: ActionKind| AttributeAction {
        key: key.into(),
        kind,
        default: None,
    };
    let cases = [
        (
            "upsert-region",
            vec![action(
                "cloud.region",
                ActionKind::Upsert(value("eu-west-1")),
            )],
        ),
        (
            "four-actions",
            vec![
                action("deployment.environment", ActionKind::Insert(value("prod"))),
                action("cloud.region", ActionKind::Upsert(value("eu-west-1"))),
                action("host.name", ActionKind::Delete { pattern: None }),
                action("service.instance.id", ActionKind::Hash { pattern: None }),
            ],
        ),
        (
            "nothing-to-do",
            vec![action("absent", ActionKind::Update(value("x")))],
        ),
    ];
    let mut group = criterion.benchmark_group("resource");
    group.throughput(Throughput::Elements(REQUEST_SPANS));
    let none = Metadata::none();
    for (name, actions) in cases {
        let editor = ResourceEditor::new(Signal::Traces, &ResourceProcessor { actions });
        let changed = matches!(
            editor.apply(&request, REQUEST_SPANS, &none),
            Outcome::Changed(..)
        );
        println!("resource/{name}: request changed {changed}");
        group.bench_function(name, |b| {
            b.iter(|| black_box(editor.apply(black_box(&request), REQUEST_SPANS, &none)))
        });
    }
    group.finish();

    let hash = |key: &str| action(key, ActionKind::Hash { pattern: None });
    let by_name = MatchProperties {
        match_type: Some(MatchType::Strict),
        span_names: vec!["redis GET".into()],
        ..MatchProperties::default()
    };
    let cases = [
        (
            "pii-every-span",
            AttributesProcessor {
                actions: vec![
                    hash("enduser.id"),
                    action(
                        "",
                        ActionKind::Delete {
                            pattern: Some(r"^http\.request\.header\.".into()),
                        },
                    ),
                    action("deployment.environment", ActionKind::Insert(value("prod"))),
                ],
                ..AttributesProcessor::default()
            },
        ),
        (
            "include-an-eighth",
            AttributesProcessor {
                actions: vec![hash("enduser.id")],
                include: Some(by_name),
                ..AttributesProcessor::default()
            },
        ),
        (
            "nothing-to-do",
            AttributesProcessor {
                actions: vec![action("absent", ActionKind::Update(value("x")))],
                ..AttributesProcessor::default()
            },
        ),
    ];
    let mut group = criterion.benchmark_group("attributes");
    group.throughput(Throughput::Elements(REQUEST_SPANS));
    for (name, config) in cases {
        let editor = AttributesEditor::new(Signal::Traces, &config);
        let changed = matches!(
            editor.apply(&request, REQUEST_SPANS, &none),
            Outcome::Changed(..)
        );
        println!("attributes/{name}: request changed {changed}");
        group.bench_function(name, |b| {
            b.iter(|| black_box(editor.apply(black_box(&request), REQUEST_SPANS, &none)))
        });
    }
    group.finish();
}
