//! The OTLP message schemas, as tables, and the validator that walks them.
//!
//! Validation is what makes the zero-copy design safe: a request is checked once, completely,
//! before any of its bytes are routed or forwarded, so the views built afterwards never meet a
//! malformed field and a gateway never forwards bytes its upstream would refuse. The rules are
//! those of a strict protobuf decoder: every known field must carry the wire type its
//! declaration allows (a repeated scalar may be packed or not), varints are at most 10 bytes,
//! length prefixes stay inside their parent, nesting is bounded by [`NESTING_DEPTH_MAX`], and
//! unknown fields (groups included) are skipped and left in place. Strings are not checked for
//! UTF-8, as the Collector's decoder does not check them either.
//!
//! Field numbers are those of the `opentelemetry-proto` definitions.

use super::error::{WireError, WireErrorKind};
use super::proto::{read_varint, Reader, WireType};
use super::NESTING_DEPTH_MAX;

/// How a declared field is encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// int32, int64, uint32, uint64, sint32, bool, enum.
    Varint,
    /// fixed64, sfixed64, double.
    I64,
    /// fixed32, float.
    I32,
    /// string or bytes.
    Bytes,
    /// A nested message, validated in turn.
    Message(&'static Schema),
    /// repeated fixed64/double: packed in one LEN field or one I64 field per element.
    PackedI64,
    /// repeated uint64: packed in one LEN field or one VARINT field per element.
    PackedVarint,
}

impl Kind {
    /// Whether a field of this kind may arrive with wire type `found`.
    #[inline(always)]
    fn accepts(self, found: WireType) -> bool {
        match self {
            Kind::Varint => found == WireType::Varint,
            Kind::I64 => found == WireType::I64,
            Kind::I32 => found == WireType::I32,
            Kind::Bytes | Kind::Message(_) => found == WireType::Len,
            Kind::PackedI64 => matches!(found, WireType::Len | WireType::I64),
            Kind::PackedVarint => matches!(found, WireType::Len | WireType::Varint),
        }
    }

    /// The wire type a field of this kind is normally encoded with.
    fn wire_type(self) -> WireType {
        match self {
            Kind::Varint => WireType::Varint,
            Kind::I64 => WireType::I64,
            Kind::I32 => WireType::I32,
            Kind::Bytes | Kind::Message(_) | Kind::PackedI64 | Kind::PackedVarint => WireType::Len,
        }
    }
}

/// One declared field.
#[derive(Debug)]
pub(crate) struct Decl {
    pub number: u32,
    pub name: &'static str,
    pub kind: Kind,
}

/// Field numbers below this are found through a direct index; OTLP's are all below it.
const INDEXED: usize = 32;
const NOT_DECLARED: u8 = u8::MAX;

/// What the validator does on meeting a tag below 256 (one byte, or two for fields 16 to 31),
/// decided when the schema is built: the common fields cost one table load instead of tag
/// decoding, lookup and a wire-type check. Anything else (longer tags, groups, wrong wire types,
/// invalid tags) takes the general path, which also produces the errors.
mod action {
    pub const GENERAL: u8 = 0;
    pub const VARINT: u8 = 1;
    pub const I64: u8 = 2;
    pub const I32: u8 = 3;
    pub const BYTES: u8 = 4;
    pub const MESSAGE: u8 = 5;
}

/// One message type: its name (for errors), its declared fields, and an index from field
/// number to declaration so the validator finds a field in one load.
#[derive(Debug)]
pub(crate) struct Schema {
    pub name: &'static str,
    pub fields: &'static [Decl],
    index: [u8; INDEXED],
    /// The action for each tag value below 256.
    actions: [u8; 256],
}

impl Schema {
    const fn new(name: &'static str, fields: &'static [Decl]) -> Schema {
        let mut index = [NOT_DECLARED; INDEXED];
        let mut i = 0;
        while i < fields.len() {
            let number = fields[i].number as usize;
            assert!(number < INDEXED, "OTLP field numbers are below 32");
            index[number] = i as u8;
            i += 1;
        }
        let mut actions = [action::GENERAL; 256];
        let mut tag = 0;
        while tag < 256 {
            let number = tag >> 3;
            let declared = index[number];
            actions[tag] = match (tag & 7, declared == NOT_DECLARED) {
                _ if number == 0 => action::GENERAL,
                (0, true) => action::VARINT,
                (1, true) => action::I64,
                (2, true) => action::BYTES,
                (5, true) => action::I32,
                (_, true) => action::GENERAL,
                (wire, false) => match (wire, fields[declared as usize].kind) {
                    (0, Kind::Varint | Kind::PackedVarint) => action::VARINT,
                    (1, Kind::I64 | Kind::PackedI64) => action::I64,
                    (5, Kind::I32) => action::I32,
                    (2, Kind::Bytes) => action::BYTES,
                    (2, Kind::Message(_)) => action::MESSAGE,
                    _ => action::GENERAL,
                },
            };
            tag += 1;
        }
        Schema {
            name,
            fields,
            index,
            actions,
        }
    }

    #[inline(always)]
    fn decl(&self, number: u64) -> Option<&Decl> {
        match self.index.get(number as usize) {
            Some(&i) if i != NOT_DECLARED => Some(&self.fields[i as usize]),
            _ => None,
        }
    }
}

const fn decl(number: u32, name: &'static str, kind: Kind) -> Decl {
    Decl { number, name, kind }
}

use Kind::{Bytes, Message as Msg, PackedI64, PackedVarint, Varint, I32, I64};

pub(crate) static ANY_VALUE: Schema = Schema::new(
    "AnyValue",
    &[
        decl(1, "string_value", Bytes),
        decl(2, "bool_value", Varint),
        decl(3, "int_value", Varint),
        decl(4, "double_value", I64),
        decl(5, "array_value", Msg(&ARRAY_VALUE)),
        decl(6, "kvlist_value", Msg(&KEY_VALUE_LIST)),
        decl(7, "bytes_value", Bytes),
        decl(8, "string_value_strindex", Varint),
    ],
);
pub(crate) static ARRAY_VALUE: Schema =
    Schema::new("ArrayValue", &[decl(1, "values", Msg(&ANY_VALUE))]);
pub(crate) static KEY_VALUE_LIST: Schema =
    Schema::new("KeyValueList", &[decl(1, "values", Msg(&KEY_VALUE))]);
pub(crate) static KEY_VALUE: Schema = Schema::new(
    "KeyValue",
    &[
        decl(1, "key", Bytes),
        decl(2, "value", Msg(&ANY_VALUE)),
        decl(3, "key_strindex", Varint),
    ],
);
pub(crate) static SCOPE: Schema = Schema::new(
    "InstrumentationScope",
    &[
        decl(1, "name", Bytes),
        decl(2, "version", Bytes),
        decl(3, "attributes", Msg(&KEY_VALUE)),
        decl(4, "dropped_attributes_count", Varint),
    ],
);
static ENTITY_REF: Schema = Schema::new(
    "EntityRef",
    &[
        decl(1, "schema_url", Bytes),
        decl(2, "type", Bytes),
        decl(3, "id_keys", Bytes),
        decl(4, "description_keys", Bytes),
    ],
);
pub(crate) static RESOURCE: Schema = Schema::new(
    "Resource",
    &[
        decl(1, "attributes", Msg(&KEY_VALUE)),
        decl(2, "dropped_attributes_count", Varint),
        decl(3, "entity_refs", Msg(&ENTITY_REF)),
    ],
);

// --- traces ---------------------------------------------------------------------------------

pub(crate) static STATUS: Schema = Schema::new(
    "Status",
    &[decl(2, "message", Bytes), decl(3, "code", Varint)],
);
pub(crate) static EVENT: Schema = Schema::new(
    "Span.Event",
    &[
        decl(1, "time_unix_nano", I64),
        decl(2, "name", Bytes),
        decl(3, "attributes", Msg(&KEY_VALUE)),
        decl(4, "dropped_attributes_count", Varint),
    ],
);
pub(crate) static LINK: Schema = Schema::new(
    "Span.Link",
    &[
        decl(1, "trace_id", Bytes),
        decl(2, "span_id", Bytes),
        decl(3, "trace_state", Bytes),
        decl(4, "attributes", Msg(&KEY_VALUE)),
        decl(5, "dropped_attributes_count", Varint),
        decl(6, "flags", I32),
    ],
);
pub(crate) static SPAN: Schema = Schema::new(
    "Span",
    &[
        decl(1, "trace_id", Bytes),
        decl(2, "span_id", Bytes),
        decl(3, "trace_state", Bytes),
        decl(4, "parent_span_id", Bytes),
        decl(5, "name", Bytes),
        decl(6, "kind", Varint),
        decl(7, "start_time_unix_nano", I64),
        decl(8, "end_time_unix_nano", I64),
        decl(9, "attributes", Msg(&KEY_VALUE)),
        decl(10, "dropped_attributes_count", Varint),
        decl(11, "events", Msg(&EVENT)),
        decl(12, "dropped_events_count", Varint),
        decl(13, "links", Msg(&LINK)),
        decl(14, "dropped_links_count", Varint),
        decl(15, "status", Msg(&STATUS)),
        decl(16, "flags", I32),
    ],
);
pub(crate) static SCOPE_SPANS: Schema = Schema::new(
    "ScopeSpans",
    &[
        decl(1, "scope", Msg(&SCOPE)),
        decl(2, "spans", Msg(&SPAN)),
        decl(3, "schema_url", Bytes),
    ],
);
pub(crate) static RESOURCE_SPANS: Schema = Schema::new(
    "ResourceSpans",
    &[
        decl(1, "resource", Msg(&RESOURCE)),
        decl(2, "scope_spans", Msg(&SCOPE_SPANS)),
        decl(3, "schema_url", Bytes),
    ],
);
pub(crate) static TRACES_REQUEST: Schema = Schema::new(
    "ExportTraceServiceRequest",
    &[decl(1, "resource_spans", Msg(&RESOURCE_SPANS))],
);

// --- metrics --------------------------------------------------------------------------------

static EXEMPLAR: Schema = Schema::new(
    "Exemplar",
    &[
        decl(7, "filtered_attributes", Msg(&KEY_VALUE)),
        decl(2, "time_unix_nano", I64),
        decl(3, "as_double", I64),
        decl(6, "as_int", I64),
        decl(4, "span_id", Bytes),
        decl(5, "trace_id", Bytes),
    ],
);
static NUMBER_DATA_POINT: Schema = Schema::new(
    "NumberDataPoint",
    &[
        decl(7, "attributes", Msg(&KEY_VALUE)),
        decl(2, "start_time_unix_nano", I64),
        decl(3, "time_unix_nano", I64),
        decl(4, "as_double", I64),
        decl(6, "as_int", I64),
        decl(5, "exemplars", Msg(&EXEMPLAR)),
        decl(8, "flags", Varint),
    ],
);
static HISTOGRAM_DATA_POINT: Schema = Schema::new(
    "HistogramDataPoint",
    &[
        decl(9, "attributes", Msg(&KEY_VALUE)),
        decl(2, "start_time_unix_nano", I64),
        decl(3, "time_unix_nano", I64),
        decl(4, "count", I64),
        decl(5, "sum", I64),
        decl(6, "bucket_counts", PackedI64),
        decl(7, "explicit_bounds", PackedI64),
        decl(8, "exemplars", Msg(&EXEMPLAR)),
        decl(10, "flags", Varint),
        decl(11, "min", I64),
        decl(12, "max", I64),
    ],
);
static BUCKETS: Schema = Schema::new(
    "ExponentialHistogramDataPoint.Buckets",
    &[
        decl(1, "offset", Varint),
        decl(2, "bucket_counts", PackedVarint),
    ],
);
static EXPONENTIAL_HISTOGRAM_DATA_POINT: Schema = Schema::new(
    "ExponentialHistogramDataPoint",
    &[
        decl(1, "attributes", Msg(&KEY_VALUE)),
        decl(2, "start_time_unix_nano", I64),
        decl(3, "time_unix_nano", I64),
        decl(4, "count", I64),
        decl(5, "sum", I64),
        decl(6, "scale", Varint),
        decl(7, "zero_count", I64),
        decl(8, "positive", Msg(&BUCKETS)),
        decl(9, "negative", Msg(&BUCKETS)),
        decl(10, "flags", Varint),
        decl(11, "exemplars", Msg(&EXEMPLAR)),
        decl(12, "min", I64),
        decl(13, "max", I64),
        decl(14, "zero_threshold", I64),
    ],
);
static VALUE_AT_QUANTILE: Schema = Schema::new(
    "SummaryDataPoint.ValueAtQuantile",
    &[decl(1, "quantile", I64), decl(2, "value", I64)],
);
static SUMMARY_DATA_POINT: Schema = Schema::new(
    "SummaryDataPoint",
    &[
        decl(7, "attributes", Msg(&KEY_VALUE)),
        decl(2, "start_time_unix_nano", I64),
        decl(3, "time_unix_nano", I64),
        decl(4, "count", I64),
        decl(5, "sum", I64),
        decl(6, "quantile_values", Msg(&VALUE_AT_QUANTILE)),
        decl(8, "flags", Varint),
    ],
);
static GAUGE: Schema = Schema::new("Gauge", &[decl(1, "data_points", Msg(&NUMBER_DATA_POINT))]);
static SUM: Schema = Schema::new(
    "Sum",
    &[
        decl(1, "data_points", Msg(&NUMBER_DATA_POINT)),
        decl(2, "aggregation_temporality", Varint),
        decl(3, "is_monotonic", Varint),
    ],
);
static HISTOGRAM: Schema = Schema::new(
    "Histogram",
    &[
        decl(1, "data_points", Msg(&HISTOGRAM_DATA_POINT)),
        decl(2, "aggregation_temporality", Varint),
    ],
);
static EXPONENTIAL_HISTOGRAM: Schema = Schema::new(
    "ExponentialHistogram",
    &[
        decl(1, "data_points", Msg(&EXPONENTIAL_HISTOGRAM_DATA_POINT)),
        decl(2, "aggregation_temporality", Varint),
    ],
);
static SUMMARY: Schema = Schema::new(
    "Summary",
    &[decl(1, "data_points", Msg(&SUMMARY_DATA_POINT))],
);
pub(crate) static METRIC: Schema = Schema::new(
    "Metric",
    &[
        decl(1, "name", Bytes),
        decl(2, "description", Bytes),
        decl(3, "unit", Bytes),
        decl(5, "gauge", Msg(&GAUGE)),
        decl(7, "sum", Msg(&SUM)),
        decl(9, "histogram", Msg(&HISTOGRAM)),
        decl(10, "exponential_histogram", Msg(&EXPONENTIAL_HISTOGRAM)),
        decl(11, "summary", Msg(&SUMMARY)),
        decl(12, "metadata", Msg(&KEY_VALUE)),
    ],
);
static SCOPE_METRICS: Schema = Schema::new(
    "ScopeMetrics",
    &[
        decl(1, "scope", Msg(&SCOPE)),
        decl(2, "metrics", Msg(&METRIC)),
        decl(3, "schema_url", Bytes),
    ],
);
static RESOURCE_METRICS: Schema = Schema::new(
    "ResourceMetrics",
    &[
        decl(1, "resource", Msg(&RESOURCE)),
        decl(2, "scope_metrics", Msg(&SCOPE_METRICS)),
        decl(3, "schema_url", Bytes),
    ],
);
pub(crate) static METRICS_REQUEST: Schema = Schema::new(
    "ExportMetricsServiceRequest",
    &[decl(1, "resource_metrics", Msg(&RESOURCE_METRICS))],
);

// --- logs -----------------------------------------------------------------------------------

static LOG_RECORD: Schema = Schema::new(
    "LogRecord",
    &[
        decl(1, "time_unix_nano", I64),
        decl(11, "observed_time_unix_nano", I64),
        decl(2, "severity_number", Varint),
        decl(3, "severity_text", Bytes),
        decl(5, "body", Msg(&ANY_VALUE)),
        decl(6, "attributes", Msg(&KEY_VALUE)),
        decl(7, "dropped_attributes_count", Varint),
        decl(8, "flags", I32),
        decl(9, "trace_id", Bytes),
        decl(10, "span_id", Bytes),
        decl(12, "event_name", Bytes),
    ],
);
static SCOPE_LOGS: Schema = Schema::new(
    "ScopeLogs",
    &[
        decl(1, "scope", Msg(&SCOPE)),
        decl(2, "log_records", Msg(&LOG_RECORD)),
        decl(3, "schema_url", Bytes),
    ],
);
static RESOURCE_LOGS: Schema = Schema::new(
    "ResourceLogs",
    &[
        decl(1, "resource", Msg(&RESOURCE)),
        decl(2, "scope_logs", Msg(&SCOPE_LOGS)),
        decl(3, "schema_url", Bytes),
    ],
);
pub(crate) static LOGS_REQUEST: Schema = Schema::new(
    "ExportLogsServiceRequest",
    &[decl(1, "resource_logs", Msg(&RESOURCE_LOGS))],
);

// --- the validator --------------------------------------------------------------------------

/// Checks that `bytes` (starting at absolute offset `base`) is a well-formed `schema` message,
/// nested messages included. `depth` counts the messages enclosing this one.
///
/// This is the hottest loop of the receive path, so it works on a position rather than through
/// a reader, and the common one-byte tags are dispatched through the schema's action table.
pub(crate) fn validate(
    schema: &Schema,
    bytes: &[u8],
    base: usize,
    depth: usize,
) -> Result<(), WireError> {
    if depth > NESTING_DEPTH_MAX {
        return Err(WireError::new(
            WireErrorKind::TooDeep {
                limit: NESTING_DEPTH_MAX,
            },
            base,
        ));
    }
    let end = bytes.len();
    let mut pos = 0;
    while pos < end {
        // A tag below 256 is one byte, or two whose second is 1.
        let (tag, tag_len) = match bytes[pos] {
            low if low < 0x80 => (usize::from(low), 1),
            low if bytes.get(pos + 1) == Some(&1) => (usize::from(low & 0x7f) | 0x80, 2),
            _ => (0, 0),
        };
        let action = schema.actions[tag];
        match action {
            action::VARINT => {
                pos += tag_len;
                let at = pos;
                read_varint(bytes, &mut pos).map_err(|kind| WireError::new(kind, base + at))?;
            }
            action::I64 => {
                pos += tag_len;
                if end - pos < 8 {
                    return Err(WireError::new(WireErrorKind::Truncated, base + pos));
                }
                pos += 8;
            }
            action::I32 => {
                pos += tag_len;
                if end - pos < 4 {
                    return Err(WireError::new(WireErrorKind::Truncated, base + pos));
                }
                pos += 4;
            }
            action::BYTES | action::MESSAGE => {
                pos += tag_len;
                let (payload, payload_at) = read_payload(bytes, &mut pos, base)?;
                if action == action::MESSAGE {
                    if let Some(Decl {
                        kind: Kind::Message(inner),
                        ..
                    }) = schema.decl(tag as u64 >> 3)
                    {
                        if !(std::ptr::eq(*inner, &KEY_VALUE) && simple_key_value(payload)) {
                            validate(inner, payload, payload_at, depth + 1)?;
                        }
                    }
                }
            }
            _ => pos = validate_field(schema, bytes, pos, base, depth)?,
        }
    }
    Ok(())
}

/// One field met by [`walk`]: a child's payload and its offset, or any other field, as encoded.
pub(crate) enum Part<'a> {
    Child(&'a [u8], usize),
    Other(&'a [u8]),
}

/// Validates a message like [`validate`], except that fields numbered `child` (which must be
/// length-delimited) are handed to `visit` unvalidated; every other field is validated and then
/// handed to `visit` as encoded. This lets a caller validate and act on a message's children in
/// the same pass.
pub(crate) fn walk<'a>(
    schema: &Schema,
    bytes: &'a [u8],
    base: usize,
    depth: usize,
    child: u32,
    mut visit: impl FnMut(Part<'a>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut pos = 0;
    while pos < bytes.len() {
        let start = pos;
        match read_varint(bytes, &mut pos) {
            Ok(tag) if tag == u64::from(child) << 3 | 2 => {
                let (payload, at) = read_payload(bytes, &mut pos, base)?;
                visit(Part::Child(payload, at))?;
            }
            _ => {
                pos = validate_field(schema, bytes, start, base, depth)?;
                visit(Part::Other(&bytes[start..pos]))?;
            }
        }
    }
    Ok(())
}

/// Reads a length prefix at `*pos` and the payload it announces, moving past both.
#[inline(always)]
pub(crate) fn read_payload<'a>(
    bytes: &'a [u8],
    pos: &mut usize,
    base: usize,
) -> Result<(&'a [u8], usize), WireError> {
    let at = *pos;
    let len = read_varint(bytes, pos).map_err(|kind| WireError::new(kind, base + at))?;
    let available = bytes.len() - *pos;
    if len > available as u64 {
        return Err(WireError::new(
            WireErrorKind::LengthOverrun { len, available },
            base + at,
        ));
    }
    let start = *pos;
    *pos += len as usize;
    Ok((&bytes[start..*pos], base + start))
}

/// The general path for one field starting at `start`: any tag, any wire type, and every error.
/// Returns the position after the field.
#[inline(never)]
pub(crate) fn validate_field(
    schema: &Schema,
    bytes: &[u8],
    start: usize,
    base: usize,
    depth: usize,
) -> Result<usize, WireError> {
    let end = bytes.len();
    let mut pos = start;
    let tag = read_varint(bytes, &mut pos).map_err(|kind| WireError::new(kind, base + start))?;
    let number = tag >> 3;
    if number == 0 || number >= 1 << 29 {
        return Err(WireError::new(
            WireErrorKind::InvalidFieldNumber(number),
            base + start,
        ));
    }
    let decl = schema.decl(number);
    let found = match tag & 7 {
        0 => {
            let at = pos;
            read_varint(bytes, &mut pos).map_err(|kind| WireError::new(kind, base + at))?;
            WireType::Varint
        }
        1 => {
            if end - pos < 8 {
                return Err(WireError::new(WireErrorKind::Truncated, base + pos));
            }
            pos += 8;
            WireType::I64
        }
        5 => {
            if end - pos < 4 {
                return Err(WireError::new(WireErrorKind::Truncated, base + pos));
            }
            pos += 4;
            WireType::I32
        }
        2 => {
            let (payload, payload_at) = read_payload(bytes, &mut pos, base)?;
            match decl.map(|d| d.kind) {
                Some(Kind::Message(inner)) => validate(inner, payload, payload_at, depth + 1)?,
                Some(Kind::PackedI64) => check_packed_i64(payload, payload_at)?,
                Some(Kind::PackedVarint) => check_packed_varint(payload, payload_at)?,
                _ => {}
            }
            WireType::Len
        }
        3 => {
            if decl.is_none() {
                pos = Reader::skip_group_at(bytes, pos, base, number as u32, depth + 1)?;
            }
            WireType::StartGroup
        }
        4 => {
            return Err(WireError::new(
                WireErrorKind::UnexpectedEndGroup {
                    field: number as u32,
                },
                base + start,
            ))
        }
        bits => {
            return Err(WireError::new(
                WireErrorKind::InvalidWireType(bits as u8),
                base + start,
            ))
        }
    };
    match decl {
        Some(decl) if !decl.kind.accepts(found) => {
            Err(wrong_wire_type(schema, decl, found, base + start))
        }
        _ => Ok(pos),
    }
}

/// Accepts, without recursing, the shape most attributes have: `key` then `value`, the value
/// one scalar field (string, bool, int, double or bytes), every length under 128. It accepts
/// nothing the generic path would refuse; anything else (arrays, long strings, unknown fields,
/// other field orders) returns `false` and is validated in full.
#[inline(always)]
pub(crate) fn simple_key_value(payload: &[u8]) -> bool {
    let [0x0a, key_len, rest @ ..] = payload else {
        return false;
    };
    let key_len = usize::from(*key_len);
    if key_len >= 0x80 || rest.len() < key_len {
        return false;
    }
    let [0x12, value_len, value @ ..] = &rest[key_len..] else {
        return false;
    };
    if *value_len >= 0x80 || value.len() != usize::from(*value_len) {
        return false;
    }
    match value {
        // string_value, bytes_value
        [0x0a | 0x3a, len, bytes @ ..] => *len < 0x80 && bytes.len() == usize::from(*len),
        // bool_value, int_value
        [0x10 | 0x18, varint @ ..] => {
            let mut pos = 0;
            read_varint(varint, &mut pos).is_ok() && pos == varint.len()
        }
        // double_value
        [0x21, bits @ ..] => bits.len() == 8,
        _ => false,
    }
}

#[cold]
fn wrong_wire_type(schema: &Schema, decl: &Decl, found: WireType, offset: usize) -> WireError {
    WireError::new(
        WireErrorKind::WrongWireType {
            message: schema.name,
            field: decl.name,
            number: decl.number,
            expected: decl.kind.wire_type(),
            found,
        },
        offset,
    )
}

fn check_packed_i64(payload: &[u8], at: usize) -> Result<(), WireError> {
    match payload.len() % 8 {
        0 => Ok(()),
        rest => Err(WireError::new(
            WireErrorKind::Truncated,
            at + payload.len() - rest,
        )),
    }
}

fn check_packed_varint(payload: &[u8], at: usize) -> Result<(), WireError> {
    let mut pos = 0;
    while pos < payload.len() {
        let start = pos;
        read_varint(payload, &mut pos).map_err(|kind| WireError::new(kind, at + start))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path must agree with the generic validator wherever it answers.
    #[test]
    fn simple_key_value_accepts_only_valid_attributes() {
        let cases: &[&[u8]] = &[
            &[0x0a, 0x01, b'k', 0x12, 0x03, 0x0a, 0x01, b'v'],
            &[0x0a, 0x01, b'k', 0x12, 0x02, 0x10, 0x01],
            &[0x0a, 0x01, b'k', 0x12, 0x03, 0x18, 0x96, 0x01],
            &[0x0a, 0x00, 0x12, 0x09, 0x21, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f],
            &[0x0a, 0x01, b'k', 0x12, 0x02, 0x3a, 0x00],
            // Malformed: value length overruns, varint unterminated, double short, bad tag.
            &[0x0a, 0x01, b'k', 0x12, 0x04, 0x0a, 0x01, b'v'],
            &[0x0a, 0x01, b'k', 0x12, 0x02, 0x18, 0x96],
            &[0x0a, 0x01, b'k', 0x12, 0x03, 0x21, 0, 0],
            &[0x0a, 0x01, b'k', 0x12, 0x02, 0x0b, 0x00],
            &[0x0a, 0x05, b'k'],
        ];
        for case in cases {
            let generic = validate(&KEY_VALUE, case, 0, 4).is_ok();
            if simple_key_value(case) {
                assert!(
                    generic,
                    "fast path accepted what the validator refuses: {case:?}"
                );
            }
        }
        assert!(
            simple_key_value(cases[0]) && simple_key_value(cases[2]) && simple_key_value(cases[3])
        );
    }
}
