//! `tailgate-bench`: the load generator, verifying sink and scenario runner.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use tailgate_bench::floor::{self, FloorArgs};
use tailgate_bench::load::{self, LoadArgs};
use tailgate_bench::run::{self, RunArgs};
use tailgate_bench::sink::{self, SinkCommand};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[derive(Parser)]
#[command(version, about = "tailgate's benchmark instruments")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive OTLP (gRPC and HTTP), count spans and traces, and report on SIGTERM/SIGINT.
    Sink(SinkCommand),
    /// Send OTLP load at a fixed rate or at the maximum, and report what was accepted.
    Load(LoadArgs),
    /// Measure the CPU cost per span of only reading the load's gRPC bytes from a loopback socket.
    Floor(FloorArgs),
    /// Run a scenario file: sink, system under test and load, pinned and measured, for each
    /// point of its sweep; write a table, JSON and a chart.
    Run(RunArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sink(args) => sink::run(args),
        Command::Load(args) => load::run(args),
        Command::Floor(args) => floor::run(args),
        Command::Run(args) => run::run(args),
    };
    if let Err(err) = result {
        eprintln!("tailgate-bench: {err}");
        std::process::exit(1);
    }
}
