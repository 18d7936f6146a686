//! A run's points as the markdown table of its results (the chart is drawn from the same points
//! by `chart`).

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
    /// The steady state, where the scenario asks for it: spans accepted a second and the
    /// system's CPU nanoseconds a span.
    pub steady: Option<(f64, f64)>,
    /// Request bytes a span on the wire: the load's into the system, the system's into the sink.
    pub load_wire_bytes_per_span: f64,
    pub sink_wire_bytes_per_span: f64,
    pub peak_rss_mib: f64,
    /// The sink's verdict against the oracle, in a few words.
    pub verdict: String,
    /// Checks that failed, or `ok`.
    pub checks: String,
}

/// A CPU set as the table and the chart write it: `1,2`.
pub(crate) fn cpus_text(cpus: &[usize]) -> String {
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
         end-to-end spans/s | p50 ms | p99 ms | p999 ms | CPU ns/span | steady spans/s, CPU ns/span | \
         wire B/span in, out | peak RSS MiB | verdict | checks |\n",
    );
    out.push_str("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|\n");
    let ms = |us: u64| us as f64 / 1000.0;
    for p in points {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {} | \
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
            p.steady.map_or("–".to_string(), |(rate, cpu)| format!("{rate:.0}, {cpu:.0}")),
            p.load_wire_bytes_per_span,
            p.sink_wire_bytes_per_span,
            p.peak_rss_mib,
            p.verdict,
            p.checks,
        ));
    }
    out
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
            steady: None,
            load_wire_bytes_per_span: 60.0,
            sink_wire_bytes_per_span: 65.0,
            peak_rss_mib: 60.0,
            verdict: "verified".into(),
            checks: "ok".into(),
        }
    }

    #[test]
    fn a_row_per_point() {
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
        assert!(table.contains("| – |"), "no steady state: a dash\n{table}");
        let mut steady = point(100_000.0, vec![1]);
        steady.steady = Some((1_280_000.0, 1_351.4));
        let table = markdown("t", "", &[steady]);
        assert!(table.contains("| 1280000, 1351 |"), "{table}");
    }
}
