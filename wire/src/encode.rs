//! Encoding the few small messages the gateway writes itself: export responses (with partial
//! success) here, `google.rpc.Status` in [`crate::grpc`], and the fields of the attributes the
//! resource processor sets. Everything else it sends is framed from received bytes.

use super::proto::varint_len;

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, value: u64) {
    super::proto::put_varint(out, value);
}

/// The size of a length-delimited field with a one-byte tag (numbers 1 to 15) around `len`
/// bytes.
pub fn bytes_field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Appends a varint field.
pub fn put_varint_field(out: &mut Vec<u8>, number: u32, value: u64) {
    put_varint(out, u64::from(number) << 3);
    put_varint(out, value);
}

/// Appends a 64-bit field (`fixed64`, `double`).
pub fn put_fixed64_field(out: &mut Vec<u8>, number: u32, value: u64) {
    put_varint(out, u64::from(number) << 3 | 1);
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends a length-delimited field.
pub fn put_bytes_field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, u64::from(number) << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// An `Export{Trace,Metrics,Logs}ServiceResponse`: empty on full success; otherwise its
/// `partial_success` carries the rejected item count (`rejected_spans`, `rejected_data_points`
/// or `rejected_log_records`, field 1 in each) and a message (field 2).
pub fn export_response(rejected: u64, message: &str) -> Vec<u8> {
    if rejected == 0 && message.is_empty() {
        return Vec::new();
    }
    let mut partial = Vec::new();
    put_varint_field(&mut partial, 1, rejected);
    put_bytes_field(&mut partial, 2, message.as_bytes());
    let mut out = Vec::new();
    put_bytes_field(&mut out, 1, &partial);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use prost::Message;

    #[test]
    fn partial_success_decodes_with_prost() {
        let bytes = export_response(3, "trace_id is all zero");
        let response = ExportTraceServiceResponse::decode(bytes.as_slice()).unwrap();
        let partial = response.partial_success.unwrap();
        assert_eq!(partial.rejected_spans, 3);
        assert_eq!(partial.error_message, "trace_id is all zero");
        assert!(export_response(0, "").is_empty());
    }
}
