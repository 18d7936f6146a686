//! A run's results as a markdown table and an SVG chart of throughput and p99 latency against
//! offered load.

use std::io;
use std::path::Path;

use plotters::prelude::*;

/// One point of a run, as the table and chart need it.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    pub system: String,
    pub cpus: Vec<usize>,
    /// The rate as written in the scenario (`max`, `50%`, `200000`).
    pub offered: String,
    /// Spans per second offered; for `max`, what the load reached.
    pub offered_spans_per_s: f64,
    pub spans_sent: u64,
    pub spans_accepted: u64,
    pub spans_refused: u64,
    pub spans_at_sink: u64,
    pub end_to_end_spans_per_s: f64,
    pub latency_us_p50: u64,
    pub latency_us_p99: u64,
    pub latency_us_p999: u64,
    pub system_cpu_ns_per_span: f64,
    /// Request bytes a span on the wire: the load's into the system, the system's into the sink.
    pub load_wire_bytes_per_span: f64,
    pub sink_wire_bytes_per_span: f64,
    pub peak_rss_mib: f64,
    /// The sink's verdict against the oracle, in a few words.
    pub verdict: String,
    /// Checks that failed, or `ok`.
    pub checks: String,
}

fn cpus_text(cpus: &[usize]) -> String {
    cpus.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The markdown table of a run.
pub(crate) fn markdown(title: &str, description: &str, points: &[Point]) -> String {
    let mut out = format!("## {title}\n\n");
    if !description.is_empty() {
        out.push_str(description.trim());
        out.push_str("\n\n");
    }
    out.push_str(
        "| system | cpus | offered | offered spans/s | sent | accepted | refused | at sink | \
         end-to-end spans/s | p50 ms | p99 ms | p999 ms | CPU ns/span | wire B/span in, out | \
         peak RSS MiB | verdict | checks |\n",
    );
    out.push_str("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|\n");
    let ms = |us: u64| us as f64 / 1000.0;
    for p in points {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | \
             {:.0}, {:.0} | {:.0} | {} | {} |\n",
            p.system,
            cpus_text(&p.cpus),
            p.offered,
            p.offered_spans_per_s,
            p.spans_sent,
            p.spans_accepted,
            p.spans_refused,
            p.spans_at_sink,
            p.end_to_end_spans_per_s,
            ms(p.latency_us_p50),
            ms(p.latency_us_p99),
            ms(p.latency_us_p999),
            p.system_cpu_ns_per_span,
            p.load_wire_bytes_per_span,
            p.sink_wire_bytes_per_span,
            p.peak_rss_mib,
            p.verdict,
            p.checks,
        ));
    }
    out
}

/// Draws end-to-end throughput (left axis) and p99 latency (right axis, dashed) against offered
/// load, one colour per set of system CPUs.
pub(crate) fn chart(path: &Path, title: &str, points: &[Point]) -> io::Result<()> {
    draw(path, title, points).map_err(|err| io::Error::other(format!("chart: {err}")))
}

fn draw(path: &Path, title: &str, points: &[Point]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_of = |f: &dyn Fn(&Point) -> f64| points.iter().map(f).fold(0.0f64, f64::max);
    let x_max = (max_of(&|p| p.offered_spans_per_s) * 1.1).max(1.0);
    let y_max = (max_of(&|p| p.end_to_end_spans_per_s.max(p.offered_spans_per_s)) * 1.1).max(1.0);
    let p99_max = (max_of(&|p| p.latency_us_p99 as f64 / 1000.0) * 1.2).max(1.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?
        .set_secondary_coord(0f64..x_max, 0f64..p99_max);
    chart
        .configure_mesh()
        .x_desc("offered load (spans/s)")
        .y_desc("end-to-end throughput (spans/s)")
        .x_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .max_light_lines(4)
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("p99 request latency (ms)")
        .draw()?;
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for p in points {
        if !groups.contains(&p.cpus) {
            groups.push(p.cpus.clone());
        }
    }
    for (i, cpus) in groups.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut series: Vec<&Point> = points.iter().filter(|p| &p.cpus == cpus).collect();
        series.sort_by(|a, b| a.offered_spans_per_s.total_cmp(&b.offered_spans_per_s));
        let throughput: Vec<(f64, f64)> = series
            .iter()
            .map(|p| (p.offered_spans_per_s, p.end_to_end_spans_per_s))
            .collect();
        let p99: Vec<(f64, f64)> = series
            .iter()
            .map(|p| (p.offered_spans_per_s, p.latency_us_p99 as f64 / 1000.0))
            .collect();
        let label = format!("{} on cpus {}", series[0].system, cpus_text(cpus));
        chart
            .draw_series(LineSeries::new(throughput.clone(), color.stroke_width(2)))?
            .label(format!("{label}: throughput"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(
            throughput
                .iter()
                .map(|&xy| Circle::new(xy, 4, color.filled())),
        )?;
        chart
            .draw_secondary_series(DashedLineSeries::new(p99.clone(), 6, 4, color.into()))?
            .label(format!("{label}: p99 latency"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.mix(0.5)));
        chart.draw_secondary_series(
            p99.iter()
                .map(|&xy| TriangleMarker::new(xy, 5, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(offered: f64, cpus: Vec<usize>) -> Point {
        Point {
            system: "tailgate".into(),
            cpus,
            offered: format!("{offered}"),
            offered_spans_per_s: offered,
            spans_sent: 10,
            spans_accepted: 10,
            spans_refused: 0,
            spans_at_sink: 10,
            end_to_end_spans_per_s: offered * 0.9,
            latency_us_p50: 800,
            latency_us_p99: 2_500,
            latency_us_p999: 9_000,
            system_cpu_ns_per_span: 700.0,
            load_wire_bytes_per_span: 60.0,
            sink_wire_bytes_per_span: 65.0,
            peak_rss_mib: 60.0,
            verdict: "verified".into(),
            checks: "ok".into(),
        }
    }

    #[test]
    fn table_and_chart() {
        let points = vec![
            point(100_000.0, vec![1]),
            point(200_000.0, vec![1]),
            point(300_000.0, vec![1, 2]),
        ];
        let table = markdown("t", "", &points);
        assert_eq!(
            table
                .lines()
                .filter(|l| l.starts_with("| tailgate"))
                .count(),
            3
        );
        let path = std::env::temp_dir().join(format!("chart-{}.svg", std::process::id()));
        chart(&path, "t", &points).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.starts_with("<svg") && svg.contains("p99 request latency"));
    }
}
