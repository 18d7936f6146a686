//! The gRPC message framing: a 5-byte prefix (compressed flag, big-endian length) before each
//! message, written by [`message_prefix`] and read by [`MessageReader`] (a request, which
//! arrives cut into HTTP/2 DATA frames anywhere) or [`split_message`] (a response, read whole).
//!
//! [`MessageReader`] takes the frames' payloads as they come and checks the declared length
//! against the receiver's limit as soon as the prefix is whole, before it reserves anything;
//! the message buffer is then sized from the checked length, so the body is copied once, from
//! the frames into place. A message that one frame carried whole is kept as that frame's bytes,
//! uncopied (the usual case with the large frames the receiver allows; grpc-go and grpc-java
//! send 16 KiB frames and take the copy). Fuzzed by `fuzz/fuzz_targets/grpc_message.rs`.

use std::fmt;

use bytes::Bytes;

/// The gRPC message prefix: a flag byte and a 4-byte length.
pub const PREFIX_BYTES: usize = 5;

/// The prefix of a message of `len` bytes, `compressed` or not; `None` past the 4 GiB a prefix
/// can declare.
pub fn message_prefix(compressed: bool, len: usize) -> Option<[u8; PREFIX_BYTES]> {
    let [a, b, c, d] = u32::try_from(len).ok()?.to_be_bytes();
    Some([u8::from(compressed), a, b, c, d])
}

/// What a prefix says: whether the message is compressed, and its length.
fn read_prefix(prefix: [u8; PREFIX_BYTES]) -> (bool, u32) {
    let [flag, a, b, c, d] = prefix;
    (flag & 1 == 1, u32::from_be_bytes([a, b, c, d]))
}

/// The first message of a body held whole: whether it is compressed, and its bytes. Bytes after
/// it are not read (a unary response carries one message).
pub fn split_message(body: &[u8]) -> Result<(bool, &[u8]), MessageError> {
    let (prefix, rest) = body
        .split_first_chunk::<PREFIX_BYTES>()
        .ok_or(MessageError::ShortPrefix)?;
    let (compressed, declared) = read_prefix(*prefix);
    let declared = usize::try_from(declared).unwrap_or(usize::MAX);
    let message = rest.get(..declared).ok_or(MessageError::Shorter {
        declared,
        received: rest.len(),
    })?;
    Ok((compressed, message))
}

/// Why a request's message framing is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    /// The declared length (or the bytes that arrived) pass the limit.
    TooLarge {
        /// The receiver's limit on one message.
        limit: usize,
    },
    /// More bytes arrived than the prefix declared: a second message in a unary call.
    Longer {
        /// What the prefix declared.
        declared: usize,
    },
    /// The stream ended before the prefix was whole.
    ShortPrefix,
    /// The stream ended before the message was whole.
    Shorter {
        /// What the prefix declared.
        declared: usize,
        /// What arrived.
        received: usize,
    },
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::TooLarge { limit } => {
                write!(f, "message larger than the limit of {limit} bytes")
            }
            MessageError::Longer { declared } => write!(
                f,
                "gRPC message prefix says {declared} bytes, the stream carries more"
            ),
            MessageError::ShortPrefix => f.write_str("gRPC message shorter than its 5-byte prefix"),
            MessageError::Shorter { declared, received } => write!(
                f,
                "gRPC message prefix says {declared} bytes, the stream carried {received}"
            ),
        }
    }
}

/// Assembles one gRPC message from the payloads of the DATA frames that carry it.
#[derive(Debug)]
pub struct MessageReader {
    limit: usize,
    prefix: [u8; PREFIX_BYTES],
    prefix_len: usize,
    declared: usize,
    /// The message, when one frame carried all of it.
    whole: Option<Bytes>,
    /// The message, assembled from several frames.
    assembled: Vec<u8>,
}

impl MessageReader {
    /// A reader for a message of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        MessageReader {
            limit,
            prefix: [0; PREFIX_BYTES],
            prefix_len: 0,
            declared: 0,
            whole: None,
            assembled: Vec::new(),
        }
    }

    /// Takes the next frame's payload.
    pub fn push(&mut self, chunk: Bytes) -> Result<(), MessageError> {
        let mut start = 0;
        if self.prefix_len < PREFIX_BYTES {
            let (filled, unfilled) = self.prefix.split_at_mut(self.prefix_len);
            let n = unfilled.len().min(chunk.len());
            unfilled[..n].copy_from_slice(&chunk[..n]);
            self.prefix_len = filled.len().saturating_add(n);
            start = n;
            if self.prefix_len == PREFIX_BYTES {
                let (_, declared) = read_prefix(self.prefix);
                self.declared = usize::try_from(declared)
                    .ok()
                    .filter(|&declared| declared <= self.limit)
                    .ok_or(MessageError::TooLarge { limit: self.limit })?;
            }
        }
        let data = &chunk[start..];
        if data.is_empty() {
            return Ok(());
        }
        let held = self.held();
        let total = held
            .checked_add(data.len())
            .ok_or(MessageError::TooLarge { limit: self.limit })?;
        if total > self.declared {
            return Err(if total > self.limit {
                MessageError::TooLarge { limit: self.limit }
            } else {
                MessageError::Longer {
                    declared: self.declared,
                }
            });
        }
        if held == 0 && data.len() == self.declared {
            self.whole = Some(chunk.slice(start..));
            return Ok(());
        }
        if self.assembled.capacity() == 0 {
            // Sized from the declared length, which was checked against the limit.
            self.assembled.reserve_exact(self.declared);
        }
        self.assembled.extend_from_slice(data);
        Ok(())
    }

    /// The message once the stream has ended: whether it is compressed, and its bytes.
    pub fn finish(self) -> Result<(bool, Bytes), MessageError> {
        if self.prefix_len < PREFIX_BYTES {
            return Err(MessageError::ShortPrefix);
        }
        let received = self.held();
        if received != self.declared {
            return Err(MessageError::Shorter {
                declared: self.declared,
                received,
            });
        }
        let (compressed, _) = read_prefix(self.prefix);
        Ok((
            compressed,
            self.whole.unwrap_or_else(|| Bytes::from(self.assembled)),
        ))
    }

    fn held(&self) -> usize {
        self.whole.as_ref().map_or(self.assembled.len(), Bytes::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(compressed: bool, message: &[u8]) -> Vec<u8> {
        let mut out = message_prefix(compressed, message.len()).unwrap().to_vec();
        out.extend_from_slice(message);
        out
    }

    fn read(chunks: &[&[u8]], limit: usize) -> Result<(bool, Bytes), MessageError> {
        let mut reader = MessageReader::new(limit);
        for chunk in chunks {
            reader.push(Bytes::copy_from_slice(chunk))?;
        }
        reader.finish()
    }

    #[test]
    fn a_message_is_the_same_however_its_frames_cut_it() {
        let stream = framed(true, b"the message");
        for cut in 0..=stream.len() {
            let (compressed, message) = read(&[&stream[..cut], &stream[cut..]], 100).unwrap();
            assert!(compressed);
            assert_eq!(&message[..], b"the message", "cut at {cut}");
        }
    }

    #[test]
    fn lengths_are_checked_before_anything_is_reserved() {
        assert_eq!(
            read(&[&[0, 0xff, 0xff, 0xff, 0xff]], 1 << 20),
            Err(MessageError::TooLarge { limit: 1 << 20 })
        );
        assert_eq!(
            read(&[&framed(false, b"abc"), b"d"], 100),
            Err(MessageError::Longer { declared: 3 })
        );
        assert_eq!(
            read(&[&framed(false, b"abc")[..6]], 100),
            Err(MessageError::Shorter {
                declared: 3,
                received: 1
            })
        );
        assert_eq!(read(&[&[0, 0]], 100), Err(MessageError::ShortPrefix));
        assert_eq!(read(&[], 100), Err(MessageError::ShortPrefix));
    }

    #[test]
    fn a_prefix_is_a_flag_and_a_big_endian_length() {
        assert_eq!(message_prefix(false, 0x0102), Some([0, 0, 0, 1, 2]));
        assert_eq!(message_prefix(true, 3), Some([1, 0, 0, 0, 3]));
        assert_eq!(message_prefix(false, u32::MAX as usize + 1), None);
    }

    #[test]
    fn a_whole_body_splits_into_its_first_message() {
        assert_eq!(
            split_message(&framed(true, b"abc")),
            Ok((true, &b"abc"[..]))
        );
        assert_eq!(split_message(&[0; 5]), Ok((false, &b""[..])));
        assert_eq!(split_message(&[0, 0]), Err(MessageError::ShortPrefix));
        assert_eq!(
            split_message(&[0, 0, 0, 0, 9, 1]),
            Err(MessageError::Shorter {
                declared: 9,
                received: 1
            })
        );
    }
}
