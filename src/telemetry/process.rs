//! The Collector's process families, read from `/proc/self` by the admin thread at scrape time
//! (nothing on the shards): `otelcol_process_uptime` (seconds since start),
//! `otelcol_process_cpu_seconds` (user and system CPU of every thread) and
//! `otelcol_process_memory_rss` (resident bytes). The Collector's Go runtime families
//! (`otelcol_process_runtime_*`: heap, allocations, memory from the OS) have no counterpart in
//! a Rust process and are not served.

use std::time::Instant;

use super::exposition;

/// One process family's value now.
pub(super) struct Sample {
    pub name: &'static str,
    pub help: &'static str,
    /// A counter (else a gauge).
    pub counter: bool,
    pub value: f64,
}

/// The process families now: uptime, CPU seconds (when `/proc` answers) and resident bytes.
pub(super) fn samples(started: Instant) -> Vec<Sample> {
    let mut samples = vec![Sample {
        name: "otelcol_process_uptime",
        help: "Uptime of the process",
        counter: true,
        value: started.elapsed().as_secs_f64(),
    }];
    if let Some(cpu_s) = cpu_seconds() {
        samples.push(Sample {
            name: "otelcol_process_cpu_seconds",
            help: "Total CPU user and system time in seconds",
            counter: true,
            value: cpu_s,
        });
    }
    if let Some(rss) = crate::memory::rss_bytes() {
        samples.push(Sample {
            name: "otelcol_process_memory_rss",
            help: "Total physical memory (resident set size)",
            counter: false,
            value: rss as f64,
        });
    }
    samples
}

/// Appends the process families to a Prometheus page; `counter_suffix` is `""` or `"_total"`,
/// as for every counter.
pub(super) fn render(out: &mut String, started: Instant, counter_suffix: &str) {
    for sample in samples(started) {
        let (name, kind) = if sample.counter {
            (format!("{}{counter_suffix}", sample.name), "counter")
        } else {
            (sample.name.to_string(), "gauge")
        };
        exposition::write_header(out, &name, sample.help, kind);
        out.push_str(&format!("{name} {}\n", sample.value));
    }
}

/// User and system CPU seconds of the whole process (`/proc/self/stat` fields 14 and 15).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count from the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / crate::sys::clock_ticks_per_second() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_families_are_read_from_proc() {
        let mut page = String::new();
        render(&mut page, Instant::now(), "");
        assert!(page.contains("# TYPE otelcol_process_uptime counter\notelcol_process_uptime "));
        let cpu = page
            .lines()
            .find_map(|l| l.strip_prefix("otelcol_process_cpu_seconds "))
            .expect("cpu seconds");
        assert!(cpu.parse::<f64>().unwrap() >= 0.0);
        let rss: u64 = page
            .lines()
            .find_map(|l| l.strip_prefix("otelcol_process_memory_rss "))
            .expect("rss")
            .parse()
            .unwrap();
        assert!(rss > 1 << 20, "a process holds more than 1 MiB: {rss}");
        let mut total = String::new();
        render(&mut total, Instant::now(), "_total");
        assert!(total.contains("\notelcol_process_uptime_total "));
    }
}
