//! The subset end to end: conditions parsed (or refused, with their messages) and evaluated
//! against spans encoded with prost and read back through the wire layer.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tailgate_wire::TracesRequest;

use super::*;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.to_string())
}

/// The span the evaluation tests read, with one event.
fn span() -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        parent_span_id: vec![3; 8],
        trace_state: "rojo=1,vendor=a".to_string(),
        name: "GET /pay".to_string(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_500_000_000,
        flags: 0x101,
        dropped_attributes_count: 3,
        attributes: vec![
            kv("http.route", s("/pay/card")),
            kv("http.status_code", any_value::Value::IntValue(503)),
            kv("load", any_value::Value::DoubleValue(1.5)),
            kv("big", any_value::Value::DoubleValue(1e21)),
            kv("small", any_value::Value::DoubleValue(1e-7)),
            kv("nan", any_value::Value::DoubleValue(f64::NAN)),
            kv("retry", any_value::Value::BoolValue(true)),
            kv("raw", any_value::Value::BytesValue(vec![0xde, 0xad])),
            kv("no.bytes", any_value::Value::BytesValue(Vec::new())),
            KeyValue {
                key: "empty".to_string(),
                value: None,
                ..Default::default()
            },
            kv("latin1", s("caf\u{e9}")),
            kv(
                "map",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![
                        kv("z", any_value::Value::IntValue(1)),
                        kv("a", s("<x>")),
                        kv("z", any_value::Value::BoolValue(false)),
                        kv("b", any_value::Value::BytesValue(b"hi".to_vec())),
                        kv("f", any_value::Value::DoubleValue(0.5)),
                    ],
                }),
            ),
            kv(
                "order",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![
                        kv("a", any_value::Value::IntValue(3)),
                        kv("a!", any_value::Value::IntValue(2)),
                        kv("<", any_value::Value::IntValue(1)),
                    ],
                }),
            ),
            kv(
                "list",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(s("x")),
                        },
                        AnyValue { value: None },
                        AnyValue {
                            value: Some(any_value::Value::BytesValue(Vec::new())),
                        },
                    ],
                }),
            ),
            kv(
                "bad.list",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::DoubleValue(f64::INFINITY)),
                    }],
                }),
            ),
        ],
        events: vec![Event {
            time_unix_nano: 1_700_000_000_100_000_000,
            name: "exception".to_string(),
            attributes: vec![
                kv("exception.type", s("TimeoutError")),
                kv("attempt", any_value::Value::IntValue(3)),
            ],
            dropped_attributes_count: 1,
        }],
        status: Some(Status {
            code: 2,
            message: "upstream timeout".to_string(),
        }),
        ..Default::default()
    }
}

fn encode(span: Span, resource: bool, scope: bool) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource.then(|| Resource {
                attributes: vec![kv("service.name", s("checkout"))],
                dropped_attributes_count: 2,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: scope.then(|| InstrumentationScope {
                    name: "io.opentelemetry.http".to_string(),
                    version: "1.2.0".to_string(),
                    attributes: vec![kv("lib", s("okhttp"))],
                    dropped_attributes_count: 0,
                }),
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Evaluates `condition` (for `context`) on the only span of `bytes` and its first event.
fn eval_on(bytes: &[u8], context: ContextKind, condition: &str) -> Result<bool, EvalError> {
    let cond = Condition::parse(condition, context)
        .unwrap_or_else(|err| panic!("`{condition}` refused: {err}"));
    let request = TracesRequest::parse(bytes).expect("a valid request");
    let group = request.request().resource_groups().next().unwrap();
    let scope = group.scope_groups().next().unwrap();
    let span = scope.spans().next().unwrap();
    let subject = Subject {
        resource: group.resource(),
        scope: scope.scope(),
        span: Some(span),
        event: span.events().next(),
        log: None,
        metric: None,
    };
    cond.eval(&subject, &mut Scratch::default())
}

fn on_span(condition: &str) -> bool {
    eval_on(&encode(span(), true, true), ContextKind::Span, condition).unwrap()
}

fn on_event(condition: &str) -> bool {
    eval_on(
        &encode(span(), true, true),
        ContextKind::SpanEvent,
        condition,
    )
    .unwrap()
}

/// The refusal of `condition` in the span context.
fn refused(condition: &str) -> ParseError {
    match Condition::parse(condition, ContextKind::Span) {
        Ok(_) => panic!("`{condition}` was accepted"),
        Err(err) => err,
    }
}

fn unsupported(condition: &str, says: &str) {
    let err = refused(condition);
    assert!(
        matches!(err.kind, ParseErrorKind::Unsupported(_)),
        "`{condition}`: {err} should say it is unsupported"
    );
    assert!(
        err.to_string().contains(says),
        "`{condition}`: `{err}` does not say `{says}`"
    );
}

fn invalid(condition: &str, says: &str) {
    let err = refused(condition);
    assert!(
        matches!(err.kind, ParseErrorKind::Invalid(_)),
        "`{condition}`: {err} should say it is invalid"
    );
    assert!(
        err.to_string().contains(says),
        "`{condition}`: `{err}` does not say `{says}`"
    );
}

#[test]
fn the_subset_parses() {
    for condition in [
        r#"attributes["http.route"] == "/pay/card""#,
        r#"span.attributes["http.route"] == "/pay/card""#,
        r#""/pay/card" == attributes["http.route"]"#,
        "kind == SPAN_KIND_SERVER and status.code != STATUS_CODE_OK",
        "not (name == \"a\" or name == \"b\") and true",
        "not IsMatch(name, \"^GET \")",
        "IsRootSpan() or attributes[\"x\"] == nil",
        "resource.attributes[\"service.name\"] == \"checkout\"",
        "instrumentation_scope.name == \"x\" or scope.version >= \"1\"",
        "start_time_unix_nano > 1700000000000000000",
        "attributes[\"load\"] >= -1.5e2 and attributes[\"n\"] < +3",
        "trace_state[\"vendor\"] == \"a\" and trace_state != \"\"",
        "flags == 1 or dropped_attributes_count > 0 or dropped_events_count > 0",
        "dropped_links_count == 0",
        "false or true",
    ] {
        if let Err(err) = Condition::parse(condition, ContextKind::Span) {
            panic!("`{condition}`: {err}");
        }
    }
    for condition in [
        "name == \"exception\" and span.kind == SPAN_KIND_CLIENT",
        "spanevent.attributes[\"attempt\"] > 2",
        "time_unix_nano > 0 and span.status.code == STATUS_CODE_ERROR",
        "resource.attributes[\"a\"] == nil and scope.name != \"\"",
        "IsMatch(span.name, \"x\")",
    ] {
        if let Err(err) = Condition::parse(condition, ContextKind::SpanEvent) {
            panic!("`{condition}`: {err}");
        }
    }
}

#[test]
fn outside_the_subset_is_refused_as_unsupported() {
    unsupported("attributes[\"a\"] + 1 > 2", "arithmetic");
    unsupported("attributes[\"a\"] > 1 * 2", "arithmetic");
    unsupported("attributes[\"a\"] > -attributes[\"b\"]", "arithmetic");
    unsupported("Concat([\"a\"], \"\") == name", "converter `Concat`");
    unsupported("attributes == nil", "a whole map");
    unsupported("attributes[\"a\"][\"b\"] == 1", "more than one index");
    unsupported("attributes[0] == 1", "not a string literal");
    unsupported("name == attributes[\"x\"]", "two paths");
    unsupported("IsMatch(name, \"a\") == true", "converter's result");
    unsupported("IsMatch(\"literal\", \"a\")", "other than a path");
    unsupported("IsMatch(name, attributes[\"p\"])", "not a string literal");
    unsupported("IsMatch(target = name, pattern = \"a\")", "named arguments");
    unsupported("trace_id == nil", "ids");
    unsupported("start_time > 0", "time values");
    unsupported("status == nil", "the whole status");
    unsupported("events == nil", "spanevent");
    unsupported("kind.string == \"Server\"", "kind as a string");
    unsupported("resource.schema_url == \"\"", "schema URLs");
    unsupported("otelcol.client.addr == \"\"", "otelcol");
    unsupported("cache[\"x\"] == 1", "cache");
    unsupported("attributes[\"b\"] == 0x01", "bytes literals");
    unsupported("attributes[\"l\"] == [1]", "list literals");
    unsupported("attributes[\"m\"] == {}", "map literals");
    unsupported("attributes[\"a\"] == 010", "octal");
    unsupported("IsMatch(name, \"[a[b]]\")", "nested class");
}

#[test]
fn what_the_collector_refuses_is_refused_as_invalid() {
    invalid("", "empty");
    invalid("name ==", "expected a value, found the end");
    invalid("name = \"x\"", "expected a comparison operator");
    invalid("not not true", "expected a value");
    invalid("(name == \"a\"", "expected `)`");
    invalid("name == \"a\" name", "after a complete condition");
    invalid("attributes[\"a\"]", "a path alone");
    invalid("\"a\"", "expected a comparison operator");
    invalid("span.foo == 1", "the span context has no `foo`");
    invalid("status.phase == 1", "`status` has no `phase`");
    invalid("name.first == \"x\"", "extra path sections");
    invalid("name[\"x\"] == \"x\"", "cannot be indexed");
    invalid("status.code == STATUS_CODE_BAD", "not an enum");
    invalid("set(name, \"x\")", "editor");
    invalid("name == \"open", "no closing");
    invalid("name == \"\\q\"", "bad escape");
    invalid(
        "attributes[\"n\"] == 9223372036854775808",
        "does not fit in 64 bits",
    );
    invalid("attributes[\"n\"] == 1.5e400", "out of range");
    invalid("IsMatch(name, \"(\")", "does not compile");
    // Go's "invalid nested repetition operator"; a group between them is allowed.
    for pattern in ["a+*", "a**", "a+??", "a{2}{3}", "^tmp_+*"] {
        invalid(
            &format!("IsMatch(name, \"{pattern}\")"),
            "a repetition of a repetition",
        );
    }
    Condition::parse("IsMatch(name, \"(?:a+)*\")", ContextKind::Span).expect("a group between");
    invalid("name ~ \"x\"", "not part of OTTL");
    let deep = format!("{}true{}", "(".repeat(40), ")".repeat(40));
    invalid(&deep, "nest deeper than 32");
    let long = format!("name == \"{}\"", "x".repeat(CONDITION_LEN_MAX));
    invalid(&long, "at most 4096");
    // The spanevent context has no IsRootSpan; the span context has no `spanevent`.
    let err = Condition::parse("IsRootSpan()", ContextKind::SpanEvent).unwrap_err();
    assert!(err.to_string().contains("span context converter"), "{err}");
    invalid(
        "spanevent.name == \"x\"",
        "the span context has no `spanevent`",
    );
}

#[test]
fn errors_point_at_the_problem() {
    assert_eq!(refused("name == \"a\" and kind == BOGUS").at, 24);
    assert_eq!(refused("name == \"a\" or attributes[\"x\"] + 1 > 0").at, 31);
    let err = refused("name == \"a\" and IsMatch(name, \"(\")");
    assert_eq!(err.at, 30);
}

#[test]
fn span_paths_read_the_span() {
    assert!(on_span("name == \"GET /pay\""));
    assert!(on_span("span.name == \"GET /pay\""));
    assert!(on_span("kind == SPAN_KIND_SERVER and kind == 2"));
    assert!(on_span("status.code == STATUS_CODE_ERROR"));
    assert!(on_span("status.message == \"upstream timeout\""));
    assert!(on_span("attributes[\"http.status_code\"] >= 500"));
    assert!(on_span("trace_state == \"rojo=1,vendor=a\""));
    assert!(on_span("trace_state[\"vendor\"] == \"a\""));
    assert!(on_span("start_time_unix_nano == 1700000000000000000"));
    assert!(on_span("end_time_unix_nano == 1700000000500000000"));
    assert!(on_span("flags == 257"));
    assert!(on_span(
        "dropped_attributes_count == 3 and dropped_events_count == 0"
    ));
    assert!(on_span("dropped_links_count == 0"));
    assert!(on_span(
        "resource.attributes[\"service.name\"] == \"checkout\""
    ));
    assert!(on_span("resource.dropped_attributes_count == 2"));
    assert!(on_span(
        "instrumentation_scope.name == \"io.opentelemetry.http\""
    ));
    assert!(on_span(
        "scope.version == \"1.2.0\" and scope.attributes[\"lib\"] == \"okhttp\""
    ));
    assert!(on_span("scope.dropped_attributes_count == 0"));
    assert!(!on_span("IsRootSpan()"));
}

#[test]
fn missing_resource_and_scope_read_as_empty() {
    let bytes = encode(span(), false, false);
    let eval = |c| eval_on(&bytes, ContextKind::Span, c).unwrap();
    assert!(eval("resource.attributes[\"service.name\"] == nil"));
    assert!(eval("resource.dropped_attributes_count == 0"));
    assert!(eval(
        "instrumentation_scope.name == \"\" and scope.version == \"\""
    ));
}

#[test]
fn spanevent_paths_read_the_event_and_its_span() {
    assert!(on_event("name == \"exception\""));
    assert!(on_event("spanevent.name == \"exception\""));
    assert!(on_event(
        "attributes[\"exception.type\"] == \"TimeoutError\""
    ));
    assert!(on_event(
        "attributes[\"attempt\"] > 2 and attributes[\"http.route\"] == nil"
    ));
    assert!(on_event("time_unix_nano == 1700000000100000000"));
    assert!(on_event("dropped_attributes_count == 1"));
    assert!(on_event(
        "span.name == \"GET /pay\" and span.kind == SPAN_KIND_SERVER"
    ));
    assert!(on_event("span.attributes[\"http.route\"] == \"/pay/card\""));
    assert!(on_event(
        "resource.attributes[\"service.name\"] == \"checkout\""
    ));
    assert!(on_event("IsMatch(span.status.message, \"timeout$\")"));
}

#[test]
fn comparisons_follow_ottl_rules() {
    // Mixed int and float compare as numbers.
    assert!(on_span("attributes[\"http.status_code\"] == 503.0"));
    assert!(on_span(
        "attributes[\"load\"] > 1 and attributes[\"load\"] < 2"
    ));
    assert!(on_span("1 < attributes[\"load\"]"));
    // Different types are unequal, not errors.
    assert!(!on_span("attributes[\"http.status_code\"] == \"503\""));
    assert!(on_span("attributes[\"http.status_code\"] != \"503\""));
    assert!(!on_span("attributes[\"http.route\"] > 5"));
    assert!(!on_span("attributes[\"retry\"] == 1"));
    assert!(on_span(
        "attributes[\"retry\"] == true and attributes[\"retry\"] > false"
    ));
    // nil: absent, empty and zero-length bytes values.
    assert!(on_span(
        "attributes[\"absent\"] == nil and nil == attributes[\"absent\"]"
    ));
    assert!(on_span("attributes[\"empty\"] == nil"));
    assert!(on_span("attributes[\"no.bytes\"] == nil"));
    assert!(on_span(
        "attributes[\"absent\"] <= nil and attributes[\"absent\"] >= nil"
    ));
    assert!(!on_span("attributes[\"absent\"] < nil"));
    assert!(on_span("attributes[\"http.route\"] != nil"));
    assert!(!on_span("attributes[\"http.route\"] > nil"));
    // Maps and lists equal no literal.
    assert!(on_span(
        "attributes[\"map\"] != nil and attributes[\"map\"] != \"x\""
    ));
    assert!(!on_span("attributes[\"list\"] == nil"));
    // NaN compares false except `!=`.
    assert!(on_span(
        "attributes[\"nan\"] != 0 and not (attributes[\"nan\"] >= 0)"
    ));
    // Strings order byte-wise.
    assert!(on_span(
        "attributes[\"http.route\"] > \"/pay/\" and attributes[\"http.route\"] < \"/pay/d\""
    ));
    // Two literals fold to their answer.
    assert!(on_span(
        "1 == 1.0 and \"a\" < \"b\" and nil == nil and SPAN_KIND_SERVER == 2"
    ));
}

#[test]
fn is_match_reads_non_strings_as_the_collector_renders_them() {
    assert!(on_span(
        "IsMatch(attributes[\"http.route\"], \"^/pay/(card|wallet)$\")"
    ));
    assert!(on_span("IsMatch(name, \"pay\")"), "unanchored");
    assert!(on_span(
        "IsMatch(attributes[\"http.status_code\"], \"^503$\")"
    ));
    assert!(on_span("IsMatch(attributes[\"load\"], \"^1\\\\.5$\")"));
    assert!(on_span("IsMatch(attributes[\"big\"], \"^1e\\\\+21$\")"));
    assert!(on_span("IsMatch(attributes[\"small\"], \"^1e-07$\")"));
    assert!(on_span("IsMatch(attributes[\"retry\"], \"^true$\")"));
    assert!(on_span("IsMatch(attributes[\"raw\"], \"^dead$\")"));
    assert!(
        on_span("IsMatch(attributes[\"no.bytes\"], \"^$\")"),
        "hex of no bytes"
    );
    assert!(on_span("IsMatch(kind, \"^2$\")"));
    assert!(
        on_span(
            r#"IsMatch(attributes["map"], "^\\{\"a\":\"\\\\u003cx\\\\u003e\",\"b\":\"aGk=\",\"f\":0\\.5,\"z\":false\\}$")"#
        ),
        "sorted keys, last duplicate wins, HTML escapes, base64 bytes"
    );
    assert!(on_span(
        r#"IsMatch(attributes["list"], "^\\[\"x\",null,null\\]$")"#
    ));
    assert!(!on_span("IsMatch(attributes[\"latin1\"], \"^caf\\\\w$\")"));
    // Nil never matches, not even an empty pattern.
    assert!(!on_span("IsMatch(attributes[\"absent\"], \"\")"));
    assert!(!on_span("IsMatch(attributes[\"empty\"], \"\")"));
}

#[test]
fn a_non_finite_float_fails_is_match_and_nothing_else() {
    let bytes = encode(span(), true, true);
    let eval = |c| eval_on(&bytes, ContextKind::Span, c);
    assert_eq!(
        eval("IsMatch(attributes[\"nan\"], \".\")"),
        Err(EvalError::NonFiniteFloat)
    );
    assert_eq!(
        eval("IsMatch(attributes[\"bad.list\"], \".\")"),
        Err(EvalError::NonFiniteFloat)
    );
    assert_eq!(
        eval("not IsMatch(attributes[\"nan\"], \".\")"),
        Err(EvalError::NonFiniteFloat)
    );
    // Evaluation stops where the answer is known, and folded constants are never evaluated.
    assert_eq!(
        eval("name == \"x\" and IsMatch(attributes[\"nan\"], \".\")"),
        Ok(false)
    );
    assert_eq!(
        eval("name != \"x\" or IsMatch(attributes[\"nan\"], \".\")"),
        Ok(true)
    );
    assert_eq!(
        eval("IsMatch(attributes[\"nan\"], \".\") and false"),
        Ok(false)
    );
    assert_eq!(
        eval("IsMatch(attributes[\"nan\"], \".\") or true"),
        Ok(true)
    );
}

#[test]
fn invalid_utf8_is_matched_as_go_reads_it() {
    let mut with_bad = span();
    with_bad.name = String::new();
    let mut bytes = encode(with_bad, false, false);
    // Give the span a name of invalid UTF-8 by patching an attribute value in place: prost
    // will not encode one, so write the bytes of "caf\xe9" over "caf\u{e9}" (same length).
    let pos = bytes
        .windows(5)
        .position(|w| w == "caf\u{e9}".as_bytes())
        .expect("the latin1 attribute");
    bytes[pos..pos + 5].copy_from_slice(b"caf\xe9!");
    let eval = |c| eval_on(&bytes, ContextKind::Span, c).unwrap();
    assert!(eval("IsMatch(attributes[\"latin1\"], \"^caf\\uFFFD!$\")"));
    assert!(eval("IsMatch(attributes[\"latin1\"], \"^caf.!$\")"));
    // Comparison is byte-wise and never converts.
    assert!(eval("attributes[\"latin1\"] != \"caf\\uFFFD!\""));
}

#[test]
fn is_root_span_reads_the_parent_id() {
    let mut root = span();
    root.parent_span_id = Vec::new();
    let eval =
        |s: Span| eval_on(&encode(s, true, true), ContextKind::Span, "IsRootSpan()").unwrap();
    assert!(eval(root.clone()));
    root.parent_span_id = vec![0; 8];
    assert!(eval(root), "an all-zero parent is no parent");
    assert!(!eval(span()));
}

#[test]
fn trace_state_keys_follow_opentelemetry_go() {
    let with_state = |state: &str| {
        let mut s = span();
        s.trace_state = state.to_string();
        encode(s, true, true)
    };
    let eval = |state: &str, c: &str| eval_on(&with_state(state), ContextKind::Span, c).unwrap();
    assert!(eval("vendor=a", "trace_state[\"vendor\"] == \"a\""));
    // Absent from a valid state: "", not nil.
    assert!(eval("vendor=a", "trace_state[\"other\"] == \"\""));
    assert!(eval("", "trace_state[\"other\"] == \"\""));
    // A state Go cannot parse: nil.
    assert!(eval("Vendor=a", "trace_state[\"vendor\"] == nil"));
    assert!(eval("Vendor=a", "trace_state == \"Vendor=a\""));
}

#[test]
fn reads_scope_names_conditions_on_the_scope() {
    let reads = |c: &str| {
        Condition::parse(c, ContextKind::Span)
            .unwrap()
            .reads_scope()
    };
    assert!(reads("name == \"a\" or not (scope.name == \"b\")"));
    assert!(reads(
        "IsMatch(instrumentation_scope.attributes[\"x\"], \"y\")"
    ));
    assert!(!reads("name == \"a\" and resource.attributes[\"x\"] == 1"));
    // Folded away: never read.
    assert!(!reads("scope.name == \"a\" and false"));
}

#[test]
fn any_text_is_parsed_or_refused_without_a_panic() {
    // Fragments of OTTL and of its mistakes, glued at random: a cheap stand-in for the fuzz
    // target (fuzz/fuzz_targets/ottl_condition.rs) that runs with every test run.
    const FRAGMENTS: &str = "name|attributes|[\"k\"]|[0]|[|]|.|span|spanevent|resource|scope|\
        status|code|==|!=|<|>=|=|and|or|not|(|)|true|nil|1|-|+|1.5e3|.5|0x1f|\"a\\\"b\"|\
        \"\\u00e9\"|\"|\\|IsMatch|IsRootSpan|Concat|SPAN_KIND_SERVER|,|\"[a\"|é| |\u{2028}|{|}|=>|_|\
        log|body|severity_number|SEVERITY_NUMBER_ERROR2|SEVERITY_NUMBER_|event_name|string|\
        metric|type|unit|is_monotonic|METRIC_DATA_TYPE_SUM|AGGREGATION_TEMPORALITY_DELTA";
    let fragments: Vec<&str> = FRAGMENTS.split('|').collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        let mut text = String::new();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for k in 0..(x % 12) {
            text.push_str(fragments[((x >> (k * 5)) % fragments.len() as u64) as usize]);
        }
        for context in [
            ContextKind::Span,
            ContextKind::SpanEvent,
            ContextKind::Resource,
            ContextKind::Log,
            ContextKind::Metric,
        ] {
            if let Err(err) = Condition::parse(&text, context) {
                assert!(
                    err.at <= text.len() && text.is_char_boundary(err.at),
                    "{text}: {err:?}"
                );
            }
        }
    }
}

/// Evaluates a resource-context `condition` on the resource of `bytes`' first group, with no
/// span in the subject: what the routing connector hands it.
fn on_resource(bytes: &[u8], condition: &str) -> bool {
    let cond = Condition::parse(condition, ContextKind::Resource)
        .unwrap_or_else(|err| panic!("`{condition}` refused: {err}"));
    let request = TracesRequest::parse(bytes).expect("a valid request");
    let group = request.request().resource_groups().next().unwrap();
    let subject = Subject {
        resource: group.resource(),
        ..Subject::default()
    };
    cond.eval(&subject, &mut Scratch::default()).unwrap()
}

#[test]
fn the_resource_context_reads_resource_attributes_bare_or_named() {
    let with = encode(span(), true, true);
    let without = encode(span(), false, true);
    assert!(on_resource(
        &with,
        r#"attributes["service.name"] == "checkout""#
    ));
    assert!(on_resource(
        &with,
        r#"resource.attributes["service.name"] == "checkout""#
    ));
    assert!(on_resource(
        &with,
        r#"IsMatch(attributes["service.name"], "^check")"#
    ));
    assert!(on_resource(&with, "dropped_attributes_count == 2"));
    assert!(!on_resource(
        &with,
        r#"attributes["service.name"] != "checkout""#
    ));
    assert!(on_resource(&with, r#"attributes["tenant"] == nil"#));
    // No resource reads as an empty one.
    assert!(!on_resource(
        &without,
        r#"attributes["service.name"] == "checkout""#
    ));
    assert!(on_resource(
        &without,
        r#"attributes["service.name"] == nil"#
    ));
}

#[test]
fn the_resource_context_refuses_what_is_not_the_resource() {
    let refused = |condition: &str| match Condition::parse(condition, ContextKind::Resource) {
        Ok(_) => panic!("`{condition}` was accepted in the resource context"),
        Err(err) => err.to_string(),
    };
    assert!(refused("name == \"a\"").contains("the resource context has no `name`"));
    assert!(refused("span.name == \"a\"").contains("has no `span`"));
    assert!(refused("scope.name == \"a\"").contains("has no `scope`"));
    assert!(refused("IsRootSpan()").contains("IsRootSpan"));
    assert!(refused("dropped_attributes_count == SPAN_KIND_SERVER").contains("no enums"));
    assert!(refused("Concat([\"a\"], \"\") == attributes[\"x\"]").contains("Concat"));
    assert!(refused("schema_url == \"\"").contains("schema URLs"));
}

/// One log record under a resource and scope, as an export request.
fn log_request() -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("checkout"))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "app.audit".to_string(),
                    ..Default::default()
                }),
                log_records: vec![LogRecord {
                    time_unix_nano: 1_700_000_000_000_000_000,
                    observed_time_unix_nano: 1_700_000_000_500_000_000,
                    severity_number: 18,
                    severity_text: "ERROR2".to_string(),
                    body: Some(AnyValue {
                        value: Some(s("payment declined")),
                    }),
                    attributes: vec![kv("http.status", any_value::Value::IntValue(402))],
                    dropped_attributes_count: 3,
                    flags: 1,
                    event_name: "payment.failed".to_string(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Evaluates `condition` in the log context on the only record of [`log_request`].
fn on_log(condition: &str) -> bool {
    let cond = Condition::parse(condition, ContextKind::Log)
        .unwrap_or_else(|err| panic!("`{condition}` refused: {err}"));
    let bytes = log_request();
    let request = tailgate_wire::Request::parse(tailgate_wire::Signal::Logs, &bytes).unwrap();
    let group = request.resource_groups().next().unwrap();
    let scope = group.scope_groups().next().unwrap();
    let item = scope.items().next().unwrap();
    let subject = Subject {
        resource: group.resource(),
        scope: scope.scope(),
        log: Some(tailgate_wire::LogRecordView::new(item)),
        ..Subject::default()
    };
    cond.eval(&subject, &mut Scratch::default()).unwrap()
}

#[test]
fn the_log_context_reads_the_record_its_resource_and_scope() {
    for holds in [
        r#"body == "payment declined""#,
        r#"log.body == "payment declined""#,
        r#"IsMatch(body, "declined$")"#,
        "severity_number == SEVERITY_NUMBER_ERROR2",
        "severity_number >= SEVERITY_NUMBER_ERROR and severity_number < SEVERITY_NUMBER_FATAL",
        r#"severity_text == "ERROR2""#,
        r#"attributes["http.status"] == 402"#,
        "time_unix_nano == 1700000000000000000",
    ] {
        assert!(on_log(holds), "{holds}");
    }
    for holds in [
        "observed_time_unix_nano == 1700000000500000000",
        "flags == 1",
        "dropped_attributes_count == 3",
        r#"event_name == "payment.failed""#,
        r#"resource.attributes["service.name"] == "checkout""#,
        r#"instrumentation_scope.name == "app.audit""#,
        r#"scope.name == "app.audit""#,
        "severity_number != SEVERITY_NUMBER_UNSPECIFIED",
        "SEVERITY_NUMBER_FATAL4 == 24",
        "SEVERITY_NUMBER_TRACE == 1",
    ] {
        assert!(on_log(holds), "{holds}");
    }
    for fails in [
        r#"body == "payment""#,
        "severity_number == SEVERITY_NUMBER_ERROR",
        r#"attributes["missing"] != nil"#,
    ] {
        assert!(!on_log(fails), "{fails}");
    }
}

#[test]
fn the_log_context_refuses_what_it_does_not_have() {
    let refused = |condition: &str| {
        Condition::parse(condition, ContextKind::Log)
            .expect_err(condition)
            .to_string()
    };
    assert!(refused("name == \"x\"").contains("the log context has no `name`"));
    assert!(refused("IsRootSpan()").contains("IsRootSpan"));
    assert!(refused("severity_number == SPAN_KIND_SERVER").contains("SPAN_KIND_SERVER"));
    assert!(refused("severity_number == SEVERITY_NUMBER_LOUD").contains("log context"));
    assert!(refused("trace_id == \"x\"").contains("ids"));
    assert!(refused("body.string == \"x\"").contains("body rendered as a string"));
    assert!(refused("span.name == \"x\"").contains("log context has no `span`"));
    // And the span context has no severities.
    assert!(Condition::parse("SEVERITY_NUMBER_INFO == 9", ContextKind::Span).is_err());
}

/// Metrics of each kind under one resource and scope, as an export request: a monotonic
/// cumulative sum, a gauge, a delta histogram.
fn metrics_request() -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, Sum,
    };
    let point = NumberDataPoint::default();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("checkout"))],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "http.server.requests".to_string(),
                        description: "requests served".to_string(),
                        unit: "{request}".to_string(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: vec![point.clone(), point.clone()],
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "process.memory".to_string(),
                        unit: "By".to_string(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![point],
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "http.server.duration".to_string(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint::default()],
                            aggregation_temporality: 1,
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Which of [`metrics_request`]'s metrics `condition` (metric context) holds for, by name.
fn metrics_where(condition: &str) -> Vec<String> {
    let cond = Condition::parse(condition, ContextKind::Metric)
        .unwrap_or_else(|err| panic!("`{condition}` refused: {err}"));
    let bytes = metrics_request();
    let request = tailgate_wire::Request::parse(tailgate_wire::Signal::Metrics, &bytes).unwrap();
    let group = request.resource_groups().next().unwrap();
    let scope = group.scope_groups().next().unwrap();
    scope
        .items()
        .filter_map(|item| {
            let metric = tailgate_wire::MetricView::new(item);
            let subject = Subject {
                resource: group.resource(),
                scope: scope.scope(),
                metric: Some(metric),
                ..Subject::default()
            };
            cond.eval(&subject, &mut Scratch::default())
                .unwrap()
                .then(|| String::from_utf8_lossy(metric.name()).into_owned())
        })
        .collect()
}

#[test]
fn the_metric_context_reads_the_metric_as_pdata_does() {
    let (sum, gauge, histogram) = (
        "http.server.requests",
        "process.memory",
        "http.server.duration",
    );
    assert_eq!(
        metrics_where(r#"IsMatch(name, "^http\\.")"#),
        [sum, histogram]
    );
    assert_eq!(metrics_where(r#"metric.unit == "By""#), [gauge]);
    assert_eq!(metrics_where(r#"description == "requests served""#), [sum]);
    assert_eq!(metrics_where("type == METRIC_DATA_TYPE_SUM"), [sum]);
    assert_eq!(metrics_where("type == METRIC_DATA_TYPE_GAUGE"), [gauge]);
    assert_eq!(
        metrics_where("type == METRIC_DATA_TYPE_HISTOGRAM"),
        [histogram]
    );
    assert_eq!(
        metrics_where("aggregation_temporality == AGGREGATION_TEMPORALITY_CUMULATIVE"),
        [sum]
    );
    assert_eq!(
        metrics_where("aggregation_temporality == AGGREGATION_TEMPORALITY_DELTA"),
        [histogram]
    );
    // A gauge has no temporality and no monotonicity: nil.
    assert_eq!(metrics_where("aggregation_temporality == nil"), [gauge]);
    assert_eq!(metrics_where("is_monotonic == true"), [sum]);
    assert_eq!(metrics_where("is_monotonic == nil"), [gauge, histogram]);
    assert_eq!(
        metrics_where(r#"resource.attributes["service.name"] == "checkout""#).len(),
        3
    );
    let refused = |condition: &str| {
        Condition::parse(condition, ContextKind::Metric)
            .expect_err(condition)
            .to_string()
    };
    assert!(refused("data_points == nil").contains("data points"));
    assert!(refused("type == SEVERITY_NUMBER_INFO").contains("metric context"));
    assert!(refused("IsRootSpan()").contains("IsRootSpan"));
    assert!(refused("kind == 1").contains("the metric context has no `kind`"));
}

/// A metric whose data comes in two fields of the same kind reads as a decoder merges them:
/// the temporality and monotonicity of the field that has them; a later field of another kind
/// replaces both.
#[test]
fn metric_data_fields_merge_as_a_decoder_merges_them() {
    use opentelemetry_proto::tonic::metrics::v1::{metric, Gauge, Metric, NumberDataPoint, Sum};
    let sum = |temporality, monotonic, points| Metric {
        name: "m".to_string(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![NumberDataPoint::default(); points],
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        })),
        ..Default::default()
    };
    let view = |bytes: &[u8]| -> (u8, Option<i32>, Option<bool>, u64) {
        let metric = tailgate_wire::MetricView::new(tailgate_wire::Item { bytes, offset: 0 });
        (
            metric.data_type(),
            metric.aggregation_temporality(),
            metric.is_monotonic(),
            metric.data_point_count(),
        )
    };
    // Two encodings back to back are one message: the sums merge.
    let mut merged = sum(2, true, 2).encode_to_vec();
    merged.extend(sum(0, false, 1).encode_to_vec());
    assert_eq!(view(&merged), (2, Some(2), Some(true), 3));
    let mut gauge_after = merged.clone();
    gauge_after.extend(
        Metric {
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint::default()],
            })),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    assert_eq!(view(&gauge_after), (1, None, None, 1));
}
