//! The `tailgate` gateway binary.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mimalloc::MiMalloc;
use tailgate::config::{Config, FeatureGates, LogLevel, TelemetryLogs};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// tailgate: a thread-per-core OTLP gateway with trace-consistent tail sampling.
///
/// Without a subcommand it runs the gateway, as `run` does.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// What running the gateway takes.
#[derive(Args)]
struct RunArgs {
    /// The configuration file (the Collector's YAML layout); without it, the embedded default.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    gates: GateArgs,
}

/// The Collector's `--feature-gates` flag.
#[derive(Args)]
struct GateArgs {
    /// The Collector's feature gates: `ID`, `+ID` (on) or `-ID` (off), comma-separated; may be
    /// given more than once. tailgate has `processor.tailsamplingprocessor.usetracestate`.
    #[arg(long = "feature-gates", value_name = "GATES")]
    feature_gates: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run(RunArgs),
    /// Validate a configuration file with the checks start-up runs, and exit 0 if it is valid,
    /// 1 if not. What depends on this machine (CPUs, memory, free ports, name resolution) is
    /// printed as `note: on this machine: ...` and does not fail the check.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
        #[command(flatten)]
        gates: GateArgs,
    },
    /// Print the embedded default configuration (what runs without --config), to start a file
    /// of your own from.
    PrintDefaultConfig,
    /// Check this machine against what the gateway needs (io_uring, limits, network sysctls,
    /// huge pages, CPU governor, clock source, shard CPUs, NUMA), with a fix for each finding.
    /// Exits 0 when all is ok, 1 with warnings, 2 with failures.
    Doctor {
        /// The configuration whose shards (CPUs, profile) are checked; without it, the
        /// embedded default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the findings as a JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Read /proc and /sys files under this directory instead of / (io_uring, limits and
        /// the affinity mask are always this process's own).
        #[arg(long, value_name = "DIR", default_value = "/")]
        sysfs_root: PathBuf,
    },
    /// Read this machine's CPUs, NUMA nodes and NIC interrupts and write a tuning profile: which
    /// CPUs take interrupts (ScyllaDB perftune.py's rule), which run shards, memory per shard.
    Tune {
        /// Write the profile to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Read the machine from this tree laid out like `/` (holding `sys/` and `proc/`), such
        /// as a recorded one under `tuning/fixtures/`.
        #[arg(long, value_name = "DIR", default_value = "/")]
        sysfs_root: PathBuf,
        /// The interrupt CPUs, as a list like `0,16` or `0-1,32-33`, instead of the rule's
        /// choice; needed on machines whose NUMA nodes differ in size.
        #[arg(long, value_name = "LIST")]
        irq_cpus: Option<String>,
        /// Busy-poll 50 µs before an idle shard parks: lower wake-up latency for more CPU.
        #[arg(long)]
        busy_poll: bool,
    },
}

/// `tailgate tune`: the profile to standard output or `out`; every failure is one line.
fn tune(
    out: Option<&PathBuf>,
    root: &std::path::Path,
    irq_cpus: Option<&str>,
    busy_poll: bool,
) -> Result<(), String> {
    let irq_cpus = irq_cpus
        .map(tailgate::tuning::CpuSet::parse)
        .transpose()
        .map_err(|err| format!("--irq-cpus: {err}"))?;
    let options = tailgate::tuning::Options {
        irq_cpus,
        busy_poll,
    };
    let profile = tailgate::tuning::tune(root, &options).map_err(|err| err.to_string())?;
    match out {
        Some(path) => std::fs::write(path, profile)
            .map_err(|err| format!("{}: cannot write: {err}", path.display())),
        // Not `print!`, which panics when the reader has gone (`tailgate tune | head`).
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), profile.as_bytes())
            .map_err(|err| format!("standard output: {err}")),
    }
}

fn load(path: Option<&PathBuf>, gates: FeatureGates) -> Result<Config, String> {
    let mut config = match path {
        Some(path) => Config::load(path).map_err(|err| err.to_string())?,
        None => Config::embedded_default(),
    };
    config.apply_feature_gates(gates);
    Ok(config)
}

fn feature_gates(values: &[String]) -> Result<FeatureGates, String> {
    let mut gates = FeatureGates::default();
    for value in values {
        gates.apply(value).map_err(|err| err.to_string())?;
    }
    Ok(gates)
}

fn init_logs(logs: &TelemetryLogs) {
    let level = match logs.level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    let ansi = !logs.json
        && if logs.to_stdout {
            std::io::stdout().is_terminal()
        } else {
            std::io::stderr().is_terminal()
        };
    let event_format = if logs.json {
        LineFormat::Json {
            initial: logs
                .initial_fields
                .iter()
                .map(|(name, value)| (name.clone(), serde_json::Value::from(value.as_str())))
                .collect(),
        }
    } else {
        LineFormat::Text {
            inner: tracing_subscriber::fmt::format()
                .with_target(false)
                .with_ansi(ansi),
            suffix: logs
                .initial_fields
                .iter()
                .map(|(name, value)| format!(" {name}={value:?}"))
                .collect(),
        }
    };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The log processors' queues fill from the first line; the gateway starts their pushers.
    let sizes: Vec<usize> = logs.exports.iter().map(|e| e.max_queue_size).collect();
    let exports = tailgate::telemetry::log_export::install(&sizes);
    let lines = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .event_format(event_format);
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::from_level(level))
        .with(exports);
    if logs.to_stdout {
        subscriber.with(lines.with_writer(std::io::stdout)).init();
    } else {
        subscriber.with(lines.with_writer(std::io::stderr)).init();
    }
}

/// The log's line format: `service.telemetry.logs.encoding` with its `initial_fields`.
enum LineFormat {
    /// `console`: tracing's text line with ` name="value"` for each initial field at the end.
    Text {
        inner: tracing_subscriber::fmt::format::Format,
        suffix: String,
    },
    /// `json`: one JSON object a line, the event's fields, the initial fields, then `level` and
    /// `ts` (which a field of the same name does not replace).
    Json {
        initial: serde_json::Map<String, serde_json::Value>,
    },
}

/// An event's fields as JSON members (`message` as `msg`, as zap names it).
struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl JsonFields<'_> {
    fn name(field: &tracing::field::Field) -> String {
        match field.name() {
            "message" => "msg".to_string(),
            name => name.to_string(),
        }
    }
}

impl tracing::field::Visit for JsonFields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(Self::name(field), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(Self::name(field), value.into());
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(Self::name(field), value.into());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(Self::name(field), value.into());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(Self::name(field), value.into());
    }
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for LineFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        match self {
            LineFormat::Json { initial } => {
                use tracing_subscriber::fmt::time::FormatTime;
                let mut ts = String::new();
                tracing_subscriber::fmt::time::SystemTime
                    .format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut ts))?;
                let mut line = serde_json::Map::new();
                event.record(&mut JsonFields(&mut line));
                for (name, value) in initial {
                    line.insert(name.clone(), value.clone());
                }
                let level = event.metadata().level().as_str().to_ascii_lowercase();
                line.insert("level".into(), level.into());
                line.insert("ts".into(), ts.into());
                writeln!(writer, "{}", serde_json::Value::Object(line))
            }
            LineFormat::Text { inner, suffix } if suffix.is_empty() => {
                inner.format_event(ctx, writer, event)
            }
            LineFormat::Text { inner, suffix } => {
                let mut line = String::new();
                inner.format_event(
                    ctx,
                    tracing_subscriber::fmt::format::Writer::new(&mut line),
                    event,
                )?;
                let body = line.strip_suffix('\n').unwrap_or(&line);
                writeln!(writer, "{body}{suffix}")
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::PrintDefaultConfig) => {
            print!("{}", Config::embedded_default_text());
            ExitCode::SUCCESS
        }
        Some(Command::CheckConfig { file, gates }) => check_config(&file, &gates),
        Some(Command::Doctor {
            config,
            json,
            sysfs_root,
        }) => doctor(config.as_ref(), json, &sysfs_root),
        Some(Command::Tune {
            out,
            sysfs_root,
            irq_cpus,
            busy_poll,
        }) => match tune(out.as_ref(), &sysfs_root, irq_cpus.as_deref(), busy_poll) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("tailgate tune: {err}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Run(args)) => run(&args),
        None => run(&cli.run),
    }
}

fn check_config(file: &PathBuf, gates: &GateArgs) -> ExitCode {
    let checked = feature_gates(&gates.feature_gates)
        .and_then(|gates| load(Some(file), gates))
        .and_then(|config| {
            let notes = tailgate::gateway::check_on_this_machine(&config)
                .map_err(|err| format!("{}: {err}", config.source))?;
            Ok((config, notes))
        });
    match checked {
        Ok((config, notes)) => {
            println!(
                "{}: valid ({} pipeline(s))",
                config.source,
                config.service.pipelines.len()
            );
            for note in notes {
                println!("note: on this machine: {note}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}

fn doctor(config: Option<&PathBuf>, json: bool, sysfs_root: &std::path::Path) -> ExitCode {
    let config = match load(config, FeatureGates::default()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    let report = tailgate::doctor::run(&config, sysfs_root);
    if json {
        println!("{}", tailgate::doctor::render_json(&report));
    } else {
        print!("{}", tailgate::doctor::render_text(&report));
    }
    ExitCode::from(report.exit_code())
}

fn run(args: &RunArgs) -> ExitCode {
    let loaded = feature_gates(&args.gates.feature_gates)
        .and_then(|gates| load(args.config.as_ref(), gates).map(|config| (config, gates)));
    let (config, gates) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    init_logs(&config.service.telemetry.logs);
    let code = match tailgate::gateway::run(&config, gates) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("tailgate: {err}");
            ExitCode::from(err.exit_code())
        }
    };
    // The log processors send what is queued, the line above among it.
    tailgate::telemetry::log_export::shutdown();
    code
}
