//! Log-record views over a validated `ExportLogsServiceRequest`.
//!
//! Logs pass through the gateway without sampling; a record is read only for the fields a
//! summary or a trace correlation needs.

use super::common::{last_bytes, last_varint, AnyValueView, KeyValues};
use super::envelope::{last_message, Item};
use super::fields::Fields;
use super::proto::Value;

/// One `LogRecord`.
#[derive(Debug, Clone, Copy)]
pub struct LogRecordView<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> LogRecordView<'a> {
    /// A log item of a validated logs request.
    pub fn new(item: Item<'a>) -> Self {
        LogRecordView {
            bytes: item.bytes,
            offset: item.offset,
        }
    }

    /// The record's `time_unix_nano` (0 when unset).
    pub fn time_unix_nano(&self) -> u64 {
        self.last_fixed64(1)
    }

    /// The record's `observed_time_unix_nano` (0 when unset).
    pub fn observed_time_unix_nano(&self) -> u64 {
        self.last_fixed64(11)
    }

    /// The record's `flags` (W3C trace flags in the low byte).
    pub fn flags(&self) -> u32 {
        Fields::new(self.bytes, self.offset).fold(0, |acc, f| match (f.number, f.value) {
            (8, Value::I32(v)) => v,
            _ => acc,
        })
    }

    /// How many attributes the sender dropped from the record.
    pub fn dropped_attributes_count(&self) -> u32 {
        last_varint(self.bytes, self.offset, 7) as u32
    }

    /// The record's `event_name`.
    pub fn event_name(&self) -> &'a [u8] {
        last_bytes(self.bytes, self.offset, 12)
    }

    /// The last fixed64 field `number`, 0 when absent.
    fn last_fixed64(&self, number: u32) -> u64 {
        Fields::new(self.bytes, self.offset).fold(0, |acc, f| match (f.number, f.value) {
            (n, Value::I64(v)) if n == number => v,
            _ => acc,
        })
    }

    /// `SeverityNumber` as its integer value.
    pub fn severity_number(&self) -> i32 {
        last_varint(self.bytes, self.offset, 2) as i32
    }

    /// The record's `severity_text`.
    pub fn severity_text(&self) -> &'a [u8] {
        last_bytes(self.bytes, self.offset, 3)
    }

    /// The record's `body`, [`AnyValueView::Empty`] when it has none.
    pub fn body(&self) -> AnyValueView<'a> {
        last_message(self.bytes, self.offset, 5)
            .map_or(AnyValueView::Empty, |(b, at)| AnyValueView::decode(b, at))
    }

    /// The record's attributes, decoded lazily.
    pub fn attributes(&self) -> KeyValues<'a> {
        KeyValues::new(self.bytes, self.offset, 6)
    }

    /// The record's `trace_id`: 16 bytes, or empty when the record is not in a trace.
    pub fn trace_id(&self) -> &'a [u8] {
        last_bytes(self.bytes, self.offset, 9)
    }

    /// The record's `span_id`: 8 bytes, or empty when the record is not in a span.
    pub fn span_id(&self) -> &'a [u8] {
        last_bytes(self.bytes, self.offset, 10)
    }
}
