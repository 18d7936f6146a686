//! The `tailgate` command line: `check-config`, and running on the embedded default.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::gateway::{http_get, http_request};

fn tailgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tailgate"))
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("tailgate-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_exits_0_for_a_valid_file_and_1_naming_the_problem_otherwise() {
    let valid = temp_file(
        "valid.yaml",
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n",
    );
    let out = tailgate().arg("check-config").arg(&valid).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));

    let invalid = temp_file(
        "invalid.yaml",
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpiont: 0.0.0.0:4317\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n",
    );
    let out = tailgate()
        .arg("check-config")
        .arg(&invalid)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("endpiont"), "names the key: {message}");
    assert!(message.contains(":5:"), "names the line: {message}");

    let out = tailgate()
        .arg("check-config")
        .arg("/nonexistent/tailgate.yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_file(valid);
    let _ = std::fs::remove_file(invalid);
}

#[test]
fn without_a_config_it_runs_the_embedded_default_and_prints_batches() {
    let stdout = temp_file("default.stdout", "");
    let stderr = temp_file("default.stderr", "");
    let mut child = tailgate()
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let admin = "127.0.0.1:8888".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(http_get(admin, "/readyz"), Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "the default gateway did not become ready"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the default gateway exited"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"checkout","status":{"code":2}}]}]}]}"#;
    let (status, _, _) = http_request(
        "127.0.0.1:4318".parse().unwrap(),
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        body,
    )
    .unwrap();
    assert_eq!(status, 200);
    // SAFETY: kill(2) on the child this test spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let printed = std::fs::read_to_string(&stdout).unwrap();
    assert!(
        printed.contains("debug: traces"),
        "the debug exporter printed a summary: {printed}"
    );
    assert!(printed.contains("spans=1"), "{printed}");
    // Where a first-time user waits for output, the log says why.
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        log.contains(
            "pipeline traces: tail sampling decides each trace 30s (decision_wait) after its first \
             span"
        ),
        "{log}"
    );
    let _ = std::fs::remove_file(stdout);
    let _ = std::fs::remove_file(stderr);
}

#[test]
fn a_port_in_use_stops_the_gateway_with_an_error_naming_it() {
    // A listener without SO_REUSEPORT: the gateway's shards cannot share its port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let admin = common::gateway::free_port();
    let config = temp_file(
        "taken.yaml",
        &format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{port}\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n  telemetry:\n    metrics:\n      address: 127.0.0.1:{admin}\n"
        ),
    );
    let started = Instant::now();
    let out = tailgate().arg("--config").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a failed start exits 1");
    assert!(started.elapsed() < Duration::from_secs(15), "and promptly");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(&format!("127.0.0.1:{port}")),
        "names the address: {log}"
    );
    assert!(!log.contains("panicked"), "without a panic: {log}");
    drop(taken);
    let _ = std::fs::remove_file(config);
}

/// Runs the binary on `config` until it exits (within 30 s); returns its exit code and stderr.
fn run_to_exit(config: &std::path::Path) -> (Option<i32>, String) {
    let stderr = config.with_extension("stderr");
    let mut child = tailgate()
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tailgate did not exit within 30 s:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    let _ = std::fs::remove_file(stderr);
    (status.code(), log)
}

#[test]
fn an_exporter_that_cannot_start_stops_the_gateway_with_a_failure_naming_it() {
    let (grpc, admin) = (common::gateway::free_port(), common::gateway::free_port());
    // The configuration accepts any header value without control characters; the OTLP/HTTP
    // exporter writes visible ASCII only. (Start-up now checks each exporter as its shards
    // would build it, before any shard starts; a shard that still fails to build one stops
    // the gateway the same way.)
    let config = temp_file(
        "bad-exporter.yaml",
        &format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{grpc}\nexporters:\n  otlphttp/upstream:\n    endpoint: http://127.0.0.1:9\n    headers:\n      x-team: \"caf\u{e9}\"\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlphttp/upstream]\n  telemetry:\n    metrics:\n      address: 127.0.0.1:{admin}\nshards:\n  cpus: [0]\n"
        ),
    );
    let (code, log) = run_to_exit(&config);
    assert_eq!(
        code,
        Some(1),
        "a gateway without its exporter exits 1: {log}"
    );
    assert!(
        log.contains("otlphttp/upstream"),
        "names the exporter: {log}"
    );
    assert!(log.contains("x-team"), "says why: {log}");
    assert!(!log.contains("panicked"), "without a panic: {log}");
    let _ = std::fs::remove_file(config);
}

#[test]
fn an_admin_port_in_use_stops_the_gateway_with_an_error_naming_the_endpoint() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let grpc = common::gateway::free_port();
    let config = temp_file(
        "admin-taken.yaml",
        &format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{grpc}\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n  telemetry:\n    metrics:\n      address: 127.0.0.1:{port}\nshards:\n  cpus: [0]\n"
        ),
    );
    let (code, log) = run_to_exit(&config);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!("127.0.0.1:{port}")),
        "names the address: {log}"
    );
    assert!(
        log.contains("service.telemetry.metrics.address"),
        "names the listener: {log}"
    );
    drop(taken);
    let _ = std::fs::remove_file(config);
}

#[test]
fn an_http_receiver_port_in_use_stops_the_gateway_with_an_error_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let admin = common::gateway::free_port();
    let config = temp_file(
        "http-taken.yaml",
        &format!(
            "receivers:\n  otlp/edge:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{port}\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp/edge]\n      exporters: [debug]\n  telemetry:\n    metrics:\n      address: 127.0.0.1:{admin}\nshards:\n  cpus: [0]\n"
        ),
    );
    let (code, log) = run_to_exit(&config);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!("127.0.0.1:{port}")),
        "names the address: {log}"
    );
    assert!(log.contains("otlp/edge"), "names the receiver: {log}");
    assert!(log.contains("HTTP"), "names the transport: {log}");
    drop(taken);
    let _ = std::fs::remove_file(config);
}

#[test]
fn cpus_all_runs_one_shard_per_cpu_of_the_affinity_mask() {
    let (grpc, admin) = (common::gateway::free_port(), common::gateway::free_port());
    let config = temp_file(
        "taskset.yaml",
        &format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{grpc}\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n  telemetry:\n    metrics:\n      address: 127.0.0.1:{admin}\nshards:\n  cpus: all\n"
        ),
    );
    let stderr = config.with_extension("stderr");
    // `taskset -c N`, N the last CPU this test may use (1 on a 2-CPU machine): the gateway may
    // run on that CPU only, whatever the machine has.
    let cpu = *tailgate_shards::runtime::allowed_cpus()
        .unwrap()
        .last()
        .unwrap();
    let mut child = Command::new("taskset")
        .arg("-c")
        .arg(cpu.to_string())
        .arg(env!("CARGO_BIN_EXE_tailgate"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let admin = common::gateway::loopback(admin);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(http_get(admin, "/readyz"), Ok((200, _))) {
        let log = std::fs::read_to_string(&stderr).unwrap_or_default();
        assert!(child.try_wait().unwrap().is_none(), "exited early: {log}");
        assert!(Instant::now() < deadline, "not ready in 20 s: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = http_get(admin, "/metrics").unwrap().1;
    // SAFETY: kill(2) on the child this test spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(status.success(), "{status}: {log}");
    assert!(
        log.contains(&format!("1 shard(s) on CPUs [{cpu}]")),
        "one shard, on CPU {cpu}: {log}"
    );
    assert!(
        !metrics.contains("shard=\"1\""),
        "one shard's metrics: {metrics}"
    );
    let _ = std::fs::remove_file(stderr);
    let _ = std::fs::remove_file(config);
}

#[test]
fn metrics_level_none_turns_metrics_off_and_keeps_health() {
    let (grpc, admin) = (common::gateway::free_port(), common::gateway::free_port());
    let config = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{grpc}\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n  telemetry:\n    metrics:\n      address: 127.0.0.1:{admin}\n      level: none\nshards:\n  cpus: [0]\n"
    );
    let (grpc, admin) = (
        common::gateway::loopback(grpc),
        common::gateway::loopback(admin),
    );
    // Ready means /readyz answered 200.
    let gateway = common::gateway::Gateway::start_with_config(&config, grpc, grpc, admin);
    assert_eq!(http_get(admin, "/healthz").unwrap().0, 200);
    let (status, body) = http_get(admin, "/metrics").unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("level: none"), "{body}");
    assert!(gateway.stop().success());
}

/// `check-config` on `text`: exit code, stdout, stderr.
fn check_config(name: &str, text: &str) -> (Option<i32>, String, String) {
    let file = temp_file(name, text);
    let out = tailgate().arg("check-config").arg(&file).output().unwrap();
    let _ = std::fs::remove_file(file);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_refuses_what_start_up_refuses() {
    let (code, stdout, stderr) = check_config(
        "two-samplers.yaml",
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nprocessors:\n  tail_sampling:\n    policies: [{name: all, type: always_sample}]\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [tail_sampling]\n      exporters: [debug]\n    traces/again:\n      receivers: [otlp]\n      processors: [tail_sampling]\n      exporters: [debug]\n",
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stderr.contains(":18:"), "names the line: {stderr}");
    assert!(stderr.contains("tail_sampling"), "{stderr}");

    let (code, stdout, stderr) = check_config(
        "split-receivers.yaml",
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n  otlp/b:\n    protocols:\n      http:\nexporters:\n  debug:\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [debug]\n    logs/b:\n      receivers: [otlp/b]\n      exporters: [debug]\n",
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stderr.contains(":16:"), "names the line: {stderr}");
    assert!(stderr.contains("same receivers"), "{stderr}");

    // An exporter its shards would refuse to build (the header value is not ASCII).
    let (code, stdout, stderr) = check_config(
        "bad-header.yaml",
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  otlphttp/upstream:\n    endpoint: http://127.0.0.1:9\n    headers:\n      x-team: \"caf\u{e9}\"\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlphttp/upstream]\n",
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stderr.contains("otlphttp/upstream"), "{stderr}");
    assert!(stderr.contains("x-team"), "{stderr}");
}

#[test]
fn check_config_notes_what_this_machine_lacks_without_failing_and_start_up_refuses_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let admin = common::gateway::free_port();
    // CPU 4095 is a valid id, on a machine this test does not run on.
    let config = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{port}\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n  telemetry:\n    metrics:\n      address: 127.0.0.1:{admin}\nshards:\n  cpus: [0, 4095]\n"
    );
    let (code, stdout, stderr) = check_config("big-machine.yaml", &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("valid"), "{stdout}");
    assert!(
        stdout.contains("note: on this machine: shards.cpus lists CPU(s) [4095]"),
        "{stdout}"
    );

    let file = temp_file("big-machine-run.yaml", &config);
    let (code, log) = run_to_exit(&file);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("shards.cpus lists CPU(s) [4095]"), "{log}");
    let _ = std::fs::remove_file(file);

    // On a machine that has the CPUs, a port taken now is a note too.
    let config = config.replace("cpus: [0, 4095]", "cpus: [0]");
    let (code, stdout, stderr) = check_config("port-taken.yaml", &config);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "note: on this machine: receiver otlp gRPC cannot listen on 127.0.0.1:{port} now"
        )),
        "{stdout}"
    );
    drop(taken);
}

#[test]
fn print_default_config_prints_the_embedded_default_which_checks_valid() {
    let out = tailgate().arg("print-default-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, tailgate::config::Config::embedded_default_text());
    let file = temp_file("printed-default.yaml", &text);
    let out = tailgate().arg("check-config").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn options_of_one_command_are_refused_on_another() {
    let file = temp_file(
        "stray.yaml",
        tailgate::config::Config::embedded_default_text(),
    );
    // check-config takes its file as its argument, not --config; and a run option before a
    // subcommand is not silently ignored.
    for args in [
        vec!["check-config", "--config", "x.yaml", file.to_str().unwrap()],
        vec![
            "--config",
            file.to_str().unwrap(),
            "check-config",
            file.to_str().unwrap(),
        ],
        vec!["print-default-config", "--config", "x.yaml"],
    ] {
        let out = tailgate().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--config"), "{args:?}: {stderr}");
    }
    // The feature gates do belong to check-config.
    let out = tailgate()
        .args(["check-config", "--feature-gates"])
        .arg("+processor.tailsamplingprocessor.usetracestate")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_example_configs_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let out = tailgate().arg("check-config").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "the README names three examples; found {checked}"
    );
}

/// Two members of a static tier list that are both this node (a receiver on every interface
/// takes both loopback addresses): a note of check-config (it depends on this machine's
/// addresses), and refused at start, asking for tier.self.
#[test]
fn a_tier_list_naming_this_node_twice_is_refused() {
    let text = "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:24999\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\ntier:\n  resolver:\n    static:\n      hostnames: [127.0.0.1:24999, 127.0.0.2:24999]\n  protocol:\n    otlp:\n      tls:\n        insecure: true\n";
    let (_, stdout, stderr) = check_config("tier-twice.yaml", text);
    let said = format!("{stdout}{stderr}");
    assert!(said.contains("set tier.self"), "{said}");
    let file = temp_file("tier-twice-run.yaml", text);
    let (code, log) = run_to_exit(&file);
    let _ = std::fs::remove_file(file);
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains("set tier.self"), "{log}");
}
