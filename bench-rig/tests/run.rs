//! `tailgate-bench run` end to end with a stand-in system: a second sink plays the system under
//! test, so the scenario needs no gateway binary; what is checked is the runner's plumbing
//! (starting, pinning, sampling, draining, stopping, writing results), not any figure.

use std::path::{Path, PathBuf};
use std::process::Command;

use tailgate_bench::run::process::allowed_cpus;

const BIN: &str = env!("CARGO_BIN_EXE_tailgate-bench");

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tailgate-bench-run-{}-{name}", std::process::id()))
}

fn run(scenario: &str, name: &str) -> (std::process::Output, PathBuf) {
    let file = temp(&format!("{name}.yaml"));
    std::fs::write(&file, scenario).unwrap();
    let out = temp(name);
    let output = Command::new(BIN)
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run tailgate-bench");
    let _ = std::fs::remove_file(&file);
    (output, out)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("results written")).unwrap()
}

#[test]
fn a_scenario_runs_and_writes_table_json_and_chart() {
    let scenario = r#"
name: stand-in
duration_s: 0.5
cpus: {sink: 0, load: 0, system: [0]}
system:
  name: inner-sink
  command: "${bin_dir}/tailgate-bench sink --listen ${system_grpc} --cpu ${system_cpu_list} --report ${work_dir}/inner.json"
load: {connections: 2, spans_per_request: 100, oracle_policy: "errors,probabilistic:10"}
sweep: {rates: ["20000"]}
drain: {settle_ms: 300, timeout_s: 10}
"#;
    let (output, out) = run(scenario, "stand-in");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results = json(&out.join("results.json"));
    let point = &results["points"][0];
    let accepted = point["load"]["spans_accepted"].as_u64().unwrap();
    assert!(accepted > 0, "{point}");
    // The stand-in kept everything: the real sink saw nothing, so every kept trace is missing.
    assert_eq!(point["sink"]["spans_received"], 0);
    assert_eq!(
        point["sink"]["kept_traces_missing"],
        point["load"]["traces_kept_expected"]
    );
    assert!(point["system_peak_rss_mib"].as_f64().unwrap() > 0.0);
    assert!(point["samples_t_s_cpu_s_rss_mib"].as_array().unwrap().len() > 2);
    let inner = json(&out.join("01-cpus0-20000/inner.json"));
    assert_eq!(inner["spans_received"].as_u64().unwrap(), accepted);
    let table = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(table.contains("| inner-sink | 0 | 20000 |"), "{table}");
    let svg = std::fs::read_to_string(out.join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_system_not_on_path_is_skipped_with_a_message() {
    let scenario = r#"
name: absent
cpus: {sink: 0, load: 0, system: [0]}
system: {name: absent, requires: [no-such-collector-here], command: "no-such-collector-here"}
"#;
    let (output, out) = run(scenario, "absent");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("skipped: no-such-collector-here is not on PATH"),
        "{stdout}"
    );
    assert_eq!(
        json(&out.join("results.json"))["skipped"],
        "no-such-collector-here is not on PATH"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_load_given_several_cpus_runs_a_thread_on_each() {
    let load: Vec<usize> = allowed_cpus().unwrap().into_iter().take(2).collect();
    let list = load
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let scenario = format!(
        r#"
name: load-cpus
duration_s: 0.5
cpus: {{sink: {sink}, load: [{list}], system: [{sink}]}}
system:
  name: inner-sink
  command: "${{bin_dir}}/tailgate-bench sink --listen ${{system_grpc}} --cpu ${{system_cpu_list}} --report ${{work_dir}}/inner.json"
load: {{connections: 4, spans_per_request: 100, oracle_policy: always}}
sweep: {{rates: ["20000"]}}
drain: {{settle_ms: 300, timeout_s: 10}}
"#,
        sink = load[0],
    );
    let (output, out) = run(&scenario, "load-cpus");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let point = &json(&out.join("results.json"))["points"][0];
    assert_eq!(point["load_cpus"], serde_json::json!(load));
    assert_eq!(point["load"]["threads"], load.len());
    assert_eq!(point["load"]["cpus"], serde_json::json!(load));
    assert!(
        point["load"]["spans_accepted"].as_u64().unwrap() > 0,
        "{point}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn load_cpus_this_machine_lacks_skip_the_scenario() {
    let scenario = r#"
name: big-machine
cpus: {sink: 0, load: [0, 1000], system: [0]}
system: {name: never-started, command: "false"}
"#;
    let (output, out) = run(scenario, "big-machine");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reason = "cpu 1000 for the load is not available on this machine";
    assert!(stdout.contains(&format!("skipped: {reason}")), "{stdout}");
    assert_eq!(json(&out.join("results.json"))["skipped"], reason);
    let _ = std::fs::remove_dir_all(&out);
}

/// A scenario with TLS on every link, client certificates included: the runner writes the
/// certificate set into the run's folder, the stand-in system serves TLS with it through the
/// placeholders and requires the load's client certificate, and everything the load sent over
/// TLS arrived.
#[test]
fn a_tls_scenario_runs_over_tls_with_the_runs_certificates() {
    let scenario = r#"
name: stand-in-tls
duration_s: 0.5
cpus: {sink: 0, load: 0, system: [0]}
system:
  name: inner-sink
  command: "${bin_dir}/tailgate-bench sink --listen ${system_grpc} --cpu ${system_cpu_list} --report ${work_dir}/inner.json --tls-cert ${tls_server_cert} --tls-key ${tls_server_key} --tls-client-ca ${tls_ca}"
load: {connections: 2, spans_per_request: 100, oracle_policy: always}
sweep: {rates: ["20000"]}
drain: {settle_ms: 300, timeout_s: 10}
tls: {load: true, sink: true, client_certs: true}
"#;
    let (output, out) = run(scenario, "stand-in-tls");
    // The stand-in kept everything, so the real sink's no-loss verdict fails; the plumbing is
    // what is judged here.
    let stderr = String::from_utf8_lossy(&output.stderr);
    for file in [
        "ca.pem",
        "server.pem",
        "server-key.pem",
        "client.pem",
        "client-key.pem",
    ] {
        assert!(out.join("tls").join(file).is_file(), "{file}: {stderr}");
    }
    let results = json(&out.join("results.json"));
    let point = &results["points"][0];
    assert_eq!(
        point["tls"],
        serde_json::json!({"load": true, "sink": true, "client_certs": true})
    );
    assert_eq!(point["load"]["tls"], true, "{point}");
    let accepted = point["load"]["spans_accepted"].as_u64().unwrap();
    assert!(accepted > 0, "{point}");
    assert_eq!(point["load"]["spans_refused"], 0, "{point}");
    let inner = json(&out.join("01-cpus0-20000/inner.json"));
    assert_eq!(inner["spans_received"].as_u64().unwrap(), accepted);
    assert_eq!(inner["tls_handshakes"], 2, "{inner}");
    assert_eq!(inner["tls_handshakes_failed"], 0, "{inner}");
    // The real sink served TLS too: the runner's readiness probe is no failed handshake.
    assert_eq!(point["sink"]["tls_handshakes_failed"], 0, "{point}");
    let _ = std::fs::remove_dir_all(&out);
}
