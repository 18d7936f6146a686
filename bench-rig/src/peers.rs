//! The peers built from their Go modules (`bench-rig/peers/`): the OpenTelemetry Collector and
//! telemetrygen, for the tests that run them (the rig's and the gateway's).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository this crate sits in.
fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench-rig sits in the repository")
}

/// Whether a Go toolchain is on PATH (the peers cannot be built without one).
pub fn go_on_path() -> bool {
    Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `bench-rig/peers/build.sh` (which skips what is up to date) and returns the folder of
/// the binaries, `target/peers`, or what the script said when it failed.
pub fn build() -> Result<PathBuf, String> {
    let output = Command::new("bash")
        .arg(repo_root().join("bench-rig/peers/build.sh"))
        .output()
        .map_err(|err| format!("cannot run bench-rig/peers/build.sh: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "build.sh failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(repo_root().join("target/peers"))
}
