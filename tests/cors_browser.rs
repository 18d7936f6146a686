//! CORS with a real browser: headless Chromium (Debian's `chromium`, which `.ci/run` installs)
//! loads a page from one origin whose script posts OTLP/JSON to the gateway's HTTP receiver on
//! another, as the OpenTelemetry JS SDK does from a web page. `Content-Type: application/json`
//! is not CORS-safelisted, so the browser sends a preflight first and posts only if the
//! gateway's answer allows it. A page from an allowed origin gets its span through (the sink
//! receives it) and can read the answer; a page from another origin is stopped by the browser,
//! and nothing of it reaches the sink. Skipped, with a message, only where Chromium is missing
//! and `TAILGATE_REQUIRE_BROWSER` is not set (`.ci/run` installs it and sets it).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::gateway::{received_spans, start_sink, wait_for, Gateway};

/// The page's script: one OTLP/JSON export of one span named `name`, its outcome written into
/// the page for `--dump-dom` to print.
fn page(gateway_http: SocketAddr, name: &str, trace_byte: u8) -> String {
    let trace_id = format!("{trace_byte:02x}").repeat(16);
    format!(
        r#"<!doctype html>
<html><body><pre id="out">pending</pre>
<script>
const body = JSON.stringify({{resourceSpans: [{{
  resource: {{attributes: [{{key: "service.name", value: {{stringValue: "browser"}}}}]}},
  scopeSpans: [{{scope: {{name: "cors-test"}}, spans: [{{
    traceId: "{trace_id}", spanId: "0102030405060708", name: "{name}", kind: 1,
    startTimeUnixNano: "1700000000000000000", endTimeUnixNano: "1700000000100000000"}}]}}]}}]}});
fetch("http://{gateway_http}/v1/traces", {{
  method: "POST", headers: {{"Content-Type": "application/json"}}, body: body}})
  .then(r => r.text().then(t => {{
    document.getElementById("out").textContent = "answered " + r.status + " " + t; }}))
  .catch(e => {{ document.getElementById("out").textContent = "blocked " + e; }});
</script></body></html>"#
    )
}

/// Serves `html` at every path of `listener` until the test ends (a thread per page origin).
fn serve_page(listener: TcpListener, html: String) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            let found = request.starts_with(b"GET / ");
            let (status, body) = if found {
                ("200 OK", html.as_str())
            } else {
                ("404 Not Found", "")
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: \
                 close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

/// Chromium's binary, if this machine has it.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// Loads `url` in headless Chromium (its own profile directory) and returns the page's `#out`
/// text once its script has run.
fn load(browser: &str, url: &str, profile: &std::path::Path) -> String {
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .stderr(Stdio::piped())
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    let start = dom.find("<pre id=\"out\">").unwrap_or_else(|| {
        panic!(
            "no #out in the page Chromium printed:\n{dom}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let rest = &dom[start + "<pre id=\"out\">".len()..];
    rest[..rest.find("</pre>").unwrap_or(rest.len())].to_string()
}

#[test]
fn a_browser_page_of_an_allowed_origin_posts_and_another_is_stopped() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("TAILGATE_REQUIRE_BROWSER").is_none(),
            "TAILGATE_REQUIRE_BROWSER is set and Chromium is not installed"
        );
        println!("skipped: Chromium is not installed (.ci/run installs Debian's `chromium`)");
        return;
    };
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let allowed_origin = format!("http://{}", allowed.local_addr().unwrap());
    let other_origin = format!("http://{}", other.local_addr().unwrap());

    let (sink, sink_grpc, _) = start_sink();
    let (config, grpc, http, admin) = Gateway::standard_config(
        sink_grpc,
        1,
        "",
        &format!(
            "        cors:\n          allowed_origins: [\"{allowed_origin}\"]\n          \
             max_age: 60"
        ),
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    serve_page(allowed, page(gateway.http, "from-the-allowed-page", 0xa1));
    serve_page(other, page(gateway.http, "from-another-page", 0xb2));
    let profile = std::env::temp_dir().join(format!("tailgate-cors-{}", std::process::id()));

    let outcome = load(browser, &format!("{allowed_origin}/"), &profile.join("a"));
    assert_eq!(outcome, "answered 200 {}", "the allowed page");
    let outcome = load(browser, &format!("{other_origin}/"), &profile.join("b"));
    assert!(
        outcome.starts_with("blocked TypeError"),
        "the other page: {outcome}"
    );

    let arrived = wait_for(Duration::from_secs(10), || sink.spans_received() >= 1);
    assert!(arrived, "the allowed page's span did not reach the sink");
    let stderr = gateway.stderr();
    assert!(gateway.stop().success(), "{stderr}");
    let result = sink.stop().expect("sink");
    let names: Vec<String> = received_spans(&result)
        .into_iter()
        .map(|(_, span)| span.name)
        .collect();
    assert_eq!(names, ["from-the-allowed-page"]);
    let _ = std::fs::remove_dir_all(&profile);
}

/// The same answers on the wire, without a browser: a preflight is answered 204 with the
/// allowing headers and no body or length, one from another origin without them, and a post
/// from an allowed origin carries `Access-Control-Allow-Origin` even when it is refused.
#[test]
fn preflights_and_answers_on_the_wire() {
    let (_sink, sink_grpc, _) = start_sink();
    let (config, grpc, http, admin) = Gateway::standard_config(
        sink_grpc,
        1,
        "",
        "        cors:\n          allowed_origins: [\"https://*.example.com\"]\n          \
         allowed_headers: [X-Tenant]\n          exposed_headers: [X-Trace-Kept]\n          \
         max_age: 60",
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let exchange = |request: String| {
        let mut conn = std::net::TcpStream::connect(gateway.http).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(request.as_bytes()).expect("send");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).expect("read to the close");
        answer
    };
    let preflight = |origin: &str, headers: &str| {
        exchange(format!(
            "OPTIONS /v1/traces HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: {headers}\r\n\
             Connection: close\r\n\r\n"
        ))
    };
    let allowed = preflight("https://app.example.com", "content-type, x-tenant");
    assert!(
        allowed.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{allowed}"
    );
    for line in [
        "Access-Control-Allow-Origin: https://app.example.com\r\n",
        "Access-Control-Allow-Methods: POST\r\n",
        "Access-Control-Allow-Headers: content-type, x-tenant\r\n",
        "Access-Control-Allow-Credentials: true\r\n",
        "Access-Control-Max-Age: 60\r\n",
    ] {
        assert!(allowed.contains(line), "{line:?} in {allowed}");
    }
    assert!(!allowed.contains("Content-Length"), "{allowed}");
    assert!(!allowed.contains("Expose"), "not on a preflight: {allowed}");
    for refused in [
        preflight("https://example.org", "content-type"),
        preflight("https://app.example.com", "authorization"),
    ] {
        assert!(
            refused.starts_with("HTTP/1.1 204 No Content\r\n"),
            "{refused}"
        );
        assert!(
            !refused.contains("Access-Control-Allow-Origin"),
            "{refused}"
        );
    }
    let post = exchange(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.com\r\n\
         Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
            .to_string(),
    );
    assert!(post.starts_with("HTTP/1.1 415 "), "{post}");
    assert!(
        post.contains("Access-Control-Allow-Origin: https://app.example.com\r\n"),
        "{post}"
    );
    assert!(
        post.contains("Access-Control-Expose-Headers: X-Trace-Kept\r\n"),
        "{post}"
    );
    assert!(gateway.stop().success());
}
