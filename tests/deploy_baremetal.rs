//! The bare-metal kit (`deploy-baremetal/`): the IRQ-affinity script against a recorded
//! /proc and /sys tree, the install, rollback and uninstall scripts staged under a root folder
//! with the real binary, and the unit and scripts through `systemd-analyze verify` and
//! `shellcheck` (which `.ci/run` installs from Debian's packages).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy-baremetal")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tailgate-deploy-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run<S: AsRef<std::ffi::OsStr>>(script: &str, args: &[S]) -> Output {
    Command::new("bash")
        .arg(kit().join(script))
        .args(args)
        .output()
        .expect("bash runs")
}

fn text_of(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A machine with a 4-queue NIC (IRQs 40-43), a 2-IRQ NIC (50, 51), and loopback.
fn fake_machine(root: &Path) {
    for (nic, irqs) in [("eth0", vec![40, 41, 42, 43]), ("eth1", vec![50, 51])] {
        let dir = root.join(format!("sys/class/net/{nic}/device/msi_irqs"));
        std::fs::create_dir_all(&dir).unwrap();
        for irq in irqs {
            std::fs::write(dir.join(irq.to_string()), "msi\n").unwrap();
            let proc_dir = root.join(format!("proc/irq/{irq}"));
            std::fs::create_dir_all(&proc_dir).unwrap();
            std::fs::write(proc_dir.join("smp_affinity_list"), "0-15\n").unwrap();
        }
    }
    std::fs::create_dir_all(root.join("sys/class/net/lo")).unwrap();
}

fn affinity(root: &Path, irq: u32) -> String {
    std::fs::read_to_string(root.join(format!("proc/irq/{irq}/smp_affinity_list")))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn irq_affinity_applies_the_profiles_plan_round_robin() {
    let root = scratch("irq");
    fake_machine(&root);
    let profile = root.join("profile.yaml");
    std::fs::write(
        &profile,
        "# test\nshards:\n  cpus: [2, 3, 4, 5]\n  irq_cpus: [0, 8]\n  ring_depth: 128\n",
    )
    .unwrap();
    let args = |extra: &[&str]| {
        let mut v = vec![
            "--profile".to_string(),
            profile.display().to_string(),
            "--root".to_string(),
            root.display().to_string(),
        ];
        v.extend(extra.iter().map(ToString::to_string));
        v
    };

    // A dry run prints the plan and changes nothing.
    let dry = args(&["--dry-run"]);
    let out = run("irq-affinity.sh", &dry);
    assert!(out.status.success(), "{}", text_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "eth0: IRQ 40 -> CPU 0 (now 0-15)",
        "eth0: IRQ 41 -> CPU 8 (now 0-15)",
        "eth0: IRQ 42 -> CPU 0 (now 0-15)",
        "eth0: IRQ 43 -> CPU 8 (now 0-15)",
        "eth1: IRQ 50 -> CPU 0 (now 0-15)",
        "eth1: IRQ 51 -> CPU 8 (now 0-15)",
    ] {
        assert!(
            stdout.contains(line),
            "`{line}` missing:\n{}",
            text_of(&out)
        );
    }
    assert!(!stdout.contains("lo:"), "loopback has no MSI interrupts");
    assert_eq!(affinity(&root, 40), "0-15", "a dry run writes nothing");

    // Applied, for one NIC only.
    let one = args(&["--nic", "eth1"]);
    let out = run("irq-affinity.sh", &one);
    assert!(out.status.success(), "{}", text_of(&out));
    assert_eq!(
        (affinity(&root, 50), affinity(&root, 51)),
        ("0".into(), "8".into())
    );
    assert_eq!(affinity(&root, 40), "0-15", "eth0 was not named");

    // Applied to every NIC.
    let all = args(&[]);
    let out = run("irq-affinity.sh", &all);
    assert!(out.status.success(), "{}", text_of(&out));
    let got: Vec<String> = [40, 41, 42, 43]
        .iter()
        .map(|&i| affinity(&root, i))
        .collect();
    assert_eq!(got, ["0", "8", "0", "8"]);

    // An interrupt whose affinity cannot be written fails the run, naming it.
    std::fs::remove_dir_all(root.join("proc/irq/43")).unwrap();
    let out = run("irq-affinity.sh", &all);
    assert!(!out.status.success(), "{}", text_of(&out));
    assert!(
        text_of(&out).contains("eth0: IRQ 43: cannot write"),
        "{}",
        text_of(&out)
    );

    // A profile without a plan is refused; one that reserves nothing is a no-op.
    std::fs::write(&profile, "shards:\n  cpus: all\n").unwrap();
    let out = run("irq-affinity.sh", &all);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    assert!(
        text_of(&out).contains("no one-line 'irq_cpus: [...]'"),
        "{}",
        text_of(&out)
    );
    std::fs::write(&profile, "shards:\n  irq_cpus: []\n").unwrap();
    let out = run("irq-affinity.sh", &all);
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(
        text_of(&out).contains("leaves no CPUs for interrupts"),
        "{}",
        text_of(&out)
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn install_rollback_and_uninstall_stage_under_a_root() {
    let root = scratch("install");
    let stage = root.join("node");
    let binary = env!("CARGO_BIN_EXE_tailgate");
    let profile = root.join("profile.yaml");
    std::fs::write(
        &profile,
        "shards:\n  cpus: [2, 3]\n  irq_cpus: [0, 1]\n  numa_bind: false\n",
    )
    .unwrap();
    let stage_arg = stage.display().to_string();
    let profile_arg = profile.display().to_string();
    let out = run(
        "install.sh",
        &[
            "--binary",
            binary,
            "--profile",
            &profile_arg,
            "--root",
            &stage_arg,
        ],
    );
    assert!(out.status.success(), "{}", text_of(&out));
    for file in [
        "usr/local/bin/tailgate",
        "usr/local/lib/tailgate/irq-affinity.sh",
        "usr/local/share/doc/tailgate/README.md",
        "etc/systemd/system/tailgate.service",
        "etc/sysctl.d/60-tailgate.conf",
        "etc/tailgate/config.yaml",
        "etc/tailgate/profile.yaml",
    ] {
        assert!(
            stage.join(file).exists(),
            "{file} not installed:\n{}",
            text_of(&out)
        );
    }
    // Without --config, the embedded default, which the binary checks.
    let config = std::fs::read_to_string(stage.join("etc/tailgate/config.yaml")).unwrap();
    assert_eq!(config, tailgate::config::Config::embedded_default_text());
    let dropin =
        std::fs::read_to_string(stage.join("etc/systemd/system/tailgate.service.d/profile.conf"))
            .unwrap();
    assert!(dropin.contains("CPUAffinity=2 3\n"), "{dropin}");
    assert!(
        dropin.contains(
            "ExecStartPre=+/usr/local/lib/tailgate/irq-affinity.sh --profile \
             /etc/tailgate/profile.yaml"
        ),
        "{dropin}"
    );

    // An upgrade keeps the previous binary and never overwrites the installed configuration.
    std::fs::write(
        stage.join("etc/tailgate/config.yaml"),
        format!("# mine\n{config}"),
    )
    .unwrap();
    let out = run("install.sh", &["--binary", binary, "--root", &stage_arg]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(stage.join("usr/local/bin/tailgate.previous").exists());
    let kept = std::fs::read_to_string(stage.join("etc/tailgate/config.yaml")).unwrap();
    assert!(kept.starts_with("# mine\n"));
    assert!(
        !stage
            .join("etc/systemd/system/tailgate.service.d/profile.conf")
            .exists(),
        "an install without a profile leaves no stale placement"
    );

    // A configuration the binary refuses stops the install before the binary is replaced.
    let bad = root.join("bad.yaml");
    std::fs::write(&bad, "receivers: {nope: {}}\n").unwrap();
    let fresh = root.join("fresh");
    let out = run(
        "install.sh",
        &[
            "--binary",
            binary,
            "--config",
            bad.to_str().unwrap(),
            "--root",
            fresh.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "{}", text_of(&out));
    assert!(
        !fresh.join("usr/local/bin/tailgate").exists(),
        "{}",
        text_of(&out)
    );

    let out = run("rollback.sh", &["--root", &stage_arg]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(stage.join("usr/local/bin/tailgate.rolled-back").exists());
    assert!(!stage.join("usr/local/bin/tailgate.previous").exists());

    let out = run("uninstall.sh", &["--root", &stage_arg]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(!stage.join("usr/local/bin/tailgate").exists());
    assert!(!stage.join("etc/systemd/system/tailgate.service").exists());
    assert!(
        stage.join("etc/tailgate/config.yaml").exists(),
        "configuration kept without --purge"
    );
    let out = run("uninstall.sh", &["--purge", "--root", &stage_arg]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(!stage.join("etc/tailgate").exists());
    std::fs::remove_dir_all(&root).unwrap();
}

/// Whether `tool` runs here. `.ci/run` installs it and sets `TAILGATE_REQUIRE_DEPLOY_TOOLS`, so
/// in CI a missing tool fails the test; elsewhere the test says why it skipped.
fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("TAILGATE_REQUIRE_DEPLOY_TOOLS").is_none(),
            "{tool} is required here (TAILGATE_REQUIRE_DEPLOY_TOOLS) but not installed"
        );
        eprintln!("{tool} is not installed here; .ci/run installs it from Debian's packages");
    }
    found
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if !have("systemd-analyze") {
        return;
    }
    // verify checks that ExecStart's binary exists: point the unit at the one this build made.
    let dir = scratch("verify");
    let unit = std::fs::read_to_string(kit().join("tailgate.service")).unwrap();
    let unit = unit.replace("/usr/local/bin/tailgate", env!("CARGO_BIN_EXE_tailgate"));
    let path = dir.join("tailgate.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text_of(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("tailgate.service:"),
        "warnings about the unit: {stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_scripts_pass_shellcheck() {
    if !have("shellcheck") {
        return;
    }
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(kit())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 4, "{scripts:?}");
    let out = Command::new("shellcheck").args(&scripts).output().unwrap();
    assert!(out.status.success(), "{}", text_of(&out));
}

#[test]
fn irq_affinity_plans_the_recorded_machines_from_their_profiles() {
    // tune's recorded trees (tuning/fixtures) and the profiles it writes for them: every NIC
    // interrupt goes to one of the profile's interrupt CPUs, none to a shard's.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning/fixtures");
    for (fixture, nic_irqs) in [("vm-2cpu", 3), ("server-16c-smt", 1), ("numa-2s-64c", 8)] {
        let root = fixtures.join(fixture);
        let profile = root.join("expected.yaml");
        let text = std::fs::read_to_string(&profile).unwrap();
        let irq_line = text
            .lines()
            .find(|l| l.trim_start().starts_with("irq_cpus:"))
            .unwrap();
        let irq_cpus: Vec<String> = irq_line
            [irq_line.find('[').unwrap() + 1..irq_line.find(']').unwrap()]
            .split(',')
            .map(|c| c.trim().to_string())
            .collect();
        let out = run(
            "irq-affinity.sh",
            &[
                "--profile",
                profile.to_str().unwrap(),
                "--root",
                root.to_str().unwrap(),
                "--dry-run",
            ],
        );
        assert!(out.status.success(), "{fixture}: {}", text_of(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let planned: Vec<&str> = stdout.lines().collect();
        assert!(planned.len() >= nic_irqs, "{fixture}: {stdout}");
        for line in planned {
            let cpu = line
                .split("-> CPU ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            assert!(
                irq_cpus.iter().any(|c| c == cpu),
                "{fixture}: {line} not in {irq_cpus:?}"
            );
        }
    }
}
