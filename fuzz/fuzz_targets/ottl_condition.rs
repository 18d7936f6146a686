//! Fuzzes the OTTL condition parser (`tailgate::ottl::Condition::parse`) in every context.
//!
//! The input, read as UTF-8 with replacement (configuration text is UTF-8), is parsed as a span,
//! a spanevent, a resource, a log and a metric condition. Whatever the text: no crash, and a refusal points inside it,
//! at a character boundary. An accepted condition keeps its text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tailgate::ottl::{Condition, ContextKind};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for context in [
        ContextKind::Span,
        ContextKind::SpanEvent,
        ContextKind::Resource,
        ContextKind::Log,
        ContextKind::Metric,
    ] {
        match Condition::parse(&text, context) {
            Ok(condition) => assert_eq!(condition.text(), text),
            Err(err) => {
                assert!(err.at <= text.len(), "{err:?} points past the text");
                assert!(text.is_char_boundary(err.at), "{err:?} splits a character");
            }
        }
    }
});
