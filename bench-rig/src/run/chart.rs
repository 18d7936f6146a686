//! A run's chart, as SVG: the first thing a person looks at, so every figure on it must be
//! readable without the table beside it.
//!
//! A series is one system on one set of CPUs. It keeps one colour and one marker shape wherever
//! it appears: colours a reader with a common colour-vision deficiency can tell apart, and shapes
//! that still tell series apart in greyscale.
//!
//! When some series has several points (a sweep of offered rates), the chart has two panels over
//! the same offered-load axis — end-to-end throughput above, with the line where delivered equals
//! offered, and p99 request latency below — and a framed legend in a column of its own, so that it
//! never covers a point. When every series has a single point (`rates: [max]`, the common case),
//! a line would be a lone dot on an axis; instead each series gets a labelled row with a bar of its
//! throughput and a bar of its p99, the value written at the end of each bar.
//!
//! Axes start at zero and end at a round number some way past the largest value. A value that is
//! not finite (a point that measured nothing) is left out of lines and written `n/a` beside its
//! bar, so that no `NaN` reaches the SVG.

use std::error::Error;
use std::io;
use std::iter;
use std::path::Path;

use plotters::coord::Shift;
use plotters::element::{DashedPathElement, Drawable, PointCollection};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_backend::{BackendCoord, DrawingErrorKind};

use super::report::{cpus_text, Point};

/// Okabe and Ito's colours, less the yellow that vanishes on white: they stay apart for readers
/// with the common colour-vision deficiencies.
const COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// The shape a series' points are drawn with, so that series stay apart in greyscale too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
    Cross,
}

/// Five shapes against seven colours: the counts share no factor, so the first 35 series each
/// get a pair of their own.
const MARKERS: [Marker; 5] = [
    Marker::Circle,
    Marker::Square,
    Marker::Triangle,
    Marker::Diamond,
    Marker::Cross,
];

/// A marker's half-width in pixels.
const MARKER_PX: i32 = 5;

/// The size of a sweep's chart in pixels.
const SWEEP_PX: (u32, u32) = (1000, 760);
/// The width of a bar chart in pixels; its height grows with its rows.
const BARS_WIDTH_PX: u32 = 1000;
/// The height of one row (one series) of a bar chart.
const BAR_ROW_PX: u32 = 56;
/// What a bar chart needs besides its rows: title, subtitle, captions and the value axis.
const BARS_FRAME_PX: u32 = 200;
/// The height of a chart that says nothing was measured.
const BARS_EMPTY_PX: u32 = 120;
/// The width of a bar chart's throughput panel, not counting the series' names.
const BARS_THROUGHPUT_PX: u32 = 480;

/// A line chart's axis ends at least this far past its largest value.
const LINE_HEADROOM: f64 = 1.1;
/// A bar chart's axis ends at least this far past its longest bar, room for the value written
/// after it.
const BAR_HEADROOM: f64 = 1.45;

/// plotters' font sizes (the SVG backend writes a size s as s/1.24 px).
const TITLE_SIZE: f64 = 26.0;
const CAPTION_SIZE: f64 = 19.0;
const TEXT_SIZE: f64 = 16.0;

const GRID: RGBColor = RGBColor(225, 225, 225);
const REFERENCE: RGBColor = RGBColor(130, 130, 130);

/// One system on one set of CPUs: what the chart draws in one colour with one marker.
struct Series<'a> {
    label: String,
    color: RGBColor,
    marker: Marker,
    /// Its points by offered load, lowest first.
    points: Vec<&'a Point>,
}

/// The series of `points`, in the order each first appears.
fn group(points: &[Point]) -> Vec<Series<'_>> {
    let mut keys: Vec<(&str, &[usize])> = Vec::new();
    for p in points {
        let key = (p.system.as_str(), p.cpus.as_slice());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.iter()
        .enumerate()
        .map(|(i, &(system, cpus))| {
            let mut members: Vec<&Point> = points
                .iter()
                .filter(|p| p.system == system && p.cpus == cpus)
                .collect();
            members.sort_by(|a, b| a.offered_spans_per_s.total_cmp(&b.offered_spans_per_s));
            Series {
                label: format!("{system} on cpus {}", cpus_text(cpus)),
                color: COLORS[i % COLORS.len()],
                marker: MARKERS[i % MARKERS.len()],
                points: members,
            }
        })
        .collect()
}

/// Writes the chart of `points` to `path` as SVG.
pub(crate) fn write(path: &Path, title: &str, points: &[Point]) -> io::Result<()> {
    std::fs::write(path, svg(title, points)?)
}

/// The chart of `points` as an SVG document: a row of bars per series when every series has a
/// single point, else lines against offered load.
pub(crate) fn svg(title: &str, points: &[Point]) -> io::Result<String> {
    let series = group(points);
    let mut out = String::new();
    let drawn = if series.iter().all(|s| s.points.len() == 1) {
        bars(&mut out, title, &series)
    } else {
        sweep(&mut out, title, &series)
    };
    drawn.map_err(|err| io::Error::other(format!("chart: {err}")))?;
    Ok(out)
}

type Drawn = Result<(), Box<dyn Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// `v` to three significant digits, without trailing zeros: 2.5, 12.3, 850.
fn sig3(v: f64) -> String {
    let v = round_sig3(v);
    let decimals = match v.abs() {
        a if a >= 100.0 || a == 0.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn round_sig3(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(v.abs().log10().floor() as i32 - 2);
    (v / scale).round() * scale
}

/// A count with a k, M or G suffix, to three significant digits: 1_234_567 reads 1.23M.
fn si(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let v = round_sig3(v);
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    format!("{}{suffix}", sig3(scaled))
}

/// A latency in microseconds, in µs under a millisecond and in ms above: `850 µs`, `2.5 ms`.
fn latency_text(us: u64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else {
        format!("{} ms", sig3(us as f64 / 1000.0))
    }
}

/// The unit p99 latencies up to `max_us` are shown in, and microseconds per unit.
fn latency_unit(max_us: u64) -> (&'static str, f64) {
    if max_us < 1000 {
        ("µs", 1.0)
    } else {
        ("ms", 1000.0)
    }
}

/// The end of an axis whose largest value is `max`: a round number at least `headroom` times it.
fn axis_max(max: f64, headroom: f64) -> f64 {
    let want = max * headroom;
    if !want.is_finite() || want <= 0.0 {
        return 1.0;
    }
    let decade = 10f64.powi(want.log10().floor() as i32);
    // Tenths of the decade, so that 1.2M is 12 * 1e6 / 10, exactly.
    [
        10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0,
    ]
    .iter()
    .map(|tenths| tenths * decade / 10.0)
    .find(|&end| end >= want * (1.0 - 1e-9))
    .unwrap_or(10.0 * decade)
}

/// About how wide `text` is in pixels at plotters' font `size` in a sans-serif face.
fn text_width_px(text: &str, size: f64) -> u32 {
    (text.chars().count() as f64 * size / 1.24 * 0.58).ceil() as u32
}

fn font(size: f64) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&BLACK)
}

fn left_centred(size: f64) -> TextStyle<'static> {
    font(size).pos(Pos::new(HPos::Left, VPos::Center))
}

/// A series' marker at a point: one element whatever the shape, so that the panels and the legend
/// draw it alike.
struct MarkerAt<C> {
    at: C,
    marker: Marker,
    color: RGBColor,
}

impl<'a, C> PointCollection<'a, C> for &'a MarkerAt<C> {
    type Point = &'a C;
    type IntoIter = iter::Once<&'a C>;

    fn point_iter(self) -> Self::IntoIter {
        iter::once(&self.at)
    }
}

impl<C, DB: DrawingBackend> Drawable<DB> for MarkerAt<C> {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut pos: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let Some((x, y)) = pos.next() else {
            return Ok(());
        };
        let r = MARKER_PX;
        let fill = self.color.filled();
        match self.marker {
            Marker::Circle => backend.draw_circle((x, y), r as u32, &fill, true),
            Marker::Square => {
                backend.draw_rect((x - r + 1, y - r + 1), (x + r - 1, y + r - 1), &fill, true)
            }
            Marker::Triangle => backend.fill_polygon(
                [
                    (x, y - r - 1),
                    (x + r + 1, y + r - 1),
                    (x - r - 1, y + r - 1),
                ],
                &fill,
            ),
            Marker::Diamond => backend.fill_polygon(
                [
                    (x, y - r - 1),
                    (x + r + 1, y),
                    (x, y + r + 1),
                    (x - r - 1, y),
                ],
                &fill,
            ),
            // A cross has no inside to fill: thick strokes instead.
            Marker::Cross => {
                let stroke = self.color.stroke_width(3);
                backend.draw_line((x - r, y - r), (x + r, y + r), &stroke)?;
                backend.draw_line((x - r, y + r), (x + r, y - r), &stroke)
            }
        }
    }
}

impl<'s> Series<'s> {
    fn marker_at<C>(&self, at: C) -> MarkerAt<C> {
        MarkerAt {
            at,
            marker: self.marker,
            color: self.color,
        }
    }
}

/// The chart of a sweep: throughput above and p99 below against offered load, legend at the
/// right.
fn sweep(out: &mut String, title: &str, series: &[Series]) -> Drawn {
    let root = SVGBackend::with_string(out, SWEEP_PX).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, font(TITLE_SIZE))?;
    let legend_px = legend_width(series);
    let (plots, legend_area) = root.split_horizontally(SWEEP_PX.0 - legend_px);
    let (upper, lower) = plots.split_vertically(plots.dim_in_pixel().1 / 2);
    let points = || series.iter().flat_map(|s| s.points.iter().copied());
    let x_max = axis_max(
        points()
            .filter_map(|p| finite(p.offered_spans_per_s))
            .fold(0.0, f64::max),
        LINE_HEADROOM,
    );
    let throughput = LinePanel {
        caption: "end-to-end throughput against offered load",
        y_desc: "end-to-end throughput (spans/s)".into(),
        y_of: &|p| p.end_to_end_spans_per_s,
        tick: &si,
        diagonal: true,
    };
    line_panel(&upper, &throughput, series, x_max)?;
    let (unit, us_per_unit) = latency_unit(points().map(|p| p.latency_us_p99).max().unwrap_or(0));
    let latency = LinePanel {
        caption: "p99 request latency against offered load",
        y_desc: format!("p99 request latency ({unit})"),
        y_of: &|p| p.latency_us_p99 as f64 / us_per_unit,
        tick: &sig3,
        diagonal: false,
    };
    line_panel(&lower, &latency, series, x_max)?;
    legend(&legend_area, series)?;
    root.present()?;
    Ok(())
}

/// One panel of a sweep: what it plots of each point and how its axis reads.
struct LinePanel<'f> {
    caption: &'static str,
    y_desc: String,
    y_of: &'f dyn Fn(&Point) -> f64,
    tick: &'f dyn Fn(f64) -> String,
    /// Whether to draw the line where the value equals the offered load.
    diagonal: bool,
}

fn line_panel(area: &Area, panel: &LinePanel, series: &[Series], x_max: f64) -> Drawn {
    let xy = |p: &Point| Some((finite(p.offered_spans_per_s)?, finite((panel.y_of)(p))?));
    let y_max = axis_max(
        series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| xy(p)))
            .map(|(_, y)| y)
            .fold(0.0, f64::max),
        LINE_HEADROOM,
    );
    let mut chart = ChartBuilder::on(area)
        .caption(panel.caption, font(CAPTION_SIZE))
        .margin(12)
        .x_label_area_size(52)
        .y_label_area_size(84)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("offered load (spans/s)")
        .y_desc(panel.y_desc.as_str())
        .x_label_formatter(&|v| si(*v))
        .y_label_formatter(&|v| (panel.tick)(*v))
        .label_style(font(TEXT_SIZE))
        .axis_desc_style(font(TEXT_SIZE))
        .max_light_lines(1)
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .draw()?;
    if panel.diagonal {
        let end = x_max.min(y_max);
        chart.draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (end, end)],
            6,
            4,
            REFERENCE.stroke_width(1),
        ))?;
    }
    for s in series {
        let line: Vec<(f64, f64)> = s.points.iter().filter_map(|p| xy(p)).collect();
        chart.draw_series(LineSeries::new(line.clone(), s.color.stroke_width(2)))?;
        chart.draw_series(line.into_iter().map(|at| s.marker_at(at)))?;
    }
    Ok(())
}

/// The legend's entry for the line where delivered equals offered.
const DIAGONAL_LABEL: &str = "delivered = offered";

fn legend_width(series: &[Series]) -> u32 {
    let longest = series
        .iter()
        .map(|s| text_width_px(&s.label, TEXT_SIZE))
        .chain(iter::once(text_width_px(DIAGONAL_LABEL, TEXT_SIZE)))
        .max()
        .unwrap_or(0);
    (longest + 90).clamp(200, 420)
}

/// The legend of a sweep, framed, one entry per series with its colour and marker, then the
/// line where delivered equals offered.
fn legend(area: &Area, series: &[Series]) -> Drawn {
    const TOP: i32 = 48;
    const ROW: i32 = 26;
    let (width, _) = area.dim_in_pixel();
    let right = width as i32 - 12;
    let bottom = TOP + 12 + ROW * (series.len() as i32 + 1);
    area.draw(&Rectangle::new([(4, TOP), (right, bottom)], WHITE.filled()))?;
    area.draw(&Rectangle::new(
        [(4, TOP), (right, bottom)],
        REFERENCE.stroke_width(1),
    ))?;
    let row_y = |i: usize| TOP + 6 + ROW / 2 + ROW * i as i32;
    for (i, s) in series.iter().enumerate() {
        let y = row_y(i);
        area.draw(&PathElement::new(
            vec![(14, y), (50, y)],
            s.color.stroke_width(2),
        ))?;
        area.draw(&s.marker_at((32, y)))?;
        area.draw(&Text::new(
            s.label.as_str(),
            (60, y),
            left_centred(TEXT_SIZE),
        ))?;
    }
    let y = row_y(series.len());
    area.draw(&DashedPathElement::new(
        vec![(14, y), (50, y)],
        6,
        4,
        REFERENCE.stroke_width(1),
    ))?;
    area.draw(&Text::new(DIAGONAL_LABEL, (60, y), left_centred(TEXT_SIZE)))?;
    Ok(())
}

/// One row of a bar panel.
struct Bar {
    name: String,
    color: RGBColor,
    /// `None` when the point measured nothing that can be drawn.
    value: Option<f64>,
    /// The value as written after the bar.
    label: String,
}

/// The chart of single points: per series a row with a bar of its throughput and one of its p99.
fn bars(out: &mut String, title: &str, series: &[Series]) -> Drawn {
    let height = if series.is_empty() {
        BARS_EMPTY_PX
    } else {
        BARS_FRAME_PX + BAR_ROW_PX * series.len() as u32
    };
    let canvas = SVGBackend::with_string(out, (BARS_WIDTH_PX, height)).into_drawing_area();
    canvas.fill(&WHITE)?;
    let root = canvas.titled(title, font(TITLE_SIZE))?;
    let points: Vec<&Point> = series.iter().map(|s| s.points[0]).collect();
    if points.is_empty() {
        root.draw(&Text::new(
            "no point was measured",
            (20, 20),
            left_centred(CAPTION_SIZE),
        ))?;
        root.present()?;
        return Ok(());
    }
    let one_offered = points.iter().all(|p| p.offered == points[0].offered);
    let name = |s: &Series| {
        if one_offered {
            s.label.clone()
        } else {
            format!("{} at {}", s.label, s.points[0].offered)
        }
    };
    let subtitle = if one_offered {
        format!(
            "offered load: {} · one measured point per system and CPU set",
            offered_text(&points)
        )
    } else {
        "one measured point per system and CPU set".to_string()
    };
    let (head, body) = root.split_vertically(30);
    head.draw(&Text::new(subtitle, (20, 12), left_centred(TEXT_SIZE)))?;
    let names_px = series
        .iter()
        .map(|s| text_width_px(&name(s), TEXT_SIZE))
        .max()
        .unwrap_or(0)
        .clamp(80, 380)
        + 16;
    let (left, right) = body.split_horizontally(names_px + BARS_THROUGHPUT_PX);
    let throughput: Vec<Bar> = series
        .iter()
        .map(|s| {
            let value = finite(s.points[0].end_to_end_spans_per_s);
            Bar {
                name: name(s),
                color: s.color,
                value,
                label: value.map_or("n/a".into(), |v| format!("{} spans/s", si(v))),
            }
        })
        .collect();
    let rows_at = bar_panel(
        &left,
        "end-to-end throughput",
        "end-to-end throughput (spans/s)",
        names_px,
        &throughput,
        &si,
    )?;
    // The names go left of the throughput axis, each level with its row.
    let right_centred = font(TEXT_SIZE).pos(Pos::new(HPos::Right, VPos::Center));
    for (bar, (x, y)) in throughput.iter().zip(rows_at) {
        canvas.draw(&Text::new(
            bar.name.as_str(),
            (x - 10, y),
            right_centred.clone(),
        ))?;
    }
    let (unit, us_per_unit) =
        latency_unit(points.iter().map(|p| p.latency_us_p99).max().unwrap_or(0));
    let latency: Vec<Bar> = series
        .iter()
        .map(|s| {
            let us = s.points[0].latency_us_p99;
            Bar {
                name: name(s),
                color: s.color,
                value: Some(us as f64 / us_per_unit),
                label: latency_text(us),
            }
        })
        .collect();
    bar_panel(
        &right,
        "p99 request latency",
        &format!("p99 request latency ({unit})"),
        16,
        &latency,
        &sig3,
    )?;
    root.present()?;
    Ok(())
}

/// The offered load of `points`, all offered the same rate, as a reader understands it:
/// `max (the load reached 1.2M spans/s)`, `200k spans/s`, `50% of max`. What the load reached
/// is given only for a single point: with several, each reached its own.
fn offered_text(points: &[&Point]) -> String {
    let rate = points[0].offered.as_str();
    let reached = match points {
        [only] => finite(only.offered_spans_per_s).map(si),
        _ => None,
    };
    match (rate, reached) {
        ("max", Some(reached)) => format!("max (the load reached {reached} spans/s)"),
        ("max", None) => "max (as fast as each system accepts)".into(),
        (share, Some(reached)) if share.ends_with('%') => {
            format!("{share} of max ({reached} spans/s)")
        }
        (share, None) if share.ends_with('%') => format!("{share} of max"),
        (_, Some(reached)) => format!("{reached} spans/s"),
        (rate, None) => format!("{rate} spans/s"),
    }
}

/// A panel of horizontal bars, one row per entry of `bars`, the first at the top, each with its
/// value written after it, `names_px` left free for names; returns where each row meets the
/// value axis, in the backend's pixels.
fn bar_panel(
    area: &Area,
    caption: &str,
    x_desc: &str,
    names_px: u32,
    bars: &[Bar],
    tick: &dyn Fn(f64) -> String,
) -> Result<Vec<BackendCoord>, Box<dyn Error>> {
    let n = bars.len();
    let x_max = axis_max(
        bars.iter().filter_map(|b| b.value).fold(0.0, f64::max),
        BAR_HEADROOM,
    );
    // Row r, counted from the bottom, spans r..r+1 on the category axis.
    let row_of = |i: usize| (n - 1 - i) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(CAPTION_SIZE))
        .margin(12)
        .x_label_area_size(52)
        .y_label_area_size(names_px)
        .build_cartesian_2d(0f64..x_max, 0f64..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc(x_desc)
        .x_label_formatter(&|v| tick(*v))
        .label_style(font(TEXT_SIZE))
        .axis_desc_style(font(TEXT_SIZE))
        .max_light_lines(1)
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (i, bar) in bars.iter().enumerate() {
        let row = row_of(i);
        if let Some(v) = bar.value {
            chart.draw_series(iter::once(Rectangle::new(
                [(0.0, row + 0.22), (v, row + 0.78)],
                bar.color.filled(),
            )))?;
        }
        let end = bar.value.unwrap_or(0.0);
        chart.draw_series(iter::once(
            EmptyElement::at((end, row + 0.5))
                + Text::new(bar.label.clone(), (6, 0), left_centred(TEXT_SIZE)),
        ))?;
    }
    Ok((0..n)
        .map(|i| chart.backend_coord(&(0.0, row_of(i) + 0.5)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(system: &str, cpus: &[usize], offered: f64, end_to_end: f64, p99_us: u64) -> Point {
        Point {
            system: system.into(),
            cpus: cpus.to_vec(),
            offered: format!("{offered}"),
            offered_spans_per_s: offered,
            spans_sent: 10,
            spans_accepted: 10,
            spans_refused: 0,
            spans_at_sink: 10,
            end_to_end_spans_per_s: end_to_end,
            latency_us_p50: p99_us / 3,
            latency_us_p99: p99_us,
            latency_us_p999: p99_us * 2,
            system_cpu_ns_per_span: 700.0,
            steady: None,
            load_wire_bytes_per_span: 60.0,
            sink_wire_bytes_per_span: 65.0,
            peak_rss_mib: 60.0,
            verdict: "verified".into(),
            checks: "ok".into(),
        }
    }

    /// Where the tests' charts are kept for a person to look at, when set.
    const KEEP_DIR: &str = "TAILGATE_BENCH_CHART_DIR";

    /// Writes the chart as `run` does, to a file in a folder of its own under the temp dir (or
    /// under `$TAILGATE_BENCH_CHART_DIR`, where it stays), and reads it back.
    fn render(name: &str, title: &str, points: &[Point]) -> String {
        let kept = std::env::var_os(KEEP_DIR).map(std::path::PathBuf::from);
        let dir = kept.clone().unwrap_or_else(|| {
            // A folder per chart: tests run in parallel, and each removes its own.
            std::env::temp_dir().join(format!(
                "tailgate-bench-chart-{}-{name}",
                std::process::id()
            ))
        });
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.svg"));
        write(&path, title, points).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        if kept.is_none() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        assert!(svg.starts_with("<svg"), "{svg}");
        svg
    }

    /// The texts of the SVG's `<text>` elements.
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| t.split_once('>'))
            .filter_map(|(_, rest)| rest.split_once("</text>"))
            .map(|(text, _)| text.trim())
            .collect()
    }

    /// The colours the SVG fills or strokes with, other than black, white and greys.
    fn hues(svg: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for attr in ["fill=\"#", "stroke=\"#"] {
            for part in svg.split(attr).skip(1) {
                let hex = &part[..6];
                let rgb: Vec<u8> = (0..3)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                    .collect();
                let grey = rgb[0] == rgb[1] && rgb[1] == rgb[2];
                if !grey && !found.iter().any(|h| h == hex) {
                    found.push(hex.to_string());
                }
            }
        }
        found
    }

    fn assert_no_nan(svg: &str) {
        for bad in ["NaN", "inf"] {
            assert!(!svg.contains(bad), "{bad} in the SVG:\n{svg}");
        }
    }

    /// Two systems, tailgate on two CPU sets and a peer on one, swept over three rates.
    fn sweep_points() -> Vec<Point> {
        let mut points = Vec::new();
        for (system, cpus, ceiling, p99_base) in [
            ("tailgate", &[1][..], 900_000.0, 1_800),
            ("tailgate", &[1, 2][..], 1_600_000.0, 1_500),
            ("otelcol", &[1][..], 250_000.0, 9_000),
        ] {
            for offered in [200_000.0, 600_000.0, 1_200_000.0] {
                let delivered = f64::min(offered, ceiling);
                let p99 = p99_base * if offered > ceiling { 8 } else { 1 };
                points.push(point(system, cpus, offered, delivered, p99));
            }
        }
        points
    }

    #[test]
    fn a_sweep_names_every_series_in_its_legend_in_its_own_colour() {
        let points = sweep_points();
        let svg = render("sweep", "passthrough: tailgate against otelcol", &points);
        let texts = texts(&svg);
        for label in [
            "tailgate on cpus 1",
            "tailgate on cpus 1,2",
            "otelcol on cpus 1",
        ] {
            assert!(
                texts.contains(&label),
                "no legend entry {label:?} in {texts:?}"
            );
        }
        assert!(texts.contains(&DIAGONAL_LABEL));
        assert!(texts.contains(&"passthrough: tailgate against otelcol"));
        assert!(texts.contains(&"offered load (spans/s)"));
        assert!(texts.contains(&"p99 request latency (ms)"));
        let hues = hues(&svg);
        assert_eq!(hues.len(), 3, "one colour per series: {hues:?}");
        assert_no_nan(&svg);
    }

    #[test]
    fn series_differ_in_colour_and_in_marker() {
        let points = sweep_points();
        let series = group(&points);
        assert_eq!(series.len(), 3);
        for (i, a) in series.iter().enumerate() {
            for b in &series[i + 1..] {
                assert_ne!(a.color, b.color, "{} and {}", a.label, b.label);
                assert_ne!(a.marker, b.marker, "{} and {}", a.label, b.label);
            }
            let offered: Vec<f64> = a.points.iter().map(|p| p.offered_spans_per_s).collect();
            assert!(offered.windows(2).all(|w| w[0] <= w[1]), "{offered:?}");
        }
        let many: Vec<Point> = (0..35)
            .map(|cpu| point("tailgate", &[cpu], 1.0, 1.0, 1))
            .collect();
        let pairs: Vec<(RGBColor, Marker)> =
            group(&many).iter().map(|s| (s.color, s.marker)).collect();
        for (i, pair) in pairs.iter().enumerate() {
            assert!(!pairs[i + 1..].contains(pair), "series {i} shares its look");
        }
    }

    #[test]
    fn a_single_point_is_a_bar_with_its_value_written_beside_it() {
        let mut only = point("tailgate", &[1], 1_300_000.0, 1_234_567.0, 4_200);
        only.offered = "max".into();
        let svg = render("single", "passthrough: tailgate", &[only]);
        let texts = texts(&svg);
        for text in [
            "1.23M spans/s",
            "4.2 ms",
            "tailgate on cpus 1",
            "passthrough: tailgate",
        ] {
            assert!(texts.contains(&text), "no {text:?} in {texts:?}");
        }
        assert!(
            texts
                .iter()
                .any(|t| t.contains("max (the load reached 1.3M spans/s)")),
            "{texts:?}"
        );
        assert_no_nan(&svg);
    }

    #[test]
    fn single_points_of_several_systems_are_rows_of_their_own() {
        let mut points = vec![
            point("tailgate", &[1], 1_300_000.0, 1_250_000.0, 3_100),
            point("otelcol", &[1], 260_000.0, 251_000.0, 850),
        ];
        for p in &mut points {
            p.offered = "max".into();
        }
        let svg = render("rows", "passthrough", &points);
        let texts = texts(&svg);
        for text in [
            "tailgate on cpus 1",
            "otelcol on cpus 1",
            "1.25M spans/s",
            "251k spans/s",
            "3.1 ms",
            "850 µs",
        ] {
            assert!(texts.contains(&text), "no {text:?} in {texts:?}");
        }
        assert!(
            texts
                .iter()
                .any(|t| t.contains("max (as fast as each system accepts)")),
            "{texts:?}"
        );
        assert_eq!(hues(&svg).len(), 2);
    }

    #[test]
    fn values_that_are_not_finite_never_reach_the_svg() {
        // The rate's text is the scenario's (`max`); its figures are what went wrong.
        let mut single = [point("tailgate", &[1], f64::INFINITY, f64::NAN, 1_000)];
        single[0].offered = "max".into();
        let svg = render("nan-single", "t", &single);
        assert!(texts(&svg).contains(&"n/a"));
        assert_no_nan(&svg);
        let mut swept = sweep_points();
        swept[0].end_to_end_spans_per_s = f64::NAN;
        swept[1].offered_spans_per_s = f64::INFINITY;
        assert_no_nan(&render("nan-sweep", "t", &swept));
        assert_no_nan(&render("empty", "t", &[]));
    }

    #[test]
    fn numbers_read_as_a_person_writes_them() {
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(999_999.0), "1M");
        assert_eq!(si(1_250_000.0), "1.25M");
        assert_eq!(si(12_500.0), "12.5k");
        assert_eq!(si(850.0), "850");
        assert_eq!(si(0.0), "0");
        assert_eq!(si(f64::NAN), "n/a");
        assert_eq!(sig3(2.5), "2.5");
        assert_eq!(sig3(0.25), "0.25");
        assert_eq!(latency_text(850), "850 µs");
        assert_eq!(latency_text(2_500), "2.5 ms");
        assert_eq!(latency_text(12_345), "12.3 ms");
    }

    #[test]
    fn axes_start_at_zero_and_end_round_past_the_largest_value() {
        assert_eq!(axis_max(0.0, LINE_HEADROOM), 1.0);
        assert_eq!(axis_max(f64::NAN, LINE_HEADROOM), 1.0);
        assert_eq!(axis_max(1_000_000.0, LINE_HEADROOM), 1_200_000.0);
        assert_eq!(axis_max(900.0, LINE_HEADROOM), 1_000.0);
        assert_eq!(axis_max(1_234_567.0, BAR_HEADROOM), 2_000_000.0);
    }
}
