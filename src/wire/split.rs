//! The routing step: splitting a traces request by the shard that owns each trace.
//!
//! One pass over a validated request reads every span's ids, sets aside the spans that must be
//! rejected on their own, asks the owner function which shard owns each trace, and appends a
//! [`SpanRef`] (a byte range of the request) to that shard's list. Group headers are copied once
//! per group into a small per-request arena, so every shard's spans can be framed under the same
//! resource and scope bytes they arrived with. All buffers are reused across requests.

use std::ops::Range;

use super::error::SpanDefect;
use super::frame::{Framer, Piece};
use super::trace::{SpanView, TracesRequest};

/// A span of the request being split: which group it is in and its byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanRef {
    /// Index of its scope group in the split's group table.
    pub group: u32,
    /// Byte range of the encoded span in the request.
    pub start: u32,
    pub end: u32,
}

/// The headers of one scope group and of the resource group around it, as ranges of the arena.
#[derive(Debug, Clone)]
struct GroupHeaders {
    resource: Range<usize>,
    scope: Range<usize>,
}

/// A request's spans, split by owning shard.
#[derive(Debug)]
pub struct Split {
    headers: Vec<u8>,
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
            headers: Vec::new(),
            groups: Vec::new(),
            shards: vec![Vec::new(); shards],
            rejected: 0,
            first_defect: None,
        }
    }

    /// Splits `request`, replacing whatever the split held. `owner` maps a trace id to a shard
    /// index below the shard count.
    pub fn run(&mut self, request: &TracesRequest<'_>, mut owner: impl FnMut(&[u8; 16]) -> usize) {
        self.headers.clear();
        self.groups.clear();
        self.shards.iter_mut().for_each(Vec::clear);
        self.rejected = 0;
        self.first_defect = None;
        let shard_count = self.shards.len();
        for resource_group in request.request().resource_groups() {
            let resource_start = self.headers.len();
            resource_group.header().write_to(&mut self.headers);
            let resource = resource_start..self.headers.len();
            for scope_group in resource_group.scope_groups() {
                let scope_start = self.headers.len();
                scope_group.header().write_to(&mut self.headers);
                let group = self.groups.len() as u32;
                self.groups.push(GroupHeaders {
                    resource: resource.clone(),
                    scope: scope_start..self.headers.len(),
                });
                for item in scope_group.items() {
                    let span = SpanView::new(item);
                    let trace_id = match (span.defect(), span.trace_id_array()) {
                        (None, Some(trace_id)) => trace_id,
                        (defect, _) => {
                            self.rejected += 1;
                            let defect = defect.unwrap_or(SpanDefect::TraceIdLength(0));
                            self.first_defect.get_or_insert((defect, item.offset));
                            continue;
                        }
                    };
                    let shard = owner(&trace_id);
                    assert!(shard < shard_count, "owner {shard} of {shard_count} shards");
                    // Requests are at most 4 GiB (checked by `Request::parse`), so offsets fit.
                    self.shards[shard].push(SpanRef {
                        group,
                        start: item.offset as u32,
                        end: (item.offset + item.bytes.len()) as u32,
                    });
                }
            }
        }
    }

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
                resource: &self.headers[group.resource.clone()],
                scope: &self.headers[group.scope.clone()],
                item: &request[span.start as usize..span.end as usize],
            }
        })
    }

    /// Appends `shard`'s export request to `out`; returns its length.
    pub fn frame(
        &self,
        request: &TracesRequest<'_>,
        shard: usize,
        framer: &mut Framer,
        out: &mut Vec<u8>,
    ) -> usize {
        framer.frame(self.pieces(request.bytes(), shard), out)
    }
}
