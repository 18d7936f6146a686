//! The processors that drop or edit what passes, on the shard that owns it: `filter`
//! ([`filter`]), `resource` ([`resource`]) and `attributes` ([`attributes`]). A pipeline runs them in the order it lists them,
//! split where it lists `tail_sampling`: those before it in the pipeline's stage, on what the
//! receivers deliver (so the sampler sees what they leave), those after it on what the sampler
//! keeps, before the batcher. Nothing they keep is re-encoded: a filter frames the kept items
//! again, a resource edit writes a new resource message ahead of the group's bytes as received,
//! an attributes edit writes an item's attributes field again beside its other fields as
//! received.

mod actions;
pub mod attributes;
pub mod filter;
mod pdata;
pub mod resource;

pub use attributes::AttributesEditor;
pub use filter::Filter;
pub use resource::ResourceEditor;

use crate::metadata::Metadata;

/// What a processor left of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All of it, as it was: the request goes on as it is.
    Unchanged,
    /// Nothing.
    Nothing,
    /// A new request, and the items it holds.
    Changed(Vec<u8>, u64),
}

/// One processor of a pipeline.
pub enum Step {
    /// A `filter` (boxed: its scratch space is most of a step's size).
    Filter(Box<Filter>),
    /// A `resource`.
    Resource(ResourceEditor),
    /// An `attributes` (boxed, as a filter).
    Attributes(Box<AttributesEditor>),
}

impl Step {
    fn apply(&self, bytes: &[u8], items: u64, metadata: &Metadata) -> Outcome {
        match self {
            Step::Filter(filter) => filter.apply(bytes, items),
            Step::Resource(editor) => editor.apply(bytes, items, metadata),
            Step::Attributes(editor) => editor.apply(bytes, items, metadata),
        }
    }
}

/// The processors of one place in a pipeline, applied in the order listed.
#[derive(Default)]
pub struct Steps(Vec<Step>);

impl Steps {
    /// `steps`, applied in this order.
    pub fn new(steps: Vec<Step>) -> Steps {
        Steps(steps)
    }

    /// Applies every step in turn to `bytes`, a valid export request holding `items` items
    /// that came with client `metadata`, each to what the last one left.
    pub fn apply(&self, bytes: &[u8], items: u64, metadata: &Metadata) -> Outcome {
        let mut changed: Option<(Vec<u8>, u64)> = None;
        for step in &self.0 {
            let (current, count) = changed
                .as_ref()
                .map_or((bytes, items), |(b, n)| (&b[..], *n));
            match step.apply(current, count, metadata) {
                Outcome::Unchanged => {}
                Outcome::Nothing => return Outcome::Nothing,
                Outcome::Changed(b, n) => changed = Some((b, n)),
            }
        }
        changed.map_or(Outcome::Unchanged, |(b, n)| Outcome::Changed(b, n))
    }
}
