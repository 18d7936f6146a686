//! Malformed requests, each with the error and byte offset the wire layer must report, and the
//! per-span defects that reject one span while the rest of a request goes through.

use tailgate_wire::{
    Framer, Request, Signal, SpanDefect, Split, TracesRequest, WireErrorKind, WireType,
    NESTING_DEPTH_MAX,
};

mod support;

use support::varint;

/// A length-delimited field.
fn len_field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = varint(u64::from(number) << 3 | 2);
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

/// A traces request holding one resource group, one scope group, and `spans` (encoded).
fn traces(spans: &[&[u8]]) -> Vec<u8> {
    let scope_group: Vec<u8> = spans.iter().flat_map(|s| len_field(2, s)).collect();
    len_field(1, &len_field(2, &scope_group))
}

fn good_span(trace_id: &[u8], span_id: &[u8]) -> Vec<u8> {
    [
        len_field(1, trace_id),
        len_field(2, span_id),
        len_field(5, b"op"),
    ]
    .concat()
}

fn wrong(
    message: &'static str,
    field: &'static str,
    number: u32,
    expected: WireType,
    found: WireType,
) -> WireErrorKind {
    WireErrorKind::WrongWireType {
        message,
        field,
        number,
        expected,
        found,
    }
}

/// Nests `depth` array values inside one span attribute; returns the request and the length of
/// the innermost message's payload (every layer is the last thing in its parent, so that payload
/// is the request's suffix).
fn deep_attribute(depth: usize) -> (Vec<u8>, usize) {
    // AnyValue { array_value: ArrayValue { values: [AnyValue { ... }] } }, innermost a string.
    let mut value = len_field(1, b"leaf");
    let innermost = value.len();
    for _ in 0..depth {
        value = len_field(5, &len_field(1, &value));
    }
    let key_value = [len_field(1, b"k"), len_field(2, &value)].concat();
    let span = [good_span(&[1; 16], &[2; 8]), len_field(9, &key_value)].concat();
    (traces(&[&span]), innermost)
}

struct Case {
    name: &'static str,
    signal: Signal,
    bytes: Vec<u8>,
    kind: WireErrorKind,
    offset: usize,
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        Case {
            name: "resource_spans encoded as a varint",
            signal: Signal::Traces,
            bytes: vec![0x08, 0x01],
            kind: wrong(
                "ExportTraceServiceRequest",
                "resource_spans",
                1,
                WireType::Len,
                WireType::Varint,
            ),
            offset: 0,
        },
        Case {
            name: "input ends before a length prefix",
            signal: Signal::Traces,
            bytes: vec![0x0a],
            kind: WireErrorKind::Truncated,
            offset: 1,
        },
        Case {
            name: "input ends inside a tag varint",
            signal: Signal::Traces,
            bytes: vec![0x0a, 0x00, 0x80],
            kind: WireErrorKind::Truncated,
            offset: 2,
        },
        Case {
            name: "length prefix overruns the request",
            signal: Signal::Traces,
            bytes: vec![0x0a, 0x05, 0x00],
            kind: WireErrorKind::LengthOverrun {
                len: 5,
                available: 1,
            },
            offset: 1,
        },
        Case {
            name: "length prefix overruns its parent though the request has the bytes",
            signal: Signal::Traces,
            bytes: [
                vec![0x0a, 0x03, 0x12, 0x05, 0x00],
                len_field(1, &len_field(3, b"A")),
            ]
            .concat(),
            kind: WireErrorKind::LengthOverrun {
                len: 5,
                available: 1,
            },
            offset: 3,
        },
        Case {
            name: "varint of 11 bytes",
            signal: Signal::Traces,
            bytes: [vec![0x0a], vec![0xff; 10], vec![0x01]].concat(),
            kind: WireErrorKind::VarintTooLong,
            offset: 1,
        },
        Case {
            name: "10-byte varint overflowing 64 bits",
            signal: Signal::Traces,
            bytes: [vec![0x0a], vec![0xff; 9], vec![0x02]].concat(),
            kind: WireErrorKind::VarintOverflow,
            offset: 1,
        },
        Case {
            name: "field number 0",
            signal: Signal::Traces,
            bytes: vec![0x02, 0x00],
            kind: WireErrorKind::InvalidFieldNumber(0),
            offset: 0,
        },
        Case {
            name: "field number beyond 29 bits",
            signal: Signal::Traces,
            bytes: [varint(1u64 << 32 | 2), vec![0x00]].concat(),
            kind: WireErrorKind::InvalidFieldNumber(1 << 29),
            offset: 0,
        },
        Case {
            name: "wire type 7",
            signal: Signal::Traces,
            bytes: vec![0x0f],
            kind: WireErrorKind::InvalidWireType(7),
            offset: 0,
        },
        Case {
            name: "end-group marker with no group open",
            signal: Signal::Traces,
            bytes: vec![0x0c],
            kind: WireErrorKind::UnexpectedEndGroup { field: 1 },
            offset: 0,
        },
        Case {
            name: "unterminated group in an unknown field",
            signal: Signal::Traces,
            bytes: varint(100 << 3 | 3),
            kind: WireErrorKind::Truncated,
            offset: 2,
        },
        Case {
            name: "span trace_id encoded as a varint",
            signal: Signal::Traces,
            bytes: traces(&[&[0x08, 0x01]]),
            kind: wrong("Span", "trace_id", 1, WireType::Len, WireType::Varint),
            offset: 6,
        },
        Case {
            name: "span flags encoded as a varint",
            signal: Signal::Traces,
            bytes: traces(&[&[0x80, 0x01, 0x01]]),
            kind: wrong("Span", "flags", 16, WireType::I32, WireType::Varint),
            offset: 6,
        },
        Case {
            name: "span name encoded as a group",
            signal: Signal::Traces,
            bytes: traces(&[&[0x2b, 0x2c]]),
            kind: wrong("Span", "name", 5, WireType::Len, WireType::StartGroup),
            offset: 6,
        },
        Case {
            name: "status code encoded as bytes",
            signal: Signal::Traces,
            bytes: traces(&[&len_field(15, &len_field(3, b"A"))]),
            kind: wrong("Status", "code", 3, WireType::Varint, WireType::Len),
            offset: 8,
        },
        Case {
            name: "start time truncated inside its 8 bytes",
            signal: Signal::Traces,
            bytes: traces(&[&[0x39, 1, 2, 3]]),
            kind: WireErrorKind::Truncated,
            offset: 7,
        },
        Case {
            name: "log record trace_id encoded as fixed32",
            signal: Signal::Logs,
            bytes: len_field(1, &len_field(2, &len_field(2, &[0x4d, 1, 2, 3, 4]))),
            kind: wrong("LogRecord", "trace_id", 9, WireType::Len, WireType::I32),
            offset: 6,
        },
    ];

    let (bytes, innermost) = deep_attribute(NESTING_DEPTH_MAX);
    cases.push(Case {
        name: "attribute value nested past the depth bound",
        signal: Signal::Traces,
        offset: deepest_offset(&bytes, innermost),
        bytes,
        kind: WireErrorKind::TooDeep {
            limit: NESTING_DEPTH_MAX,
        },
    });

    // A histogram data point whose packed bucket counts are 7 bytes, not a multiple of 8.
    let point = len_field(6, &[0; 7]);
    let metric = len_field(9, &len_field(1, &point));
    let bytes = len_field(1, &len_field(2, &len_field(2, &metric)));
    cases.push(Case {
        name: "packed fixed64 field of 7 bytes",
        signal: Signal::Metrics,
        offset: bytes.len() - 7,
        bytes,
        kind: WireErrorKind::Truncated,
    });
    cases
}

/// The deep-nesting error is reported at the first message past the bound. Messages nest from
/// the request (depth 0) through resource group, scope group, span, key-value and then pairs of
/// AnyValue/ArrayValue: the message at depth `NESTING_DEPTH_MAX + 1` starts where its payload
/// does, which is found by walking back from the innermost payload.
fn deepest_offset(bytes: &[u8], innermost: usize) -> usize {
    // Walk down from the request, following the last length-delimited field of each message.
    let mut at = 0;
    let mut end = bytes.len();
    for _depth in 0..=NESTING_DEPTH_MAX {
        let mut pos = at;
        let mut last = None;
        while pos < end {
            let (tag, n) = read_varint(&bytes[pos..]);
            pos += n;
            assert_eq!(tag & 7, 2, "only length-delimited fields on the path");
            let (len, n) = read_varint(&bytes[pos..]);
            pos += n;
            last = Some((pos, pos + len as usize));
            pos += len as usize;
        }
        let (start, stop) = last.expect("a child on the path");
        at = start;
        end = stop;
    }
    assert!(
        bytes.len() - at > innermost,
        "bound reached before the leaf"
    );
    at
}

fn read_varint(bytes: &[u8]) -> (u64, usize) {
    let mut value = 0;
    for (i, b) in bytes.iter().enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    panic!("unterminated varint in test input")
}

#[test]
fn each_malformed_request_reports_its_error_and_offset() {
    for case in cases() {
        let err = Request::parse(case.signal, &case.bytes)
            .err()
            .unwrap_or_else(|| panic!("{}: accepted", case.name));
        assert_eq!(err.kind, case.kind, "{}", case.name);
        assert_eq!(err.offset, case.offset, "{}", case.name);
        assert!(err.offset <= case.bytes.len(), "{}", case.name);
    }
}

#[test]
fn nesting_bound_is_exact() {
    // The attribute's AnyValue sits at depth 5 and each array layer adds two levels, so with
    // `k` layers the innermost AnyValue is at depth 5 + 2k.
    let within = (NESTING_DEPTH_MAX - 5) / 2;
    let (bytes, _) = deep_attribute(within);
    let request = TracesRequest::parse(&bytes).expect("within the bound");
    assert_eq!(request.spans().count(), 1);
    let (bytes, _) = deep_attribute(within + 1);
    let err = TracesRequest::parse(&bytes).unwrap_err();
    assert_eq!(
        err.kind,
        WireErrorKind::TooDeep {
            limit: NESTING_DEPTH_MAX
        }
    );
}

#[test]
fn errors_read_as_sentences_with_their_offset() {
    let err = TracesRequest::parse(&traces(&[&[0x08, 0x01]])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Span.trace_id (field 1) has wire type VARINT, expected LEN at byte 6"
    );
    let err = TracesRequest::parse(&[0x0a, 0x05, 0x00]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "length prefix 5 overruns its message (1 bytes left) at byte 1"
    );
}

#[test]
fn what_protobuf_allows_is_accepted() {
    // Empty request; non-minimal length varint; unknown fields of every wire type, a group
    // among them; an unpacked repeated fixed64.
    let unknown = [
        varint(100 << 3),
        varint(5),
        varint(101 << 3 | 1),
        vec![0; 8],
        varint(102 << 3 | 5),
        vec![0; 4],
        varint(103 << 3 | 3),
        varint(1 << 3),
        vec![7],
        varint(103 << 3 | 4),
        len_field(104, b"opaque"),
    ]
    .concat();
    let span = [good_span(&[1; 16], &[2; 8]), unknown.clone()].concat();
    let mut non_minimal = traces(&[&span]);
    assert!(TracesRequest::parse(&non_minimal).is_ok());
    // Re-encode the outer length with a padded two-byte varint.
    let payload_len = non_minimal.len() - 2;
    assert!(payload_len < 128);
    non_minimal.splice(1..2, [payload_len as u8 | 0x80, 0x00]);
    assert!(TracesRequest::parse(&non_minimal).is_ok());
    assert!(TracesRequest::parse(&[]).is_ok());

    let point = [[0x31].as_slice(), &[0; 8], &[0x31], &[0; 8]].concat();
    let metric = len_field(9, &len_field(1, &point));
    let request = len_field(1, &len_field(2, &len_field(2, &metric)));
    assert!(Request::parse(Signal::Metrics, &request).is_ok());
}

#[test]
fn unknown_fields_travel_byte_for_byte_through_split_and_frame() {
    let resource_unknown = len_field(99, b"resource-extension");
    let scope_unknown = [varint(98 << 3), varint(42)].concat();
    let span_unknown = len_field(97, b"span-extension");
    let span = [good_span(&[3; 16], &[4; 8]), span_unknown.clone()].concat();
    let scope_group = [scope_unknown.clone(), len_field(2, &span)].concat();
    let resource_group = [resource_unknown.clone(), len_field(2, &scope_group)].concat();
    let bytes = len_field(1, &resource_group);

    let mut split = Split::new(1);
    split.run(&bytes, |_| 0).unwrap();
    let mut out = Vec::new();
    split.frame(&bytes, 0, &mut Framer::new(), &mut out);
    // One span, one scope, one resource: the output is the input, field order aside.
    let framed = TracesRequest::parse(&out).unwrap();
    let resource_group = framed.request().resource_groups().next().unwrap();
    let header: Vec<u8> = resource_group.header().parts().flatten().copied().collect();
    assert_eq!(header, resource_unknown);
    let scope_group = resource_group.scope_groups().next().unwrap();
    let header: Vec<u8> = scope_group.header().parts().flatten().copied().collect();
    assert_eq!(header, scope_unknown);
    assert_eq!(framed.spans().next().unwrap().raw(), span.as_slice());
    assert_eq!(out, bytes);
}

#[test]
fn span_defects_reject_the_span_alone() {
    let link = |trace_id: &[u8], span_id: &[u8]| {
        len_field(
            13,
            &[len_field(1, trace_id), len_field(2, span_id)].concat(),
        )
    };
    let table: Vec<(Vec<u8>, SpanDefect, &str)> = vec![
        (
            good_span(&[1; 15], &[2; 8]),
            SpanDefect::TraceIdLength(15),
            "trace_id is 15 bytes, must be 16",
        ),
        (
            good_span(&[], &[2; 8]),
            SpanDefect::TraceIdLength(0),
            "trace_id is 0 bytes, must be 16",
        ),
        (
            good_span(&[0; 16], &[2; 8]),
            SpanDefect::TraceIdZero,
            "trace_id is all zero",
        ),
        (
            good_span(&[1; 16], &[2; 9]),
            SpanDefect::SpanIdLength(9),
            "span_id is 9 bytes, must be 8",
        ),
        (
            good_span(&[1; 16], &[0; 8]),
            SpanDefect::SpanIdZero,
            "span_id is all zero",
        ),
        (
            [good_span(&[1; 16], &[2; 8]), len_field(4, &[5; 3])].concat(),
            SpanDefect::ParentSpanIdLength(3),
            "parent_span_id is 3 bytes, must be 0 or 8",
        ),
        (
            [good_span(&[1; 16], &[2; 8]), link(&[1; 4], &[2; 8])].concat(),
            SpanDefect::LinkTraceIdLength(4),
            "link trace_id is 4 bytes, must be 16",
        ),
        (
            [good_span(&[1; 16], &[2; 8]), link(&[1; 16], &[2; 3])].concat(),
            SpanDefect::LinkSpanIdLength(3),
            "link span_id is 3 bytes, must be 8",
        ),
    ];
    let good = good_span(&[9; 16], &[8; 8]);
    for (bad, defect, message) in &table {
        let bytes = traces(&[&good, bad, &good]);
        let request = TracesRequest::parse(&bytes).expect("a defect is not a request error");
        let defects: Vec<_> = request.spans().map(|s| s.defect()).collect();
        assert_eq!(defects, vec![None, Some(*defect), None]);
        assert_eq!(defect.to_string(), *message);

        let mut split = Split::new(2);
        split.run(&bytes, |id| usize::from(id[0] & 1)).unwrap();
        assert_eq!(split.rejected(), 1);
        let (first, at) = split.first_defect().unwrap();
        assert_eq!(first, *defect);
        assert_eq!(at, request.spans().nth(1).unwrap().offset());
        assert_eq!(split.spans(0).len() + split.spans(1).len(), 2);
    }
}
