//! What a span's attributes say: the text the generators put in spans, and so how well their
//! requests compress.
//!
//! Two corpora, chosen per run:
//!
//! - [`Corpus::Benchmark`]: the OpenTelemetry SDK benchmark specification's 10 attributes of
//!   20 random lowercase letters for key and value. Every value is new, so a request compresses
//!   only 1.7–1.9× with gzip: the worst case for a compressor, and the lab figures' corpus.
//! - [`Corpus::Semantic`]: attributes as instrumentation libraries write them, after the
//!   semantic conventions: an HTTP server span carries its method, route, path, status code, peer
//!   address and user agent; a database span its system, statement and table; and so on, each
//!   value drawn from a vocabulary of the size such values have in a real service (a handful of
//!   methods, hundreds of paths, thousands of users). What stays random is what is random in
//!   real telemetry: ids, timestamps, durations, user and order numbers. A request of these spans
//!   compresses about 5–6× with gzip, like real OTLP traffic, so compression is measured on
//!   bytes that behave like the bytes users send.
//!
//! Both are deterministic in the seed: a run's requests are the same whatever the machine.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

use crate::generate::{string_kv, Rng};

/// The attribute text of generated spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Corpus {
    /// 10 attributes of 20 random letters for key and value (the SDK benchmark's shape).
    #[default]
    Benchmark,
    /// Semantic-convention attributes with values from realistic vocabularies.
    Semantic,
}

impl Corpus {
    /// Parses `benchmark` or `semantic`.
    pub fn parse(name: &str) -> Result<Corpus, String> {
        match name {
            "benchmark" => Ok(Corpus::Benchmark),
            "semantic" => Ok(Corpus::Semantic),
            other => Err(format!("corpus {other}: benchmark or semantic")),
        }
    }

    /// The corpus's name, as [`Corpus::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            Corpus::Benchmark => "benchmark",
            Corpus::Semantic => "semantic",
        }
    }

    /// The attributes of one span doing `operation` (an index into [`OPERATIONS`]).
    pub fn attributes(self, rng: &mut Rng, operation: usize) -> Vec<KeyValue> {
        match self {
            Corpus::Benchmark => (0..10)
                .map(|_| string_kv(rng.text(20), rng.text(20)))
                .collect(),
            Corpus::Semantic => semantic_attributes(rng, operation),
        }
    }
}

/// What spans do, as span names; [`Corpus::Semantic`] gives each kind its conventions'
/// attributes.
pub const OPERATIONS: [&str; 8] = [
    "GET /api/v1/items",
    "POST /api/v1/orders",
    "SELECT orders",
    "UPDATE inventory",
    "redis GET",
    "kafka publish",
    "grpc Charge",
    "render template",
];

/// Distinct users a service sees in the time a request's worth of spans covers.
const USERS: u64 = 20_000;
/// Distinct item numbers in paths and keys.
const ITEMS: u64 = 500;

const USER_AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
    "Go-http-client/2.0",
];
const STATUS_CODES: [i64; 6] = [200, 200, 200, 201, 404, 503];
const PEERS: u64 = 64;

fn int_kv(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    string_kv(key.into(), value.into())
}

fn pick<'a>(rng: &mut Rng, from: &[&'a str]) -> &'a str {
    from[(rng.next_u64() % from.len() as u64) as usize]
}

/// Semantic-convention attributes for one span of `operation`.
fn semantic_attributes(rng: &mut Rng, operation: usize) -> Vec<KeyValue> {
    let user = rng.next_u64() % USERS;
    let item = rng.next_u64() % ITEMS;
    let peer = rng.next_u64() % PEERS;
    let mut attributes = match operation % OPERATIONS.len() {
        0 | 1 => {
            let (method, route, path) = if operation == 0 {
                ("GET", "/api/v1/items/{id}", format!("/api/v1/items/{item}"))
            } else {
                ("POST", "/api/v1/orders", "/api/v1/orders".to_string())
            };
            let status = STATUS_CODES[(rng.next_u64() % STATUS_CODES.len() as u64) as usize];
            vec![
                kv("http.request.method", method),
                kv("http.route", route),
                kv("url.path", path),
                kv("url.scheme", "https"),
                int_kv("http.response.status_code", status),
                kv("server.address", "shop.example.com"),
                int_kv("server.port", 443),
                kv(
                    "client.address",
                    format!("10.1.{}.{}", peer / 8, peer * 3 % 251),
                ),
                kv("user_agent.original", pick(rng, &USER_AGENTS)),
                kv("network.protocol.version", "1.1"),
            ]
        }
        2 | 3 => {
            let statement = if operation == 2 {
                "SELECT id, status, total FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 20"
            } else {
                "UPDATE inventory SET reserved = reserved + $1 WHERE item_id = $2"
            };
            vec![
                kv("db.system", "postgresql"),
                kv("db.namespace", "shop"),
                kv(
                    "db.collection.name",
                    if operation == 2 {
                        "orders"
                    } else {
                        "inventory"
                    },
                ),
                kv(
                    "db.operation.name",
                    if operation == 2 { "SELECT" } else { "UPDATE" },
                ),
                kv("db.query.text", statement),
                kv("server.address", "orders-db.internal"),
                int_kv("server.port", 5432),
            ]
        }
        4 => vec![
            kv("db.system", "redis"),
            kv("db.operation.name", "GET"),
            kv("db.query.text", format!("GET cart:{user}")),
            kv("server.address", "cache.internal"),
            int_kv("server.port", 6379),
        ],
        5 => vec![
            kv("messaging.system", "kafka"),
            kv("messaging.operation.type", "publish"),
            kv("messaging.destination.name", "orders.created"),
            int_kv(
                "messaging.destination.partition.id",
                (rng.next_u64() % 12) as i64,
            ),
            kv(
                "messaging.kafka.message.key",
                format!("order-{}", rng.next_u64() % 1_000_000),
            ),
            kv("server.address", "kafka-0.internal"),
        ],
        6 => vec![
            kv("rpc.system", "grpc"),
            kv("rpc.service", "payments.v1.PaymentService"),
            kv("rpc.method", "Charge"),
            int_kv("rpc.grpc.status_code", 0),
            kv("server.address", "payment.internal"),
            int_kv("server.port", 50051),
            kv("network.peer.address", format!("10.2.0.{}", peer + 10)),
        ],
        _ => vec![
            kv("code.function.name", "render_product_page"),
            kv("code.file.path", "app/views/products.py"),
            int_kv("code.line.number", 118),
            kv("template.name", "product_detail.html"),
        ],
    };
    attributes.push(kv("enduser.id", format!("user-{user}")));
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_corpora_are_refused() {
        for corpus in [Corpus::Benchmark, Corpus::Semantic] {
            assert_eq!(Corpus::parse(corpus.name()), Ok(corpus));
        }
        assert!(Corpus::parse("lorem")
            .unwrap_err()
            .contains("benchmark or semantic"));
    }

    #[test]
    fn the_benchmark_corpus_is_the_sdk_benchmarks_shape() {
        let attributes = Corpus::Benchmark.attributes(&mut Rng(1), 0);
        assert_eq!(attributes.len(), 10);
        assert!(attributes.iter().all(|kv| kv.key.len() == 20));
    }

    #[test]
    fn semantic_spans_carry_their_kinds_conventions() {
        let mut rng = Rng(3);
        let keys = |operation| -> Vec<String> {
            Corpus::Semantic
                .attributes(&mut Rng(operation as u64), operation)
                .into_iter()
                .map(|kv| kv.key)
                .collect()
        };
        assert!(keys(0).contains(&"http.response.status_code".to_string()));
        assert!(keys(2).contains(&"db.query.text".to_string()));
        assert!(keys(5).contains(&"messaging.destination.name".to_string()));
        assert!(keys(6).contains(&"rpc.method".to_string()));
        // Values vary where real values vary: users differ between spans.
        let users: std::collections::HashSet<String> = (0..50)
            .map(|_| {
                let attributes = Corpus::Semantic.attributes(&mut rng, 4);
                format!("{:?}", attributes.last().unwrap().value)
            })
            .collect();
        assert!(users.len() > 40);
    }
}
