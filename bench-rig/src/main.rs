//! `tailgate-bench`: the load generator, verifying sink and scenario runner.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    println!(
        "tailgate-bench {}: not built yet. It will generate OTLP load (`load`), receive and verify \
         what a gateway forwards (`sink`), measure the cost of reading the same bytes from a socket \
         (`floor`) and run whole scenarios against tailgate and its peers (`run`). Until then the \
         wire-layer benchmark is `cargo bench --bench wire`.",
        env!("CARGO_PKG_VERSION")
    );
}
