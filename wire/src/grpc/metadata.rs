//! How gRPC writes values into HTTP/2 headers: `grpc-message` percent-encoded, binary (`-bin`)
//! headers such as `grpc-status-details-bin` in base64.

use base64::Engine as _;

/// Percent-encodes a `grpc-message` as the gRPC protocol asks: printable ASCII other than `%`
/// stays, everything else becomes `%XX`.
pub fn encode_grpc_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &byte in message.as_bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes a `grpc-message` value (percent-encoded UTF-8). Malformed escapes and invalid UTF-8
/// are kept as they are (the latter replaced): the message is for people, not for decisions.
pub fn decode_grpc_message(value: &[u8]) -> String {
    String::from_utf8_lossy(&percent_decode(value)).into_owned()
}

/// Decodes `%XX` escapes (as in `grpc-message`, or a URL's user information); a `%` not
/// followed by two hex digits is kept as it is.
pub fn percent_decode(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some((&byte, after)) = rest.split_first() {
        // Two hex digits exactly (`from_str_radix` alone would take a sign: `%+1`).
        let escaped = (byte == b'%')
            .then(|| after.get(..2))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                rest = after.get(2..).unwrap_or_default();
            }
            None => {
                out.push(byte);
                rest = after;
            }
        }
    }
    out
}

/// A binary header's value: base64, unpadded, as gRPC sends it.
pub fn encode_binary_header(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// The bytes of a binary header's value, padded or not (gRPC sends it unpadded but must accept
/// padding); `None` when it is not base64.
pub fn decode_binary_header(value: &[u8]) -> Option<Vec<u8>> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(encode_grpc_message("bad id: 100%"), "bad id: 100%25");
        assert_eq!(encode_grpc_message("é\n"), "%C3%A9%0A");
    }

    #[test]
    fn decodes_grpc_message() {
        assert_eq!(
            decode_grpc_message(b"bad%20request%3A%20%E2%9C%93"),
            "bad request: ✓"
        );
        assert_eq!(decode_grpc_message(b"100%"), "100%");
        assert_eq!(decode_grpc_message(b"%4"), "%4");
        assert_eq!(percent_decode(b"%+1%2b"), b"%+1+");
        let message = "a 100% é\n";
        assert_eq!(
            decode_grpc_message(encode_grpc_message(message).as_bytes()),
            message
        );
    }

    #[test]
    fn binary_headers_are_read_padded_or_not() {
        let value = encode_binary_header(b"abcd");
        assert_eq!(value, "YWJjZA");
        assert_eq!(
            decode_binary_header(value.as_bytes()),
            Some(b"abcd".to_vec())
        );
        assert_eq!(decode_binary_header(b"YWJjZA=="), Some(b"abcd".to_vec()));
        assert_eq!(decode_binary_header(b"!!not base64"), None);
    }
}
