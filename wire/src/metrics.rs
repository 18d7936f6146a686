//! Metric views over a validated `ExportMetricsServiceRequest`.
//!
//! The gateway forwards metrics without sampling, at resource/scope granularity, so a metric is
//! read only for its name and for the number of data points it carries (what the Collector's
//! `*_metric_points` counters count).

use super::common::last_bytes;
use super::envelope::Item;
use super::fields::{Fields, Repeated};
use super::proto::Value;

/// The `Metric.data` oneof's field numbers: gauge, sum, histogram, exponential histogram,
/// summary. Each of those messages holds its data points in field 1.
const DATA_FIELDS: [u32; 5] = [5, 7, 9, 10, 11];

/// One `Metric`.
#[derive(Debug, Clone, Copy)]
pub struct MetricView<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> MetricView<'a> {
    /// A metric item of a validated metrics request.
    pub fn new(item: Item<'a>) -> Self {
        MetricView {
            bytes: item.bytes,
            offset: item.offset,
        }
    }

    /// The metric's `name`.
    pub fn name(&self) -> &'a [u8] {
        last_bytes(self.bytes, self.offset, 1)
    }

    /// The metric's `description`.
    pub fn description(&self) -> &'a [u8] {
        last_bytes(self.bytes, self.offset, 2)
    }

    /// The metric's `unit`.
    pub fn unit(&self) -> &'a [u8] {
        last_bytes(self.bytes, self.offset, 3)
    }

    /// The kind of data the metric carries, as pdata's `MetricType` numbers it: 0 none,
    /// 1 gauge, 2 sum, 3 histogram, 4 exponential histogram, 5 summary (the last data field
    /// wins, as the oneof reads).
    pub fn data_type(&self) -> u8 {
        match self.data_fields().0 {
            5 => 1,
            7 => 2,
            9 => 3,
            10 => 4,
            11 => 5,
            _ => 0,
        }
    }

    /// `aggregation_temporality` (0 unspecified, 1 delta, 2 cumulative) of a sum, histogram or
    /// exponential histogram; `None` for the other kinds, which have none.
    pub fn aggregation_temporality(&self) -> Option<i32> {
        let (kind, temporality, _) = self.data_fields();
        matches!(kind, 7 | 9 | 10).then_some(temporality as i32)
    }

    /// `is_monotonic` of a sum; `None` for the other kinds.
    pub fn is_monotonic(&self) -> Option<bool> {
        let (kind, _, monotonic) = self.data_fields();
        (kind == 7).then_some(monotonic)
    }

    /// The data oneof's kind (its field number, 0 for none), and its `aggregation_temporality`
    /// (field 2) and `is_monotonic` (field 3) as a decoder merges them: a later data field of
    /// another kind replaces what came before, repeated ones of the same kind merge, and within
    /// them the last value present wins.
    fn data_fields(&self) -> (u32, u64, bool) {
        let (mut kind, mut temporality, mut monotonic) = (0, 0, false);
        for field in Fields::new(self.bytes, self.offset) {
            let (n, Value::Len(b, at)) = (field.number, field.value) else {
                continue;
            };
            if !DATA_FIELDS.contains(&n) {
                continue;
            }
            if n != kind {
                (kind, temporality, monotonic) = (n, 0, false);
            }
            for inner in Fields::new(b, at) {
                match (inner.number, inner.value) {
                    (2, Value::Varint(v)) => temporality = v,
                    (3, Value::Varint(v)) => monotonic = v != 0,
                    _ => {}
                }
            }
        }
        (kind, temporality, monotonic)
    }

    /// Number of data points, whichever kind of data the metric carries.
    ///
    /// `data` is a oneof: a later data field of another kind replaces an earlier one, while
    /// repeated occurrences of the same kind merge (their data points add up).
    pub fn data_point_count(&self) -> u64 {
        let mut case = 0;
        let mut count = 0;
        for field in Fields::new(self.bytes, self.offset) {
            if let (n, Value::Len(b, at)) = (field.number, field.value) {
                if DATA_FIELDS.contains(&n) {
                    if n != case {
                        case = n;
                        count = 0;
                    }
                    count += Repeated::new(b, at, 1).count() as u64;
                }
            }
        }
        count
    }
}
