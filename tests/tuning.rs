//! Tuning profiles through the real binary: a configuration naming a profile runs its shards
//! as the profile says — which CPUs, memory bound to the NUMA node, the executor's and the
//! sockets' settings — and still carries spans end to end.

mod common;

use std::time::Duration;

use common::gateway::{http_request, one_span_request, start_sink, wait_for, Gateway};

/// The standard test configuration with its `shards` section replaced by `shards`.
fn with_shards(upstream: std::net::SocketAddr, shards: &str) -> (String, Gateway) {
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 1, "", "");
    let cut = config
        .find("shards:\n")
        .expect("the standard config has a shards section");
    let config = format!("{}shards:\n{shards}", &config[..cut]);
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    (config, gateway)
}

/// The `numa_maps` policy words of each of the gateway's shard threads (`bind:0`, `default`).
fn shard_memory_policies(pid: u32) -> Vec<String> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let task = task.expect("task").path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        // The kernel keeps 15 characters of a thread's name: `tailgate-shard-`.
        if !name.starts_with("tailgate-shard") {
            continue;
        }
        let maps = std::fs::read_to_string(task.join("numa_maps")).unwrap_or_default();
        if let Some(policy) = maps.lines().next().and_then(|l| l.split(' ').nth(1)) {
            policies.push(policy.to_string());
        }
    }
    policies
}

#[test]
fn a_profile_tunes_the_running_shards_and_spans_still_flow() {
    let dir = std::env::temp_dir().join(format!("tailgate-tuning-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("profile.yaml");
    std::fs::write(
        &profile,
        "# a test profile\nshards:\n  cpus: [0]\n  numa_bind: true\n  ring_depth: 256\n  \
         spin_before_park_us: 20\n  socket_receive_buffer_bytes: 1048576\n  \
         socket_send_buffer_bytes: 262144\n  incoming_cpu: true\n  memory_per_shard_mib: 256\n",
    )
    .unwrap();
    let (sink, sink_grpc, _) = start_sink();
    let (_, gateway) = with_shards(
        sink_grpc,
        &format!(
            "  profile: {}\n  spin_before_park_us: 30\n",
            profile.display()
        ),
    );
    let log = gateway.stderr();
    assert!(
        log.contains(&format!("tuning: profile {}", profile.display())),
        "{log}"
    );
    for part in [
        "ring depth 256",
        "spin before park 30 µs",
        "memory bound to NUMA nodes [",
        "socket buffers receive 1048576 B, send 262144 B",
        "SO_INCOMING_CPU on",
    ] {
        assert!(log.contains(part), "`{part}` missing from:\n{log}");
    }
    let policies = shard_memory_policies(gateway.pid());
    assert!(
        policies.iter().any(|p| p.starts_with("bind:")),
        "a shard thread's memory is bound to its node: {policies:?}"
    );
    // 256 MiB for the one shard caps the default budget (half this machine's memory).
    let limit = gateway.metric("tailgate_shard_memory_limit_bytes", &[("shard", "0")]);
    assert_eq!(limit, (256u64 << 20) as f64, "{}", gateway.metrics());

    let request = one_span_request(7, 1, "tuned");
    let (status, _, _) = http_request(
        gateway.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &request,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received() >= 1));
    assert!(gateway.stop().success());
    sink.stop().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_numa_bind_shards_keep_the_default_memory_policy() {
    let (sink, sink_grpc, _) = start_sink();
    let (_, gateway) = with_shards(sink_grpc, "  cpus: [0]\n");
    let policies = shard_memory_policies(gateway.pid());
    assert!(!policies.is_empty(), "shard threads found");
    assert!(
        policies.iter().all(|p| p == "default"),
        "no shard thread is bound: {policies:?}"
    );
    assert!(gateway.stderr().contains("no profile"));
    assert!(gateway.stop().success());
    sink.stop().unwrap();
}

#[test]
fn cpus_all_leaves_the_interrupt_cpus_to_the_kernel() {
    let allowed = tailgate_shards::runtime::allowed_cpus().unwrap();
    let (sink, sink_grpc, _) = start_sink();
    // Interrupts on the first CPU: `all` is every other one.
    let (_, gateway) = with_shards(
        sink_grpc,
        &format!("  cpus: all\n  irq_cpus: [{}]\n", allowed[0]),
    );
    let expected: Vec<usize> = if allowed.len() > 1 {
        allowed[1..].to_vec()
    } else {
        allowed.clone()
    };
    let log = gateway.stderr();
    assert!(
        log.contains(&format!("{} shard(s) on CPUs {expected:?}", expected.len())),
        "{log}"
    );
    assert!(gateway.stop().success());

    // Interrupts on every CPU (the small-machine plan): shards share them all.
    let every = allowed
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let (_, gateway) = with_shards(sink_grpc, &format!("  cpus: all\n  irq_cpus: [{every}]\n"));
    let log = gateway.stderr();
    assert!(
        log.contains(&format!("{} shard(s) on CPUs {allowed:?}", allowed.len())),
        "{log}"
    );
    assert!(gateway.stop().success());
    sink.stop().unwrap();
}

#[test]
fn every_shipped_and_recorded_profile_loads_as_a_profile() {
    let tuning = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning");
    let mut profiles: Vec<std::path::PathBuf> = std::fs::read_dir(&tuning)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    for fixture in std::fs::read_dir(tuning.join("fixtures")).unwrap() {
        let expected = fixture.unwrap().path().join("expected.yaml");
        if expected.exists() {
            profiles.push(expected);
        }
    }
    assert!(profiles.len() >= 9, "{profiles:?}");
    for profile in profiles {
        let text = format!(
            "receivers:\n  otlp:\n    protocols: {{grpc: }}\nexporters:\n  debug: {{}}\n\
             service:\n  pipelines:\n    traces: {{receivers: [otlp], exporters: [debug]}}\n\
             shards:\n  profile: {}\n",
            profile.display()
        );
        let config = tailgate::config::Config::from_yaml(&text, "profile-test.yaml")
            .unwrap_or_else(|err| panic!("{}: {err}", profile.display()));
        assert_eq!(config.shards.profile.as_deref(), Some(profile.as_path()));
    }
}
