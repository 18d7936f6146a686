//! The `resource` processor on one shard: each resource group's attributes edited by the
//! processor's actions ([`super::actions`]), in order.
//!
//! Only the resource message is written again: a group whose attributes an action changed is
//! written with a new `Resource` (its untouched attributes copied as received, the changed ones
//! encoded) ahead of its scope groups' bytes as received; a group no action changed, and a
//! request none changed, go on as they came. Items are never read.

use std::cell::RefCell;

use tailgate_wire::{group_with_resource_attributes, Request, Signal};

use super::actions::{self, Actions, Attr};
use super::Outcome;
use crate::config::ResourceProcessor;
use crate::metadata::Metadata;

/// The most bytes of encoded attributes an editor keeps between requests.
const ENCODED_KEEP_MAX: usize = 1 << 20;

/// One `resource` processor, for one signal, on one shard.
pub struct ResourceEditor {
    signal: Signal,
    actions: Actions,
    /// Encoded `KeyValue`s of the group being written, reused.
    encoded: RefCell<Vec<u8>>,
}

impl ResourceEditor {
    /// The processor `config` for `signal`; its patterns compiled when the configuration was
    /// checked.
    pub fn new(signal: Signal, config: &ResourceProcessor) -> ResourceEditor {
        ResourceEditor {
            signal,
            actions: Actions::new(&config.actions),
            encoded: RefCell::new(Vec::new()),
        }
    }

    /// Edits the resources of `bytes`, a valid export request holding `items` items that came
    /// with client `metadata`.
    pub fn apply(&self, bytes: &[u8], items: u64, metadata: &Metadata) -> Outcome {
        let request = Request::trusted(self.signal, bytes);
        let mut out: Option<Vec<u8>> = None;
        let mut encoded = self.encoded.borrow_mut();
        let context = self.actions.context(metadata);
        // One list for every group of the request: its attributes borrow the request's bytes,
        // the actions' keys and values and `context`, so it lives as long as this call.
        let mut attrs: Vec<Attr<'_>> = Vec::new();
        for (i, group) in request.resource_groups().enumerate() {
            // Every `resource` field's attributes, as pdata merges them.
            attrs.clear();
            attrs.extend(group.resource_attributes().map(Attr::received));
            if !self.actions.apply(&context, &mut attrs) {
                if let Some(out) = &mut out {
                    group.write_to(out);
                }
                continue;
            }
            // The groups before this one went on as they came: copied now.
            let out = out.get_or_insert_with(|| {
                let mut out = Vec::with_capacity(bytes.len() + 64);
                for earlier in request.resource_groups().take(i) {
                    earlier.write_to(&mut out);
                }
                out
            });
            encoded.clear();
            actions::encode(&attrs, 1, &mut encoded);
            group_with_resource_attributes(&group, &encoded, out);
        }
        // A huge resource's scratch is not kept.
        if encoded.capacity() > ENCODED_KEEP_MAX {
            *encoded = Vec::new();
        }
        match out {
            Some(out) => Outcome::Changed(out, items),
            None => Outcome::Unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;

    use super::*;
    use crate::config::{ActionKind, AttributeAction, ConfigValue, ValueSource};

    fn group(service: &str) -> ResourceLogs {
        ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                dropped_attributes_count: 4,
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 7,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn editor(key: &str, kind: ActionKind) -> ResourceEditor {
        ResourceEditor::new(
            Signal::Logs,
            &ResourceProcessor {
                actions: vec![AttributeAction {
                    key: key.into(),
                    kind,
                    default: None,
                }],
            },
        )
    }

    /// A request no action changes goes on as it came; one that changes a group rewrites that
    /// group's resource alone, its other fields and its records kept.
    #[test]
    fn only_the_groups_an_action_changes_are_written_again() {
        let bytes = ExportLogsServiceRequest {
            resource_logs: vec![group("checkout"), group("billing")],
        }
        .encode_to_vec();
        let update = editor(
            "missing",
            ActionKind::Update(ValueSource::Value(ConfigValue::Int(1))),
        );
        assert_eq!(
            update.apply(&bytes, 2, &Metadata::none()),
            Outcome::Unchanged
        );
        let rename = editor(
            "service.name",
            ActionKind::Update(ValueSource::Value(ConfigValue::Str("renamed".into()))),
        );
        let Outcome::Changed(out, 2) = rename.apply(&bytes, 2, &Metadata::none()) else {
            panic!("a changed request");
        };
        let out = ExportLogsServiceRequest::decode(&out[..]).unwrap();
        let mut expected = ExportLogsServiceRequest {
            resource_logs: vec![group("renamed"), group("renamed")],
        };
        assert_eq!(out, expected);
        // A pattern that deletes from every group.
        let delete = ResourceEditor::new(
            Signal::Logs,
            &ResourceProcessor {
                actions: vec![AttributeAction {
                    key: String::new(),
                    kind: ActionKind::Delete {
                        pattern: Some(r"^service\.name$".into()),
                    },
                    default: None,
                }],
            },
        );
        let Outcome::Changed(out, 2) = delete.apply(&bytes, 2, &Metadata::none()) else {
            panic!("a changed request");
        };
        let out = ExportLogsServiceRequest::decode(&out[..]).unwrap();
        for g in &mut expected.resource_logs {
            g.resource.as_mut().unwrap().attributes.clear();
        }
        assert_eq!(out, expected);
        // Only the group whose resource has `team` changes; the other is copied byte for byte.
        let mut teams = group("checkout");
        teams.resource.as_mut().unwrap().attributes.push(KeyValue {
            key: "team".into(),
            ..Default::default()
        });
        let billing = group("billing");
        let bytes = ExportLogsServiceRequest {
            resource_logs: vec![teams, billing.clone()],
        }
        .encode_to_vec();
        let hash = editor("team", ActionKind::Hash { pattern: None });
        let Outcome::Changed(out, 2) = hash.apply(&bytes, 2, &Metadata::none()) else {
            panic!("a changed request");
        };
        let billing = billing.encode_to_vec();
        assert!(out.windows(billing.len()).any(|w| w == billing));
        let out = ExportLogsServiceRequest::decode(&out[..]).unwrap();
        // A value of no type hashes to the empty string, as the Collector's does.
        assert_eq!(
            out.resource_logs[0].resource.as_ref().unwrap().attributes[1].value,
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(String::new()))
            })
        );
    }
}
