//! The routing step: splitting a traces request by the shard that owns each trace.
//!
//! One pass over a validated request reads every span's ids, sets aside the spans that must be
//! rejected on their own, asks the owner function which shard owns each trace, and appends a
//! [`SpanRef`] (a byte range of the request) to that shard's list. Group headers are copied once
//! per group into small per-request arenas (one for resource headers, one for scope headers, so
//! that each header stays contiguous however its fields interleave with the children), and every
//! shard's spans are framed under the same resource and scope bytes they arrived with. Each group
//! is walked once: its header fields and its children are told apart in the same pass. All
//! buffers are reused across requests.

use std::ops::Range;

use super::envelope::{Item, CHILDREN};
use super::error::{SpanDefect, WireError, WireErrorKind};
use super::frame::{Framer, Piece};
use super::schema::{self, Part, RESOURCE_SPANS, SCOPE_SPANS, TRACES_REQUEST};
use super::trace::SpanView;

/// The field of `ExportTraceServiceRequest` that holds its resource groups.
const CHILDREN_OF_REQUEST: u32 = 1;

/// A span of the request being split: which group it is in and its byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanRef {
    /// Index of its scope group in the split's group table.
    pub group: u32,
    /// Byte range of the encoded span in the request.
    pub start: u32,
    /// End of the byte range (exclusive).
    pub end: u32,
}

/// The headers of one scope group: the index of its resource group's header and its own header
/// as a range of the scope arena.
#[derive(Debug, Clone)]
struct GroupHeaders {
    resource: usize,
    scope: Range<usize>,
}

/// A request's spans, split by owning shard.
#[derive(Debug)]
pub struct Split {
    resource_headers: Vec<u8>,
    resources: Vec<Range<usize>>,
    scope_headers: Vec<u8>,
    groups: Vec<GroupHeaders>,
    shards: Vec<Vec<SpanRef>>,
    rejected: u64,
    first_defect: Option<(SpanDefect, usize)>,
}

impl Split {
    /// An empty split for `shards` owners.
    pub fn new(shards: usize) -> Self {
        assert!(shards > 0, "a split needs at least one shard");
        Split {
            resource_headers: Vec::new(),
            resources: Vec::new(),
            scope_headers: Vec::new(),
            groups: Vec::new(),
            shards: vec![Vec::new(); shards],
            rejected: 0,
            first_defect: None,
        }
    }

    /// Validates `bytes` as an `ExportTraceServiceRequest` and splits its spans by owner,
    /// replacing whatever the split held. `owner` maps a trace id to a shard index below the
    /// shard count.
    ///
    /// Validation and routing share one pass: the envelope is checked against the schemas and
    /// each span is validated while its ids are read. The request is accepted or refused exactly
    /// as [`super::TracesRequest::parse`] would; on error the split's contents are unspecified (the
    /// next `run` clears them) and nothing may be framed from it.
    pub fn run(
        &mut self,
        bytes: &[u8],
        mut owner: impl FnMut(&[u8; 16]) -> usize,
    ) -> Result<(), WireError> {
        self.resource_headers.clear();
        self.resources.clear();
        self.scope_headers.clear();
        self.groups.clear();
        self.shards.iter_mut().for_each(Vec::clear);
        self.rejected = 0;
        self.first_defect = None;
        if bytes.len() > u32::MAX as usize {
            return Err(WireError::new(
                WireErrorKind::TooLarge { len: bytes.len() },
                0,
            ));
        }
        schema::walk(&TRACES_REQUEST, bytes, 0, 0, CHILDREN_OF_REQUEST, |part| {
            let Part::Child(group, at) = part else {
                return Ok(());
            };
            let resource = self.resources.len();
            let start = self.resource_headers.len();
            schema::walk(&RESOURCE_SPANS, group, at, 1, CHILDREN, |part| match part {
                Part::Child(scope_group, at) => {
                    self.scope_group(resource, scope_group, at, &mut owner)
                }
                Part::Other(raw) => {
                    self.resource_headers.extend_from_slice(raw);
                    Ok(())
                }
            })?;
            self.resources.push(start..self.resource_headers.len());
            Ok(())
        })
    }

    /// Walks one scope group: its header into the arena, its spans (validated) to their owners.
    fn scope_group(
        &mut self,
        resource: usize,
        bytes: &[u8],
        offset: usize,
        owner: &mut impl FnMut(&[u8; 16]) -> usize,
    ) -> Result<(), WireError> {
        let group = self.groups.len();
        let start = self.scope_headers.len();
        let shard_count = self.shards.len();
        schema::walk(&SCOPE_SPANS, bytes, offset, 2, CHILDREN, |part| {
            let (span_bytes, at) = match part {
                Part::Child(span_bytes, at) => (span_bytes, at),
                Part::Other(raw) => {
                    self.scope_headers.extend_from_slice(raw);
                    return Ok(());
                }
            };
            let span = SpanView::parse(
                Item {
                    bytes: span_bytes,
                    offset: at,
                },
                3,
            )?;
            let trace_id = match (span.defect(), span.trace_id_array()) {
                (None, Some(trace_id)) => trace_id,
                (defect, _) => {
                    self.rejected += 1;
                    let defect = defect.unwrap_or(SpanDefect::TraceIdLength(0));
                    self.first_defect.get_or_insert((defect, at));
                    return Ok(());
                }
            };
            let shard = owner(&trace_id);
            assert!(shard < shard_count, "owner {shard} of {shard_count} shards");
            // Requests are at most 4 GiB (checked above), so offsets fit.
            self.shards[shard].push(SpanRef {
                group: group as u32,
                start: at as u32,
                end: (at + span_bytes.len()) as u32,
            });
            Ok(())
        })?;
        self.groups.push(GroupHeaders {
            resource,
            scope: start..self.scope_headers.len(),
        });
        Ok(())
    }

    /// How many owners the split routes to.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The spans that went to `shard`, in request order.
    pub fn spans(&self, shard: usize) -> &[SpanRef] {
        &self.shards[shard]
    }

    /// Spans rejected on their own, for the partial-success answer.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The first rejected span's defect and the offset of the span.
    pub fn first_defect(&self) -> Option<(SpanDefect, usize)> {
        self.first_defect
    }

    /// `shard`'s spans as framing pieces, borrowing from the split and the request's bytes.
    pub fn pieces<'s>(
        &'s self,
        request: &'s [u8],
        shard: usize,
    ) -> impl Iterator<Item = Piece<'s>> + Clone + 's {
        self.shards[shard].iter().map(move |span| {
            let group = &self.groups[span.group as usize];
            Piece {
                resource: &self.resource_headers[self.resources[group.resource].clone()],
                scope: &self.scope_headers[group.scope.clone()],
                item: &request[span.start as usize..span.end as usize],
            }
        })
    }

    /// Appends `shard`'s export request to `out`; returns its length. `request` must be the
    /// bytes of the last successful [`Split::run`].
    pub fn frame(
        &self,
        request: &[u8],
        shard: usize,
        framer: &mut Framer,
        out: &mut Vec<u8>,
    ) -> usize {
        framer.frame(self.pieces(request, shard), out)
    }
}
