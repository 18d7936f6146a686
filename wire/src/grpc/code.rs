//! gRPC status codes: their values and names, how gRPC maps HTTP and HTTP/2 failures onto them,
//! and which of them the OTLP specification lets a client retry.

/// A gRPC status code, with its value on the wire (`grpc-status`, `google.rpc.Status.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum GrpcCode {
    /// `OK`.
    Ok = 0,
    /// `CANCELLED`.
    Cancelled = 1,
    /// `UNKNOWN`.
    Unknown = 2,
    /// `INVALID_ARGUMENT`.
    InvalidArgument = 3,
    /// `DEADLINE_EXCEEDED`.
    DeadlineExceeded = 4,
    /// `NOT_FOUND`.
    NotFound = 5,
    /// `ALREADY_EXISTS`.
    AlreadyExists = 6,
    /// `PERMISSION_DENIED`.
    PermissionDenied = 7,
    /// `RESOURCE_EXHAUSTED`.
    ResourceExhausted = 8,
    /// `FAILED_PRECONDITION`.
    FailedPrecondition = 9,
    /// `ABORTED`.
    Aborted = 10,
    /// `OUT_OF_RANGE`.
    OutOfRange = 11,
    /// `UNIMPLEMENTED`.
    Unimplemented = 12,
    /// `INTERNAL`.
    Internal = 13,
    /// `UNAVAILABLE`.
    Unavailable = 14,
    /// `DATA_LOSS`.
    DataLoss = 15,
    /// `UNAUTHENTICATED`.
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The code's value on the wire.
    pub fn value(self) -> u8 {
        self as u8
    }

    /// The code for a `grpc-status` value; unknown values are `UNKNOWN`, as gRPC says.
    pub fn from_i32(code: i32) -> GrpcCode {
        use GrpcCode::*;
        match code {
            0 => Ok,
            1 => Cancelled,
            3 => InvalidArgument,
            4 => DeadlineExceeded,
            5 => NotFound,
            6 => AlreadyExists,
            7 => PermissionDenied,
            8 => ResourceExhausted,
            9 => FailedPrecondition,
            10 => Aborted,
            11 => OutOfRange,
            12 => Unimplemented,
            13 => Internal,
            14 => Unavailable,
            15 => DataLoss,
            16 => Unauthenticated,
            _ => Unknown,
        }
    }

    /// The code gRPC assigns to a non-200 HTTP status on a gRPC call (gRPC's
    /// "HTTP to gRPC status code mapping").
    pub fn from_http_status(status: u16) -> GrpcCode {
        match status {
            400 => GrpcCode::Internal,
            401 => GrpcCode::Unauthenticated,
            403 => GrpcCode::PermissionDenied,
            404 => GrpcCode::Unimplemented,
            429 | 502 | 503 | 504 => GrpcCode::Unavailable,
            _ => GrpcCode::Unknown,
        }
    }

    /// The code gRPC assigns to an HTTP/2 `RST_STREAM` or `GOAWAY` error code (RFC 9113
    /// section 7).
    pub fn from_http2_error_code(error_code: u32) -> GrpcCode {
        const REFUSED_STREAM: u32 = 0x7;
        const CANCEL: u32 = 0x8;
        const ENHANCE_YOUR_CALM: u32 = 0xb;
        const INADEQUATE_SECURITY: u32 = 0xc;
        match error_code {
            REFUSED_STREAM => GrpcCode::Unavailable,
            CANCEL => GrpcCode::Cancelled,
            ENHANCE_YOUR_CALM => GrpcCode::ResourceExhausted,
            INADEQUATE_SECURITY => GrpcCode::PermissionDenied,
            _ => GrpcCode::Internal,
        }
    }

    /// The code's name as gRPC spells it.
    pub fn name(self) -> &'static str {
        use GrpcCode::*;
        match self {
            Ok => "OK",
            Cancelled => "CANCELLED",
            Unknown => "UNKNOWN",
            InvalidArgument => "INVALID_ARGUMENT",
            DeadlineExceeded => "DEADLINE_EXCEEDED",
            NotFound => "NOT_FOUND",
            AlreadyExists => "ALREADY_EXISTS",
            PermissionDenied => "PERMISSION_DENIED",
            ResourceExhausted => "RESOURCE_EXHAUSTED",
            FailedPrecondition => "FAILED_PRECONDITION",
            Aborted => "ABORTED",
            OutOfRange => "OUT_OF_RANGE",
            Unimplemented => "UNIMPLEMENTED",
            Internal => "INTERNAL",
            Unavailable => "UNAVAILABLE",
            DataLoss => "DATA_LOSS",
            Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The OTLP table: whether a status with this code may be retried, given whether it
    /// carried `RetryInfo` (`RESOURCE_EXHAUSTED` is retryable only with it: the server is
    /// throttling and says when to come back).
    pub fn is_retryable(self, has_retry_info: bool) -> bool {
        use GrpcCode::*;
        match self {
            Cancelled | DeadlineExceeded | Aborted | OutOfRange | Unavailable | DataLoss => true,
            ResourceExhausted => has_retry_info,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        for value in 0..=16 {
            assert_eq!(i32::from(GrpcCode::from_i32(value).value()), value);
        }
        assert_eq!(GrpcCode::from_i32(17), GrpcCode::Unknown);
        assert_eq!(GrpcCode::from_i32(-1), GrpcCode::Unknown);
    }

    #[test]
    fn otlp_retryable_grpc_codes() {
        let retryable: Vec<_> = (0..18)
            .map(GrpcCode::from_i32)
            .filter(|c| c.is_retryable(false))
            .map(GrpcCode::name)
            .collect();
        assert_eq!(
            retryable,
            [
                "CANCELLED",
                "DEADLINE_EXCEEDED",
                "ABORTED",
                "OUT_OF_RANGE",
                "UNAVAILABLE",
                "DATA_LOSS"
            ]
        );
        assert!(!GrpcCode::ResourceExhausted.is_retryable(false));
        assert!(GrpcCode::ResourceExhausted.is_retryable(true));
        assert!(!GrpcCode::InvalidArgument.is_retryable(true));
    }

    #[test]
    fn http_statuses_map_to_grpc_codes() {
        assert_eq!(GrpcCode::from_http_status(503), GrpcCode::Unavailable);
        assert_eq!(GrpcCode::from_http_status(400), GrpcCode::Internal);
        assert_eq!(GrpcCode::from_http_status(418), GrpcCode::Unknown);
    }

    #[test]
    fn http2_error_codes_map_to_grpc_codes() {
        assert_eq!(GrpcCode::from_http2_error_code(0x7), GrpcCode::Unavailable);
        assert_eq!(GrpcCode::from_http2_error_code(0x8), GrpcCode::Cancelled);
        assert_eq!(
            GrpcCode::from_http2_error_code(0xb),
            GrpcCode::ResourceExhausted
        );
        assert_eq!(
            GrpcCode::from_http2_error_code(0xc),
            GrpcCode::PermissionDenied
        );
        assert_eq!(GrpcCode::from_http2_error_code(0x2), GrpcCode::Internal);
    }
}
