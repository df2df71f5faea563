//! The 8-byte frame header: parsing with the checks in their normative
//! order, and writing.

use super::FrameError;
use super::{FrameType, RequestId, RequestIdRule};

/// A parsed, validated frame header (SPEC.md §4.1).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-------+-------+---------------+-------------------------------+
/// |  Ver  | Type  |     Flags     |          Request ID           |
/// +-------+-------+---------------+-------------------------------+
/// |                        Payload Length                         |
/// +---------------------------------------------------------------+
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The frame type (low nibble of byte 0).
    pub frame_type: FrameType,
    /// The flag byte (byte 1).
    pub flags: u8,
    /// The request id (bytes 2–3, big-endian).
    pub request_id: RequestId,
    /// The payload length in bytes (bytes 4–7, big-endian).
    pub payload_len: u32,
}

impl FrameHeader {
    /// Header size in bytes.
    pub const LEN: usize = 8;
    /// The only frame version this crate speaks (high nibble of byte 0).
    pub const VERSION: u8 = 1;

    /// Parses and validates a header, checking in the order SPEC.md §4.4
    /// fixes, so that every implementation reports the same error for the
    /// same bytes: version, type, flags, request id, then the declared
    /// length against `max_payload` — all before a payload byte is buffered.
    pub fn parse(bytes: [u8; 8], max_payload: u32) -> Result<FrameHeader, FrameError> {
        let version = bytes[0] >> 4;
        if version != Self::VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let type_code = bytes[0] & 0x0F;
        let frame_type = FrameType::from_code(type_code).ok_or(FrameError::ReservedType(type_code))?;
        let flags = bytes[1];
        if flags & !frame_type.defined_flags() != 0 {
            return Err(FrameError::ReservedFlags { frame_type, flags });
        }
        let request_id = RequestId(u16::from_be_bytes([bytes[2], bytes[3]]));
        check_request_id(frame_type, request_id)?;
        let payload_len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if payload_len > max_payload {
            return Err(FrameError::TooLarge { len: payload_len, max: max_payload });
        }
        Ok(FrameHeader { frame_type, flags, request_id, payload_len })
    }

    /// The 8 bytes of this header.
    pub fn to_bytes(&self) -> [u8; 8] {
        let id = self.request_id.0.to_be_bytes();
        let len = self.payload_len.to_be_bytes();
        [(Self::VERSION << 4) | self.frame_type.code(), self.flags, id[0], id[1], len[0], len[1], len[2], len[3]]
    }
}

/// Checks a request id against its frame type's rule.
pub(crate) fn check_request_id(frame_type: FrameType, request_id: RequestId) -> Result<(), FrameError> {
    let ok = match frame_type.request_id_rule() {
        RequestIdRule::Connection => request_id.is_connection(),
        RequestIdRule::Invocation => !request_id.is_connection(),
        RequestIdRule::Either => true,
    };
    if ok {
        Ok(())
    } else {
        Err(FrameError::InvalidRequestId { frame_type, request_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn header(b: [u8; 8]) -> Result<FrameHeader, FrameError> {
        FrameHeader::parse(b, 1024)
    }

    #[test]
    fn parses_and_writes_the_same_bytes() {
        let bytes = [0x13, 0x00, 0x01, 0x02, 0x00, 0x00, 0x04, 0x00];
        let h = header(bytes).unwrap();
        assert_eq!(h.frame_type, FrameType::Stream);
        assert_eq!(h.request_id, RequestId(0x0102));
        assert_eq!(h.payload_len, 1024);
        assert_eq!(h.to_bytes(), bytes);
    }

    #[test]
    fn checks_run_in_the_normative_order() {
        // Everything wrong at once: the version is reported.
        let e = header([0x20, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap_err();
        assert_eq!(e.code(), ErrorCode::UNSUPPORTED_VERSION);
        // Version right, rest wrong: the type.
        let e = header([0x1C, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap_err();
        assert_eq!(e.code(), ErrorCode::RESERVED_TYPE);
        // Type right (INVOKE), flags wrong, id 0 and too long: the flags.
        let e = header([0x12, 0x01, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap_err();
        assert_eq!(e.code(), ErrorCode::RESERVED_FLAGS);
        // Flags right, id 0 on INVOKE and too long: the id.
        let e = header([0x12, 0x00, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap_err();
        assert_eq!(e.code(), ErrorCode::INVALID_REQUEST_ID);
        // Only the length is wrong.
        let e = header([0x12, 0x00, 0, 1, 0, 0, 0x04, 0x01]).unwrap_err();
        assert_eq!(e, FrameError::TooLarge { len: 1025, max: 1024 });
    }
}
