//! `tailgate doctor` through the real binary: on this machine, and on fake `/proc` and `/sys`
//! trees written by the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Every check the doctor reports, whatever the machine.
const CHECKS: [&str; 16] = [
    "io_uring",
    "io_uring.opcodes",
    "rlimit.memlock",
    "rlimit.nofile",
    "net.core.somaxconn",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.netdev_max_backlog",
    "net.ipv4.ip_local_port_range",
    "transparent_hugepage",
    "cpufreq.governor",
    "clocksource",
    "shards.cpus",
    "numa",
];

/// The checks that read files under `--sysfs-root` (the others are this process's own).
const FILE_CHECKS: [&str; 11] = [
    "net.core.somaxconn",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.netdev_max_backlog",
    "net.ipv4.ip_local_port_range",
    "transparent_hugepage",
    "cpufreq.governor",
    "clocksource",
    "numa",
];

fn doctor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tailgate"))
        .arg("doctor")
        .args(args)
        .output()
        .unwrap()
}

/// A directory of its own for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tailgate-doctor-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("{text}\n")).unwrap();
}

/// The parsed `--json` report, and the finding of each check by name.
fn findings(out: &Output) -> (Value, Vec<(String, Value)>) {
    let text = String::from_utf8_lossy(&out.stdout);
    let report: Value =
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"));
    let by_check = report["findings"]
        .as_array()
        .expect("findings is a list")
        .iter()
        .map(|f| (f["check"].as_str().unwrap().to_string(), f.clone()))
        .collect();
    (report, by_check)
}

fn finding<'a>(by_check: &'a [(String, Value)], check: &str) -> &'a Value {
    &by_check
        .iter()
        .find(|(name, _)| name == check)
        .unwrap_or_else(|| panic!("no `{check}` finding"))
        .1
}

/// The CPUs this process may run on (`Cpus_allowed_list`), which the doctor it starts
/// inherits.
fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    list.split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => a.parse().unwrap()..=b.parse().unwrap(),
            None => part.parse().unwrap()..=part.parse().unwrap(),
        })
        .collect()
}

#[test]
fn on_this_machine_nothing_fails_and_every_check_reports() {
    let out = doctor(&["--json"]);
    let (report, by_check) = findings(&out);
    let failures: Vec<&Value> = by_check
        .iter()
        .map(|(_, f)| f)
        .filter(|f| f["level"] == "fail")
        .collect();
    assert!(failures.is_empty(), "no false failure: {failures:#?}");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "exit {:?}",
        out.status.code()
    );
    let names: Vec<&str> = by_check.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, CHECKS);
    for (name, f) in &by_check {
        assert!(
            !f["found"].as_str().unwrap().is_empty(),
            "{name} found nothing"
        );
        assert!(
            !f["why"].as_str().unwrap().is_empty(),
            "{name} gives no reason"
        );
        assert_eq!(
            f["level"] == "ok",
            f["fix"].is_null(),
            "{name}: fix for non-ok only"
        );
    }
    let summary = &report["summary"];
    assert_eq!(summary["fail"], 0);
    assert_eq!(summary["exit_code"], out.status.code().unwrap());

    let text = doctor(&[]);
    assert_eq!(text.status.code(), out.status.code());
    let text = String::from_utf8_lossy(&text.stdout);
    for check in CHECKS {
        assert!(
            text.contains(&format!("  {check}: ")),
            "{check} missing:\n{text}"
        );
    }
    assert!(
        text.lines().last().unwrap().contains("0 failure(s)"),
        "{text}"
    );
}

/// A machine tuned against the gateway: a short accept queue, huge pages always, a powersaving
/// governor and a slow clock. Each is a warning with a fix; nothing fails.
#[test]
fn a_mistuned_tree_gives_warnings_with_fixes() {
    let root = scratch("mistuned");
    let cpus = allowed_cpus();
    let cpu_list = cpus
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    write(&root, "proc/sys/net/core/somaxconn", "128");
    write(&root, "proc/sys/net/ipv4/tcp_rmem", "4096\t131072\t6291456");
    write(&root, "proc/sys/net/ipv4/tcp_wmem", "4096\t16384\t4194304");
    write(&root, "proc/sys/net/core/rmem_max", "212992");
    write(&root, "proc/sys/net/core/wmem_max", "212992");
    write(&root, "proc/sys/net/core/netdev_max_backlog", "1000");
    write(
        &root,
        "proc/net/softnet_stat",
        "00001000 00000000 00000000 00000000\n00002000 00000000 00000000 00000000",
    );
    write(
        &root,
        "proc/sys/net/ipv4/ip_local_port_range",
        "32768\t60999",
    );
    write(
        &root,
        "sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never",
    );
    write(
        &root,
        "sys/kernel/mm/transparent_hugepage/defrag",
        "always defer defer+madvise [madvise] never",
    );
    for cpu in &cpus {
        write(
            &root,
            &format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"),
            "powersave",
        );
    }
    write(
        &root,
        "sys/devices/system/clocksource/clocksource0/current_clocksource",
        "hpet",
    );
    write(
        &root,
        "sys/devices/system/clocksource/clocksource0/available_clocksource",
        "tsc hpet acpi_pm",
    );
    write(&root, "sys/devices/system/node/node0/cpulist", &cpu_list);

    let out = doctor(&["--json", "--sysfs-root", root.to_str().unwrap()]);
    let (_, by_check) = findings(&out);
    for check in [
        "net.core.somaxconn",
        "transparent_hugepage",
        "cpufreq.governor",
        "clocksource",
    ] {
        let f = finding(&by_check, check);
        assert_eq!(f["level"], "warn", "{check}: {f:#}");
        assert!(
            f["fix"].as_str().is_some_and(|fix| !fix.is_empty()),
            "{check}: {f:#}"
        );
    }
    for check in FILE_CHECKS.iter().filter(|c| {
        ![
            "net.core.somaxconn",
            "transparent_hugepage",
            "cpufreq.governor",
            "clocksource",
        ]
        .contains(c)
    }) {
        assert_eq!(finding(&by_check, check)["level"], "ok", "{check}");
    }
    assert_eq!(finding(&by_check, "net.core.somaxconn")["found"], "128");
    let fix = |check| {
        finding(&by_check, check)["fix"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(fix("net.core.somaxconn").contains("net.core.somaxconn=4096"));
    assert!(fix("transparent_hugepage").contains("madvise"));
    assert!(fix("cpufreq.governor").contains("performance"));
    assert!(
        fix("clocksource").contains("echo tsc"),
        "{}",
        fix("clocksource")
    );
    assert_eq!(out.status.code(), Some(1));

    let text = doctor(&["--sysfs-root", root.to_str().unwrap()]);
    assert_eq!(text.status.code(), Some(1));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("warn  net.core.somaxconn: 128\n      why: "),
        "{text}"
    );
    assert!(text.contains("warn  clocksource: hpet"), "{text}");
    let _ = std::fs::remove_dir_all(root);
}

/// A tree with none of the optional files (a VM without cpufreq, a kernel without THP or NUMA,
/// a container that hides host sysctls) is not a problem.
#[test]
fn an_empty_tree_reports_what_is_not_exposed_without_failing() {
    let root = scratch("empty");
    let out = doctor(&["--json", "--sysfs-root", root.to_str().unwrap()]);
    let (_, by_check) = findings(&out);
    for check in FILE_CHECKS {
        assert_eq!(finding(&by_check, check)["level"], "ok", "{check}");
    }
    assert!(matches!(out.status.code(), Some(0 | 1)));
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_shard_cpu_outside_the_affinity_mask_fails() {
    let dir = scratch("affinity");
    let config = dir.join("tailgate.yaml");
    std::fs::write(
        &config,
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug:\nservice:\n  \
         pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\nshards:\n  \
         cpus: [4000]\n",
    )
    .unwrap();
    let out = doctor(&["--json", "--config", config.to_str().unwrap()]);
    let (report, by_check) = findings(&out);
    let f = finding(&by_check, "shards.cpus");
    assert_eq!(f["level"], "fail", "{f:#}");
    assert!(f["found"].as_str().unwrap().contains("4000"), "{f:#}");
    assert!(f["fix"].as_str().unwrap().contains("shards.cpus"), "{f:#}");
    assert_eq!(report["summary"]["exit_code"], 2);
    assert_eq!(out.status.code(), Some(2));

    let text = doctor(&["--config", config.to_str().unwrap()]);
    assert_eq!(text.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&text.stdout).contains("FAIL  shards.cpus: [4000]"));
    let _ = std::fs::remove_dir_all(dir);
}
