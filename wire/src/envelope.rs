//! The envelope every OTLP export request shares, for all three signals.
//!
//! `ExportTraceServiceRequest`, `ExportMetricsServiceRequest` and `ExportLogsServiceRequest` have
//! the same shape and the same field numbers: field 1 holds resource groups (`ResourceSpans`,
//! `ResourceMetrics`, `ResourceLogs`); each resource group has its `Resource` in field 1, scope
//! groups in field 2 and a schema URL in field 3; each scope group has its
//! `InstrumentationScope` in field 1, the items (spans, metrics, log records) in field 2 and a
//! schema URL in field 3. One scanner serves all three; only the item schema differs.
//!
//! A [`Request`] exists only once the whole request has been validated, so iterating it is
//! infallible. A group's *header* is every field of it except its children: the resource or
//! scope, the schema URL, and any unknown field, which is how unknown fields travel with the
//! items they belong to when a request is split and framed again.

use super::common::{ResourceView, ScopeView};
use super::error::{WireError, WireErrorKind};
use super::fields::{Fields, Repeated};
use super::proto::Value;
use super::schema::{self, Schema};

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `ExportTraceServiceRequest`: spans.
    Traces,
    /// `ExportMetricsServiceRequest`: metrics.
    Metrics,
    /// `ExportLogsServiceRequest`: log records.
    Logs,
}

impl Signal {
    fn schema(self) -> &'static Schema {
        match self {
            Signal::Traces => &schema::TRACES_REQUEST,
            Signal::Metrics => &schema::METRICS_REQUEST,
            Signal::Logs => &schema::LOGS_REQUEST,
        }
    }

    /// Every signal, in [`Signal::index`] order.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// The signal's place in [`Signal::ALL`]: an index for per-signal arrays.
    pub const fn index(self) -> usize {
        match self {
            Signal::Traces => 0,
            Signal::Metrics => 1,
            Signal::Logs => 2,
        }
    }

    /// The signal's name as OTLP paths and metric labels spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }
}

/// The field number of the child list in a request, a resource group and a scope group.
pub(crate) const RESOURCE_GROUPS: u32 = 1;
pub(crate) const CHILDREN: u32 = 2;

/// A validated export request of one signal, borrowed from its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    bytes: &'a [u8],
    signal: Signal,
}

impl<'a> Request<'a> {
    /// Validates `bytes` as an export request of `signal`.
    ///
    /// This is the one full pass over the request: every nested message is checked against its
    /// schema. Per-span defects (bad ids) are not request errors; see
    /// [`super::SpanView::defect`].
    pub fn parse(signal: Signal, bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() > u32::MAX as usize {
            return Err(WireError::new(
                WireErrorKind::TooLarge { len: bytes.len() },
                0,
            ));
        }
        schema::validate(signal.schema(), bytes, 0, 0)?;
        Ok(Request { bytes, signal })
    }

    /// A request of `signal` over bytes this process validated before (a delivery framed or
    /// checked by [`Request::parse`] on another shard); iterating bytes that are not valid ends
    /// early or yields empty views, never panics.
    pub fn trusted(signal: Signal, bytes: &'a [u8]) -> Self {
        Request { bytes, signal }
    }

    /// Which signal the request carries.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The request's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The resource groups, in wire order.
    pub fn resource_groups(&self) -> impl Iterator<Item = ResourceGroup<'a>> + 'a {
        Repeated::new(self.bytes, 0, RESOURCE_GROUPS)
            .map(|(bytes, offset)| ResourceGroup { bytes, offset })
    }

    /// Every item of the request with the groups it sits in, in wire order.
    pub fn items(
        &self,
    ) -> impl Iterator<Item = (ResourceGroup<'a>, ScopeGroup<'a>, Item<'a>)> + 'a {
        self.resource_groups().flat_map(|resource| {
            resource
                .scope_groups()
                .flat_map(move |scope| scope.items().map(move |item| (resource, scope, item)))
        })
    }
}

/// The header of a resource or scope group: its fields other than the children, each as it was
/// encoded (tag, length and payload).
#[derive(Debug, Clone)]
pub struct Header<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Header<'a> {
    /// The header's fields, each exactly as received.
    pub fn parts(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        Fields::new(self.bytes, self.offset)
            .filter(|f| f.number != CHILDREN)
            .map(|f| f.raw)
    }

    /// Appends the header's fields to `out`, in wire order.
    // Inlined for the reason `Repeated::next` is: an out-of-line call reads the header it is
    // given with a load that waits for the store buffer to drain.
    #[inline]
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for part in self.parts() {
            out.extend_from_slice(part);
        }
    }
}

/// One resource group: `ResourceSpans`, `ResourceMetrics` or `ResourceLogs`.
#[derive(Debug, Clone, Copy)]
pub struct ResourceGroup<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> ResourceGroup<'a> {
    /// A resource group read from its header alone (the bytes [`Header::write_to`] wrote): its
    /// resource and schema URL, and no scope groups.
    pub fn from_header(bytes: &'a [u8]) -> Self {
        ResourceGroup { bytes, offset: 0 }
    }

    /// The encoded group, children included.
    pub fn raw(&self) -> &'a [u8] {
        self.bytes
    }

    /// Absolute offset of the group's payload in the request.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The `Resource` (the last one, should the field repeat), if present.
    pub fn resource(&self) -> Option<ResourceView<'a>> {
        Repeated::new(self.bytes, self.offset, 1)
            .last()
            .map(|(b, at)| ResourceView::new(b, at))
    }

    /// The attributes of the group's resource as received: those of every `resource` field, in
    /// order, as a decoder merging the repeated message lists them.
    pub fn resource_attributes(&self) -> impl Iterator<Item = super::RawKeyValue<'a>> + 'a {
        Repeated::new(self.bytes, self.offset, 1)
            .flat_map(|(b, at)| super::common::KeyValues::new(b, at, 1).raw())
    }

    /// The schema URL of the resource group (`Resource{Spans,Metrics,Logs}.schema_url`).
    pub fn schema_url(&self) -> &'a [u8] {
        super::common::last_bytes(self.bytes, self.offset, 3)
    }

    /// Everything but the scope groups.
    pub fn header(&self) -> Header<'a> {
        Header {
            bytes: self.bytes,
            offset: self.offset,
        }
    }

    /// The scope groups, in wire order.
    pub fn scope_groups(&self) -> impl Iterator<Item = ScopeGroup<'a>> + 'a {
        Repeated::new(self.bytes, self.offset, CHILDREN)
            .map(|(bytes, offset)| ScopeGroup { bytes, offset })
    }

    /// Appends the group to `out` as one resource group field of an export request: its tag
    /// and length, then its bytes as received. Requests made of such fields, concatenated, are
    /// valid requests of the same signal: how a request is split by resource without
    /// re-encoding anything inside a group.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        super::encode::put_bytes_field(out, RESOURCE_GROUPS, self.bytes);
    }

    /// The group's items as [`item_count`] counts them for a request of `signal`.
    pub fn item_count(&self, signal: Signal) -> u64 {
        let items = self.scope_groups().flat_map(|scope| scope.items());
        match signal {
            Signal::Traces | Signal::Logs => items.count() as u64,
            Signal::Metrics => items
                .map(|item| super::metrics::MetricView::new(item).data_point_count())
                .sum(),
        }
    }
}

/// One scope group: `ScopeSpans`, `ScopeMetrics` or `ScopeLogs`.
#[derive(Debug, Clone, Copy)]
pub struct ScopeGroup<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> ScopeGroup<'a> {
    /// A scope group read from its header alone (its fields other than its children, as the
    /// framer writes them), as a trace buffer keeps it.
    pub fn from_header(bytes: &'a [u8]) -> Self {
        ScopeGroup { bytes, offset: 0 }
    }

    /// The encoded group, children included.
    pub fn raw(&self) -> &'a [u8] {
        self.bytes
    }

    /// Absolute offset of the group's payload in the request.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The `InstrumentationScope`, if present.
    pub fn scope(&self) -> Option<ScopeView<'a>> {
        Repeated::new(self.bytes, self.offset, 1)
            .last()
            .map(|(b, at)| ScopeView::new(b, at))
    }

    /// The schema URL of the scope group (`Scope{Spans,Metrics,Logs}.schema_url`).
    pub fn schema_url(&self) -> &'a [u8] {
        super::common::last_bytes(self.bytes, self.offset, 3)
    }

    /// Everything but the items.
    pub fn header(&self) -> Header<'a> {
        Header {
            bytes: self.bytes,
            offset: self.offset,
        }
    }

    /// The items (spans, metrics or log records), in wire order.
    pub fn items(&self) -> impl Iterator<Item = Item<'a>> + 'a {
        Repeated::new(self.bytes, self.offset, CHILDREN)
            .map(|(bytes, offset)| Item { bytes, offset })
    }
}

/// One item's encoded message (without its tag and length prefix) and where it starts.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// The item's encoded message: a `Span`, `Metric` or `LogRecord`.
    pub bytes: &'a [u8],
    /// Absolute offset of the item's first byte in the request.
    pub offset: usize,
}

/// Counts a validated request's items the way the Collector's receiver metrics count them:
/// spans, metric data points, log records.
pub fn item_count(request: &Request<'_>) -> u64 {
    match request.signal {
        Signal::Traces | Signal::Logs => request.items().count() as u64,
        Signal::Metrics => request
            .items()
            .map(|(_, _, item)| super::metrics::MetricView::new(item).data_point_count())
            .sum(),
    }
}

/// The payload of the last `number` field of a validated message, if any.
pub(crate) fn last_message(bytes: &[u8], offset: usize, number: u32) -> Option<(&[u8], usize)> {
    Fields::new(bytes, offset)
        .filter(|f| f.number == number)
        .filter_map(|f| match f.value {
            Value::Len(b, at) => Some((b, at)),
            _ => None,
        })
        .last()
}
