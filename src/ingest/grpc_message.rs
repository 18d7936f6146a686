//! The gRPC message framing of a unary call's request, without I/O: a 5-byte prefix
//! (compressed flag, big-endian length) and the message, which arrives cut into HTTP/2 DATA
//! frames anywhere.
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
                let [_, a, b, c, d] = self.prefix;
                let declared = u32::from_be_bytes([a, b, c, d]);
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
        let compressed = self.prefix[0] & 1 == 1;
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

    fn framed(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
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
        let stream = framed(1, b"the message");
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
            read(&[&framed(0, b"abc"), b"d"], 100),
            Err(MessageError::Longer { declared: 3 })
        );
        assert_eq!(
            read(&[&framed(0, b"abc")[..6]], 100),
            Err(MessageError::Shorter {
                declared: 3,
                received: 1
            })
        );
        assert_eq!(read(&[&[0, 0]], 100), Err(MessageError::ShortPrefix));
        assert_eq!(read(&[], 100), Err(MessageError::ShortPrefix));
    }
}
