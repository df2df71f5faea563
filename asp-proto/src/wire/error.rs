//! Codec errors. Each maps to the wire [`ErrorCode`] the session sends back.

use super::{FrameType, RequestId};
use crate::ErrorCode;

/// Why a payload does not match its MsgPack schema (SPEC.md §6).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The payload is not a MsgPack map.
    #[error("payload is not a MsgPack map")]
    NotAMap,
    /// A required key is absent; nested keys are dotted (`metrics.wall_us`).
    #[error("missing required key `{0}`")]
    MissingKey(String),
    /// A key's value has the wrong type or breaks a rule.
    #[error("key `{key}`: {reason}")]
    InvalidValue {
        /// The key, dotted and indexed (`tools[2].name`).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The bytes are not well-formed MsgPack (truncated, too deeply nested).
    #[error("malformed MsgPack: {0}")]
    Malformed(String),
    /// Bytes follow the payload's map.
    #[error("{0} trailing bytes after the payload map")]
    TrailingBytes(usize),
}

impl PayloadError {
    /// The wire code: `MISSING_FIELD` for a missing key, else `MALFORMED_PAYLOAD`.
    pub fn code(&self) -> ErrorCode {
        match self {
            PayloadError::MissingKey(_) => ErrorCode::MISSING_FIELD,
            _ => ErrorCode::MALFORMED_PAYLOAD,
        }
    }
}

/// Why bytes could not be decoded into a frame.
///
/// Every variant but [`Payload`](FrameError::Payload) is found in the header,
/// before any payload byte is buffered, and leaves the byte stream without a
/// known frame boundary: the [`Decoder`](crate::Decoder) then refuses further
/// input. A payload error consumes exactly its frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header's version nibble is not 1.
    #[error("unsupported frame version {0} (this implementation speaks 1)")]
    UnsupportedVersion(u8),
    /// The type nibble is reserved (0x0, 0xC–0xF).
    #[error("reserved frame type 0x{0:X}")]
    ReservedType(u8),
    /// Flag bits undefined for the type are set.
    #[error("{frame_type} frame has reserved flag bits set (flags 0x{flags:02X})")]
    ReservedFlags {
        /// The frame's type.
        frame_type: FrameType,
        /// The whole flag byte.
        flags: u8,
    },
    /// The request id breaks the type's rule (0 where an invocation is
    /// required, or non-zero on a connection-level frame).
    #[error("{frame_type} frame cannot have request id {request_id}")]
    InvalidRequestId {
        /// The frame's type.
        frame_type: FrameType,
        /// The offending id.
        request_id: RequestId,
    },
    /// The declared payload length is over the maximum.
    #[error("declared payload length {len} exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The declared length.
        len: u32,
        /// The maximum in force.
        max: u32,
    },
    /// The input ended in the middle of a frame: a WebSocket message that
    /// does not end on a frame boundary, or a transport that closed mid-frame.
    #[error("input ended inside a frame ({buffered} bytes of it held)")]
    Truncated {
        /// Bytes of the incomplete frame received.
        buffered: usize,
    },
    /// The payload does not match its type's schema.
    #[error("{frame_type} payload: {source}")]
    Payload {
        /// The frame's type.
        frame_type: FrameType,
        /// What is wrong.
        source: PayloadError,
    },
}

impl FrameError {
    /// The wire code to send in the ERROR frame that answers this.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::UnsupportedVersion(_) => ErrorCode::UNSUPPORTED_VERSION,
            FrameError::ReservedType(_) => ErrorCode::RESERVED_TYPE,
            FrameError::ReservedFlags { .. } => ErrorCode::RESERVED_FLAGS,
            FrameError::InvalidRequestId { .. } => ErrorCode::INVALID_REQUEST_ID,
            FrameError::TooLarge { .. } => ErrorCode::FRAME_TOO_LARGE,
            FrameError::Truncated { .. } => ErrorCode::TRUNCATED_FRAME,
            FrameError::Payload { source, .. } => source.code(),
        }
    }

    /// True when the error was found in the header, so the stream has lost
    /// its frame boundaries.
    pub fn is_header_error(&self) -> bool {
        !matches!(self, FrameError::Payload { .. })
    }
}

/// Why a frame could not be encoded. The output buffer is left unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The request id breaks the frame type's rule.
    #[error("{frame_type} frame cannot have request id {request_id}")]
    InvalidRequestId {
        /// The frame's type.
        frame_type: FrameType,
        /// The offending id.
        request_id: RequestId,
    },
    /// The payload does not fit the 32-bit length field.
    #[error("payload of {len} bytes does not fit a frame")]
    TooLarge {
        /// The payload's length.
        len: usize,
    },
    /// The payload breaks its schema's rules (the peer would reject it).
    #[error("{frame_type} payload: {source}")]
    Payload {
        /// The frame's type.
        frame_type: FrameType,
        /// What is wrong.
        source: PayloadError,
    },
}

impl From<FrameError> for std::io::Error {
    fn from(e: FrameError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

impl From<EncodeError> for std::io::Error {
    fn from(e: EncodeError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}
