//! The `tailgate` gateway binary.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use tailgate::config::{Config, FeatureGates, LogLevel};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// tailgate: a thread-per-core OTLP gateway with trace-consistent tail sampling.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration file (the Collector's YAML layout); without it, the embedded default.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The Collector's feature gates: `ID`, `+ID` (on) or `-ID` (off), comma-separated; may be
    /// given more than once. tailgate has `processor.tailsamplingprocessor.usetracestate`.
    #[arg(long = "feature-gates", global = true, value_name = "GATES")]
    feature_gates: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate a configuration file with the checks start-up runs, and exit 0 if it is valid,
    /// 1 if not. What depends on this machine (CPUs, memory, free ports, name resolution) is
    /// printed as `note: on this machine: ...` and does not fail the check.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Check this machine against what the gateway needs (io_uring, limits, network sysctls,
    /// huge pages, CPU governor, clock source, shard CPUs, NUMA), with a fix for each finding.
    /// Exits 0 when all is ok, 1 with warnings, 2 with failures.
    Doctor {
        /// Print the findings as a JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Read /proc and /sys files under this directory instead of / (io_uring, limits and
        /// the affinity mask are always this process's own).
        #[arg(long, value_name = "DIR", default_value = "/")]
        sysfs_root: PathBuf,
    },
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

fn init_logs(level: LogLevel) {
    let level = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let gates = match feature_gates(&cli.feature_gates) {
        Ok(gates) => gates,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Doctor { json, sysfs_root }) => {
            let config = match load(cli.config.as_ref(), gates) {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("{err}");
                    return ExitCode::from(2);
                }
            };
            let report = tailgate::doctor::run(&config, &sysfs_root);
            if json {
                println!("{}", tailgate::doctor::render_json(&report));
            } else {
                print!("{}", tailgate::doctor::render_text(&report));
            }
            ExitCode::from(report.exit_code())
        }
        Some(Command::CheckConfig { file }) => {
            let checked = load(Some(&file), gates).and_then(|config| {
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
        Some(Command::Run) | None => {
            let config = match load(cli.config.as_ref(), gates) {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("{err}");
                    return ExitCode::FAILURE;
                }
            };
            init_logs(config.service.telemetry.logs.level);
            match tailgate::gateway::run(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("tailgate: {err}");
                    ExitCode::from(err.exit_code())
                }
            }
        }
    }
}
