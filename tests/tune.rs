//! `tailgate tune`: the profile it writes for each recorded machine under `tuning/fixtures/`
//! (built by `tuning/fixtures/make-fixtures.py`), compared byte for byte with the fixture's
//! reviewed `expected.yaml`; the shipped profiles in `tuning/` against the fixtures they were
//! made from, so neither can drift from what `tune` prints; and a run on this machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tailgate"))
        .arg("tune")
        .args(args)
        .output()
        .unwrap()
}

fn fixture(shape: &str) -> String {
    repo()
        .join("tuning/fixtures")
        .join(shape)
        .to_str()
        .unwrap()
        .to_string()
}

/// The profile `tune` prints for `shape` with `extra` arguments, after checking it exited 0.
fn profile(shape: &str, extra: &[&str]) -> String {
    let root = fixture(shape);
    let mut args = vec!["--sysfs-root", root.as_str()];
    args.extend_from_slice(extra);
    let out = tune(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{shape}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn expected(shape: &str) -> String {
    std::fs::read_to_string(
        repo()
            .join("tuning/fixtures")
            .join(shape)
            .join("expected.yaml"),
    )
    .unwrap()
}

fn assert_plan(shape: &str, extra: &[&str]) {
    let printed = profile(shape, extra);
    assert_eq!(
        printed,
        expected(shape),
        "{shape}: `tune` no longer prints the reviewed expected.yaml; if the change is meant, \
         review the new output and commit it"
    );
}

#[test]
fn vm_with_two_cpus_shares_both_between_interrupts_and_shards() {
    assert_plan("vm-2cpu", &[]);
    let printed = profile("vm-2cpu", &[]);
    assert!(printed.contains("  cpus: all\n  irq_cpus: [0, 1]\n"));
}

#[test]
fn sixteen_core_server_leaves_one_core_with_its_sibling_for_interrupts() {
    assert_plan("server-16c-smt", &[]);
    assert!(profile("server-16c-smt", &[]).contains("  irq_cpus: [0, 16]\n"));
}

#[test]
fn two_socket_server_leaves_two_cores_per_node() {
    assert_plan("numa-2s-64c", &[]);
    let printed = profile("numa-2s-64c", &[]);
    assert!(printed.contains("  irq_cpus: [0, 1, 32, 33, 64, 65, 96, 97]\n"));
    assert!(printed.contains("  numa_bind: true\n"));
}

#[test]
fn four_cores_leave_one_thread() {
    assert_plan("small-4core-smt", &[]);
    assert!(profile("small-4core-smt", &[]).contains("  irq_cpus: [0]\n"));
}

#[test]
fn a_cgroup_cpuset_narrows_the_machine() {
    assert_plan("cgroup-cpuset", &[]);
    let printed = profile("cgroup-cpuset", &[]);
    assert!(printed.contains("  irq_cpus: [4, 20]\n"));
    assert!(printed.contains("  cpus: [5, 6, 7, 8, 9, 10, 11, 21, 22, 23, 24, 25, 26, 27]\n"));
}

#[test]
fn asymmetric_numa_is_refused_without_irq_cpus_and_planned_with_them() {
    let root = fixture("numa-asymmetric");
    let out = tune(&["--sysfs-root", &root]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("asymmetric NUMA (node 0: 12 cores, 12 threads; node 1: 4 cores, 4 threads)")
            && stderr.contains("--irq-cpus"),
        "{stderr}"
    );
    assert_plan("numa-asymmetric", &["--irq-cpus", "0,12"]);
}

#[test]
fn bad_arguments_and_trees_exit_1_with_one_line() {
    let root = fixture("vm-2cpu");
    for (args, says) in [
        (
            vec!["--sysfs-root", &root, "--irq-cpus", "0-x"],
            "--irq-cpus: `0-x`",
        ),
        (
            vec!["--sysfs-root", &root, "--irq-cpus", "5"],
            "not usable here",
        ),
        (
            vec!["--sysfs-root", "/nonexistent/tree"],
            "sys/devices/system/cpu/online",
        ),
    ] {
        let out = tune(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("tailgate tune: ") && stderr.contains(says),
            "{stderr}"
        );
    }
}

#[test]
fn busy_poll_sets_the_spin() {
    let printed = profile("server-16c-smt", &["--busy-poll"]);
    assert!(printed.contains("  spin_before_park_us: 50\n"));
    assert!(printed.contains("(--busy-poll)"));
}

#[test]
fn out_writes_the_profile_to_the_file() {
    let path: PathBuf =
        std::env::temp_dir().join(format!("tailgate-tune-{}.yaml", std::process::id()));
    let root = fixture("server-16c-smt");
    let out = tune(&["--sysfs-root", &root, "--out", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(written, expected("server-16c-smt"));
}

#[test]
fn shipped_profiles_are_what_tune_prints_for_their_machines() {
    for (shipped, shape) in [
        ("vm-2core.yaml", "vm-2cpu"),
        ("server-16core.yaml", "server-16c-smt"),
        ("numa-2socket-64core.yaml", "numa-2s-64c"),
    ] {
        let text = std::fs::read_to_string(repo().join("tuning").join(shipped)).unwrap();
        assert_eq!(
            text,
            profile(shape, &[]),
            "tuning/{shipped} differs from `tailgate tune --sysfs-root tuning/fixtures/{shape}`"
        );
    }
}

#[test]
fn this_machine_gets_a_profile_that_parses() {
    let out = tune(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_norway::Value = serde_norway::from_slice(&out.stdout).unwrap();
    let shards = value
        .get("shards")
        .and_then(serde_norway::Value::as_mapping)
        .expect("a `shards` map");
    for key in [
        "cpus",
        "irq_cpus",
        "numa_bind",
        "memory_per_shard_mib",
        "ring_depth",
    ] {
        assert!(shards.contains_key(key), "no `{key}`");
    }
}
