//! Span views over a validated `ExportTraceServiceRequest`.
//!
//! Building a [`SpanView`] reads the span's top-level fields once — ids, name, kind, times,
//! flags, status — and keeps slices into the request; attributes, events and links stay encoded
//! until their iterators are walked. This is what routing and most sampling policies need, at
//! the cost of one pass over a few dozen bytes of tags per span.

use super::common::{last_bytes, last_varint, KeyValues};
use super::envelope::{Item, Request, ScopeGroup, Signal};
use super::error::{SpanDefect, WireError, WireErrorKind};
use super::fields::{fixed_at, Fields, Repeated};
use super::proto::{read_varint, Value};
use super::schema::{self, SPAN};

/// What a span's trace needs to know of it, read in one lean pass over the span's bytes: the
/// trace id, whether it has a parent, its times, flags and status code, and its size. Nothing
/// is validated (the span must come from a validated request); other fields are skipped by
/// their length alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpanFacts<'a> {
    /// The span's `trace_id` (16 bytes once validated).
    pub trace_id: &'a [u8],
    /// Whether the span has a `parent_span_id`: a root span does not.
    pub has_parent: bool,
    /// The span's `start_time_unix_nano`.
    pub start_time_unix_nano: u64,
    /// The span's `end_time_unix_nano`.
    pub end_time_unix_nano: u64,
    /// The span's `flags`: W3C trace flags in the low 8 bits, OTLP `SpanFlags` above.
    pub flags: u32,
    /// The span's `Status.code` (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    /// The encoded span's length.
    pub len: usize,
}

impl<'a> SpanFacts<'a> {
    /// Scans the span `bytes` (the last occurrence of a field wins; `status` occurrences merge,
    /// as protobuf merges them). `None` for what a validated span would not give as simply: a
    /// group (deprecated wire types 3 and 4, possible in unknown fields) or bytes that do not
    /// parse; [`SpanView`] reads those.
    #[inline]
    pub fn scan(bytes: &'a [u8]) -> Option<Self> {
        let mut facts = SpanFacts {
            len: bytes.len(),
            ..SpanFacts::default()
        };
        let mut pos = 0;
        while pos < bytes.len() {
            let tag = varint(bytes, &mut pos)?;
            match tag & 7 {
                2 => {
                    let len = varint(bytes, &mut pos)? as usize;
                    let end = pos.checked_add(len)?;
                    // Spans carry mostly attributes, events and links: skipped by length.
                    if tag > 0x22 && tag != 0x7a {
                        if end > bytes.len() {
                            return None;
                        }
                        pos = end;
                        continue;
                    }
                    let payload = bytes.get(pos..end)?;
                    pos = end;
                    match tag {
                        0x0a => facts.trace_id = payload,
                        0x22 => facts.has_parent = !payload.is_empty(),
                        0x7a => facts.status_code = status_code(payload, facts.status_code)?,
                        _ => {}
                    }
                }
                0 => {
                    varint(bytes, &mut pos)?;
                }
                1 => {
                    let value = u64::from_le_bytes(fixed_at::<8>(bytes, &mut pos)?);
                    match tag {
                        0x39 => facts.start_time_unix_nano = value,
                        0x41 => facts.end_time_unix_nano = value,
                        _ => {}
                    }
                }
                5 => {
                    let value = u32::from_le_bytes(fixed_at::<4>(bytes, &mut pos)?);
                    if tag == 0x85 {
                        facts.flags = value;
                    }
                }
                _ => return None,
            }
        }
        Some(facts)
    }

    /// The 16-byte trace id, if it is that long.
    pub fn trace_id_array(&self) -> Option<[u8; 16]> {
        self.trace_id.try_into().ok()
    }
}

/// A varint, with the one-byte case first (tags and most lengths in a span).
#[inline(always)]
fn varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let byte = *bytes.get(*pos)?;
    if byte < 0x80 {
        *pos += 1;
        return Some(u64::from(byte));
    }
    read_varint(bytes, pos).ok()
}

/// The code in an encoded `Status` (field 3), or `code` when it has none.
fn status_code(bytes: &[u8], mut code: i32) -> Option<i32> {
    let mut pos = 0;
    while pos < bytes.len() {
        let tag = read_varint(bytes, &mut pos).ok()?;
        match tag & 7 {
            0 => {
                let value = read_varint(bytes, &mut pos).ok()?;
                if tag == 0x18 {
                    code = value as i32;
                }
            }
            1 => pos = pos.checked_add(8).filter(|&p| p <= bytes.len())?,
            2 => {
                let len = read_varint(bytes, &mut pos).ok()? as usize;
                pos = pos.checked_add(len).filter(|&p| p <= bytes.len())?;
            }
            5 => pos = pos.checked_add(4).filter(|&p| p <= bytes.len())?,
            _ => return None,
        }
    }
    Some(code)
}

impl<'a> From<&SpanView<'a>> for SpanFacts<'a> {
    fn from(span: &SpanView<'a>) -> Self {
        SpanFacts {
            trace_id: span.trace_id(),
            has_parent: !span.parent_span_id().is_empty(),
            start_time_unix_nano: span.start_time_unix_nano(),
            end_time_unix_nano: span.end_time_unix_nano(),
            flags: span.flags(),
            status_code: span.status_code(),
            len: span.raw().len(),
        }
    }
}

/// A validated `ExportTraceServiceRequest`.
#[derive(Debug, Clone, Copy)]
pub struct TracesRequest<'a> {
    request: Request<'a>,
}

impl<'a> TracesRequest<'a> {
    /// Validates `bytes` as an `ExportTraceServiceRequest`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        Request::parse(Signal::Traces, bytes).map(|request| TracesRequest { request })
    }

    /// The signal-independent view of the same request.
    pub fn request(&self) -> &Request<'a> {
        &self.request
    }

    /// The request's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.request.bytes()
    }

    /// Every span of the request, in wire order.
    pub fn spans(&self) -> impl Iterator<Item = SpanView<'a>> + 'a {
        self.request.items().map(|(_, _, item)| SpanView::new(item))
    }
}

impl<'a> ScopeGroup<'a> {
    /// The group's items read as spans; only meaningful in a traces request.
    pub fn spans(&self) -> impl Iterator<Item = SpanView<'a>> + 'a {
        self.items().map(SpanView::new)
    }
}

/// The span status code, as in `Status.StatusCode`.
pub const STATUS_CODE_ERROR: i32 = 2;

/// One span, its top-level fields read, the rest lazy.
#[derive(Debug, Clone, Copy)]
pub struct SpanView<'a> {
    bytes: &'a [u8],
    offset: usize,
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    trace_state: &'a [u8],
    name: &'a [u8],
    kind: i32,
    start_time_unix_nano: u64,
    end_time_unix_nano: u64,
    flags: u32,
    status_code: i32,
    status_message: &'a [u8],
    has_links: bool,
}

impl<'a> SpanView<'a> {
    /// Reads a span's top-level fields. The item must come from a validated traces request.
    pub fn new(item: Item<'a>) -> Self {
        match Self::read::<false>(item, 0) {
            Ok(view) => view,
            Err(err) => {
                debug_assert!(false, "span view over unvalidated bytes: {err}");
                Self::empty(item)
            }
        }
    }

    /// Validates a span (at nesting `depth`) and reads its top-level fields in the same pass,
    /// with the same rules and errors as the schema validator.
    pub(crate) fn parse(item: Item<'a>, depth: usize) -> Result<Self, WireError> {
        Self::read::<true>(item, depth)
    }

    fn empty(item: Item<'a>) -> Self {
        SpanView {
            bytes: item.bytes,
            offset: item.offset,
            trace_id: &[],
            span_id: &[],
            parent_span_id: &[],
            trace_state: &[],
            name: &[],
            kind: 0,
            start_time_unix_nano: 0,
            end_time_unix_nano: 0,
            flags: 0,
            status_code: 0,
            status_message: &[],
            has_links: false,
        }
    }

    /// The one loop over a span's fields. Scalars: the last occurrence wins. `status` is a
    /// message: occurrences merge field by field, as protobuf merges repeated singular messages.
    /// With `VALIDATE`, nested messages are validated too; fields this loop does not read, wrong
    /// wire types and malformed tags go to the schema validator's general path, so a span is
    /// judged exactly as [`schema::validate`] would judge it.
    #[inline(always)]
    fn read<const VALIDATE: bool>(item: Item<'a>, depth: usize) -> Result<Self, WireError> {
        let mut view = Self::empty(item);
        let (bytes, base) = (item.bytes, item.offset);
        let mut pos = 0;
        while pos < bytes.len() {
            let start = pos;
            let Ok(tag) = read_varint(bytes, &mut pos) else {
                pos = schema::validate_field(&SPAN, bytes, start, base, depth)?;
                continue;
            };
            match tag {
                // trace_id, span_id, trace_state, parent_span_id, name, attributes, events,
                // links, status: length-delimited.
                0x0a | 0x12 | 0x1a | 0x22 | 0x2a | 0x4a | 0x5a | 0x6a | 0x7a => {
                    let (payload, at) = schema::read_payload(bytes, &mut pos, base)?;
                    match tag {
                        0x0a => view.trace_id = payload,
                        0x12 => view.span_id = payload,
                        0x1a => view.trace_state = payload,
                        0x22 => view.parent_span_id = payload,
                        0x2a => view.name = payload,
                        0x4a if VALIDATE && !schema::simple_key_value(payload) => {
                            schema::validate(&schema::KEY_VALUE, payload, at, depth + 1)?;
                        }
                        0x5a if VALIDATE => {
                            schema::validate(&schema::EVENT, payload, at, depth + 1)?;
                        }
                        0x6a => {
                            if VALIDATE {
                                schema::validate(&schema::LINK, payload, at, depth + 1)?;
                            }
                            view.has_links = true;
                        }
                        0x7a => {
                            if VALIDATE {
                                schema::validate(&schema::STATUS, payload, at, depth + 1)?;
                            }
                            view.merge_status(payload, at);
                        }
                        _ => {}
                    }
                }
                0x30 => {
                    let at = pos;
                    view.kind = read_varint(bytes, &mut pos)
                        .map_err(|kind| WireError::new(kind, base + at))?
                        as i32;
                }
                0x39 | 0x41 => {
                    let value = fixed_at::<8>(bytes, &mut pos)
                        .ok_or_else(|| WireError::new(WireErrorKind::Truncated, base + pos))?;
                    let value = u64::from_le_bytes(value);
                    if tag == 0x39 {
                        view.start_time_unix_nano = value;
                    } else {
                        view.end_time_unix_nano = value;
                    }
                }
                // flags: field 16, fixed32.
                0x85 => {
                    let value = fixed_at::<4>(bytes, &mut pos)
                        .ok_or_else(|| WireError::new(WireErrorKind::Truncated, base + pos))?;
                    view.flags = u32::from_le_bytes(value);
                }
                _ => pos = schema::validate_field(&SPAN, bytes, start, base, depth)?,
            }
        }
        Ok(view)
    }

    fn merge_status(&mut self, bytes: &'a [u8], offset: usize) {
        for field in Fields::new(bytes, offset) {
            match (field.number, field.value) {
                (2, Value::Len(message, _)) => self.status_message = message,
                (3, Value::Varint(code)) => self.status_code = code as i32,
                _ => {}
            }
        }
    }

    /// The encoded `Span` message, exactly as received.
    pub fn raw(&self) -> &'a [u8] {
        self.bytes
    }

    /// Absolute offset of the span's first byte in the request.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The span's `trace_id`, as received (16 bytes once validated).
    pub fn trace_id(&self) -> &'a [u8] {
        self.trace_id
    }

    /// The trace id as an array, when it is 16 bytes long.
    pub fn trace_id_array(&self) -> Option<[u8; 16]> {
        self.trace_id.try_into().ok()
    }

    /// The span's `span_id`, as received (8 bytes once validated).
    pub fn span_id(&self) -> &'a [u8] {
        self.span_id
    }

    /// The span's `parent_span_id`: empty for a root span.
    pub fn parent_span_id(&self) -> &'a [u8] {
        self.parent_span_id
    }

    /// The span's W3C `trace_state`.
    pub fn trace_state(&self) -> &'a [u8] {
        self.trace_state
    }

    /// The span's `name`.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// `SpanKind` as its integer value.
    pub fn kind(&self) -> i32 {
        self.kind
    }

    /// The span's `start_time_unix_nano`.
    pub fn start_time_unix_nano(&self) -> u64 {
        self.start_time_unix_nano
    }

    /// The span's `end_time_unix_nano`.
    pub fn end_time_unix_nano(&self) -> u64 {
        self.end_time_unix_nano
    }

    /// W3C trace flags in the low 8 bits, and the OTLP `SpanFlags` context bits above.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// `Status.StatusCode` as its integer value (0 unset, 1 ok, 2 error).
    pub fn status_code(&self) -> i32 {
        self.status_code
    }

    /// The span's `Status.message`.
    pub fn status_message(&self) -> &'a [u8] {
        self.status_message
    }

    /// The span's attributes, decoded lazily.
    pub fn attributes(&self) -> KeyValues<'a> {
        KeyValues::new(self.bytes, self.offset, 9)
    }

    /// How many attributes the sender dropped from the span.
    pub fn dropped_attributes_count(&self) -> u32 {
        last_varint(self.bytes, self.offset, 10) as u32
    }

    /// The span's events, decoded lazily.
    pub fn events(&self) -> impl Iterator<Item = EventView<'a>> + 'a {
        Repeated::new(self.bytes, self.offset, 11)
            .map(|(bytes, offset)| EventView { bytes, offset })
    }

    /// How many events the sender dropped from the span.
    pub fn dropped_events_count(&self) -> u32 {
        last_varint(self.bytes, self.offset, 12) as u32
    }

    /// The span's links, decoded lazily.
    pub fn links(&self) -> impl Iterator<Item = LinkView<'a>> + 'a {
        Repeated::new(self.bytes, self.offset, 13)
            .map(|(bytes, offset)| LinkView::new(bytes, offset))
    }

    /// How many links the sender dropped from the span.
    pub fn dropped_links_count(&self) -> u32 {
        last_varint(self.bytes, self.offset, 14) as u32
    }

    /// Why this span must be rejected on its own, if it must: ids of the wrong length or all
    /// zero. The Collector's decoder refuses such ids; rejecting just the span lets the rest of
    /// the request through with a partial-success answer.
    pub fn defect(&self) -> Option<SpanDefect> {
        if self.trace_id.len() != 16 {
            return Some(SpanDefect::TraceIdLength(self.trace_id.len()));
        }
        if self.trace_id.iter().all(|&b| b == 0) {
            return Some(SpanDefect::TraceIdZero);
        }
        if self.span_id.len() != 8 {
            return Some(SpanDefect::SpanIdLength(self.span_id.len()));
        }
        if self.span_id.iter().all(|&b| b == 0) {
            return Some(SpanDefect::SpanIdZero);
        }
        if !matches!(self.parent_span_id.len(), 0 | 8) {
            return Some(SpanDefect::ParentSpanIdLength(self.parent_span_id.len()));
        }
        if self.has_links {
            for link in self.links() {
                if !matches!(link.trace_id.len(), 0 | 16) {
                    return Some(SpanDefect::LinkTraceIdLength(link.trace_id.len()));
                }
                if !matches!(link.span_id.len(), 0 | 8) {
                    return Some(SpanDefect::LinkSpanIdLength(link.span_id.len()));
                }
            }
        }
        None
    }
}

/// One `Span.Event`.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> EventView<'a> {
    /// The event's `time_unix_nano`.
    pub fn time_unix_nano(&self) -> u64 {
        Fields::new(self.bytes, self.offset).fold(0, |acc, f| match (f.number, f.value) {
            (1, Value::I64(v)) => v,
            _ => acc,
        })
    }

    /// The event's `name`.
    pub fn name(&self) -> &'a [u8] {
        last_bytes(self.bytes, self.offset, 2)
    }

    /// The event's attributes, decoded lazily.
    pub fn attributes(&self) -> KeyValues<'a> {
        KeyValues::new(self.bytes, self.offset, 3)
    }

    /// How many attributes the sender dropped from the event.
    pub fn dropped_attributes_count(&self) -> u32 {
        last_varint(self.bytes, self.offset, 4) as u32
    }
}

/// One `Span.Link`.
#[derive(Debug, Clone, Copy)]
pub struct LinkView<'a> {
    bytes: &'a [u8],
    offset: usize,
    trace_id: &'a [u8],
    span_id: &'a [u8],
    trace_state: &'a [u8],
    flags: u32,
}

impl<'a> LinkView<'a> {
    fn new(bytes: &'a [u8], offset: usize) -> Self {
        let mut link = LinkView {
            bytes,
            offset,
            trace_id: &[],
            span_id: &[],
            trace_state: &[],
            flags: 0,
        };
        for field in Fields::new(bytes, offset) {
            match (field.number, field.value) {
                (1, Value::Len(b, _)) => link.trace_id = b,
                (2, Value::Len(b, _)) => link.span_id = b,
                (3, Value::Len(b, _)) => link.trace_state = b,
                (6, Value::I32(v)) => link.flags = v,
                _ => {}
            }
        }
        link
    }

    /// The linked span's `trace_id`.
    pub fn trace_id(&self) -> &'a [u8] {
        self.trace_id
    }

    /// The linked span's `span_id`.
    pub fn span_id(&self) -> &'a [u8] {
        self.span_id
    }

    /// The linked span's W3C `trace_state`.
    pub fn trace_state(&self) -> &'a [u8] {
        self.trace_state
    }

    /// The link's `flags`, as for a span.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The link's attributes, decoded lazily.
    pub fn attributes(&self) -> KeyValues<'a> {
        KeyValues::new(self.bytes, self.offset, 4)
    }

    /// How many attributes the sender dropped from the link.
    pub fn dropped_attributes_count(&self) -> u32 {
        last_varint(self.bytes, self.offset, 5) as u32
    }
}
