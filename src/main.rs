//! The `tailgate` gateway binary.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    println!(
        "tailgate {}: the OTLP wire layer is built; the gateway is not yet.\n\
         When it is, this command will run one shard per CPU, receive OTLP on 0.0.0.0:4317 (gRPC) \
         and 0.0.0.0:4318 (HTTP), route every span to the shard owning its trace, keep errors, \
         slow traces and 10% of the rest, and print a summary of each exported batch.",
        env!("CARGO_PKG_VERSION")
    );
}
