//! `tailgate-bench run SCENARIO.yaml`: one scenario, end to end, from a file.
//!
//! For every point of the scenario's sweep (each rate for each set of system CPUs) the runner
//! starts, each pinned to its CPUs: a sink (`tailgate-bench sink`, judging arrivals against the
//! oracle, one shard per sink CPU), the system under test (the scenario's command line, with the
//! config it writes), and the load (`tailgate-bench load`, one thread per load CPU, writing the
//! oracle's expectation, niced so that it yields a CPU it shares with the sink). While the load
//! runs, a
//! sampler reads the system's CPU time and RSS from `/proc`. After the load, the runner waits for
//! the export to drain: until the sink holds every span the oracle expects (when nothing was
//! refused) and then 200 ms more, or else until the sink's count has not moved for
//! `drain.settle_ms`. The moment of the last change ends the point: end-to-end throughput is spans
//! accepted over load start → that moment, and the system's CPU per span is its CPU time over the
//! same span of time divided by spans accepted. Then the system's `/metrics` page is saved, when
//! it serves one at `${system_metrics}` (`system-metrics.txt`), the system and the sink are
//! stopped (SIGTERM) and the sink's verdict read. Each point starts fresh processes.
//!
//! Results go to `--out` (default `target/bench-results/NAME-UNIXTIME/`): `results.json` (every
//! point, its reports and samples), `results.md` (the table, also printed), `chart.svg`
//! (throughput and p99 latency: a labelled bar per system and CPU set when each has one point,
//! else lines against offered load), and per point the processes' logs, config
//! and reports. With `tls`, the run's certificate set is written to `tls/` first, and the sink,
//! the load and the system's config take it for the links the scenario puts TLS on. A scenario
//! whose `system.requires` names an executable not on PATH, whose sink or
//! load CPUs are not all on this machine, or none of whose points fits this machine's CPUs, is
//! skipped with a message (exit status 0). A failed check makes the command exit non-zero after writing everything.

mod chart;
pub mod process;
pub mod report;
pub mod scenario;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use self::process::{Sample, Sampler};
use self::report::Point;
use self::scenario::{Rate, Scenario};
use crate::certs::{self, CertFiles};

/// How often the sink's progress file is read while draining.
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// How long the sink's count must stay put once it reached what the oracle expects.
const SETTLE_AT_TARGET: Duration = Duration::from_millis(200);
/// How long the sink has to start listening.
const SINK_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The load runs at this niceness, so that where it shares a CPU with the sink the sink gets
/// the time it needs: a closed-loop load at equal priority takes most of a shared core, the
/// sink falls behind, and the system's export queue (not the system) becomes what is measured.
const LOAD_NICENESS: i32 = 10;
/// The sink and the load keep the memory they free for reuse (mimalloc's purge delay, read from
/// the environment at start): by default mimalloc gives a freed large block back to the system
/// after 10 ms, and the sink, gathering each multi-megabyte export request into a fresh buffer,
/// then page-faults it all in again on the core it shares with the load — which delayed the
/// load's sends by tens to hundreds of milliseconds, latency that was the rig's, not the
/// system's. The system under test runs with its own defaults.
const INSTRUMENT_PURGE: (&str, &str) = ("MIMALLOC_PURGE_DELAY", "-1");

/// What `tailgate-bench run` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The scenario file (YAML).
    pub scenario: PathBuf,
    /// Where the results go; `target/bench-results/NAME-UNIXTIME` when absent.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seconds of load per point, instead of the scenario's `duration_s`.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Rates to sweep, comma-separated, instead of the scenario's `sweep.rates`.
    #[arg(long, value_delimiter = ',')]
    pub rates: Option<Vec<String>>,
}

/// The names and address the run's server certificate is for: the sink and the system listen
/// on loopback, and are addressed by IP (the load's default server name) or as localhost.
const TLS_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];

/// What every point of a run starts the instruments with: this binary, its folder (where the
/// system's binary is looked for too), and the run's certificate set when the scenario has TLS.
struct Instruments<'a> {
    exe: &'a Path,
    bin_dir: &'a Path,
    certs: Option<&'a CertFiles>,
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped, so no error path leaves one
/// running.
struct Running {
    name: &'static str,
    child: Child,
}

impl Running {
    fn stop(&mut self) -> io::Result<std::process::ExitStatus> {
        process::stop(&mut self.child)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("run: stopping the {}: {err}", self.name);
        }
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Whether `name` is an executable on PATH (or a path to one).
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        return executable(Path::new(name));
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| executable(&dir.join(name))))
        .unwrap_or(false)
}

fn cpus_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The flag that places a `tailgate-bench` sink or load on `cpus`: `--cpu N` for one, else
/// `--cpus LIST` (a sink shard or load thread per CPU).
fn cpu_flag(cpus: &[usize]) -> [String; 2] {
    match cpus {
        [cpu] => ["--cpu".into(), cpu.to_string()],
        _ => ["--cpus".into(), cpus_list(cpus)],
    }
}

fn read_json(path: &Path) -> io::Result<Value> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, format!("{path:?}: {err}")))
}

/// Runs a scenario and writes its results.
pub fn run(args: RunArgs) -> io::Result<()> {
    let scenario = load_scenario(&args)?;
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!("target/bench-results/{}-{stamp}", scenario.name))
    });
    std::fs::create_dir_all(&out)?;
    if let Some(missing) = scenario.system.requires.iter().find(|r| !on_path(r)) {
        return skip(&scenario.name, &out, &format!("{missing} is not on PATH"));
    }
    let allowed = process::allowed_cpus()?;
    for (name, cpus) in [("sink", &scenario.cpus.sink), ("load", &scenario.cpus.load)] {
        if let Some(cpu) = missing_cpu(&allowed, cpus) {
            return skip(
                &scenario.name,
                &out,
                &format!("cpu {cpu} for the {name} is not available on this machine"),
            );
        }
    }
    let exe = std::env::current_exe()?;
    let bin_dir = exe
        .parent()
        .ok_or_else(|| io::Error::other("this binary has no folder"))?
        .to_path_buf();
    if let Some(setup) = &scenario.system.setup {
        run_setup(setup, &bin_dir, &out)?;
    }
    let certs = scenario
        .tls
        .any()
        .then(|| certs::write_set(&std::path::absolute(out.join("tls"))?, &TLS_HOSTS))
        .transpose()?;
    let instruments = Instruments {
        exe: &exe,
        bin_dir: &bin_dir,
        certs: certs.as_ref(),
    };
    let (results, points) = sweep(&scenario, &allowed, &out, &instruments)?;
    if points.is_empty() {
        return skip(
            &scenario.name,
            &out,
            "no point of the sweep fits this machine's CPUs",
        );
    }
    write_results(&scenario, &args.scenario, &out, results, &points)
}

/// The scenario file, with the command line's `--duration` and `--rates` in place of its own.
fn load_scenario(args: &RunArgs) -> io::Result<Scenario> {
    let text = std::fs::read_to_string(&args.scenario)?;
    let mut scenario = Scenario::parse(&text)
        .map_err(|err| invalid(format!("{}: {err}", args.scenario.display())))?;
    if let Some(duration) = args.duration {
        if duration.is_nan() || duration <= 0.0 {
            return Err(invalid(format!("--duration {duration}: positive seconds")));
        }
        scenario.duration_s = duration;
    }
    if let Some(rates) = &args.rates {
        for rate in rates {
            Rate::parse(rate).map_err(invalid)?;
        }
        scenario.sweep.rates = rates.clone();
    }
    Ok(scenario)
}

/// A CPU of `cpus` that this process may not run on, if any.
fn missing_cpu(allowed: &[usize], cpus: &[usize]) -> Option<usize> {
    cpus.iter().copied().find(|c| !allowed.contains(c))
}

/// Runs the system's `setup` command once, before the first point.
fn run_setup(setup: &str, bin_dir: &Path, out: &Path) -> io::Result<()> {
    let values = BTreeMap::from([
        ("bin_dir", bin_dir.display().to_string()),
        ("work_dir", out.display().to_string()),
    ]);
    let setup = scenario::substitute(setup, &values).map_err(invalid)?;
    eprintln!("run: setup: {setup}");
    let status = Command::new("sh").arg("-c").arg(&setup).status()?;
    if !status.success() {
        return Err(io::Error::other(format!("setup failed ({status})")));
    }
    Ok(())
}

/// Runs every point of the sweep that fits this machine's CPUs, each rate for each set of
/// system CPUs; returns their JSON records and table rows.
fn sweep(
    scenario: &Scenario,
    allowed: &[usize],
    out: &Path,
    instruments: &Instruments<'_>,
) -> io::Result<(Vec<Value>, Vec<Point>)> {
    let mut results = Vec::new();
    let mut points = Vec::new();
    let sets = scenario.system_cpu_sets();
    let total = sets.len() * scenario.sweep.rates.len();
    for cpus in &sets {
        if let Some(cpu) = missing_cpu(allowed, cpus) {
            eprintln!(
                "run: skipping system cpus {}: cpu {cpu} is not available on this machine",
                cpus_list(cpus)
            );
            continue;
        }
        let mut max_end_to_end: Option<f64> = None;
        for rate_text in &scenario.sweep.rates {
            let target = rate_target(rate_text, max_end_to_end, cpus)?;
            let index = results.len() + 1;
            eprintln!(
                "run: point {index}/{total}: {} on cpus {} at {rate_text}{}",
                scenario.system.name,
                cpus_list(cpus),
                target.map_or(String::new(), |t| format!(" ({t:.0} spans/s)")),
            );
            let point_dir = out.join(format!(
                "{index:02}-cpus{}-{}",
                cpus_list(cpus).replace(',', "_"),
                rate_text.replace('%', "pct")
            ));
            std::fs::create_dir_all(&point_dir)?;
            let (result, point) =
                run_point(scenario, cpus, rate_text, target, &point_dir, instruments)?;
            if target.is_none() && max_end_to_end.is_none() {
                max_end_to_end = Some(point.end_to_end_spans_per_s);
            }
            results.push(result);
            points.push(point);
        }
    }
    Ok((results, points))
}

/// The spans a second `rate_text` offers (`None`: as fast as the load goes); a share of the
/// maximum needs the `max` point measured before it on the same `cpus`.
fn rate_target(
    rate_text: &str,
    max_end_to_end: Option<f64>,
    cpus: &[usize],
) -> io::Result<Option<f64>> {
    Ok(match Rate::parse(rate_text).map_err(invalid)? {
        Rate::Max => None,
        Rate::SpansPerS(r) => Some(r),
        Rate::OfMax(share) => Some(
            share
                * max_end_to_end.ok_or_else(|| {
                    invalid(format!(
                        "rate {rate_text}: no `max` point before it on cpus {}",
                        cpus_list(cpus)
                    ))
                })?,
        ),
    })
}

/// Writes the table (also printed), the chart and `results.json`; fails when a check failed.
fn write_results(
    scenario: &Scenario,
    scenario_file: &Path,
    out: &Path,
    results: Vec<Value>,
    points: &[Point],
) -> io::Result<()> {
    let title = format!("{}: {}", scenario.name, scenario.system.name);
    let table = report::markdown(&title, &scenario.description, points);
    println!("{table}");
    std::fs::write(out.join("results.md"), &table)?;
    chart::write(&out.join("chart.svg"), &title, points)?;
    let failed: Vec<String> = points
        .iter()
        .filter(|p| p.checks != "ok")
        .map(|p| format!("{} at {}: {}", cpus_list(&p.cpus), p.offered, p.checks))
        .collect();
    let document = json!({
        "scenario": scenario.name,
        "description": scenario.description,
        "system": scenario.system.name,
        "duration_s": scenario.duration_s,
        "scenario_file": scenario_file,
        "points": results,
        "checks_failed": failed,
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&document)?,
    )?;
    eprintln!("run: results in {}", out.display());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "checks failed: {}",
            failed.join("; ")
        )))
    }
}

/// The addresses of one point.
struct Addrs {
    sink_grpc: SocketAddr,
    system_grpc: SocketAddr,
    system_http: SocketAddr,
    system_metrics: SocketAddr,
}

fn spawn_logged(
    name: &'static str,
    mut command: Command,
    cpus: &[usize],
    log: &Path,
) -> io::Result<Running> {
    let log = File::create(log)?;
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    process::pin(&mut command, cpus)?;
    let child = command
        .spawn()
        .map_err(|err| io::Error::other(format!("starting the {name}: {err}")))?;
    Ok(Running { name, child })
}

/// Waits for the sink's count to settle; returns (spans at the sink, when it last changed,
/// whether the wait timed out).
fn drain(
    progress: &Path,
    target: Option<u64>,
    settle: Duration,
    timeout: Duration,
    since: Instant,
) -> (u64, Instant, bool) {
    let read = || -> u64 {
        std::fs::read_to_string(progress)
            .ok()
            .and_then(|t| t.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    };
    let deadline = Instant::now() + timeout;
    let mut last = (read(), since.max(Instant::now()));
    loop {
        thread::sleep(DRAIN_POLL);
        let now = Instant::now();
        let spans = read();
        if spans != last.0 {
            last = (spans, now);
        }
        let quiet = if target.is_some_and(|t| spans >= t) {
            SETTLE_AT_TARGET
        } else {
            settle
        };
        if now - last.1 >= quiet {
            return (last.0, last.1, false);
        }
        if now >= deadline {
            return (last.0, last.1, true);
        }
    }
}

/// Runs one point of the sweep: `scenario`'s system on `cpus` at the load's `target` rate
/// (`None`: as fast as it goes), its files under `dir`; returns its JSON record and table row.
fn run_point(
    scenario: &Scenario,
    cpus: &[usize],
    rate_text: &str,
    target: Option<f64>,
    dir: &Path,
    instruments: &Instruments<'_>,
) -> io::Result<(Value, Point)> {
    let Instruments {
        exe,
        bin_dir,
        certs,
    } = *instruments;
    let addrs = Addrs {
        sink_grpc: process::free_addr()?,
        system_grpc: process::free_addr()?,
        system_http: process::free_addr()?,
        system_metrics: process::free_addr()?,
    };
    let files = PointFiles::in_dir(dir);
    let command = write_system_files(scenario, cpus, &addrs, &files, bin_dir, certs)?;
    // Both are stopped when dropped, on every error path too.
    let mut sink = start_sink(exe, scenario, &addrs, &files, certs)?;
    let (mut system, endpoint) = start_system(scenario, &command, cpus, &addrs, dir)?;
    let sampler = Sampler::start(system.child.id())?;

    let mut load_command = load_command(exe, scenario, endpoint, target, &files, certs)?;
    let load_start = Instant::now();
    let status = load_command.status()?;
    let load_end = Instant::now();
    if !status.success() {
        return Err(io::Error::other(format!("the load failed ({status})")));
    }
    let load_json = read_json(&files.load_report)?;
    // A compressed load builds its pool first: its clock, and the point's, start after that.
    let load_start =
        load_start + Duration::from_secs_f64(load_json["started_after_s"].as_f64().unwrap_or(0.0));
    let refused = field(&load_json, "spans_refused");
    let drain_target = (refused == 0).then(|| field(&load_json, "spans_kept_expected"));
    let (_, drained_at, drain_timed_out) = drain(
        &files.progress,
        drain_target,
        Duration::from_millis(scenario.drain.settle_ms),
        Duration::from_secs_f64(scenario.drain.timeout_s),
        load_end,
    );
    let samples = sampler.finish();
    // The system's own account of the point, when it serves one (tailgate's /metrics: what
    // stress relief or early decisions did, what the buffers held), for the record.
    if let Ok(page) = process::scrape_metrics(addrs.system_metrics) {
        std::fs::write(dir.join("system-metrics.txt"), page)?;
    }
    let system_status = system.stop()?;
    drop(system);
    sink.stop()?;
    drop(sink);
    let measured = Measured {
        sink_json: read_json(&files.sink_report)?,
        load_json,
        samples,
        load_start,
        load_end,
        drained_at,
        drain_timed_out,
    };
    Ok(measured.report(scenario, cpus, rate_text, target, &command, system_status))
}

/// The files of one point, in its directory.
struct PointFiles {
    dir: PathBuf,
    config: PathBuf,
    sink_report: PathBuf,
    expect: PathBuf,
    progress: PathBuf,
    load_report: PathBuf,
}

impl PointFiles {
    fn in_dir(dir: &Path) -> PointFiles {
        PointFiles {
            dir: dir.to_path_buf(),
            config: dir.join("config.yaml"),
            sink_report: dir.join("sink.json"),
            expect: dir.join("expect.bin"),
            progress: dir.join("sink.progress"),
            load_report: dir.join("load.json"),
        }
    }
}

/// Writes the system's config (when the scenario has one) and its command line, with the
/// point's addresses, CPUs and paths (and the run's certificates, when it has some) filled in;
/// returns the command line.
fn write_system_files(
    scenario: &Scenario,
    cpus: &[usize],
    addrs: &Addrs,
    files: &PointFiles,
    bin_dir: &Path,
    certs: Option<&CertFiles>,
) -> io::Result<String> {
    let dir = &files.dir;
    let cpu_yaml = format!("[{}]", cpus_list(cpus).replace(',', ", "));
    let mut values = BTreeMap::from([
        ("bin_dir", bin_dir.display().to_string()),
        ("work_dir", dir.display().to_string()),
        ("config_file", files.config.display().to_string()),
        ("sink_grpc", addrs.sink_grpc.to_string()),
        ("system_grpc", addrs.system_grpc.to_string()),
        ("system_http", addrs.system_http.to_string()),
        ("system_metrics", addrs.system_metrics.to_string()),
        ("system_cpus", cpu_yaml),
        ("system_cpu_list", cpus_list(cpus)),
    ]);
    if let Some(certs) = certs {
        for (name, path) in [
            ("tls_ca", &certs.ca),
            ("tls_server_cert", &certs.server_cert),
            ("tls_server_key", &certs.server_key),
            ("tls_client_cert", &certs.client_cert),
            ("tls_client_key", &certs.client_key),
        ] {
            values.insert(name, path.display().to_string());
        }
    }
    let substitute = |text: &str| {
        scenario::substitute(text, &values).map_err(|err| {
            if err.contains("${tls_") {
                invalid(format!(
                    "{err}: certificates are made for a scenario with `tls:`"
                ))
            } else {
                invalid(err)
            }
        })
    };
    if let Some(config) = &scenario.system.config {
        std::fs::write(&files.config, substitute(config)?)?;
    }
    let command = substitute(&scenario.system.command)?;
    std::fs::write(dir.join("command.sh"), format!("{command}\n"))?;
    Ok(command)
}

/// Starts the sink on its CPUs (serving TLS with `certs` when the scenario puts TLS on its link)
/// and waits until it listens.
fn start_sink(
    exe: &Path,
    scenario: &Scenario,
    addrs: &Addrs,
    files: &PointFiles,
    certs: Option<&CertFiles>,
) -> io::Result<Running> {
    let mut sink_command = Command::new(exe);
    sink_command
        .env(INSTRUMENT_PURGE.0, INSTRUMENT_PURGE.1)
        .arg("sink")
        .args(["--listen", &addrs.sink_grpc.to_string()])
        .args(cpu_flag(&scenario.cpus.sink))
        .arg("--report")
        .arg(&files.sink_report)
        .arg("--expect")
        .arg(&files.expect)
        .arg("--progress-file")
        .arg(&files.progress);
    if let Some(certs) = certs.filter(|_| scenario.tls.sink) {
        sink_command
            .arg("--tls-cert")
            .arg(&certs.server_cert)
            .arg("--tls-key")
            .arg(&certs.server_key);
        if scenario.tls.client_certs {
            sink_command.arg("--tls-client-ca").arg(&certs.ca);
        }
    }
    let log = files.dir.join("sink.log");
    let mut sink = spawn_logged("sink", sink_command, &scenario.cpus.sink, &log)?;
    process::wait_listening(addrs.sink_grpc, SINK_READY_TIMEOUT, &mut sink.child)
        .map_err(|err| io::Error::other(format!("sink: {err}")))?;
    Ok(sink)
}

/// Starts the system under test on `cpus` and waits until it listens on the endpoint the load
/// sends to; returns it and that endpoint.
fn start_system(
    scenario: &Scenario,
    command: &str,
    cpus: &[usize],
    addrs: &Addrs,
    dir: &Path,
) -> io::Result<(Running, SocketAddr)> {
    let mut system_command = Command::new("sh");
    system_command.arg("-c").arg(format!("exec {command}"));
    let mut system = spawn_logged("system", system_command, cpus, &dir.join("system.log"))?;
    let endpoint = if scenario.load.protocol == "grpc" {
        addrs.system_grpc
    } else {
        addrs.system_http
    };
    process::wait_listening(
        endpoint,
        Duration::from_secs_f64(scenario.system.ready_timeout_s),
        &mut system.child,
    )
    .map_err(|err| {
        io::Error::other(format!(
            "{}: {err} (see {})",
            scenario.system.name,
            dir.join("system.log").display()
        ))
    })?;
    Ok((system, endpoint))
}

/// The load's command line, pinned and niced, sending to `endpoint` at `target` spans a second
/// (over TLS, trusting `certs`' authority, when the scenario puts TLS on its link).
fn load_command(
    exe: &Path,
    scenario: &Scenario,
    endpoint: SocketAddr,
    target: Option<f64>,
    files: &PointFiles,
    certs: Option<&CertFiles>,
) -> io::Result<Command> {
    let load = &scenario.load;
    let tls = certs.filter(|_| scenario.tls.load);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut load_command = Command::new(exe);
    load_command
        .env(INSTRUMENT_PURGE.0, INSTRUMENT_PURGE.1)
        .arg("load")
        .args(["--endpoint", &format!("{scheme}://{endpoint}")])
        .args(["--protocol", &load.protocol])
        .args(["--connections", &load.connections.to_string()])
        .args([
            "--rate",
            &target.map_or("max".to_string(), |r| format!("{r:.0}")),
        ])
        .args(["--duration", &scenario.duration_s.to_string()])
        .args(["--spans-per-request", &load.spans_per_request.to_string()])
        .args(cpu_flag(&scenario.cpus.load))
        .args(["--trace-spread-ms", &load.trace_spread_ms.to_string()])
        .args(["--oracle-policy", &load.oracle_policy])
        .arg("--report")
        .arg(&files.load_report)
        .arg("--expect-out")
        .arg(&files.expect)
        .stdout(File::create(files.dir.join("load.out"))?);
    if let Some(certs) = tls {
        load_command.arg("--tls-ca").arg(&certs.ca);
        if scenario.tls.client_certs {
            load_command
                .arg("--tls-cert")
                .arg(&certs.client_cert)
                .arg("--tls-key")
                .arg(&certs.client_key);
        }
    }
    if let Some(compression) = &load.compression {
        load_command.args(["--compression", compression]);
    }
    if let Some(corpus) = &load.corpus {
        load_command.args(["--corpus", corpus]);
    }
    if let Some(level) = load.compression_level {
        load_command.args(["--compression-level", &level.to_string()]);
    }
    if let Some(bytes) = load.frame_size {
        load_command.args(["--frame-size", &bytes.to_string()]);
    }
    if load.tenants > 0 {
        load_command.args(["--tenants", &load.tenants.to_string()]);
    }
    if let Some(rate) = load.pool_rate {
        load_command.args(["--pool-rate", &rate.to_string()]);
    }
    if let Some(spans) = load.pool_spans {
        load_command.args(["--pool-spans", &spans.to_string()]);
    }
    if let Some(seed) = load.seed {
        load_command.args(["--seed", &seed.to_string()]);
    }
    if let Some(rate) = load.error_rate {
        load_command.args(["--error-rate", &rate.to_string()]);
    }
    if let Some(rate) = load.slow_rate {
        load_command.args(["--slow-rate", &rate.to_string()]);
    }
    process::pin(&mut load_command, &scenario.cpus.load)?;
    process::nice(&mut load_command, LOAD_NICENESS);
    Ok(load_command)
}

/// A counter of a report, 0 when absent.
fn field(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A point's figures, from its samples and the load's report.
#[derive(Clone, Copy)]
struct Figures {
    /// From the load's start to the moment the sink's count last changed.
    through: Duration,
    /// The system's CPU time over `through`.
    cpu_s: f64,
    peak_rss: u64,
    /// Spans accepted over `through`, a second.
    end_to_end: f64,
    /// From the scenario's `steady_after_s` to the load's last whole second: spans accepted a
    /// second and the system's CPU nanoseconds a span.
    steady: Option<(f64, f64)>,
}

/// What one point measured: the load's and the sink's reports, the system's samples, and when
/// the load ran and the export drained.
struct Measured {
    load_json: Value,
    sink_json: Value,
    samples: Vec<Sample>,
    load_start: Instant,
    load_end: Instant,
    drained_at: Instant,
    drain_timed_out: bool,
}

impl Measured {
    /// The point's JSON record and table row.
    fn report(
        self,
        scenario: &Scenario,
        cpus: &[usize],
        rate_text: &str,
        target: Option<f64>,
        command: &str,
        system_status: std::process::ExitStatus,
    ) -> (Value, Point) {
        let figures = self.figures(scenario.steady_after_s);
        let Figures {
            through,
            cpu_s,
            peak_rss,
            end_to_end,
            steady,
        } = figures;
        let checks = self.checks(scenario, peak_rss);
        let failed: Vec<&str> = checks
            .iter()
            .filter(|(_, ok)| !**ok)
            .map(|(name, _)| *name)
            .collect();
        let point = self.point(scenario, cpus, rate_text, target, &figures, &failed);
        let result = json!({
            "system": scenario.system.name,
            "system_cpus": cpus,
            "sink_cpus": scenario.cpus.sink,
            "load_cpus": scenario.cpus.load,
            "command": command,
            "tls": scenario.tls,
            "offered": rate_text,
            "rate_target_spans_per_s": target,
            "end_to_end_spans_per_s": end_to_end,
            "all_exported_after_s": through.as_secs_f64(),
            "drain_timed_out": self.drain_timed_out,
            "system_cpu_s": cpu_s,
            "system_cpu_ns_per_span": point.system_cpu_ns_per_span,
            "steady_after_s": scenario.steady_after_s,
            "steady_spans_per_s": steady.map(|s| s.0),
            "steady_system_cpu_ns_per_span": steady.map(|s| s.1),
            "wire_bytes_per_span_in": point.load_wire_bytes_per_span,
            "wire_bytes_per_span_out": point.sink_wire_bytes_per_span,
            "system_peak_rss_mib": mib(peak_rss),
            "system_exit": system_status.to_string(),
            "checks": checks,
            "checks_passed": failed.is_empty(),
            "load": self.load_json,
            "sink": self.sink_json,
            "samples_t_s_cpu_s_rss_mib": self.timeline(),
        });
        (result, point)
    }

    /// The scenario's checks, each passed or not; `drained` only when the drain timed out.
    fn checks(&self, scenario: &Scenario, peak_rss: u64) -> BTreeMap<&'static str, bool> {
        let (load_json, sink_json) = (&self.load_json, &self.sink_json);
        let accepted = field(load_json, "spans_accepted");
        let pass_through = scenario.load.oracle_policy.trim() == "always";
        let no_loss = if pass_through {
            field(sink_json, "spans_received") == accepted && field(sink_json, "duplicates") == 0
        } else {
            field(sink_json, "kept_traces_partial") == 0
                && field(sink_json, "kept_traces_missing") == 0
        };
        let mut checks = BTreeMap::new();
        if scenario.checks.verified {
            checks.insert("verified", sink_json["verified"] == true);
        }
        if scenario.checks.no_loss {
            checks.insert("no_loss", no_loss);
        }
        if scenario.checks.complete {
            checks.insert(
                "complete",
                field(sink_json, "kept_traces_partial") == 0
                    && field(sink_json, "traces_kept_wrongly") == 0
                    && field(sink_json, "traces_unknown") == 0
                    && field(sink_json, "duplicated_spans") == 0,
            );
        }
        if scenario.checks.refusals {
            checks.insert("refusals", field(load_json, "spans_refused") > 0);
        }
        if let Some(max) = scenario.checks.rss_max_mib {
            checks.insert("rss_max_mib", mib(peak_rss) <= max);
        }
        if self.drain_timed_out {
            checks.insert("drained", false);
        }
        checks
    }

    /// The figures the point is judged by: end to end over load start -> drained; and, with
    /// `steady_after` seconds, the steady state's.
    fn figures(&self, steady_after: Option<f64>) -> Figures {
        let accepted = field(&self.load_json, "spans_accepted");
        let through = self.drained_at.max(self.load_end) - self.load_start;
        let cpu_s = match (
            process::sample_at(&self.samples, self.load_start),
            process::sample_after(&self.samples, self.drained_at.max(self.load_end)),
        ) {
            (Some(a), Some(b)) => b.cpu_s - a.cpu_s,
            _ => 0.0,
        };
        Figures {
            through,
            cpu_s,
            peak_rss: self.samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
            end_to_end: accepted as f64 / through.as_secs_f64(),
            steady: steady_after.and_then(|after| self.steady(after)),
        }
    }

    /// Spans accepted a second and the system's CPU nanoseconds a span from the load's first
    /// whole second at or after `after` to its last whole second; `None` when the load did not
    /// run that long.
    fn steady(&self, after: f64) -> Option<(f64, f64)> {
        let seconds: Vec<(f64, u64)> = self.load_json["accepted_by_second"]
            .as_array()?
            .iter()
            .filter_map(|p| Some((p[0].as_f64()?, p[1].as_u64()?)))
            .collect();
        let &(from, accepted_from) = seconds.iter().find(|(t, _)| *t >= after)?;
        let &(to, accepted_to) = seconds.last()?;
        if to <= from || accepted_to <= accepted_from {
            return None;
        }
        let at = |t: f64| self.load_start + Duration::from_secs_f64(t);
        let cpu_s = process::sample_after(&self.samples, at(to))?.cpu_s
            - process::sample_at(&self.samples, at(from))?.cpu_s;
        let spans = (accepted_to - accepted_from) as f64;
        Some((spans / (to - from), cpu_s * 1e9 / spans))
    }

    /// The point's row of the results table.
    fn point(
        &self,
        scenario: &Scenario,
        cpus: &[usize],
        rate_text: &str,
        target: Option<f64>,
        figures: &Figures,
        failed: &[&str],
    ) -> Point {
        let Figures {
            cpu_s,
            peak_rss,
            end_to_end,
            ..
        } = *figures;
        let (load_json, sink_json) = (&self.load_json, &self.sink_json);
        let accepted = field(load_json, "spans_accepted");
        let latency = |q: &str| load_json["latency_us"][q].as_u64().unwrap_or(0);
        let untracked = field(sink_json, "spans_untracked");
        let verdict = if untracked > 0 {
            // Traces past the sink's tracking limit are not judged; calling them missing
            // would blame the system for the rig's bound.
            format!(
                "not judged: {untracked} spans arrived past the sink's tracking limit (a shorter \
                 run fits it)"
            )
        } else {
            format!(
                "{}/{} kept complete, {} partial, {} missing, {} wrongly kept, {} dup",
                field(sink_json, "kept_traces_complete"),
                field(sink_json, "expected_traces_kept"),
                field(sink_json, "kept_traces_partial"),
                field(sink_json, "kept_traces_missing"),
                field(sink_json, "traces_kept_wrongly"),
                field(sink_json, "duplicates"),
            )
        };
        Point {
            system: scenario.system.name.clone(),
            cpus: cpus.to_vec(),
            offered: rate_text.to_string(),
            offered_spans_per_s: target
                .unwrap_or_else(|| load_json["spans_per_s"].as_f64().unwrap_or(0.0)),
            spans_sent: field(load_json, "spans_sent"),
            spans_accepted: accepted,
            spans_refused: field(load_json, "spans_refused"),
            spans_at_sink: field(sink_json, "spans_received"),
            end_to_end_spans_per_s: end_to_end,
            latency_us_p50: latency("p50"),
            latency_us_p99: latency("p99"),
            latency_us_p999: latency("p999"),
            system_cpu_ns_per_span: cpu_s * 1e9 / accepted.max(1) as f64,
            steady: figures.steady,
            load_wire_bytes_per_span: load_json["wire_bytes_per_span"].as_f64().unwrap_or(0.0),
            sink_wire_bytes_per_span: sink_json["wire_bytes_per_span"].as_f64().unwrap_or(0.0),
            peak_rss_mib: mib(peak_rss),
            verdict,
            checks: if failed.is_empty() {
                "ok".into()
            } else {
                format!("FAILED: {}", failed.join(", "))
            },
        }
    }

    /// The system's samples as (seconds since the load started, CPU seconds, RSS MiB).
    fn timeline(&self) -> Vec<Value> {
        let load_start = self.load_start;
        self.samples
            .iter()
            .map(|s: &Sample| {
                json!([
                    s.at.saturating_duration_since(load_start).as_secs_f64()
                        - load_start.saturating_duration_since(s.at).as_secs_f64(),
                    s.cpu_s,
                    mib(s.rss_bytes)
                ])
            })
            .collect()
    }
}

/// Says why scenario `name` is skipped, and records it as its result in `out`.
fn skip(name: &str, out: &std::path::Path, reason: &str) -> io::Result<()> {
    println!("{name}: skipped: {reason}");
    let result = json!({"scenario": name, "skipped": reason});
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&result)?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(command: &Command) -> Vec<String> {
        command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// realistic-tls.yaml's configuration gets the run's certificates where the Collector's
    /// layout puts them, and the load and the sink are started with their TLS flags.
    #[test]
    fn a_tls_scenario_hands_its_certificates_to_the_system_the_load_and_the_sink() {
        let dir =
            std::env::temp_dir().join(format!("tailgate-bench-run-tls-{}", std::process::id()));
        let certs = certs::write_set(&dir.join("tls"), &TLS_HOSTS).unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/realistic-tls.yaml");
        let scenario = Scenario::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(scenario.tls.load && scenario.tls.sink && !scenario.tls.client_certs);
        let addrs = Addrs {
            sink_grpc: "127.0.0.1:14317".parse().unwrap(),
            system_grpc: "127.0.0.1:24317".parse().unwrap(),
            system_http: "127.0.0.1:24318".parse().unwrap(),
            system_metrics: "127.0.0.1:28888".parse().unwrap(),
        };
        let files = PointFiles::in_dir(&dir);
        write_system_files(&scenario, &[0, 1], &addrs, &files, &dir, Some(&certs)).unwrap();
        let config: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(&files.config).unwrap()).unwrap();
        let text = |v: &serde_norway::Value| v.as_str().map(str::to_string);
        let path = |p: &Path| Some(p.display().to_string());
        let grpc = &config["receivers"]["otlp"]["protocols"]["grpc"];
        assert_eq!(text(&grpc["endpoint"]), Some("127.0.0.1:24317".into()));
        assert_eq!(text(&grpc["tls"]["cert_file"]), path(&certs.server_cert));
        assert_eq!(text(&grpc["tls"]["key_file"]), path(&certs.server_key));
        let exporter = &config["exporters"]["otlp"];
        assert_eq!(text(&exporter["endpoint"]), Some("127.0.0.1:14317".into()));
        assert_eq!(text(&exporter["tls"]["ca_file"]), path(&certs.ca));
        assert!(exporter["tls"].get("insecure").is_none(), "{config:?}");

        let exe = Path::new("tailgate-bench");
        let load = load_command(
            exe,
            &scenario,
            addrs.system_grpc,
            None,
            &files,
            Some(&certs),
        );
        let load = args_of(&load.unwrap());
        assert!(load
            .windows(2)
            .any(|w| w == ["--endpoint", "https://127.0.0.1:24317"]));
        let ca = certs.ca.display().to_string();
        assert!(
            load.windows(2).any(|w| w[0] == "--tls-ca" && w[1] == ca),
            "{load:?}"
        );
        assert!(!load.contains(&"--tls-cert".to_string()), "{load:?}");
        // realistic.yaml, the same load in the clear.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/realistic.yaml");
        let plain = Scenario::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        let load = load_command(exe, &plain, addrs.system_grpc, None, &files, None);
        let load = args_of(&load.unwrap());
        assert!(load
            .windows(2)
            .any(|w| w == ["--endpoint", "http://127.0.0.1:24317"]));
        assert!(!load.iter().any(|a| a.starts_with("--tls")), "{load:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A scenario without `tls:` that names a certificate is told where certificates come from.
    #[test]
    fn a_certificate_without_tls_is_an_error_that_says_so() {
        let scenario = Scenario::parse(
            "name: x\ncpus: {sink: 0, load: 0, system: [0]}\n\
             system: {name: t, command: \"run --cert ${tls_server_cert}\"}\n",
        )
        .unwrap();
        let dir =
            std::env::temp_dir().join(format!("tailgate-bench-run-notls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let addrs = Addrs {
            sink_grpc: addr,
            system_grpc: addr,
            system_http: addr,
            system_metrics: addr,
        };
        let files = PointFiles::in_dir(&dir);
        let err = write_system_files(&scenario, &[0], &addrs, &files, &dir, None).unwrap_err();
        assert!(err.to_string().contains("a scenario with `tls:`"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_cpu_is_cpu_and_more_are_cpus() {
        assert_eq!(cpu_flag(&[3]), ["--cpu", "3"]);
        assert_eq!(cpu_flag(&[8, 9]), ["--cpus", "8,9"]);
    }

    /// A load of 4 seconds whose first second is slow: the steady state counts from second 2
    /// to second 4, spans and CPU alike.
    #[test]
    fn the_steady_state_counts_from_its_first_whole_second() {
        let start = Instant::now();
        let sample = |t: f64, cpu_s: f64| Sample {
            at: start + Duration::from_secs_f64(t),
            cpu_s,
            rss_bytes: 0,
        };
        let measured = Measured {
            load_json: json!({
                "spans_accepted": 4_000,
                "accepted_by_second": [[1.0, 500], [2.0, 1_500], [3.0, 2_700], [4.0, 4_000]],
            }),
            sink_json: json!({}),
            samples: (0..=50)
                .map(|i| {
                    let t = i as f64 / 10.0;
                    // 1 CPU-second in the first second, 0.5 a second after it.
                    sample(t, if t <= 1.0 { t } else { 1.0 + (t - 1.0) / 2.0 })
                })
                .collect(),
            load_start: start,
            load_end: start + Duration::from_secs(4),
            drained_at: start + Duration::from_secs(5),
            drain_timed_out: false,
        };
        let (rate, ns) = measured.steady(1.5).expect("a steady state");
        assert_eq!(rate, 1_250.0);
        // 1 CPU-second from t=2 to t=4 over 2,500 spans.
        assert!((ns - 400_000.0).abs() < 1.0, "{ns}");
        assert!(
            measured.steady(4.5).is_none(),
            "no whole second after 4.5 s"
        );
        assert!(measured.figures(None).steady.is_none());
    }
}
