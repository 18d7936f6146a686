//! The set of metric families, built once at start-up and read-only afterwards.
//!
//! [`RegistryBuilder`] runs on the main thread: it hands out cell handles for the shards and
//! records, per family, the name, help, type and the series (label sets) with their cells.
//! [`RegistryBuilder::build`] freezes it into a [`Registry`] behind an `Arc`, which the admin
//! thread renders on each scrape. Nothing is registered into a built registry, so rendering it
//! takes no lock and its set of series, and with it the size of a scrape, is fixed.
//!
//! A configuration reload builds a whole new registry on the main thread
//! ([`RegistryBuilder::reusing`]): a series it registers again under the same name and labels
//! gets the previous registry's cell, so its count goes on; [`PublishedRegistry`] is where the
//! admin thread picks up the current one, once per scrape.
//!
//! A few series are known only while running — a load balancer's backends, which DNS answers
//! name — and are registered then, each once, in a [`LateFamily`]: the one lock in the registry,
//! taken when a series is first asked for (a backend joining) and by each scrape, never on the
//! data path; a shard keeps the cell it got and writes it as any other. A late family holds at
//! most [`LATE_SERIES_MAX`] series, and keeps them (and their counts) across reloads.
//!
//! Registration mistakes (an invalid name, one name with two types or two help texts, the same
//! label set twice, more than [`SERIES_MAX`] series) are programming errors in the code that
//! builds the registry; they panic at start-up, before any traffic is accepted.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::sync::Arc;

use super::cell::{Counter, Gauge, Histogram};
use super::exposition;

/// The most series one registry may hold. A series costs a few hundred bytes per scrape, so this
/// bounds a scrape at a few tens of MiB; the gateway's own families need a few hundred per
/// shard.
pub const SERIES_MAX: usize = 65_536;

/// The most labels one series may carry.
pub const LABELS_PER_SERIES_MAX: usize = 16;

/// The most series one [`LateFamily`] may hold: a few thousand backends' series on a node
/// of many shards, and a bound on what a DNS name that keeps changing can add.
pub const LATE_SERIES_MAX: usize = 8192;

/// The kind of a metric family, as the `# TYPE` line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`: only ever grows.
    Counter,
    /// `gauge`: goes up and down.
    Gauge,
    /// `histogram`: buckets, a sum and a count.
    Histogram,
}

impl MetricType {
    /// The type's name in the text format.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// Whether counter samples carry Prometheus' `_total` suffix. See the module documentation of
/// [`crate::telemetry`] for why [`CounterSuffix::None`] is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CounterSuffix {
    /// `otelcol_receiver_accepted_spans`: what the Collector serves by default (its
    /// `without_type_suffix: true`).
    #[default]
    None,
    /// `otelcol_receiver_accepted_spans_total`: the Collector with `without_type_suffix: false`.
    Total,
}

#[derive(Debug, Clone)]
enum Cell {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
    /// A counter series that serves a histogram's count or sum.
    HistogramPart(Histogram, HistogramPart),
}

/// What of a histogram a counter series serves (see [`RegistryBuilder::counter_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramPart {
    /// How many observations it recorded.
    Count,
    /// The sum of the observations.
    Sum,
}

#[derive(Debug)]
struct Series {
    /// Pre-rendered and escaped `k="v",k2="v2"`, in registration order; empty without labels.
    labels: String,
    cell: Cell,
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: MetricType,
    series: Vec<Series>,
    /// Series registered while running, for a family made by `late_counter` or
    /// `late_histogram`.
    late: Option<Arc<LateSeries>>,
}

impl Family {
    /// Runs `each` over the family's series: those registered at start-up, then the late ones,
    /// under their lock for the while.
    fn each_series(&self, mut each: impl FnMut(&Series)) {
        let late = self
            .late
            .as_ref()
            .map(|late| late.series.lock().expect("late series lock"));
        for series in self
            .series
            .iter()
            .chain(late.iter().flat_map(|late| late.iter()))
        {
            each(series);
        }
    }
}

/// The series of a late family; see the module documentation.
#[derive(Debug)]
struct LateSeries {
    name: String,
    kind: MetricType,
    /// A histogram's bucket bounds.
    bounds: &'static [u64],
    series: std::sync::Mutex<Vec<Series>>,
}

/// A family whose series are registered while running (see the module documentation).
#[derive(Debug, Clone)]
pub struct LateFamily {
    series: Arc<LateSeries>,
}

impl LateFamily {
    /// The counter `name{labels}`, registered now if it is new; `None` when it is new and the
    /// family already holds [`LATE_SERIES_MAX`] series. The family must be a counter family.
    pub fn counter(&self, labels: &[(&str, &str)]) -> Option<Counter> {
        match self.cell(labels, || Cell::Counter(Counter::new()))? {
            Cell::Counter(counter) => Some(counter),
            _ => panic!("{}: not a counter family", self.series.name),
        }
    }

    /// The histogram `name{labels}`, as [`LateFamily::counter`].
    pub fn histogram(&self, labels: &[(&str, &str)]) -> Option<Histogram> {
        let bounds = self.series.bounds;
        match self.cell(labels, || Cell::Histogram(Histogram::new(bounds)))? {
            Cell::Histogram(histogram) => Some(histogram),
            _ => panic!("{}: not a histogram family", self.series.name),
        }
    }

    fn cell(&self, labels: &[(&str, &str)], new: impl FnOnce() -> Cell) -> Option<Cell> {
        let name = &self.series.name;
        assert!(
            labels.len() <= LABELS_PER_SERIES_MAX,
            "{name}: too many labels"
        );
        for (label, _) in labels {
            assert!(
                valid_label_name(label) && *label != "le",
                "{name}: invalid label name {label:?}"
            );
        }
        let rendered = render_labels(labels);
        let mut series = self.series.series.lock().expect("late series lock");
        if let Some(found) = series.iter().find(|s| s.labels == rendered) {
            return Some(found.cell.clone());
        }
        if series.len() >= LATE_SERIES_MAX {
            return None;
        }
        let cell = new();
        debug_assert!(
            matches!(
                (&cell, self.series.kind),
                (Cell::Counter(_), MetricType::Counter)
                    | (Cell::Histogram(_), MetricType::Histogram)
            ),
            "{name}: a cell of the family's type"
        );
        series.push(Series {
            labels: rendered,
            cell: cell.clone(),
        });
        Some(cell)
    }
}

/// Collects metric families at start-up; see the module documentation.
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    families: Vec<Family>,
    by_name: HashMap<String, usize>,
    /// Label sets already registered, per family index, sorted by label name.
    seen: HashSet<(usize, Vec<(String, String)>)>,
    series_total: usize,
    counter_suffix: CounterSuffix,
    /// The cells of the registry this one replaces, by name and rendered labels.
    previous: HashMap<(String, String), Cell>,
    /// The late families of the registry this one replaces, by name.
    previous_late: HashMap<String, Arc<LateSeries>>,
}

impl RegistryBuilder {
    /// A builder whose series take `previous`'s cells where name and labels match, so that a
    /// reload keeps every count that stays.
    pub fn reusing(previous: &Registry) -> Self {
        let mut builder = RegistryBuilder::new().counter_suffix(previous.counter_suffix);
        for family in &previous.families {
            if let Some(late) = &family.late {
                builder
                    .previous_late
                    .insert(family.name.clone(), late.clone());
            }
            for series in &family.series {
                builder.previous.insert(
                    (family.name.clone(), series.labels.clone()),
                    series.cell.clone(),
                );
            }
        }
        builder
    }

    /// The previous registry's cell of `name{labels}`, if it had that series.
    fn previous_cell(&self, name: &str, labels: &[(&str, &str)]) -> Option<Cell> {
        if self.previous.is_empty() {
            return None;
        }
        self.previous
            .get(&(name.to_owned(), render_labels(labels)))
            .cloned()
    }

    /// An empty builder with [`CounterSuffix::None`].
    pub fn new() -> Self {
        RegistryBuilder::default()
    }

    /// Chooses whether counter samples get the `_total` suffix.
    pub fn counter_suffix(mut self, suffix: CounterSuffix) -> Self {
        self.counter_suffix = suffix;
        self
    }

    /// Registers a counter series and returns its cell.
    ///
    /// `name` must not end in `_total`: the suffix is the exposition's business
    /// ([`CounterSuffix`]).
    ///
    /// # Panics
    ///
    /// On the registration mistakes listed in the module documentation.
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        let counter = match self.previous_cell(name, labels) {
            Some(Cell::Counter(counter)) => counter,
            _ => Counter::new(),
        };
        self.register_counter(name, help, labels, Cell::Counter(counter.clone()));
        counter
    }

    /// Registers `cell` as the counter series `name{labels}`, refusing a `_total` name.
    fn register_counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], cell: Cell) {
        assert!(
            !name.ends_with("_total"),
            "counter {name:?}: register the name without `_total`; CounterSuffix adds it"
        );
        self.register(name, help, MetricType::Counter, labels, cell);
    }

    /// Registers `counter`'s cell again, as the series `name{labels}`: one count served under
    /// two names (the Collector's and ours) is kept once.
    ///
    /// # Panics
    ///
    /// As [`RegistryBuilder::counter`].
    pub fn counter_alias(
        &mut self,
        counter: &Counter,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) {
        self.register_counter(name, help, labels, Cell::Counter(counter.clone()));
    }

    /// Registers a counter series that serves `part` of `histogram`: a count the histogram
    /// keeps already (the Collector's counters of executions and their total time beside its
    /// latency histogram) is not counted twice.
    ///
    /// # Panics
    ///
    /// As [`RegistryBuilder::counter`].
    pub fn counter_of(
        &mut self,
        histogram: &Histogram,
        part: HistogramPart,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) {
        self.register_counter(
            name,
            help,
            labels,
            Cell::HistogramPart(histogram.clone(), part),
        );
    }

    /// Registers a gauge series and returns its cell.
    ///
    /// # Panics
    ///
    /// On the registration mistakes listed in the module documentation.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        let gauge = match self.previous_cell(name, labels) {
            Some(Cell::Gauge(gauge)) => gauge,
            _ => Gauge::new(),
        };
        self.register(
            name,
            help,
            MetricType::Gauge,
            labels,
            Cell::Gauge(gauge.clone()),
        );
        gauge
    }

    /// Registers a histogram series with inclusive upper bucket bounds `bounds` (an implicit
    /// `+Inf` bucket follows) and returns its cell.
    ///
    /// # Panics
    ///
    /// On the registration mistakes listed in the module documentation, if a label is named `le`,
    /// and if `bounds` is empty, too long or not strictly increasing.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        bounds: &'static [u64],
        labels: &[(&str, &str)],
    ) -> Histogram {
        let histogram = match self.previous_cell(name, labels) {
            Some(Cell::Histogram(histogram)) if histogram.bounds() == bounds => histogram,
            _ => Histogram::new(bounds),
        };
        self.register(
            name,
            help,
            MetricType::Histogram,
            labels,
            Cell::Histogram(histogram.clone()),
        );
        histogram
    }

    /// A counter family whose series are registered while running ([`LateFamily::counter`]);
    /// asking twice for one name gives the same family.
    ///
    /// # Panics
    ///
    /// On an invalid name, or one registered already as another kind of family.
    pub fn late_counter(&mut self, name: &str, help: &str) -> LateFamily {
        assert!(
            !name.ends_with("_total"),
            "counter {name:?}: register the name without `_total`; CounterSuffix adds it"
        );
        self.late(name, help, MetricType::Counter, &[])
    }

    /// A histogram family whose series are registered while running, as
    /// [`RegistryBuilder::late_counter`].
    pub fn late_histogram(&mut self, name: &str, help: &str, bounds: &'static [u64]) -> LateFamily {
        assert!(
            !bounds.is_empty() && bounds.windows(2).all(|w| w[0] < w[1]),
            "{name}: bounds must be non-empty and strictly increasing"
        );
        self.late(name, help, MetricType::Histogram, bounds)
    }

    fn late(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        bounds: &'static [u64],
    ) -> LateFamily {
        assert!(valid_metric_name(name), "invalid metric name {name:?}");
        if let Some(&i) = self.by_name.get(name) {
            let family = &self.families[i];
            let late = family.late.as_ref().unwrap_or_else(|| {
                panic!("metric {name:?} registered both at start-up and as a late family")
            });
            assert!(
                family.kind == kind,
                "metric {name:?} registered as two types"
            );
            return LateFamily {
                series: late.clone(),
            };
        }
        let late = match self.previous_late.get(name) {
            Some(previous) if previous.kind == kind && previous.bounds == bounds => {
                previous.clone()
            }
            _ => Arc::new(LateSeries {
                name: name.to_owned(),
                kind,
                bounds,
                series: std::sync::Mutex::new(Vec::new()),
            }),
        };
        self.families.push(Family {
            name: name.to_owned(),
            help: help.to_owned(),
            kind,
            series: Vec::new(),
            late: Some(late.clone()),
        });
        self.by_name
            .insert(name.to_owned(), self.families.len() - 1);
        LateFamily { series: late }
    }

    /// Freezes the registry for the admin thread.
    pub fn build(self) -> Arc<Registry> {
        Arc::new(Registry {
            families: self.families,
            counter_suffix: self.counter_suffix,
        })
    }

    fn register(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        labels: &[(&str, &str)],
        cell: Cell,
    ) {
        assert!(valid_metric_name(name), "invalid metric name {name:?}");
        assert!(
            labels.len() <= LABELS_PER_SERIES_MAX,
            "{name}: {} labels, at most {LABELS_PER_SERIES_MAX}",
            labels.len()
        );
        for (i, (label, _)) in labels.iter().enumerate() {
            assert!(
                valid_label_name(label),
                "{name}: invalid label name {label:?}"
            );
            // `le` is the bucket label of histograms; keeping it out everywhere keeps one rule.
            assert!(*label != "le", "{name}: the label name `le` is reserved");
            assert!(
                labels[..i].iter().all(|(l, _)| l != label),
                "{name}: label {label:?} given twice"
            );
        }
        assert!(
            self.series_total < SERIES_MAX,
            "{name}: more than {SERIES_MAX} series registered"
        );

        let index = match self.by_name.get(name) {
            Some(&i) => {
                let family = &self.families[i];
                assert!(
                    family.late.is_none(),
                    "metric {name:?} registered both at start-up and as a late family"
                );
                assert!(
                    family.kind == kind,
                    "metric {name:?} registered as {} and as {}",
                    family.kind.as_str(),
                    kind.as_str()
                );
                assert!(
                    family.help == help,
                    "metric {name:?} registered with two help texts: {:?} and {help:?}",
                    family.help
                );
                i
            }
            None => {
                self.families.push(Family {
                    name: name.to_owned(),
                    help: help.to_owned(),
                    kind,
                    series: Vec::new(),
                    late: None,
                });
                let i = self.families.len() - 1;
                self.by_name.insert(name.to_owned(), i);
                i
            }
        };

        let mut key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        key.sort();
        assert!(
            self.seen.insert((index, key)),
            "metric {name:?} registered twice with labels {labels:?}: a series has one writer"
        );

        self.families[index].series.push(Series {
            labels: render_labels(labels),
            cell,
        });
        self.series_total += 1;
    }
}

/// `k="v",k2="v2"`, escaped, in the order given; empty without labels.
fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut rendered = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            rendered.push(',');
        }
        rendered.push_str(k);
        rendered.push_str("=\"");
        exposition::escape_label_value(&mut rendered, v);
        rendered.push('"');
    }
    rendered
}

/// A series' value, as [`Registry::visit`] reads it.
pub(crate) enum Value<'a> {
    /// A counter (or a histogram's count or sum kept as counters).
    Number(u64),
    /// A gauge.
    Signed(i64),
    /// A histogram.
    Histogram(super::cell::HistogramSnapshot<'a>),
}

/// The registry the admin thread serves: the one built at start-up, then each reload's.
#[derive(Debug)]
pub struct PublishedRegistry {
    current: std::sync::RwLock<Arc<Registry>>,
}

impl PublishedRegistry {
    /// Serves `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        PublishedRegistry {
            current: std::sync::RwLock::new(registry),
        }
    }

    /// The registry to render now.
    pub fn current(&self) -> Arc<Registry> {
        self.current.read().expect("registry lock").clone()
    }

    /// Serves `registry` from the next scrape on.
    pub fn replace(&self, registry: Arc<Registry>) {
        *self.current.write().expect("registry lock") = registry;
    }
}

/// The frozen set of metric families; rendered by the admin thread. See the module documentation.
#[derive(Debug)]
pub struct Registry {
    families: Vec<Family>,
    counter_suffix: CounterSuffix,
}

impl Registry {
    /// Appends every family in the Prometheus text format 0.0.4 to `out`, families in
    /// registration order and each family's series in registration order. `out` is appended to,
    /// not cleared, so a caller can reuse one buffer across scrapes.
    pub fn render_prometheus(&self, out: &mut String) {
        for family in &self.families {
            let name = family.name.as_str();
            match family.kind {
                MetricType::Counter => {
                    let suffix = match self.counter_suffix {
                        CounterSuffix::None => "",
                        CounterSuffix::Total => "_total",
                    };
                    let full = format!("{name}{suffix}");
                    exposition::write_header(out, &full, &family.help, "counter");
                    family.each_series(|s| {
                        let value = match &s.cell {
                            Cell::Counter(c) => c.get(),
                            Cell::HistogramPart(h, HistogramPart::Count) => h.count(),
                            Cell::HistogramPart(h, HistogramPart::Sum) => h.sum(),
                            Cell::Gauge(_) | Cell::Histogram(_) => return,
                        };
                        exposition::write_sample(out, &full, "", &s.labels, "", value);
                    });
                }
                MetricType::Gauge => {
                    exposition::write_header(out, name, &family.help, "gauge");
                    family.each_series(|s| {
                        if let Cell::Gauge(g) = &s.cell {
                            exposition::write_sample(out, name, "", &s.labels, "", g.get());
                        }
                    });
                }
                MetricType::Histogram => {
                    exposition::write_header(out, name, &family.help, "histogram");
                    let mut le = String::new();
                    family.each_series(|s| {
                        if let Cell::Histogram(h) = &s.cell {
                            let snap = h.snapshot();
                            for (i, count) in snap.cumulative.iter().enumerate() {
                                le.clear();
                                match snap.bounds.get(i) {
                                    Some(bound) => {
                                        let _ = write!(le, "le=\"{bound}\"");
                                    }
                                    None => le.push_str("le=\"+Inf\""),
                                }
                                exposition::write_sample(
                                    out, name, "_bucket", &s.labels, &le, count,
                                );
                            }
                            let total = snap.cumulative.last().copied().unwrap_or(0);
                            exposition::write_sample(out, name, "_sum", &s.labels, "", snap.sum);
                            exposition::write_sample(out, name, "_count", &s.labels, "", total);
                        }
                    });
                }
            }
        }
    }

    /// Visits every series with its family's name, help and type, its labels as written, and
    /// its value now, in the order [`Registry::render_prometheus`] writes them.
    pub(crate) fn visit(&self, mut each: impl FnMut(&str, &str, MetricType, &str, Value<'_>)) {
        for family in &self.families {
            family.each_series(|s| {
                let value = match (&s.cell, family.kind) {
                    (Cell::Counter(c), _) => Value::Number(c.get()),
                    (Cell::HistogramPart(h, HistogramPart::Count), _) => Value::Number(h.count()),
                    (Cell::HistogramPart(h, HistogramPart::Sum), _) => Value::Number(h.sum()),
                    (Cell::Gauge(g), _) => Value::Signed(g.get()),
                    (Cell::Histogram(h), _) => Value::Histogram(h.snapshot()),
                };
                each(&family.name, &family.help, family.kind, &s.labels, value);
            });
        }
    }

    /// How counters are named on the wire.
    pub fn counter_suffix(&self) -> CounterSuffix {
        self.counter_suffix
    }

    /// How many series the registry holds, late ones included.
    pub fn series_count(&self) -> usize {
        self.families
            .iter()
            .map(|f| {
                f.series.len()
                    + f.late.as_ref().map_or(0, |late| {
                        late.series.lock().expect("late series lock").len()
                    })
            })
            .sum()
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, the Prometheus metric name syntax.
fn valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with the reserved `__`.
fn valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    static BOUNDS: [u64; 3] = [1, 10, 100];

    #[test]
    fn late_series_appear_once_each_and_outlive_a_reload() {
        let mut first = RegistryBuilder::new();
        let outcomes = first.late_counter("tailgate_late", "Late.");
        let latency = first.late_histogram("tailgate_late_ms", "Late ms.", &BOUNDS);
        let first = first.build();
        let mut out = String::new();
        first.render_prometheus(&mut out);
        assert!(out.contains("# TYPE tailgate_late counter"), "{out}");
        assert!(!out.contains("tailgate_late{"), "no series yet: {out}");

        let a = outcomes.counter(&[("endpoint", "10.0.0.1:4317")]).unwrap();
        a.add(2);
        let again = outcomes.counter(&[("endpoint", "10.0.0.1:4317")]).unwrap();
        again.add(1);
        latency
            .histogram(&[("endpoint", "10.0.0.1:4317")])
            .unwrap()
            .record(7);
        out.clear();
        first.render_prometheus(&mut out);
        assert!(
            out.contains("tailgate_late{endpoint=\"10.0.0.1:4317\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("tailgate_late_ms_bucket{endpoint=\"10.0.0.1:4317\",le=\"10\"} 1"),
            "{out}"
        );
        assert_eq!(first.series_count(), 2);

        let mut second = RegistryBuilder::reusing(&first);
        let reloaded = second.late_counter("tailgate_late", "Late.");
        let second = second.build();
        reloaded
            .counter(&[("endpoint", "10.0.0.1:4317")])
            .unwrap()
            .add(1);
        assert_eq!(a.get(), 4, "one cell across the reload");
        out.clear();
        second.render_prometheus(&mut out);
        assert!(
            out.contains("tailgate_late{endpoint=\"10.0.0.1:4317\"} 4"),
            "{out}"
        );

        for i in 0..LATE_SERIES_MAX {
            let endpoint = format!("e{i}");
            let _ = reloaded.counter(&[("endpoint", endpoint.as_str())]);
        }
        assert!(
            reloaded.counter(&[("endpoint", "one-too-many")]).is_none(),
            "bounded"
        );
    }

    #[test]
    fn a_reload_keeps_the_cells_of_the_series_it_registers_again() {
        let mut first = RegistryBuilder::new().counter_suffix(CounterSuffix::Total);
        let kept = first.counter("tailgate_kept", "Kept.", &[("shard", "0")]);
        let gone = first.counter("tailgate_gone", "Gone.", &[]);
        let gauge = first.gauge("tailgate_level", "Level.", &[]);
        let histogram = first.histogram("tailgate_wait", "Wait.", &BOUNDS, &[]);
        let first = first.build();
        kept.add(5);
        gone.add(3);
        gauge.set(-2);
        histogram.record(7);

        let mut second = RegistryBuilder::reusing(&first);
        let again = second.counter("tailgate_kept", "Kept.", &[("shard", "0")]);
        let other_labels = second.counter("tailgate_kept", "Kept.", &[("shard", "1")]);
        let gauge_again = second.gauge("tailgate_level", "Level.", &[]);
        let histogram_again = second.histogram("tailgate_wait", "Wait.", &BOUNDS, &[]);
        let second = second.build();
        again.add(1);
        assert_eq!(kept.get(), 6, "one cell: the count goes on");
        assert_eq!(other_labels.get(), 0);
        assert_eq!(gauge_again.get(), -2);
        assert_eq!(histogram_again.count(), 1);
        assert_eq!(second.counter_suffix(), CounterSuffix::Total);
        let mut out = String::new();
        second.render_prometheus(&mut out);
        assert!(out.contains("tailgate_kept_total{shard=\"0\"} 6"), "{out}");
        assert!(!out.contains("tailgate_gone"), "{out}");

        let published = PublishedRegistry::new(first);
        published.replace(second.clone());
        assert!(Arc::ptr_eq(&published.current(), &second));
    }

    fn small() -> (Arc<Registry>, Counter, Counter, Gauge, Histogram) {
        let mut b = RegistryBuilder::new();
        let a0 = b.counter(
            "otelcol_receiver_accepted_spans",
            "Number of spans successfully pushed into the pipeline.",
            &[("receiver", "otlp"), ("transport", "grpc"), ("shard", "0")],
        );
        let q = b.gauge(
            "otelcol_exporter_queue_size",
            "Current size of the retry queue (in batches).",
            &[
                ("exporter", "otlp"),
                ("data_type", "traces"),
                ("shard", "0"),
            ],
        );
        let a1 = b.counter(
            "otelcol_receiver_accepted_spans",
            "Number of spans successfully pushed into the pipeline.",
            &[("receiver", "otlp"), ("transport", "grpc"), ("shard", "1")],
        );
        let h = b.histogram("latency_us", "Latency.", &BOUNDS, &[("policy", "p")]);
        (b.build(), a0, a1, q, h)
    }

    #[test]
    fn renders_a_small_registry_exactly() {
        let (registry, a0, a1, q, h) = small();
        a0.add(10);
        a1.add(3);
        q.set(7);
        for v in [1, 5, 50, 500] {
            h.record(v);
        }
        let mut out = String::new();
        registry.render_prometheus(&mut out);
        assert_eq!(
            out,
            "# HELP otelcol_receiver_accepted_spans Number of spans successfully pushed into the pipeline.\n\
             # TYPE otelcol_receiver_accepted_spans counter\n\
             otelcol_receiver_accepted_spans{receiver=\"otlp\",transport=\"grpc\",shard=\"0\"} 10\n\
             otelcol_receiver_accepted_spans{receiver=\"otlp\",transport=\"grpc\",shard=\"1\"} 3\n\
             # HELP otelcol_exporter_queue_size Current size of the retry queue (in batches).\n\
             # TYPE otelcol_exporter_queue_size gauge\n\
             otelcol_exporter_queue_size{exporter=\"otlp\",data_type=\"traces\",shard=\"0\"} 7\n\
             # HELP latency_us Latency.\n\
             # TYPE latency_us histogram\n\
             latency_us_bucket{policy=\"p\",le=\"1\"} 1\n\
             latency_us_bucket{policy=\"p\",le=\"10\"} 2\n\
             latency_us_bucket{policy=\"p\",le=\"100\"} 3\n\
             latency_us_bucket{policy=\"p\",le=\"+Inf\"} 4\n\
             latency_us_sum{policy=\"p\"} 556\n\
             latency_us_count{policy=\"p\"} 4\n"
        );
        assert_eq!(registry.series_count(), 4);
    }

    #[test]
    fn total_suffix_renames_counters_only() {
        let mut b = RegistryBuilder::new().counter_suffix(CounterSuffix::Total);
        let c = b.counter("otelcol_exporter_sent_spans", "Sent.", &[]);
        let g = b.gauge("otelcol_exporter_queue_capacity", "Capacity.", &[]);
        c.add(2);
        g.set(1000);
        let mut out = String::new();
        b.build().render_prometheus(&mut out);
        assert_eq!(
            out,
            "# HELP otelcol_exporter_sent_spans_total Sent.\n\
             # TYPE otelcol_exporter_sent_spans_total counter\n\
             otelcol_exporter_sent_spans_total 2\n\
             # HELP otelcol_exporter_queue_capacity Capacity.\n\
             # TYPE otelcol_exporter_queue_capacity gauge\n\
             otelcol_exporter_queue_capacity 1000\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut b = RegistryBuilder::new();
        b.counter("m", "h", &[("exporter", "otlp/\"a\\b\"\nc")]);
        let mut out = String::new();
        b.build().render_prometheus(&mut out);
        assert!(
            out.contains("m{exporter=\"otlp/\\\"a\\\\b\\\"\\nc\"} 0\n"),
            "{out}"
        );
    }

    #[test]
    fn histogram_without_labels() {
        let mut b = RegistryBuilder::new();
        b.histogram("h", "h", &BOUNDS, &[]).record(1000);
        let mut out = String::new();
        b.build().render_prometheus(&mut out);
        assert!(out
            .contains("h_bucket{le=\"100\"} 0\nh_bucket{le=\"+Inf\"} 1\nh_sum 1000\nh_count 1\n"));
    }

    #[test]
    #[should_panic(expected = "registered as counter and as gauge")]
    fn one_name_two_types_panics() {
        let mut b = RegistryBuilder::new();
        b.counter("m", "h", &[("shard", "0")]);
        b.gauge("m", "h", &[("shard", "1")]);
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn the_same_series_twice_panics() {
        let mut b = RegistryBuilder::new();
        b.counter("m", "h", &[("a", "1"), ("b", "2")]);
        b.counter("m", "h", &[("b", "2"), ("a", "1")]);
    }

    #[test]
    #[should_panic(expected = "without `_total`")]
    fn counter_names_come_without_total() {
        RegistryBuilder::new().counter("m_total", "h", &[]);
    }

    #[test]
    fn names_follow_the_prometheus_syntax() {
        assert!(valid_metric_name("otelcol_receiver_accepted_spans"));
        assert!(valid_metric_name("a:b_1"));
        assert!(!valid_metric_name("1a"));
        assert!(!valid_metric_name("a-b"));
        assert!(!valid_metric_name(""));
        assert!(valid_label_name("shard"));
        assert!(!valid_label_name("__name__"));
        assert!(!valid_label_name("a:b"));
        assert!(!valid_label_name(""));
    }
}
