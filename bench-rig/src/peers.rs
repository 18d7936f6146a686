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

/// A Collector started on a configuration file for a test, its stderr in `log`; killed and
/// reaped (and its log removed) when dropped.
pub struct Collector {
    child: std::process::Child,
    log: PathBuf,
}

impl Collector {
    /// Starts `peers/otelcol` (from [`build`]'s folder) on `config`, writing its stderr to `log`.
    pub fn start(peers: &Path, config: &Path, log: PathBuf) -> std::io::Result<Collector> {
        Self::start_with(peers, config, log, &[] as &[&str])
    }

    /// [`Collector::start`] with further command-line arguments (`--feature-gates=...`).
    pub fn start_with(
        peers: &Path,
        config: &Path,
        log: PathBuf,
        args: &[impl AsRef<std::ffi::OsStr>],
    ) -> std::io::Result<Collector> {
        let child = Command::new(peers.join("otelcol"))
            .arg("--config")
            .arg(config)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Collector { child, log })
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
