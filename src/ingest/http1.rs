//! HTTP/1.1 request framing without I/O: where a request head ends, what it says, and how its
//! body is delimited.
//!
//! The OTLP/HTTP receiver (`http`) reads bytes off the socket and hands them here; this
//! module never waits and never allocates in proportion to a number it read off the wire before
//! checking that number against a limit. That split keeps the parts a hostile client can reach
//! small, synchronous and fuzzable (`fuzz/fuzz_targets/http1_request.rs`):
//!
//! - [`parse_head`] finds the end of a head within [`HEAD_BYTES_MAX`] and reads it with
//!   `httparse`: method, path, the headers the receiver uses, and the body's framing. A
//!   `Content-Length` is digits only (RFC 9110 §8.6: `+106` is refused), repeated only with the
//!   same value, and never beside `Transfer-Encoding`; the only transfer coding is `chunked`.
//! - [`ChunkedDecoder`] decodes a chunked body incrementally: it takes whatever bytes have
//!   arrived, copies chunk data out as it comes, and refuses a chunk whose size, added to what
//!   the body already holds, would pass the limit — with checked arithmetic, before any copy.
//!   Chunk extensions are skipped; trailer fields are read and discarded (OTLP uses none), the
//!   chunk-size line and the trailer section each bounded.

use std::fmt;

use crate::metadata::{Capture, Metadata};

/// The largest request head (request line and headers) accepted.
pub const HEAD_BYTES_MAX: usize = 16 << 10;
/// The most header fields one request may carry.
pub const HEADERS_MAX: usize = 64;
/// The longest chunk-size line (size, extensions and CRLF) accepted.
pub const CHUNK_LINE_BYTES_MAX: usize = 1024;
/// The most bytes of trailer fields accepted after the last chunk.
pub const TRAILER_BYTES_MAX: usize = HEAD_BYTES_MAX;
/// The most hex digits of a chunk size (leading zeros included): 16 would let a size reach
/// `u64::MAX`; 15 digits are a petabyte, far past any body limit.
const CHUNK_SIZE_DIGITS_MAX: usize = 15;

/// Why a request head or body is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// The bytes are not an HTTP/1.x request head.
    MalformedHead,
    /// The head passed [`HEAD_BYTES_MAX`] without ending.
    HeadTooLarge,
    /// A `Content-Length` that is not digits only, or several that disagree.
    InvalidContentLength,
    /// Both `Content-Length` and `Transfer-Encoding`: a smuggling shape.
    ConflictingFraming,
    /// A transfer coding other than `chunked`.
    UnsupportedTransferCoding(String),
    /// A chunk-size line that is not hex digits (with optional extensions) and CRLF, or is
    /// longer than [`CHUNK_LINE_BYTES_MAX`].
    MalformedChunkSize,
    /// Chunk data not followed by CRLF.
    MissingChunkEnd,
    /// Trailer fields past [`TRAILER_BYTES_MAX`], or not lines.
    MalformedTrailer,
    /// The connection ended inside the body.
    Truncated,
    /// The body did not arrive whole within the receiver's `read_timeout`.
    TimedOut,
    /// The body would pass `limit` bytes.
    BodyTooLarge {
        /// The receiver's limit on a body before decompression.
        limit: usize,
    },
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::MalformedHead => f.write_str("malformed HTTP request"),
            FramingError::HeadTooLarge => {
                write!(f, "request head over {HEAD_BYTES_MAX} bytes")
            }
            FramingError::InvalidContentLength => {
                f.write_str("invalid Content-Length (digits only, one value)")
            }
            FramingError::ConflictingFraming => {
                f.write_str("both Content-Length and Transfer-Encoding")
            }
            FramingError::UnsupportedTransferCoding(coding) => {
                write!(
                    f,
                    "unsupported Transfer-Encoding {coding:?} (only chunked is accepted)"
                )
            }
            FramingError::MalformedChunkSize => f.write_str("malformed chunk size"),
            FramingError::MissingChunkEnd => f.write_str("chunk not followed by CRLF"),
            FramingError::MalformedTrailer => f.write_str("malformed chunked trailer"),
            FramingError::Truncated => f.write_str("connection closed inside the body"),
            FramingError::TimedOut => f.write_str("request body not received in time"),
            FramingError::BodyTooLarge { limit } => {
                write!(f, "message larger than the limit of {limit} bytes")
            }
        }
    }
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Exactly this many bytes follow the head (0 when neither header is present).
    Length(usize),
    /// Chunked transfer coding.
    Chunked,
}

/// What the receiver needs from a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The request method.
    pub method: String,
    /// The path, without its query string (which does not select the signal).
    pub path: String,
    /// `Content-Type`, trimmed.
    pub content_type: Option<String>,
    /// `Content-Encoding`, trimmed.
    pub content_encoding: Option<String>,
    /// How the body is delimited.
    pub body: BodyFraming,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// `Origin`, trimmed: a browser's request from a page.
    pub origin: Option<String>,
    /// `Access-Control-Request-Method`, trimmed: a browser's preflight.
    pub access_control_request_method: Option<String>,
    /// `Access-Control-Request-Headers`, trimmed.
    pub access_control_request_headers: Option<String>,
}

/// Reads a request head from the start of `buffer`: `Ok(None)` while it is incomplete (and
/// could still be a request), `Ok(Some((head, len)))` with the head's length in bytes once its
/// blank line has arrived.
pub fn parse_head(buffer: &[u8]) -> Result<Option<(Head, usize)>, FramingError> {
    let window = &buffer[..buffer.len().min(HEAD_BYTES_MAX)];
    let mut fields = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(window) {
        Ok(httparse::Status::Complete(len)) => Ok(Some((read_head(&request)?, len))),
        Ok(httparse::Status::Partial) if buffer.len() >= HEAD_BYTES_MAX => {
            Err(FramingError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(FramingError::HeadTooLarge),
        Err(_) => Err(FramingError::MalformedHead),
    }
}

fn read_head(request: &httparse::Request<'_, '_>) -> Result<Head, FramingError> {
    let path = request.path.unwrap_or("");
    let mut head = Head {
        method: request.method.unwrap_or("").to_string(),
        path: path.split('?').next().unwrap_or("").to_string(),
        content_type: None,
        content_encoding: None,
        body: BodyFraming::Length(0),
        keep_alive: request.version == Some(1),
        expect_continue: false,
        origin: None,
        access_control_request_method: None,
        access_control_request_headers: None,
    };
    let mut content_length: Option<usize> = None;
    let mut transfer_codings: Vec<String> = Vec::new();
    for field in request.headers.iter() {
        let value = String::from_utf8_lossy(field.value).trim().to_string();
        let name = field.name;
        if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(value);
        } else if name.eq_ignore_ascii_case("content-encoding") {
            head.content_encoding = Some(value);
        } else if name.eq_ignore_ascii_case("content-length") {
            let length = parse_content_length(&value)?;
            if content_length.is_some_and(|seen| seen != length) {
                return Err(FramingError::InvalidContentLength);
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_codings.extend(
                value
                    .split(',')
                    .map(|coding| coding.trim().to_ascii_lowercase())
                    .filter(|coding| !coding.is_empty()),
            );
        } else if name.eq_ignore_ascii_case("connection") {
            let value = value.to_ascii_lowercase();
            if value.contains("close") {
                head.keep_alive = false;
            } else if value.contains("keep-alive") {
                head.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("origin") {
            head.origin = Some(value);
        } else if name.eq_ignore_ascii_case("access-control-request-method") {
            head.access_control_request_method = Some(value);
        } else if name.eq_ignore_ascii_case("access-control-request-headers") {
            head.access_control_request_headers = Some(value);
        }
    }
    head.body = match (content_length, transfer_codings.as_slice()) {
        (Some(_), [_, ..]) => return Err(FramingError::ConflictingFraming),
        (length, []) => BodyFraming::Length(length.unwrap_or(0)),
        (None, [only]) if only == "chunked" => BodyFraming::Chunked,
        (None, codings) => return Err(FramingError::UnsupportedTransferCoding(codings.join(", "))),
    };
    Ok(head)
}

/// The value of the first `name` field (any case) of a complete request head, trimmed; `None`
/// when the head has none. For the fields [`Head`] does not keep, such as the one an
/// authenticator reads, whose name is configured.
pub fn header_value<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut fields = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    request
        .headers
        .iter()
        .find(|field| field.name.eq_ignore_ascii_case(name))
        .map(|field| field.value.trim_ascii())
}

/// The client metadata `capture` keeps of a complete request head (none when the head does
/// not parse, which the caller has refused already).
pub fn metadata_of(capture: &Capture, head: &[u8]) -> Metadata {
    let mut fields = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Metadata::none(),
    }
    capture.from_headers(
        request
            .headers
            .iter()
            .map(|field| (field.name, field.value.trim_ascii())),
    )
}

/// A `Content-Length` value: one or more ASCII digits, nothing else, within `usize`.
fn parse_content_length(value: &str) -> Result<usize, FramingError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FramingError::InvalidContentLength);
    }
    value
        .parse::<usize>()
        .map_err(|_| FramingError::InvalidContentLength)
}

/// Where a [`ChunkedDecoder`] is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes of it still to come.
    Data { remaining: usize },
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields until an empty line; `seen` bytes so far.
    Trailer { seen: usize },
    /// The body is complete.
    Done,
}

/// What one call of [`ChunkedDecoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input used; the caller drops them from its buffer.
    pub consumed: usize,
    /// Whether the body is complete (the bytes after `consumed` belong to the next request).
    pub done: bool,
}

/// Decodes a chunked body incrementally, holding at most `limit` bytes of body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    body_len: usize,
    limit: usize,
}

impl ChunkedDecoder {
    /// A decoder for a body of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
            body_len: 0,
            limit,
        }
    }

    /// Decodes what it can of `input`, appending chunk data to `body`. Call again with the
    /// unconsumed rest plus newly read bytes until it reports `done`; an input that leaves
    /// `consumed` at 0 without `done` needs more bytes.
    pub fn decode(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<Decoded, FramingError> {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            let step = match self.state {
                ChunkState::Done => {
                    return Ok(Decoded {
                        consumed: at,
                        done: true,
                    })
                }
                ChunkState::Size => self.size_line(rest)?,
                ChunkState::Data { remaining } => {
                    let n = remaining.min(rest.len());
                    body.extend_from_slice(&rest[..n]);
                    self.state = match remaining.saturating_sub(n) {
                        0 => ChunkState::DataEnd,
                        remaining => ChunkState::Data { remaining },
                    };
                    Some(n)
                }
                ChunkState::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        self.state = ChunkState::Size;
                        Some(2)
                    }
                    [] | [b'\r'] => None,
                    _ => return Err(FramingError::MissingChunkEnd),
                },
                ChunkState::Trailer { seen } => self.trailer_line(rest, seen)?,
            };
            match step {
                Some(n) if n > 0 => at = at.saturating_add(n),
                _ => {
                    return Ok(Decoded {
                        consumed: at,
                        done: self.state == ChunkState::Done,
                    })
                }
            }
        }
    }

    /// Reads one chunk-size line; `None` until the whole line has arrived.
    fn size_line(&mut self, rest: &[u8]) -> Result<Option<usize>, FramingError> {
        let Some(line_len) = line_length(rest, CHUNK_LINE_BYTES_MAX)? else {
            return Ok(None);
        };
        // A line ends with CRLF, so it is at least 2 bytes long.
        let line = &rest[..line_len.saturating_sub(2)];
        let digits = line
            .iter()
            .position(|b| !b.is_ascii_hexdigit())
            .unwrap_or(line.len());
        let extension = &line[digits..];
        let extension_ok = extension.is_empty() || matches!(extension[0], b';' | b' ' | b'\t');
        if digits == 0 || digits > CHUNK_SIZE_DIGITS_MAX || !extension_ok {
            return Err(FramingError::MalformedChunkSize);
        }
        let size = line[..digits].iter().try_fold(0usize, |size, &digit| {
            let value = (digit as char).to_digit(16)? as usize;
            size.checked_mul(16)?.checked_add(value)
        });
        let size = size.ok_or(FramingError::MalformedChunkSize)?;
        let body_len = self
            .body_len
            .checked_add(size)
            .filter(|&len| len <= self.limit)
            .ok_or(FramingError::BodyTooLarge { limit: self.limit })?;
        self.body_len = body_len;
        self.state = if size == 0 {
            ChunkState::Trailer { seen: 0 }
        } else {
            ChunkState::Data { remaining: size }
        };
        Ok(Some(line_len))
    }

    /// Reads one trailer line (an empty one ends the body); `None` until it has arrived.
    fn trailer_line(&mut self, rest: &[u8], seen: usize) -> Result<Option<usize>, FramingError> {
        let room = TRAILER_BYTES_MAX.saturating_sub(seen);
        let Some(line_len) = line_length(rest, room).map_err(|_| FramingError::MalformedTrailer)?
        else {
            return Ok(None);
        };
        self.state = if line_len == 2 {
            ChunkState::Done
        } else {
            ChunkState::Trailer {
                seen: seen.saturating_add(line_len),
            }
        };
        Ok(Some(line_len))
    }
}

/// The length of the CRLF-ended line at the start of `rest`, CRLF included; `None` while it is
/// incomplete; an error once it passes `max` bytes or holds a bare CR or LF.
fn line_length(rest: &[u8], max: usize) -> Result<Option<usize>, FramingError> {
    let window = &rest[..rest.len().min(max)];
    match window.iter().position(|&b| b == b'\n') {
        Some(0) => Err(FramingError::MalformedChunkSize),
        Some(lf) => match window[..lf].split_last() {
            Some((b'\r', line)) if !line.contains(&b'\r') => Ok(Some(lf.saturating_add(1))),
            _ => Err(FramingError::MalformedChunkSize),
        },
        None if rest.len() >= max => Err(FramingError::MalformedChunkSize),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_found_in_any_case() {
        let head = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nAUTHORIZATION:  Bearer t \r\nx-api-key: k\r\nx-api-key: second\r\n\r\n";
        assert_eq!(header_value(head, "authorization"), Some(&b"Bearer t"[..]));
        assert_eq!(header_value(head, "X-Api-Key"), Some(&b"k"[..]));
        assert_eq!(header_value(head, "cookie"), None);
        assert_eq!(
            header_value(b"POST / HTTP/1.1\r\nAuthorization: x\r\n", "authorization"),
            None
        );
    }

    fn head(text: &str) -> Result<Option<(Head, usize)>, FramingError> {
        parse_head(text.as_bytes())
    }

    fn decode_all(input: &[u8], limit: usize) -> Result<(Vec<u8>, usize), FramingError> {
        let mut decoder = ChunkedDecoder::new(limit);
        let mut body = Vec::new();
        let decoded = decoder.decode(input, &mut body)?;
        assert!(decoded.done, "incomplete: {decoded:?}");
        Ok((body, decoded.consumed))
    }

    #[test]
    fn heads_are_read_and_framing_checked() {
        let text = "POST /v1/traces?x=1 HTTP/1.1\r\nContent-Type: application/json\r\n\
                    Content-Length: 12\r\n\r\nbody";
        let (parsed, len) = head(text).unwrap().unwrap();
        assert_eq!(&text[len..], "body");
        assert_eq!(parsed.path, "/v1/traces");
        assert_eq!(parsed.body, BodyFraming::Length(12));
        assert!(parsed.keep_alive);
        assert_eq!(head("POST / HTTP/1.1\r\nA: b\r\n").unwrap(), None);
        assert_eq!(
            head("\x16\x03\x01\x02\x00\x01"),
            Err(FramingError::MalformedHead)
        );
        for bad in ["+106", "-1", "1 2", "0x10", "", "99999999999999999999999"] {
            assert_eq!(
                head(&format!("POST / HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n")),
                Err(FramingError::InvalidContentLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Err(FramingError::InvalidContentLength)
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(FramingError::ConflictingFraming)
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Err(FramingError::UnsupportedTransferCoding(
                "gzip, chunked".into()
            ))
        );
        let chunked = head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(chunked.0.body, BodyFraming::Chunked);
        let big = format!("POST / HTTP/1.1\r\nX: {}\r\n", "y".repeat(HEAD_BYTES_MAX));
        assert_eq!(head(&big), Err(FramingError::HeadTooLarge));
    }

    #[test]
    fn chunked_bodies_decode_with_extensions_and_trailers() {
        let input = b"2;name=v\r\nab\r\n3\r\ncde\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let (body, consumed) = decode_all(input, 100).unwrap();
        assert_eq!(body, b"abcde");
        assert_eq!(&input[consumed..], b"NEXT");
    }

    #[test]
    fn chunked_decoding_is_the_same_however_the_bytes_arrive() {
        let input = b"4\r\nwxyz\r\n1\r\n!\r\n0\r\n\r\n";
        for cut in 0..input.len() {
            let mut decoder = ChunkedDecoder::new(100);
            let mut body = Vec::new();
            let mut pending = input[..cut].to_vec();
            let first = decoder.decode(&pending, &mut body).unwrap();
            pending.drain(..first.consumed);
            pending.extend_from_slice(&input[cut..]);
            let second = decoder.decode(&pending, &mut body).unwrap();
            assert!(second.done, "cut at {cut}");
            assert_eq!(body, b"wxyz!", "cut at {cut}");
        }
    }

    #[test]
    fn hostile_chunk_sizes_are_refused_before_any_arithmetic_wraps() {
        // The request that once panicked a shard: a size that wraps when the framing is added.
        assert_eq!(
            decode_all(b"2\r\nab\r\nfffffffffffffffe\r\n", usize::MAX),
            Err(FramingError::MalformedChunkSize)
        );
        assert_eq!(
            decode_all(b"fffffffffffffff\r\n", 1 << 20),
            Err(FramingError::BodyTooLarge { limit: 1 << 20 })
        );
        assert_eq!(
            decode_all(b"3\r\nabc\r\n3\r\n", 5),
            Err(FramingError::BodyTooLarge { limit: 5 })
        );
        for bad in [&b"\r\n"[..], b"g\r\n", b"1\n", b"1\rx\n", b"1x\r\n"] {
            assert_eq!(
                decode_all(bad, 100),
                Err(FramingError::MalformedChunkSize),
                "{bad:?}"
            );
        }
        assert_eq!(
            decode_all(b"1\r\naXY", 100),
            Err(FramingError::MissingChunkEnd)
        );
        let long_line = format!("1;{}\r\n", "e".repeat(CHUNK_LINE_BYTES_MAX));
        assert_eq!(
            decode_all(long_line.as_bytes(), 100),
            Err(FramingError::MalformedChunkSize)
        );
        let long_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(TRAILER_BYTES_MAX));
        assert_eq!(
            decode_all(long_trailer.as_bytes(), 100),
            Err(FramingError::MalformedTrailer)
        );
    }
}
