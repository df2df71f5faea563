//! The wire format (SPEC.md §4–§7): the frame header, the eleven frame
//! types and their MsgPack payloads, encoding, the streaming [`Decoder`],
//! and the errors of each step.
//!
//! [`Frame`] is the unit the session core exchanges. Encoding writes straight
//! into the caller's output buffer ([`Frame::encode`]); decoding from a
//! header and its payload bytes is [`Frame::from_parts`], and the
//! [`Decoder`] finds those parts in input chunks of any size, checking each
//! header before it buffers the payload.

mod decoder;
mod error;
mod frame;
mod frame_type;
mod header;
mod msgpack;
mod payload;
mod request_id;

pub use decoder::{decode_all, Decoder};
pub use error::{EncodeError, FrameError, PayloadError};
pub use frame::Frame;
pub use frame_type::{flags, FrameType, RequestIdRule};
pub use header::FrameHeader;
pub use payload::{
    ClientHello, Complete, ErrorInfo, GoAway, Interrupt, Invoke, Metrics, PeerLimits, Ping, Pong, Progress,
    ResumeOffer, ResumeRequest, Resumed, ServerHello, ToolDef, ToolOp, ToolSpec, Value, Window,
};
pub use request_id::{RequestId, RequestIdHasher, RequestIdMap, Role};
