//! The load's own OTLP client: one connection, one traces request in flight, over OTLP/gRPC
//! (`h2`) or OTLP/HTTP (HTTP/1.1, the response read with `httparse`), protobuf or JSON,
//! optionally gzip or zstd. It is written for the load alone, not the gateway's exporter: the
//! rig measures the gateway, so it shares no code with it. No queue, no retries: a request
//! either comes back accepted (less what a partial success rejected) or counts as refused, and
//! a connection that failed is made anew for the next request.
//!
//! A request reaches the client already on its wire form ([`Encoder`]: JSON for http-json, then
//! compressed, behind the gRPC message prefix), so the client only sends bytes. Over gRPC the
//! message goes out in DATA frames of at most `--frame-size` bytes, each a slice of the
//! request (grpc-go and grpc-java send 16 KiB frames); without it, h2 cuts frames at the
//! peer's largest.
//!
//! With `--tls-ca` every connection is TLS (rustls, `crate::tls`), offering ALPN `h2` over gRPC
//! and `http/1.1` over HTTP, never resuming a session: a full handshake each time a connection
//! is made, none while it lasts. The exchange is the same code over the TLS stream as over the
//! socket, each its own monomorphic copy, so the plaintext path is what it was. A TLS error that
//! says the two ends cannot talk as configured (a certificate not trusted, a client certificate
//! required) is not a refusal to count and retry: the client reports it, and the load stops.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use glommio::net::TcpStream;
use h2::client::SendRequest;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tailgate_wire::Signal;

use crate::net::{Socket, TlsFailure, TlsSocket};
use crate::tls::{self, ClientTls, ClientTlsArgs, ALPN_H2, ALPN_HTTP1};
use crate::traces::GRPC_PREFIX_BYTES;

/// How long a request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The receive window for answers: export responses are small.
const RESPONSE_WINDOW_BYTES: u32 = 64 << 10;
/// The largest answer read (head and body).
const RESPONSE_BYTES_MAX: usize = 64 << 10;
/// gzip level 6 and zstd level 3: each library's default, which OTLP SDKs and the Collector use.
const GZIP_LEVEL_DEFAULT: i32 = 6;
const ZSTD_LEVEL_DEFAULT: i32 = 3;
/// The levels each compressor takes (libdeflate's 1–12, zstd's 1–22).
const GZIP_LEVELS: std::ops::RangeInclusive<i32> = 1..=12;
const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=22;
/// The smallest and largest HTTP/2 DATA frame payloads (RFC 9113 §4.2, §6.5.2).
const FRAME_BYTES: std::ops::RangeInclusive<usize> = 16_384..=16_777_215;

/// How the load talks to its endpoint.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The endpoint's address.
    addr: SocketAddr,
    /// `host:port` as given, for `:authority` and `Host`.
    authority: String,
    /// The path traces go to: the gRPC method, or the endpoint's path and `/v1/traces`.
    path: String,
    protocol: Protocol,
    compression: Compression,
    /// The compression level.
    level: i32,
    /// The largest DATA frame a gRPC request is sent in; `None`: as large as the peer takes.
    frame_bytes: Option<usize>,
    /// The `x-tenant` header every request carries (`--tenants`); `None`: none.
    tenant: Option<String>,
    /// Whether the endpoint was given as `https://`.
    https: bool,
    /// TLS towards the endpoint; `None`: in the clear.
    tls: Option<ClientTls>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The `grpc-encoding` / `Content-Encoding` token.
    fn token(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }
}

impl ClientSettings {
    /// Settings from the load's `--endpoint` (`http://host:port[/path]`, or `https://` with
    /// TLS), `--protocol` (grpc, http-protobuf, http-json) and `--compression` (none, gzip,
    /// zstd), with each compressor's default level, frames as large as the peer takes, and no
    /// TLS until [`ClientSettings::with_tls`].
    pub fn new(endpoint: &str, protocol: &str, compression: Option<&str>) -> Result<Self, String> {
        let protocol = match protocol {
            "grpc" => Protocol::Grpc,
            "http-protobuf" => Protocol::HttpProtobuf,
            "http-json" => Protocol::HttpJson,
            other => {
                return Err(format!(
                    "protocol {other}: grpc, http-protobuf or http-json"
                ))
            }
        };
        let compression = match compression {
            None | Some("none") => Compression::None,
            Some("gzip") => Compression::Gzip,
            Some("zstd") => Compression::Zstd,
            Some(other) => return Err(format!("compression {other}: none, gzip or zstd")),
        };
        let (https, rest) = match endpoint.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            _ => {
                return Err(format!(
                    "endpoint {endpoint:?}: http://HOST:PORT or https://"
                ))
            }
        };
        let (authority, base) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr = authority
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| format!("endpoint {endpoint:?}: no address for {authority:?}"))?;
        let path = match protocol {
            Protocol::Grpc => "/opentelemetry.proto.collector.trace.v1.TraceService/Export".into(),
            _ => format!("{}/v1/traces", base.trim_end_matches('/')),
        };
        Ok(ClientSettings {
            addr,
            authority: authority.to_string(),
            path,
            protocol,
            compression,
            level: match compression {
                Compression::Zstd => ZSTD_LEVEL_DEFAULT,
                _ => GZIP_LEVEL_DEFAULT,
            },
            frame_bytes: None,
            tenant: None,
            https,
            tls: None,
        })
    }

    /// These settings speaking TLS as `args` says (`--tls-*`), offering ALPN `h2` over gRPC and
    /// `http/1.1` over HTTP, the server known by the endpoint's host unless
    /// `--tls-server-name` says otherwise; in the clear without `--tls-ca`.
    pub fn with_tls(mut self, args: &ClientTlsArgs) -> Result<Self, String> {
        let alpn = match self.protocol {
            Protocol::Grpc => ALPN_H2,
            Protocol::HttpProtobuf | Protocol::HttpJson => ALPN_HTTP1,
        };
        let host = tls::host_of(&self.authority);
        let versions = rustls::DEFAULT_VERSIONS;
        self.tls = args
            .client(host, &[alpn], tls::provider(), versions)
            .map_err(|err| err.to_string())?;
        if self.https && self.tls.is_none() {
            return Err(format!(
                "endpoint https://{}: TLS needs --tls-ca, the authority to trust",
                self.authority
            ));
        }
        Ok(self)
    }

    /// These settings with compression level `level` (`--compression-level`).
    pub fn with_level(mut self, level: i32) -> Result<Self, String> {
        let levels = match self.compression {
            Compression::None => return Err("a compression level without compression".into()),
            Compression::Gzip => GZIP_LEVELS,
            Compression::Zstd => ZSTD_LEVELS,
        };
        if !levels.contains(&level) {
            return Err(format!(
                "compression level {level}: {}..={} for {:?}",
                levels.start(),
                levels.end(),
                self.compression
            ));
        }
        self.level = level;
        Ok(self)
    }

    /// These settings sending gRPC requests in DATA frames of at most `bytes` (`--frame-size`).
    pub fn with_frame_bytes(mut self, bytes: usize) -> Result<Self, String> {
        if !FRAME_BYTES.contains(&bytes) {
            return Err(format!(
                "frame size {bytes}: HTTP/2 frames carry {}..={} bytes",
                FRAME_BYTES.start(),
                FRAME_BYTES.end()
            ));
        }
        self.frame_bytes = Some(bytes);
        Ok(self)
    }

    /// These settings sending `x-tenant: tenant` with every request (`--tenants`).
    pub fn with_tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_string());
        self
    }

    /// Whether requests are compressed.
    pub fn compressed(&self) -> bool {
        self.compression != Compression::None
    }
}

/// Puts composed requests in their wire form: the body as JSON for http-json, then compressed
/// at the settings' level (gzip with libdeflate, zstd with its bulk compressor, each reusing
/// its state from request to request), behind a gRPC message prefix that says so.
pub struct Encoder {
    json: bool,
    coder: Coder,
}

enum Coder {
    None,
    Gzip(libdeflater::Compressor),
    Zstd(zstd::bulk::Compressor<'static>),
}

impl Encoder {
    /// An encoder for requests sent with `settings`.
    pub fn new(settings: &ClientSettings) -> Result<Encoder, String> {
        let coder = match settings.compression {
            Compression::None => Coder::None,
            Compression::Gzip => {
                let level = libdeflater::CompressionLvl::new(settings.level)
                    .map_err(|err| format!("gzip level {}: {err:?}", settings.level))?;
                Coder::Gzip(libdeflater::Compressor::new(level))
            }
            Compression::Zstd => Coder::Zstd(
                zstd::bulk::Compressor::new(settings.level)
                    .map_err(|err| format!("zstd level {}: {err}", settings.level))?,
            ),
        };
        Ok(Encoder {
            json: settings.protocol == Protocol::HttpJson,
            coder,
        })
    }

    /// `framed` (a composed request: an uncompressed gRPC message) in its wire form, a gRPC
    /// message whose body is what OTLP/HTTP sends. Protobuf without compression is `framed`
    /// itself, not a copy.
    pub fn encode(&mut self, framed: &Bytes) -> Result<Bytes, String> {
        let body = &framed[GRPC_PREFIX_BYTES..];
        let json;
        let body = if self.json {
            json = tailgate_wire::json::from_protobuf(Signal::Traces, body)
                .map_err(|err| format!("OTLP/JSON: {err}"))?;
            &json[..]
        } else {
            body
        };
        let mut out = Vec::new();
        let length = match &mut self.coder {
            Coder::None if !self.json => return Ok(framed.clone()),
            Coder::None => {
                out.extend_from_slice(&[0; GRPC_PREFIX_BYTES]);
                out.extend_from_slice(body);
                body.len()
            }
            Coder::Gzip(compressor) => {
                out.resize(
                    GRPC_PREFIX_BYTES + compressor.gzip_compress_bound(body.len()),
                    0,
                );
                compressor
                    .gzip_compress(body, &mut out[GRPC_PREFIX_BYTES..])
                    .map_err(|err| format!("gzip: {err:?}"))?
            }
            Coder::Zstd(compressor) => {
                out.resize(
                    GRPC_PREFIX_BYTES + zstd::zstd_safe::compress_bound(body.len()),
                    0,
                );
                compressor
                    .compress_to_buffer(body, &mut out[GRPC_PREFIX_BYTES..])
                    .map_err(|err| format!("zstd: {err}"))?
            }
        };
        out.truncate(GRPC_PREFIX_BYTES + length);
        out[0] = u8::from(!matches!(self.coder, Coder::None));
        out[1..GRPC_PREFIX_BYTES].copy_from_slice(&(length as u32).to_be_bytes());
        Ok(Bytes::from(out))
    }
}

/// One connection's client.
pub struct Client {
    settings: ClientSettings,
    connection: Option<Connection>,
}

enum Connection {
    /// An HTTP/2 connection, and over TLS where its TLS error is kept.
    Grpc {
        send: SendRequest<Bytes>,
        tls: Option<TlsFailure>,
    },
    Http(HttpStream),
}

/// An HTTP/1.1 connection's stream.
enum HttpStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Why a request was not accepted.
pub enum NotAccepted {
    /// Refused, failed or unanswered, and why: the next request goes on, on a new connection
    /// when this one broke.
    Failed(String),
    /// TLS cannot work with the endpoint as configured ([`tls::is_misconfiguration`]): no
    /// request will be accepted. Says what went wrong and what to do.
    TlsMisconfigured(String),
}

impl Client {
    /// A client that connects when it first sends.
    pub fn new(settings: ClientSettings) -> Client {
        Client {
            settings,
            connection: None,
        }
    }

    /// Sends one traces request, in its wire form ([`Encoder::encode`]): `Ok(rejected)` when
    /// it was answered OK (with how many spans a partial success rejected), else why not. A
    /// failure that may have broken the connection drops it, so the next request makes a new
    /// one.
    pub async fn send(&mut self, wire: Bytes) -> Result<u64, NotAccepted> {
        let exchange = async {
            match self.settings.protocol {
                Protocol::Grpc => self.send_grpc(wire).await,
                Protocol::HttpProtobuf | Protocol::HttpJson => {
                    self.send_http(&wire[GRPC_PREFIX_BYTES..]).await
                }
            }
        };
        let timeout = async {
            glommio::timer::sleep(REQUEST_TIMEOUT).await;
            Err(Failure::Broken(format!(
                "no answer within {REQUEST_TIMEOUT:?}"
            )))
        };
        let failure = match futures_lite::future::or(exchange, timeout).await {
            Ok(rejected) => return Ok(rejected),
            Err(Failure::Refused(why)) => return Err(NotAccepted::Failed(why)),
            Err(failure) => failure,
        };
        // The connection is gone; over HTTP/2 and TLS, h2 passed the TLS error on as text,
        // and the socket kept it.
        let tls = match (self.connection.take(), failure) {
            (_, Failure::Tls(err)) => err,
            (Some(Connection::Grpc { tls: Some(tls), .. }), Failure::Broken(why)) => {
                match tls.take() {
                    Some(err) if tls::is_misconfiguration(&err) => err,
                    _ => return Err(NotAccepted::Failed(why)),
                }
            }
            (_, Failure::Broken(why) | Failure::Refused(why)) => {
                return Err(NotAccepted::Failed(why))
            }
        };
        let server = match &self.settings.tls {
            Some(tls) => tls.server_name.to_str().into_owned(),
            None => String::new(),
        };
        Err(NotAccepted::TlsMisconfigured(format!(
            "TLS with {} (server name {server}): {}",
            self.settings.addr,
            tls::explain(&tls)
        )))
    }

    async fn connect(&self) -> Result<TcpStream, Failure> {
        let stream = TcpStream::connect(self.settings.addr)
            .await
            .map_err(|err| {
                Failure::Broken(format!("connecting to {}: {err}", self.settings.addr))
            })?;
        // Requests are written whole and waited on; Nagle would only delay the tail.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// The client's side of a full TLS handshake on `stream`.
    async fn handshake(
        &self,
        tls: &ClientTls,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, Failure> {
        let connector = TlsConnector::from(tls.config.clone());
        connector
            .connect(tls.server_name.clone(), stream)
            .await
            .map_err(|err| match tls::rustls_error(&err) {
                Some(tls) if tls::is_misconfiguration(tls) => Failure::Tls(tls.clone()),
                _ => Failure::Broken(format!("TLS handshake with {}: {err}", self.settings.addr)),
            })
    }

    /// A new HTTP/2 connection (over TLS when the settings say so, with where its TLS error
    /// will be kept), its I/O driven by a task of its own.
    async fn connect_grpc(&self) -> Result<(SendRequest<Bytes>, Option<TlsFailure>), Failure> {
        let stream = self.connect().await?;
        let Some(tls) = &self.settings.tls else {
            return Ok((start_h2(Socket::new(stream)).await?, None));
        };
        let stream = self.handshake(tls, stream).await?;
        let failure = TlsFailure::default();
        let send = start_h2(TlsSocket::new(stream, failure.clone())).await?;
        Ok((send, Some(failure)))
    }

    /// A new HTTP/1.1 connection, over TLS when the settings say so.
    async fn connect_http(&self) -> Result<HttpStream, Failure> {
        let stream = self.connect().await?;
        Ok(match &self.settings.tls {
            None => HttpStream::Plain(stream),
            Some(tls) => HttpStream::Tls(Box::new(self.handshake(tls, stream).await?)),
        })
    }

    /// Sends `message` (a gRPC message, prefix and body) as one call.
    async fn send_grpc(&mut self, message: Bytes) -> Result<u64, Failure> {
        let send = match &self.connection {
            Some(Connection::Grpc { send, .. }) => send.clone(),
            _ => {
                let (send, tls) = self.connect_grpc().await?;
                self.connection = Some(Connection::Grpc {
                    send: send.clone(),
                    tls,
                });
                send
            }
        };
        let mut send = send.ready().await.map_err(broken)?;
        let uri = Uri::builder()
            .scheme(if self.settings.tls.is_some() {
                "https"
            } else {
                "http"
            })
            .authority(self.settings.authority.as_str())
            .path_and_query(self.settings.path.as_str())
            .build()
            .map_err(|err| Failure::Refused(format!("request URI: {err}")))?;
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        if let Some(token) = self.settings.compression.token() {
            headers.insert("grpc-encoding", HeaderValue::from_static(token));
        }
        if let Some(tenant) = &self.settings.tenant {
            let value =
                HeaderValue::from_str(tenant).map_err(|_| Failure::Refused("tenant".into()))?;
            headers.insert("x-tenant", value);
        }
        let (response, mut stream) = send.send_request(request, false).map_err(broken)?;
        // h2 sends each `send_data` as its own DATA frames, so slices of the frame size are
        // frames of the frame size.
        let frame = self.settings.frame_bytes.unwrap_or(message.len()).max(1);
        let mut at = 0;
        while at < message.len() {
            let end = (at + frame).min(message.len());
            stream
                .send_data(message.slice(at..end), end == message.len())
                .map_err(broken)?;
            at = end;
        }
        let (head, mut answer) = response.await.map_err(broken)?.into_parts();
        if head.headers.contains_key("grpc-status") {
            // Trailers-only: the status is all there is.
            return grpc_status(&head.headers).map(|()| 0);
        }
        let mut data = Vec::new();
        while let Some(chunk) = answer.data().await {
            let chunk = chunk.map_err(broken)?;
            let _ = answer.flow_control().release_capacity(chunk.len());
            if data.len() + chunk.len() > RESPONSE_BYTES_MAX {
                return Err(Failure::Broken("an oversized answer".into()));
            }
            data.extend_from_slice(&chunk);
        }
        let trailers =
            answer.trailers().await.map_err(broken)?.ok_or_else(|| {
                Failure::Refused(format!("HTTP {} without grpc-status", head.status))
            })?;
        grpc_status(&trailers)?;
        // One message, or none: an empty answer is a full success. A compressed one is in
        // the answer's `grpc-encoding` (grpc-go, the Collector's server, answers in the
        // request's).
        match data.get(5..) {
            Some(message) if data[0] == 0 => rejected_protobuf(message),
            Some(message) => {
                let coding = head.headers.get("grpc-encoding").map(HeaderValue::as_bytes);
                rejected_protobuf(&decompress_answer(coding, message)?)
            }
            None => Ok(0),
        }
    }

    async fn send_http(&mut self, body: &[u8]) -> Result<u64, Failure> {
        let stream = match self.connection.take() {
            Some(Connection::Http(stream)) => stream,
            _ => self.connect_http().await?,
        };
        let (status, answer) = match stream {
            HttpStream::Plain(mut stream) => {
                let (status, answer, keep) = self.exchange_http(&mut stream, body).await?;
                if keep {
                    self.connection = Some(Connection::Http(HttpStream::Plain(stream)));
                }
                (status, answer)
            }
            HttpStream::Tls(mut stream) => {
                let (status, answer, keep) = self.exchange_http(&mut stream, body).await?;
                if keep {
                    self.connection = Some(Connection::Http(HttpStream::Tls(stream)));
                }
                (status, answer)
            }
        };
        if status != 200 {
            let why = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
            return Err(Failure::Refused(format!("HTTP {status}: {why}")));
        }
        if self.settings.protocol == Protocol::HttpJson {
            rejected_json(&answer)
        } else {
            rejected_protobuf(&answer)
        }
    }

    /// Writes one request on `stream` and reads its answer: (status, body, whether the
    /// connection stays open).
    async fn exchange_http<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>, bool), Failure> {
        let settings = &self.settings;
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            settings.path,
            settings.authority,
            if settings.protocol == Protocol::HttpJson {
                "application/json"
            } else {
                "application/x-protobuf"
            },
            body.len()
        );
        if let Some(token) = settings.compression.token() {
            head.push_str(&format!("Content-Encoding: {token}\r\n"));
        }
        if let Some(tenant) = &settings.tenant {
            head.push_str(&format!("X-Tenant: {tenant}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.map_err(broken_io)?;
        stream.write_all(body).await.map_err(broken_io)?;
        // Over TLS the request's last record may still be buffered in the session.
        stream.flush().await.map_err(broken_io)?;
        read_answer(stream).await
    }
}

/// An HTTP/2 client connection on `io`, its I/O driven by a task of its own that ends with
/// the connection.
async fn start_h2<T>(io: T) -> Result<SendRequest<Bytes>, Failure>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let (send, driver) = h2::client::Builder::new()
        .initial_window_size(RESPONSE_WINDOW_BYTES)
        .enable_push(false)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(broken)?;
    glommio::spawn_local(async move {
        let _ = driver.await;
    })
    .detach();
    Ok(send)
}

/// Why a request was not accepted.
enum Failure {
    /// The endpoint answered with a refusal; the connection is fine.
    Refused(String),
    /// The connection failed, or may be in an unknown state.
    Broken(String),
    /// TLS cannot work with the endpoint as configured.
    Tls(rustls::Error),
}

fn broken(err: h2::Error) -> Failure {
    Failure::Broken(format!("HTTP/2: {err}"))
}

fn broken_io(err: std::io::Error) -> Failure {
    match tls::rustls_error(&err) {
        Some(tls) if tls::is_misconfiguration(tls) => Failure::Tls(tls.clone()),
        _ => Failure::Broken(format!("HTTP/1.1: {err}")),
    }
}

/// `Ok(())` for `grpc-status: 0`, the status and its message otherwise.
fn grpc_status(headers: &HeaderMap) -> Result<(), Failure> {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    match code {
        Some(0) => Ok(()),
        Some(code) => {
            let message = headers
                .get("grpc-message")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            Err(Failure::Refused(format!("gRPC status {code}: {message}")))
        }
        None => Err(Failure::Refused("an unreadable grpc-status".into())),
    }
}

/// A compressed gRPC answer's message in `coding` (gzip or zstd, what the load sends), at most
/// [`RESPONSE_BYTES_MAX`] bytes of it.
fn decompress_answer(coding: Option<&[u8]>, message: &[u8]) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let mut out = Vec::new();
    let read = match coding {
        Some(b"gzip") => flate2::read::GzDecoder::new(message)
            .take(RESPONSE_BYTES_MAX as u64 + 1)
            .read_to_end(&mut out),
        Some(b"zstd") => zstd::stream::read::Decoder::new(message).and_then(|decoder| {
            decoder
                .take(RESPONSE_BYTES_MAX as u64 + 1)
                .read_to_end(&mut out)
        }),
        other => {
            return Err(Failure::Refused(format!(
                "a compressed answer in {:?}",
                other.map(String::from_utf8_lossy)
            )))
        }
    };
    read.map_err(|err| Failure::Broken(format!("a compressed answer: {err}")))?;
    if out.len() > RESPONSE_BYTES_MAX {
        return Err(Failure::Broken("an oversized answer".into()));
    }
    Ok(out)
}

/// Spans a protobuf `ExportTraceServiceResponse` says were rejected.
fn rejected_protobuf(message: &[u8]) -> Result<u64, Failure> {
    let response = ExportTraceServiceResponse::decode(message)
        .map_err(|err| Failure::Refused(format!("an unreadable answer: {err}")))?;
    Ok(response
        .partial_success
        .map_or(0, |p| p.rejected_spans.max(0) as u64))
}

/// Spans an OTLP/JSON `ExportTraceServiceResponse` says were rejected (an int64, which JSON
/// may write as a string or a number).
fn rejected_json(body: &[u8]) -> Result<u64, Failure> {
    if body.is_empty() {
        return Ok(0);
    }
    let answer: serde_json::Value = serde_json::from_slice(body)
        .map_err(|err| Failure::Refused(format!("an unreadable answer: {err}")))?;
    let rejected = &answer["partialSuccess"]["rejectedSpans"];
    Ok(rejected
        .as_u64()
        .or_else(|| rejected.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0))
}

/// Reads an HTTP/1.1 answer: (status, body, whether the connection stays open). The body must
/// have a `Content-Length`, as every OTLP/HTTP receiver's answers do.
async fn read_answer<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(u16, Vec<u8>, bool), Failure> {
    let mut buffer = vec![0u8; RESPONSE_BYTES_MAX];
    let mut filled = 0;
    loop {
        let read = stream
            .read(&mut buffer[filled..])
            .await
            .map_err(broken_io)?;
        if read == 0 {
            return Err(Failure::Broken(
                "the connection closed before an answer".into(),
            ));
        }
        filled += read;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(&buffer[..filled]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if filled < buffer.len() => continue,
            Ok(httparse::Status::Partial) => {
                return Err(Failure::Broken("an oversized answer head".into()))
            }
            Err(err) => return Err(Failure::Broken(format!("an unreadable answer: {err}"))),
        };
        let status = response.code.unwrap_or(0);
        let mut length = None;
        let mut keep = response.version == Some(1);
        for header in response.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(header.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok());
            } else if header.name.eq_ignore_ascii_case("connection") {
                keep &= !header.value.eq_ignore_ascii_case(b"close");
            }
        }
        let length = length
            .filter(|&length| head_len + length <= buffer.len())
            .ok_or_else(|| Failure::Broken("an answer without a usable Content-Length".into()))?;
        if filled < head_len + length {
            stream
                .read_exact(&mut buffer[filled..head_len + length])
                .await
                .map_err(broken_io)?;
        } else if filled > head_len + length {
            // Bytes past the answer: the connection's framing cannot be trusted any more.
            keep = false;
        }
        buffer.truncate(head_len + length);
        return Ok((status, buffer.split_off(head_len), keep));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_give_the_address_and_the_path() {
        let grpc = ClientSettings::new("http://127.0.0.1:4317", "grpc", None).unwrap();
        assert_eq!(grpc.addr, "127.0.0.1:4317".parse().unwrap());
        assert_eq!(
            grpc.path,
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
        let http = ClientSettings::new("http://127.0.0.1:4318/otlp/", "http-json", Some("gzip"));
        let http = http.unwrap();
        assert_eq!(
            (http.authority.as_str(), http.path.as_str()),
            ("127.0.0.1:4318", "/otlp/v1/traces")
        );
        assert_eq!(http.compression, Compression::Gzip);
        assert!(ClientSettings::new("ftp://127.0.0.1:1", "grpc", None).is_err());
        // https:// needs the authority to trust.
        let https = ClientSettings::new("https://127.0.0.1:1", "grpc", None).unwrap();
        let err = https.with_tls(&ClientTlsArgs::default()).unwrap_err();
        assert!(err.contains("--tls-ca"), "{err}");
        let plain = ClientSettings::new("http://127.0.0.1:1", "grpc", None).unwrap();
        assert!(plain
            .with_tls(&ClientTlsArgs::default())
            .unwrap()
            .tls
            .is_none());
        assert!(ClientSettings::new("http://127.0.0.1:1", "thrift", None).is_err());
        assert!(ClientSettings::new("http://127.0.0.1:1", "grpc", Some("lz4")).is_err());
    }

    #[test]
    fn partial_success_is_read_from_either_encoding() {
        let response = ExportTraceServiceResponse {
            partial_success: Some(
                opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                    rejected_spans: 7,
                    error_message: "bad ids".into(),
                },
            ),
        };
        assert_eq!(rejected_protobuf(&response.encode_to_vec()).ok(), Some(7));
        assert_eq!(rejected_protobuf(&[]).ok(), Some(0));
        let json = br#"{"partialSuccess":{"rejectedSpans":"3"}}"#;
        assert_eq!(rejected_json(json).ok(), Some(3));
        assert_eq!(rejected_json(b"{}").ok(), Some(0));
    }

    /// A compressed answer, as grpc-go answers a compressed request: read in its
    /// `grpc-encoding`, bounded; another coding is a refusal that names it.
    #[test]
    fn compressed_answers_are_read_in_their_coding() {
        use std::io::Write;
        let response = ExportTraceServiceResponse {
            partial_success: Some(
                opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                    rejected_spans: 5,
                    error_message: String::new(),
                },
            ),
        };
        let plain = response.encode_to_vec();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&plain).unwrap();
        let gzipped = gzip.finish().unwrap();
        let zstded = zstd::bulk::compress(&plain, 3).unwrap();
        for (coding, message) in [(&b"gzip"[..], &gzipped), (&b"zstd"[..], &zstded)] {
            let answer = decompress_answer(Some(coding), message)
                .ok()
                .expect("decompressed");
            assert_eq!(rejected_protobuf(&answer).ok(), Some(5));
        }
        assert!(decompress_answer(Some(b"snappy"), &plain).is_err());
        assert!(decompress_answer(None, &plain).is_err());
        assert!(
            decompress_answer(Some(b"gzip"), &plain).is_err(),
            "not gzip"
        );
        let bomb = zstd::bulk::compress(&vec![0u8; RESPONSE_BYTES_MAX + 1], 3).unwrap();
        assert!(
            decompress_answer(Some(b"zstd"), &bomb).is_err(),
            "over the bound"
        );
    }
}
