//! The `health_check` extension's answer, as the Collector's legacy health check writes it:
//! `200` with `{"status":"Server available","upSince":"...","uptime":"..."}` while the gateway
//! is ready, `503` with `{"status":"Server not available","upSince":"0001-01-01T00:00:00Z",
//! "uptime":""}` while it is not (starting, a shard lost, draining), or the configured
//! `response_body` texts instead. `upSince` is Go's JSON form of a time (RFC 3339 with the
//! fraction's trailing zeros dropped, in UTC here) and `uptime` Go's `Duration.String()`, so
//! probes that parse the Collector's answer parse this one.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::health::Health;
use crate::config::HealthCheck;

/// The answer to a health check: status line, content type and body.
pub(super) fn answer(
    config: &HealthCheck,
    health: &Health,
    now: SystemTime,
    body: &mut String,
) -> (&'static str, &'static str) {
    let ready = health.readiness().is_ok();
    let status = if ready {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    if let Some(custom) = &config.response_body {
        body.push_str(if ready {
            &custom.healthy
        } else {
            &custom.unhealthy
        });
        return (status, "text/plain; charset=utf-8");
    }
    match health.up_since().filter(|_| ready) {
        Some(since) => {
            body.push_str("{\"status\":\"Server available\",\"upSince\":\"");
            write_go_time(body, since);
            body.push_str("\",\"uptime\":\"");
            write_go_duration(body, now.duration_since(since).unwrap_or_default());
            body.push_str("\"}");
        }
        None => body.push_str(
            "{\"status\":\"Server not available\",\"upSince\":\"0001-01-01T00:00:00Z\",\
             \"uptime\":\"\"}",
        ),
    }
    (status, "application/json")
}

/// A time as Go's `time.Time` marshals to JSON, in UTC: `2024-05-01T12:34:56.789Z`.
fn write_go_time(out: &mut String, at: SystemTime) {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    write_fraction(out, since_epoch.subsec_nanos());
    out.push('Z');
}

/// `.NNNNNNNNN` without trailing zeros, or nothing for a whole second.
fn write_fraction(out: &mut String, nanos: u32) {
    if nanos == 0 {
        return;
    }
    let digits = format!("{nanos:09}");
    out.push('.');
    out.push_str(digits.trim_end_matches('0'));
}

/// The date of a day counted from 1970-01-01 (the proleptic Gregorian calendar's
/// days-to-civil conversion, in 400-year eras).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A duration as Go's `Duration.String()` writes it: `1h2m3.5s`, `4.25s`, `12.5ms`, `800µs`,
/// `15ns`, `0s`.
fn write_go_duration(out: &mut String, d: Duration) {
    let nanos = d.as_nanos();
    if nanos == 0 {
        out.push_str("0s");
        return;
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        let _ = write!(out, "{}", nanos / scale);
        let rest = nanos % scale;
        if rest > 0 {
            let width = scale.ilog10() as usize;
            let digits = format!("{rest:0width$}");
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
        out.push_str(unit);
        return;
    }
    let secs = d.as_secs();
    let (hours, minutes, seconds) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{seconds}");
    write_fraction(out, d.subsec_nanos());
    out.push('s');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duration(d: Duration) -> String {
        let mut s = String::new();
        write_go_duration(&mut s, d);
        s
    }

    #[test]
    fn durations_read_as_gos() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(15), "15ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_micros(12_500), "12.5ms"),
            (Duration::from_millis(4_250), "4.25s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_millis(3_723_500), "1h2m3.5s"),
            (Duration::from_nanos(49_013_251_800), "49.0132518s"),
        ] {
            assert_eq!(duration(d), text);
        }
    }

    #[test]
    fn times_read_as_gos_json() {
        let mut s = String::new();
        write_go_time(
            &mut s,
            UNIX_EPOCH + Duration::new(1_605_068_351, 684_717_400),
        );
        assert_eq!(s, "2020-11-11T04:19:11.6847174Z");
        s.clear();
        write_go_time(&mut s, UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!(s, "2000-02-29T00:00:00Z");
    }

    #[test]
    fn the_answer_follows_readiness_and_the_configured_bodies() {
        let health = Health::new(1);
        let mut config = HealthCheck {
            endpoint: crate::config::Endpoint::parse("localhost:0").unwrap(),
            path: "/".to_string(),
            response_body: None,
            tls: None,
        };
        let mut body = String::new();
        let now = SystemTime::now();
        assert_eq!(
            answer(&config, &health, now, &mut body),
            ("503 Service Unavailable", "application/json")
        );
        assert!(body.contains("\"Server not available\""));
        health.shard_up();
        body.clear();
        assert_eq!(answer(&config, &health, now, &mut body).0, "200 OK");
        assert!(body.starts_with("{\"status\":\"Server available\",\"upSince\":\""));
        config.response_body = Some(crate::config::ResponseBody {
            healthy: "I'm OK".to_string(),
            unhealthy: "I'm not well".to_string(),
        });
        health.start_draining();
        body.clear();
        assert_eq!(
            answer(&config, &health, now, &mut body),
            ("503 Service Unavailable", "text/plain; charset=utf-8")
        );
        assert_eq!(body, "I'm not well");
    }
}
