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
