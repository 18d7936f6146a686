//! How long an HTTP/2 connection may live and idle, and how often its client may ping: the
//! Collector's (gRPC's) `keepalive` settings, and what the gRPC receiver watches to apply them.
//!
//! `h2` answers a client's PINGs itself and does not report them, so [`Inbound`] reads the frame
//! headers of the bytes the connection receives, as they pass through the socket adapter
//! ([`crate::io::Stream`]): it notes when the client last sent anything, and judges each PING
//! against the enforcement policy as grpc-go does — a ping sooner than `min_time` after the
//! previous one (or, with no call in flight and `permit_without_stream` off, any ping sooner
//! than two hours after the previous) is a strike, strikes reset when a call starts, and a third
//! strike ends the connection with GOAWAY `ENHANCE_YOUR_CALM`. The server side (idle, age,
//! grace, and pinging a silent client) runs in the connection's task
//! (`grpc::serve_http2`).

use std::cell::Cell;
use std::task::Waker;
use std::time::{Duration, Instant};

/// How long a new connection has to complete the HTTP/2 handshake (the client's preface and
/// SETTINGS), from accept.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `max_connection_idle` when not given: a connection without a call for this long is sent
/// GOAWAY. gRPC leaves it unbounded; a gateway facing clients it does not control bounds it.
pub const MAX_CONNECTION_IDLE_DEFAULT: Duration = Duration::from_secs(300);
/// `time` when not given (gRPC's default): a client silent this long is pinged.
pub const TIME_DEFAULT: Duration = Duration::from_secs(2 * 3600);
/// `timeout` when not given (gRPC's default): a ping unanswered this long closes the connection.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(20);
/// `enforcement_policy.min_time` when not given (gRPC's default).
pub const MIN_TIME_DEFAULT: Duration = Duration::from_secs(300);
/// The shortest `time` accepted (gRPC's floor).
pub const TIME_MIN: Duration = Duration::from_secs(1);
/// How often a client with no call in flight may ping when `permit_without_stream` is off.
const IDLE_PING_INTERVAL_MIN: Duration = Duration::from_secs(2 * 3600);
/// Strikes allowed before the connection is ended (gRPC's `maxPingStrikes`).
const PING_STRIKES_MAX: u32 = 2;
/// The HTTP/2 connection preface a client sends first.
const PREFACE_BYTES: usize = 24;
/// HTTP/2 frame type PING, and its ACK flag.
const FRAME_PING: u8 = 0x6;
const FLAG_ACK: u8 = 0x1;

/// The gRPC receiver's `keepalive` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// `server_parameters.max_connection_idle`: GOAWAY after this long without a call.
    pub max_connection_idle: Option<Duration>,
    /// `server_parameters.max_connection_age`: GOAWAY once a connection is this old.
    pub max_connection_age: Option<Duration>,
    /// `server_parameters.max_connection_age_grace`: after that GOAWAY, calls in flight get
    /// this long before the connection is closed.
    pub max_connection_age_grace: Option<Duration>,
    /// `server_parameters.time`: ping a client that has sent nothing for this long.
    pub time: Duration,
    /// `server_parameters.timeout`: close the connection if that ping is not answered in time.
    pub timeout: Duration,
    /// `enforcement_policy.min_time`: the shortest interval between client pings.
    pub min_time: Duration,
    /// `enforcement_policy.permit_without_stream`: whether pings are allowed with no call in
    /// flight.
    pub permit_without_stream: bool,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            max_connection_idle: Some(MAX_CONNECTION_IDLE_DEFAULT),
            max_connection_age: None,
            max_connection_age_grace: None,
            time: TIME_DEFAULT,
            timeout: TIMEOUT_DEFAULT,
            min_time: MIN_TIME_DEFAULT,
            permit_without_stream: false,
        }
    }
}

/// `from + after`: durations here are at most a day (the configuration's bound), so the sum
/// does not overflow; if it ever did, the deadline is `from`, and the rule it times applies now.
pub fn deadline(from: Instant, after: Duration) -> Instant {
    from.checked_add(after).unwrap_or(from)
}

/// An HTTP/2 frame header as read off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The payload length.
    pub length: u32,
    /// The frame type.
    pub kind: u8,
    /// The flags.
    pub flags: u8,
}

/// Follows frame boundaries in a client's byte stream (after its preface) without buffering
/// payloads: only the 9-byte headers are assembled.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameSniffer {
    /// Preface bytes still to skip.
    preface_seen: usize,
    header: [u8; 9],
    header_len: usize,
    payload_left: u32,
}

impl FrameSniffer {
    /// Feeds the next received bytes; calls `on_frame` for each frame header completed.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(FrameHeader)) {
        if self.preface_seen < PREFACE_BYTES {
            let n = PREFACE_BYTES
                .saturating_sub(self.preface_seen)
                .min(bytes.len());
            self.preface_seen = self.preface_seen.saturating_add(n);
            bytes = &bytes[n..];
        }
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = bytes.len().min(self.payload_left as usize);
                // n ≤ payload_left, which is a u32.
                self.payload_left = self.payload_left.saturating_sub(n as u32);
                bytes = &bytes[n..];
                continue;
            }
            let (filled, unfilled) = self.header.split_at_mut(self.header_len);
            let n = unfilled.len().min(bytes.len());
            unfilled[..n].copy_from_slice(&bytes[..n]);
            self.header_len = filled.len().saturating_add(n);
            bytes = &bytes[n..];
            if self.header_len == 9 {
                self.header_len = 0;
                let header = FrameHeader {
                    length: u32::from_be_bytes([0, self.header[0], self.header[1], self.header[2]]),
                    kind: self.header[3],
                    flags: self.header[4],
                };
                self.payload_left = header.length;
                on_frame(header);
            }
        }
    }
}

/// What one connection's client sends, as the keepalive rules need it.
pub struct Inbound {
    policy: Keepalive,
    sniffer: Cell<FrameSniffer>,
    last_read: Cell<Instant>,
    last_ping: Cell<Option<Instant>>,
    strikes: Cell<u32>,
    calls: Cell<usize>,
    /// Since when no call has been in flight (`None` while one is).
    idle_since: Cell<Option<Instant>>,
    abusive: Cell<bool>,
    /// Set when something the connection's task must act on happened outside it (a call
    /// ended, the client was struck out); `waker` is that task's.
    attention: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Inbound {
    /// A new connection under `policy`.
    pub fn new(policy: Keepalive) -> Self {
        Inbound {
            policy,
            sniffer: Cell::new(FrameSniffer::default()),
            last_read: Cell::new(Instant::now()),
            last_ping: Cell::new(None),
            strikes: Cell::new(0),
            calls: Cell::new(0),
            idle_since: Cell::new(Some(Instant::now())),
            abusive: Cell::new(false),
            attention: Cell::new(false),
            waker: Cell::new(None),
        }
    }

    /// Notes bytes the client sent.
    pub fn received(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let now = Instant::now();
        self.last_read.set(now);
        let mut sniffer = self.sniffer.get();
        sniffer.feed(bytes, |frame| {
            if frame.kind == FRAME_PING && frame.flags & FLAG_ACK == 0 {
                self.ping(now);
            }
        });
        self.sniffer.set(sniffer);
    }

    fn ping(&self, now: Instant) {
        let interval_min = if self.policy.permit_without_stream || self.calls.get() > 0 {
            self.policy.min_time
        } else {
            IDLE_PING_INTERVAL_MIN
        };
        if self
            .last_ping
            .get()
            .is_some_and(|last| now.duration_since(last) < interval_min)
        {
            self.strikes.set(self.strikes.get().saturating_add(1));
            if self.strikes.get() > PING_STRIKES_MAX {
                self.abusive.set(true);
                self.wake();
            }
        }
        self.last_ping.set(Some(now));
    }

    /// When the client last sent anything.
    pub fn last_read(&self) -> Instant {
        self.last_read.get()
    }

    /// Whether the client has pinged more often than the policy allows.
    pub fn abusive(&self) -> bool {
        self.abusive.get()
    }

    /// Notes a call starting (which also forgives earlier strikes, as gRPC does when it sends).
    pub fn call_started(&self) {
        self.calls.set(self.calls.get().saturating_add(1));
        self.idle_since.set(None);
        self.strikes.set(0);
    }

    /// Notes a call ending; the connection's task is woken to restart its idle clock.
    pub fn call_ended(&self) {
        self.calls.set(self.calls.get().saturating_sub(1));
        if self.calls.get() == 0 {
            self.idle_since.set(Some(Instant::now()));
            self.wake();
        }
    }

    /// Since when the connection has had no call in flight.
    pub fn idle_since(&self) -> Option<Instant> {
        self.idle_since.get()
    }

    /// Resolves when a call ended or the client was struck out since the last time.
    pub async fn attention(&self) {
        std::future::poll_fn(|cx| {
            if self.attention.replace(false) {
                return std::task::Poll::Ready(());
            }
            self.waker.set(Some(cx.waker().clone()));
            std::task::Poll::Pending
        })
        .await
    }

    fn wake(&self) {
        self.attention.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl crate::io::Observe for Inbound {
    fn received(&self, bytes: &[u8]) {
        Inbound::received(self, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags, 0, 0, 0, 0]);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn frame_headers_are_found_however_the_bytes_are_cut() {
        let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        stream.extend(frame(0x4, 0, &[0; 6]));
        stream.extend(frame(0x6, 0, &[1; 8]));
        stream.extend(frame(0x0, 1, &[9; 300]));
        stream.extend(frame(0x6, 1, &[1; 8]));
        for cut in 1..stream.len() {
            let mut sniffer = FrameSniffer::default();
            let mut seen = Vec::new();
            for piece in stream.chunks(cut) {
                sniffer.feed(piece, |f| seen.push((f.kind, f.flags, f.length)));
            }
            assert_eq!(
                seen,
                [(4, 0, 6), (6, 0, 8), (0, 1, 300), (6, 1, 8)],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn pings_too_often_are_struck_out_and_a_call_forgives() {
        let policy = Keepalive {
            min_time: Duration::from_secs(60),
            ..Keepalive::default()
        };
        let inbound = Inbound::new(policy);
        inbound.received(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        inbound.call_started();
        let ping = frame(0x6, 0, &[0; 8]);
        for _ in 0..3 {
            inbound.received(&ping);
        }
        assert!(!inbound.abusive(), "the first ping and two strikes");
        inbound.call_started();
        for _ in 0..2 {
            inbound.received(&ping);
        }
        assert!(!inbound.abusive(), "strikes were forgiven");
        inbound.received(&ping);
        assert!(inbound.abusive(), "a third strike in a row");
        // ACKs are answers, not pings.
        let acks = Inbound::new(policy);
        acks.received(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        for _ in 0..10 {
            acks.received(&frame(0x6, 1, &[0; 8]));
        }
        assert!(!acks.abusive());
    }
}
