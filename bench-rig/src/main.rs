//! `tailgate-bench`: the load generator, verifying sink and scenario runner.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use tailgate_bench::floor::{self, FloorArgs};
use tailgate_bench::handshakes::{self, HandshakeArgs};
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
    /// Open TLS connections and perform full TLS 1.3 handshakes (no resumption) as fast as the
    /// server takes them, or hold many open at once (`--hold`); report handshakes a second and
    /// failures by reason.
    Handshakes(HandshakeArgs),
    /// Write a private CA, a server certificate and a client certificate (ECDSA P-256, PEM)
    /// into a directory, for TLS tests and scenarios.
    Certs(CertsArgs),
}

#[derive(clap::Args)]
struct CertsArgs {
    /// The directory to write ca.pem, server.pem, server-key.pem, client.pem, client-key.pem.
    #[arg(long)]
    out: std::path::PathBuf,
    /// Names and addresses the server certificate is valid for.
    #[arg(long = "host", default_values = ["localhost", "127.0.0.1"])]
    hosts: Vec<String>,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sink(args) => sink::run(args),
        Command::Load(args) => load::run(args),
        Command::Floor(args) => floor::run(args),
        Command::Run(args) => run::run(args),
        Command::Handshakes(args) => handshakes::run(args),
        Command::Certs(args) => {
            let hosts: Vec<&str> = args.hosts.iter().map(String::as_str).collect();
            tailgate_bench::certs::write_set(&args.out, &hosts).map(|_| ())
        }
    };
    if let Err(err) = result {
        eprintln!("tailgate-bench: {err}");
        std::process::exit(1);
    }
}
