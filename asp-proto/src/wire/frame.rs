//! [`Frame`]: one typed frame, its encoding straight into the caller's
//! buffer, and its decoding from a header and payload bytes.

use bytes::{BufMut, Bytes, BytesMut};

use super::header::check_request_id;
use super::msgpack::{decode_map, encode_map};
use super::{
    flags, ClientHello, Complete, EncodeError, ErrorInfo, FrameError, FrameHeader, FrameType, GoAway, Interrupt,
    Invoke, Ping, Pong, Progress, RequestId, ServerHello, ToolDef, Window,
};

/// One ASP/1 frame.
///
/// Variants follow meaning rather than the 4-bit type: HELLO is
/// [`Hello`](Frame::Hello) or [`HelloReply`](Frame::HelloReply) by its flag,
/// and STREAM is [`Stream`](Frame::Stream) or [`Progress`](Frame::Progress).
/// Frames that concern one invocation carry its [`RequestId`]; the others
/// always travel with id 0.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Frame {
    /// HELLO from the client.
    Hello(ClientHello),
    /// HELLO from the server or relay (flag `HELLO_REPLY`).
    HelloReply(ServerHello),
    /// INVOKE: open invocation `id`.
    Invoke(RequestId, Invoke),
    /// STREAM: output bytes, exactly as sent. A slice of the decoder's input,
    /// not a copy.
    Stream(RequestId, Bytes),
    /// STREAM with flag `STREAM_PROGRESS`: a progress update.
    Progress(RequestId, Progress),
    /// INTERRUPT: the invoker asks the handler of `id` to stop.
    Interrupt(RequestId, Interrupt),
    /// TOOL_DEF: the sender's tool set changed.
    ToolDef(ToolDef),
    /// ERROR: invocation `id` failed, or with id 0 the connection did.
    Error(RequestId, ErrorInfo),
    /// COMPLETE: invocation `id` finished.
    Complete(RequestId, Complete),
    /// PING.
    Ping(Ping),
    /// PONG.
    Pong(Pong),
    /// WINDOW: credit for invocation `id`, or with id 0 for the connection.
    Window(RequestId, Window),
    /// GOAWAY: the sender drains.
    GoAway(GoAway),
}

impl Frame {
    /// The wire type.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) | Frame::HelloReply(_) => FrameType::Hello,
            Frame::Invoke(..) => FrameType::Invoke,
            Frame::Stream(..) | Frame::Progress(..) => FrameType::Stream,
            Frame::Interrupt(..) => FrameType::Interrupt,
            Frame::ToolDef(_) => FrameType::ToolDef,
            Frame::Error(..) => FrameType::Error,
            Frame::Complete(..) => FrameType::Complete,
            Frame::Ping(_) => FrameType::Ping,
            Frame::Pong(_) => FrameType::Pong,
            Frame::Window(..) => FrameType::Window,
            Frame::GoAway(_) => FrameType::GoAway,
        }
    }

    /// The header's flag byte for this frame.
    pub fn flags(&self) -> u8 {
        match self {
            Frame::HelloReply(_) => flags::HELLO_REPLY,
            Frame::Progress(..) => flags::STREAM_PROGRESS,
            _ => 0,
        }
    }

    /// The request id: the invocation's, or [`RequestId::CONNECTION`].
    pub fn request_id(&self) -> RequestId {
        match self {
            Frame::Invoke(id, _)
            | Frame::Stream(id, _)
            | Frame::Progress(id, _)
            | Frame::Interrupt(id, _)
            | Frame::Error(id, _)
            | Frame::Complete(id, _)
            | Frame::Window(id, _) => *id,
            Frame::Hello(_)
            | Frame::HelloReply(_)
            | Frame::ToolDef(_)
            | Frame::Ping(_)
            | Frame::Pong(_)
            | Frame::GoAway(_) => RequestId::CONNECTION,
        }
    }

    /// Appends the frame, header and payload, to `dst`, and returns how many
    /// bytes it wrote.
    ///
    /// A STREAM payload is copied once, into `dst`; a MsgPack payload is
    /// serialised in place after a reserved header whose length is filled in
    /// afterwards, so nothing is built twice. A frame the decoder would reject
    /// (id 0 on INVOKE, a NaN progress, an over-long payload) is refused and
    /// `dst` is left as it was.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<usize, EncodeError> {
        let frame_type = self.frame_type();
        let request_id = self.request_id();
        check_request_id(frame_type, request_id)
            .map_err(|_| EncodeError::InvalidRequestId { frame_type, request_id })?;
        let start = dst.len();
        if let Frame::Stream(_, data) = self {
            let payload_len = u32::try_from(data.len()).map_err(|_| EncodeError::TooLarge { len: data.len() })?;
            let header = FrameHeader { frame_type, flags: 0, request_id, payload_len };
            dst.reserve(FrameHeader::LEN + data.len());
            dst.put_slice(&header.to_bytes());
            dst.put_slice(data);
            return Ok(FrameHeader::LEN + data.len());
        }
        dst.put_bytes(0, FrameHeader::LEN);
        let written = match self {
            Frame::Hello(p) => encode_map(p, dst),
            Frame::HelloReply(p) => encode_map(p, dst),
            Frame::Invoke(_, p) => encode_map(p, dst),
            Frame::Progress(_, p) => encode_map(p, dst),
            Frame::Interrupt(_, p) => encode_map(p, dst),
            Frame::ToolDef(p) => encode_map(p, dst),
            Frame::Error(_, p) => encode_map(p, dst),
            Frame::Complete(_, p) => encode_map(p, dst),
            Frame::Ping(p) => encode_map(p, dst),
            Frame::Pong(p) => encode_map(p, dst),
            Frame::Window(_, p) => encode_map(p, dst),
            Frame::GoAway(p) => encode_map(p, dst),
            Frame::Stream(..) => unreachable!("STREAM output is written above"),
        };
        let len = dst.len() - start - FrameHeader::LEN;
        let payload_len = match (written, u32::try_from(len)) {
            (Ok(()), Ok(n)) => n,
            (Err(source), _) => {
                dst.truncate(start);
                return Err(EncodeError::Payload { frame_type, source });
            }
            (_, Err(_)) => {
                dst.truncate(start);
                return Err(EncodeError::TooLarge { len });
            }
        };
        let header = FrameHeader { frame_type, flags: self.flags(), request_id, payload_len };
        dst[start..start + FrameHeader::LEN].copy_from_slice(&header.to_bytes());
        Ok(FrameHeader::LEN + len)
    }

    /// The encoded frame as one buffer.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::new();
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }

    /// Builds a frame from a validated header and exactly its payload.
    ///
    /// STREAM output is kept as the given `Bytes` (no copy); every other
    /// payload is decoded from MsgPack and checked against its schema.
    pub fn from_parts(header: FrameHeader, payload: Bytes) -> Result<Frame, FrameError> {
        let id = header.request_id;
        let frame_type = header.frame_type;
        let wrap = |source| FrameError::Payload { frame_type, source };
        let frame = match frame_type {
            FrameType::Stream if header.flags & flags::STREAM_PROGRESS == 0 => Frame::Stream(id, payload),
            FrameType::Stream => Frame::Progress(id, decode_map(&payload).map_err(wrap)?),
            FrameType::Hello if header.flags & flags::HELLO_REPLY != 0 => {
                Frame::HelloReply(decode_map(&payload).map_err(wrap)?)
            }
            FrameType::Hello => Frame::Hello(decode_map(&payload).map_err(wrap)?),
            FrameType::Invoke => Frame::Invoke(id, decode_map(&payload).map_err(wrap)?),
            FrameType::Interrupt => Frame::Interrupt(id, decode_map(&payload).map_err(wrap)?),
            FrameType::ToolDef => Frame::ToolDef(decode_map(&payload).map_err(wrap)?),
            FrameType::Error => Frame::Error(id, decode_map(&payload).map_err(wrap)?),
            FrameType::Complete => Frame::Complete(id, decode_map(&payload).map_err(wrap)?),
            FrameType::Ping => Frame::Ping(decode_map(&payload).map_err(wrap)?),
            FrameType::Pong => Frame::Pong(decode_map(&payload).map_err(wrap)?),
            FrameType::Window => Frame::Window(id, decode_map(&payload).map_err(wrap)?),
            FrameType::GoAway => Frame::GoAway(decode_map(&payload).map_err(wrap)?),
        };
        Ok(frame)
    }
}
