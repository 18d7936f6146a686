//! A scenario file: what to start, where to pin it, what load to offer, and what must hold.
//!
//! ```yaml
//! name: passthrough-max
//! duration_s: 10
//! cpus: {sink: 0, load: [1, 2], system: [3]}   # sink and load: a CPU or a list of them
//! system:
//!   name: tailgate
//!   requires: []                    # executables that must be on PATH, else the run is skipped
//!   setup: "..."                    # a shell command run once before the first point
//!   command: "${bin_dir}/tailgate --config ${config_file}"
//!   config: |                       # written to ${config_file}, placeholders replaced
//!     ...
//! load: {protocol: grpc, connections: 4, spans_per_request: 500, oracle_policy: always}
//! # also compression, compression_level, frame_size, pool_rate, pool_spans, corpus, seed,
//! # error_rate, slow_rate, trace_spread_ms, tenants: the load's flags of those names
//! sweep: {rates: [max, 50%, 90%], system_cpus: [[1], [1, 2]]}
//! drain: {settle_ms: 1000, timeout_s: 120}
//! checks: {verified: true, no_loss: true, complete: false, refusals: false, rss_max_mib: 4096}
//! tls: true                         # or {load: true, sink: false, client_certs: false}
//! ```
//!
//! Placeholders in `command`, `config` and `setup`: `${bin_dir}` (where this binary is),
//! `${work_dir}` (the point's output folder), `${config_file}`, `${sink_grpc}` (the sink's
//! host:port), `${system_grpc}`, `${system_http}`, `${system_metrics}` (free host:ports for the
//! system), `${system_cpus}` (a YAML flow list, `[1, 2]`), `${system_cpu_list}` (`1,2`, for
//! taskset-style flags); with `tls`, the certificate set's files: `${tls_ca}`,
//! `${tls_server_cert}`, `${tls_server_key}`, `${tls_client_cert}`, `${tls_client_key}`.
//!
//! `tls` puts TLS on the system's links: `load` (the load sends to the system over TLS,
//! trusting only the set's authority), `sink` (the sink serves TLS with the set's server
//! certificate, for the system's exporter), and `client_certs` (on the links TLS is on, the
//! load presents the set's client certificate and the sink requires one). `tls: true` is
//! `{load: true, sink: true}`. The runner writes one certificate set (ECDSA P-256, for
//! `localhost` and `127.0.0.1`) into the run's folder, `tls/`; the system's config takes it
//! through the placeholders.
//!
//! A rate is `max`, spans per second, or `P%`: P percent of the end-to-end rate the first `max`
//! point with the same system CPUs reached in this run.
//!
//! The load runs one thread per CPU it is given (`tailgate-bench load --cpus`), the sink one shard
//! per CPU (`tailgate-bench sink --cpus`); with one CPU each gets `--cpu`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "duration_default")]
    pub duration_s: f64,
    /// When set, each point also reports its steady state: spans accepted a second and the
    /// system's CPU a span from this many seconds after the load's clock starts to the load's
    /// last whole second. Start-up costs (a sampler's buffers growing to their working size, the
    /// memory they fault in) then count in the whole run's figures only.
    #[serde(default)]
    pub steady_after_s: Option<f64>,
    pub cpus: Cpus,
    pub system: System,
    #[serde(default)]
    pub load: Load,
    #[serde(default)]
    pub sweep: Sweep,
    #[serde(default)]
    pub drain: Drain,
    #[serde(default)]
    pub checks: Checks,
    #[serde(default)]
    pub tls: Tls,
}

fn duration_default() -> f64 {
    10.0
}

/// Where each process runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cpus {
    /// One sink shard per CPU.
    #[serde(deserialize_with = "one_or_more")]
    pub sink: Vec<usize>,
    /// One load thread per CPU.
    #[serde(deserialize_with = "one_or_more")]
    pub load: Vec<usize>,
    pub system: Vec<usize>,
}

/// A CPU (`3`) or a list of them (`[2, 3]`).
fn one_or_more<'de, D: serde::Deserializer<'de>>(from: D) -> Result<Vec<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a CPU number or a list of CPU numbers")]
    enum OneOrMore {
        One(usize),
        More(Vec<usize>),
    }
    Ok(match OneOrMore::deserialize(from)? {
        OneOrMore::One(cpu) => vec![cpu],
        OneOrMore::More(cpus) => cpus,
    })
}

/// The system under test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct System {
    pub name: String,
    /// A shell command line; run with `exec`, so its process is the one measured.
    pub command: String,
    #[serde(default)]
    pub config: Option<String>,
    #[serde(default)]
    pub requires: Vec<String>,
    #[serde(default)]
    pub setup: Option<String>,
    /// Seconds to wait for the system to accept connections.
    #[serde(default = "ready_timeout_default")]
    pub ready_timeout_s: f64,
}

fn ready_timeout_default() -> f64 {
    30.0
}

/// The load offered at every point (see `tailgate-bench load`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Load {
    pub protocol: String,
    pub connections: usize,
    pub spans_per_request: usize,
    pub compression: Option<String>,
    /// `--compression-level`.
    pub compression_level: Option<i32>,
    /// `--frame-size`: the largest HTTP/2 DATA frame of a gRPC request.
    pub frame_size: Option<usize>,
    /// `--tenants`: the connections spread over this many `x-tenant` values.
    pub tenants: usize,
    /// `--pool-rate` and `--pool-spans`: a compressed load's pool.
    pub pool_rate: Option<f64>,
    pub pool_spans: Option<u64>,
    pub corpus: Option<String>,
    pub seed: Option<u64>,
    pub error_rate: Option<f64>,
    pub slow_rate: Option<f64>,
    pub trace_spread_ms: u64,
    pub oracle_policy: String,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            protocol: "grpc".into(),
            connections: 4,
            spans_per_request: 500,
            compression: None,
            compression_level: None,
            frame_size: None,
            tenants: 0,
            pool_rate: None,
            pool_spans: None,
            corpus: None,
            seed: None,
            error_rate: None,
            slow_rate: None,
            trace_spread_ms: 0,
            oracle_policy: "always".into(),
        }
    }
}

/// The points of the run: every rate for every set of system CPUs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Sweep {
    pub rates: Vec<String>,
    pub system_cpus: Option<Vec<Vec<usize>>>,
}

impl Default for Sweep {
    fn default() -> Self {
        Sweep {
            rates: vec!["max".into()],
            system_cpus: None,
        }
    }
}

/// When the export counts as finished after the load ends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Drain {
    /// Finished once the sink's span count has not changed for this long (or has reached what
    /// the oracle expects, when it knows).
    pub settle_ms: u64,
    pub timeout_s: f64,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            settle_ms: 1000,
            timeout_s: 120.0,
        }
    }
}

/// TLS on a scenario's links; none by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Tls {
    /// The load sends to the system over TLS.
    pub load: bool,
    /// The sink serves TLS to the system's exporter.
    pub sink: bool,
    /// On those links the client presents a certificate, and the sink requires one.
    pub client_certs: bool,
}

impl Tls {
    /// Whether any link speaks TLS (so the run needs certificates).
    pub fn any(&self) -> bool {
        self.load || self.sink
    }
}

impl<'de> Deserialize<'de> for Tls {
    fn deserialize<D: serde::Deserializer<'de>>(from: D) -> Result<Tls, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Links {
            #[serde(default)]
            load: bool,
            #[serde(default)]
            sink: bool,
            #[serde(default)]
            client_certs: bool,
        }
        #[derive(Deserialize)]
        #[serde(
            untagged,
            expecting = "true, false, or {load: BOOL, sink: BOOL, client_certs: BOOL}"
        )]
        enum Given {
            All(bool),
            Links(Links),
        }
        Ok(match Given::deserialize(from)? {
            Given::All(on) => Tls {
                load: on,
                sink: on,
                client_certs: false,
            },
            Given::Links(links) => Tls {
                load: links.load,
                sink: links.sink,
                client_certs: links.client_certs,
            },
        })
    }
}

/// What must hold at every point.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Checks {
    /// The sink's verdict against the oracle passed.
    pub verified: bool,
    /// Every accepted span arrived (pass-through: at sink == accepted).
    pub no_loss: bool,
    /// Every trace that arrived was expected and is whole, each span once; expected traces may
    /// be missing (stress relief drops some by design: see the oracle's `consistent:PCT`).
    pub complete: bool,
    /// Some spans were refused (an overload point).
    pub refusals: bool,
    /// The system's peak RSS stayed under this.
    pub rss_max_mib: Option<f64>,
}

/// An offered rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rate {
    Max,
    SpansPerS(f64),
    /// A share (1.0 = 100 %) of the first `max` point's end-to-end rate.
    OfMax(f64),
}

impl Rate {
    /// Parses `max`, `250000` or `50%`.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let text = text.trim();
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if text == "max" {
            Ok(Rate::Max)
        } else if let Some(pct) = text.strip_suffix('%') {
            pct.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| positive(*v))
                .map(|v| Rate::OfMax(v / 100.0))
                .ok_or_else(|| format!("rate {text:?}"))
        } else {
            text.parse::<f64>()
                .ok()
                .filter(|v| positive(*v))
                .map(Rate::SpansPerS)
                .ok_or_else(|| format!("rate {text:?}: max, spans/s or P%"))
        }
    }
}

impl Scenario {
    /// Parses a scenario and checks what the types cannot.
    pub fn parse(yaml: &str) -> Result<Scenario, String> {
        let scenario: Scenario = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
        for (name, cpus) in [
            ("sink", &scenario.cpus.sink),
            ("load", &scenario.cpus.load),
            ("system", &scenario.cpus.system),
        ] {
            let mut sorted = cpus.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.is_empty() || sorted.len() != cpus.len() {
                return Err(format!("cpus.{name}: at least one CPU, each once"));
            }
        }
        if scenario.duration_s.is_nan() || scenario.duration_s <= 0.0 {
            return Err("duration_s: positive".into());
        }
        for rate in &scenario.sweep.rates {
            Rate::parse(rate)?;
        }
        if scenario.sweep.rates.is_empty() {
            return Err("sweep.rates: at least one".into());
        }
        if scenario.tls.client_certs && !scenario.tls.any() {
            return Err("tls.client_certs: on a link with TLS (tls.load or tls.sink)".into());
        }
        Ok(scenario)
    }

    /// The sets of system CPUs swept over.
    pub fn system_cpu_sets(&self) -> Vec<Vec<usize>> {
        self.sweep
            .system_cpus
            .clone()
            .unwrap_or_else(|| vec![self.cpus.system.clone()])
    }
}

/// Replaces every `${name}` in `text` with its value; an unknown name is an error.
pub(crate) fn substitute(text: &str, values: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed placeholder in {text:?}"))?;
        let name = &after[..end];
        // `${env:VAR}` is left for the system's own substitution.
        if name.starts_with("env:") {
            out.push_str(&rest[at..at + 2 + end + 1]);
        } else {
            let value = values
                .get(name)
                .ok_or_else(|| format!("unknown placeholder ${{{name}}}"))?;
            out.push_str(value);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_parses_with_defaults() {
        let scenario = Scenario::parse(
            "name: x\ncpus: {sink: 0, load: 1, system: [1]}\n\
             system: {name: t, command: \"run ${config_file}\"}\nsweep: {rates: [max, 50%]}\n",
        )
        .unwrap();
        assert_eq!(scenario.load.connections, 4);
        assert_eq!(scenario.system_cpu_sets(), vec![vec![1]]);
        assert!(
            Scenario::parse("name: x\ncpus: {sink: 0, load: 1, system: [1]}\nbogus: 1\n").is_err()
        );
    }

    #[test]
    fn sink_and_load_take_a_cpu_or_a_list() {
        let parse = |cpus: &str| {
            Scenario::parse(&format!(
                "name: x\ncpus: {cpus}\nsystem: {{name: t, command: c}}\n"
            ))
            .map(|s| (s.cpus.sink, s.cpus.load, s.cpus.system))
        };
        assert_eq!(
            parse("{sink: 0, load: 1, system: [2]}"),
            Ok((vec![0], vec![1], vec![2]))
        );
        assert_eq!(
            parse("{sink: [8, 9], load: [10, 11, 12], system: [2, 3]}"),
            Ok((vec![8, 9], vec![10, 11, 12], vec![2, 3]))
        );
        assert_eq!(
            parse("{sink: [0], load: 0, system: [1]}"),
            Ok((vec![0], vec![0], vec![1]))
        );
        let err = parse("{sink: x, load: 0, system: [1]}").unwrap_err();
        assert!(
            err.contains("a CPU number or a list of CPU numbers"),
            "{err}"
        );
        assert!(parse("{sink: [], load: 0, system: [1]}").is_err());
        assert!(parse("{sink: 0, load: [1, 1], system: [2]}").is_err());
        assert!(parse("{sink: 0, load: 1, system: []}").is_err());
    }

    #[test]
    fn the_scale_sweep_leaves_the_sink_and_load_cpus_alone() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/scale.yaml");
        let scenario = Scenario::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        let (sink, load) = (&scenario.cpus.sink, &scenario.cpus.load);
        assert!(
            load.len() > 1,
            "the load needs several CPUs to saturate many shards"
        );
        assert!(sink.iter().all(|c| !load.contains(c)));
        for set in scenario.system_cpu_sets() {
            assert!(
                set.iter().all(|c| !sink.contains(c) && !load.contains(c)),
                "{set:?}"
            );
        }
    }

    #[test]
    fn the_shipped_scenarios_parse_and_fill_every_placeholder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let names = [
            "bin_dir",
            "work_dir",
            "config_file",
            "sink_grpc",
            "system_grpc",
            "system_http",
            "system_metrics",
            "system_cpus",
            "system_cpu_list",
            "tls_ca",
            "tls_server_cert",
            "tls_server_key",
            "tls_client_cert",
            "tls_client_key",
        ];
        let values: BTreeMap<&str, String> = names.iter().map(|n| (*n, "x".into())).collect();
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let scenario = Scenario::parse(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let system = &scenario.system;
            for text in [Some(&system.command), system.config.as_ref()]
                .into_iter()
                .flatten()
            {
                substitute(text, &values).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            }
            count += 1;
        }
        assert!(count >= 6);
    }

    #[test]
    fn tls_is_a_switch_or_a_choice_of_links() {
        let parse = |tls: &str| {
            Scenario::parse(&format!(
                "name: x\ncpus: {{sink: 0, load: 1, system: [1]}}\n\
                 system: {{name: t, command: c}}\n{tls}"
            ))
            .map(|s| s.tls)
        };
        let tls = |load, sink, client_certs| Tls {
            load,
            sink,
            client_certs,
        };
        assert_eq!(parse(""), Ok(tls(false, false, false)));
        assert_eq!(parse("tls: true\n"), Ok(tls(true, true, false)));
        assert_eq!(parse("tls: false\n"), Ok(tls(false, false, false)));
        assert_eq!(parse("tls: {load: true}\n"), Ok(tls(true, false, false)));
        assert_eq!(
            parse("tls: {sink: true, client_certs: true}\n"),
            Ok(tls(false, true, true))
        );
        let err = parse("tls: {loud: true}\n").unwrap_err();
        assert!(err.contains("client_certs: BOOL"), "{err}");
        assert!(parse("tls: {client_certs: true}\n").is_err());
    }

    #[test]
    fn rates_and_placeholders() {
        assert_eq!(Rate::parse("max"), Ok(Rate::Max));
        assert_eq!(Rate::parse("50%"), Ok(Rate::OfMax(0.5)));
        assert_eq!(Rate::parse("1000"), Ok(Rate::SpansPerS(1000.0)));
        assert!(Rate::parse("-1").is_err());
        let values = BTreeMap::from([("a", "1".to_string())]);
        assert_eq!(
            substitute("x ${a} ${env:HOME}", &values).unwrap(),
            "x 1 ${env:HOME}"
        );
        assert!(substitute("${b}", &values).is_err());
    }
}
