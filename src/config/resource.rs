//! `processors.resource` (also `resource/NAME`): the Collector's resource processor (contrib
//! `processor/resourceprocessor`, v0.161.0), whose `attributes` actions ([`super::actions`])
//! insert, update, upsert, delete, hash, extract and convert resource attributes.

use serde::Deserialize;

use super::actions::{check_actions, context_keys, AttributeAction, RawAction};
use super::component::Ctx;
use super::error::ConfigError;
use super::values::KeyPath;

/// `resource`: what it does to each resource's attributes, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResourceProcessor {
    /// `attributes`: the actions, applied in the order written.
    pub actions: Vec<AttributeAction>,
}

impl ResourceProcessor {
    /// The client metadata keys its actions read (`from_context`).
    pub fn context_keys(&self) -> impl Iterator<Item = &str> {
        context_keys(&self.actions)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawResourceProcessor {
    attributes: Option<Vec<RawAction>>,
}

pub(crate) fn check_resource(
    raw: RawResourceProcessor,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<ResourceProcessor, ConfigError> {
    Ok(ResourceProcessor {
        actions: check_actions(raw.attributes, path, "attributes", ctx)?,
    })
}
