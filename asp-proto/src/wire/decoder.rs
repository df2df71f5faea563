//! The streaming frame decoder.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::FrameError;
use super::{Frame, FrameHeader};

/// Finds frames in a byte stream delivered in chunks of any size.
///
/// Feed it whatever the transport produced and call [`decode`](Self::decode)
/// until it returns `Ok(None)`: that means the input is used up and any
/// partial frame is held inside the decoder until more bytes arrive.
///
/// ```
/// use asp_proto::{Decoder, Frame, RequestId};
/// use bytes::Bytes;
///
/// let wire = Frame::Stream(RequestId(1), Bytes::from_static(b"hi")).to_bytes()?;
/// let mut decoder = Decoder::new(1 << 20);
/// // One byte at a time works; so does everything at once.
/// let mut frames = Vec::new();
/// for byte in wire.iter() {
///     let mut input: &[u8] = &[*byte];
///     while let Some(frame) = decoder.decode(&mut input)? {
///         frames.push(frame);
///     }
/// }
/// assert_eq!(frames, [Frame::Stream(RequestId(1), Bytes::from_static(b"hi"))]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Memory
///
/// The decoder takes from the input only what the current frame needs, so it
/// never holds more than one header plus the maximum payload, however large
/// the chunks are. The length is checked against the maximum as soon as the
/// header is complete, before any payload byte is buffered.
///
/// # Copies
///
/// With a [`Bytes`] input, a frame that lies wholly inside the chunk is not
/// copied: a STREAM payload comes out as a slice of the input, sharing its
/// allocation. Only a frame split across chunks is gathered into the internal
/// buffer, and then it is handed out from there, again without a second copy.
/// A `&[u8]` input is copied once.
///
/// # Errors
///
/// A header error (version, type, flags, request id, length) means the
/// stream's frame boundaries are lost: the decoder returns that same error
/// from then on. A payload error consumes its frame, and decoding could go
/// on, although ASP/1 makes every such error fatal to the session.
#[derive(Debug)]
pub struct Decoder {
    /// Bytes of the current frame: the partial header, or once the header is
    /// parsed, the partial payload.
    buf: BytesMut,
    header: Option<FrameHeader>,
    max_payload: u32,
    failed: Option<FrameError>,
    last_payload_len: u32,
}

impl Decoder {
    /// A decoder that rejects payloads longer than `max_payload` bytes.
    pub fn new(max_payload: u32) -> Self {
        Decoder { buf: BytesMut::new(), header: None, max_payload, failed: None, last_payload_len: 0 }
    }

    /// The payload limit in force.
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// Changes the payload limit, e.g. once HELLO has negotiated it. A frame
    /// whose header has already been accepted is not checked again.
    pub fn set_max_payload(&mut self, max_payload: u32) {
        self.max_payload = max_payload;
    }

    /// The payload length of the frame `decode` returned last, as it was on
    /// the wire: flow control counts these bytes, not a re-encoding.
    pub fn last_payload_len(&self) -> u32 {
        self.last_payload_len
    }

    /// Bytes held for a frame that is not complete yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True between frames: nothing is held. A transport that ends when this
    /// is false ended mid-frame.
    pub fn is_idle(&self) -> bool {
        self.header.is_none() && self.buf.is_empty()
    }

    /// Declares the end of the input: an error if a frame was left incomplete.
    /// Call it when a WebSocket message has been fed (a frame never spans two
    /// messages) or when a byte-stream transport closes.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.is_idle() {
            return Ok(());
        }
        let buffered = self.buf.len() + if self.header.is_some() { FrameHeader::LEN } else { 0 };
        let err = FrameError::Truncated { buffered };
        self.failed = Some(err.clone());
        Err(err)
    }

    /// Takes the bytes of at most one frame from `input` and returns the frame
    /// when it is complete.
    ///
    /// `Ok(None)` means `input` is used up. Works with any [`Buf`]: a
    /// `&mut Bytes` gives zero-copy payloads, a `&mut &[u8]` is copied once.
    pub fn decode<B: Buf>(&mut self, input: &mut B) -> Result<Option<Frame>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.step(input);
        if let Err(err) = &result {
            if err.is_header_error() {
                self.failed = Some(err.clone());
                self.buf = BytesMut::new();
                self.header = None;
            }
        }
        result
    }

    fn step<B: Buf>(&mut self, input: &mut B) -> Result<Option<Frame>, FrameError> {
        let header = match self.header {
            Some(header) => header,
            None => match self.take_header(input)? {
                Some(header) => header,
                None => return Ok(None),
            },
        };
        let len = header.payload_len as usize;
        let payload = if self.buf.is_empty() && input.remaining() >= len {
            // Fast path: the whole payload is in the input. For `Bytes` this
            // is a reference-counted slice, not a copy.
            input.copy_to_bytes(len)
        } else {
            if self.buf.is_empty() {
                self.buf.reserve(len);
            }
            let take = (len - self.buf.len()).min(input.remaining());
            self.buf.put(input.take(take));
            if self.buf.len() < len {
                self.header = Some(header);
                return Ok(None);
            }
            // `split` hands the allocation to the frame, so a large payload is
            // not pinned by the decoder after it is delivered.
            self.buf.split().freeze()
        };
        self.header = None;
        self.last_payload_len = header.payload_len;
        Frame::from_parts(header, payload).map(Some)
    }

    /// Parses the next header, from the input directly when it is all there,
    /// else by gathering its 8 bytes in `buf`.
    fn take_header<B: Buf>(&mut self, input: &mut B) -> Result<Option<FrameHeader>, FrameError> {
        let mut raw = [0u8; FrameHeader::LEN];
        if self.buf.is_empty() && input.chunk().len() >= FrameHeader::LEN {
            raw.copy_from_slice(&input.chunk()[..FrameHeader::LEN]);
            input.advance(FrameHeader::LEN);
            return FrameHeader::parse(raw, self.max_payload).map(Some);
        }
        let take = (FrameHeader::LEN - self.buf.len()).min(input.remaining());
        self.buf.put(input.take(take));
        if self.buf.len() < FrameHeader::LEN {
            return Ok(None);
        }
        raw.copy_from_slice(&self.buf);
        self.buf.clear();
        FrameHeader::parse(raw, self.max_payload).map(Some)
    }
}

impl Default for Decoder {
    /// A decoder with the default payload limit, 1 MiB.
    fn default() -> Self {
        Decoder::new(crate::limits::DEFAULT_MAX_FRAME_PAYLOAD)
    }
}

/// Decodes every frame in `bytes`, which must end on a frame boundary: a
/// convenience for WebSocket messages and tests.
pub fn decode_all(bytes: Bytes, max_payload: u32) -> Result<Vec<Frame>, FrameError> {
    let mut decoder = Decoder::new(max_payload);
    let mut input = bytes;
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut input)? {
        frames.push(frame);
    }
    decoder.finish()?;
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorCode, RequestId};

    fn stream(id: u16, data: &'static [u8]) -> Frame {
        Frame::Stream(RequestId(id), Bytes::from_static(data))
    }

    #[test]
    fn stream_payloads_are_slices_of_a_bytes_input() {
        let mut wire = BytesMut::new();
        stream(1, b"hello").encode(&mut wire).unwrap();
        stream(3, b"world").encode(&mut wire).unwrap();
        let wire = wire.freeze();
        let range = wire.as_ptr_range();
        let mut input = wire.clone();
        let mut decoder = Decoder::new(1024);
        for expected in [b"hello", b"world"] {
            match decoder.decode(&mut input).unwrap() {
                Some(Frame::Stream(_, data)) => {
                    assert_eq!(&data[..], expected);
                    assert!(range.contains(&data.as_ptr()), "payload was copied");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(decoder.decode(&mut input).unwrap(), None);
        assert!(decoder.is_idle());
    }

    #[test]
    fn too_large_is_refused_at_the_header_and_sticks() {
        let mut decoder = Decoder::new(4);
        let mut input: &[u8] = &[0x13, 0, 0, 1, 0, 0, 0, 5, b'x'];
        let err = decoder.decode(&mut input).unwrap_err();
        assert_eq!(err.code(), ErrorCode::FRAME_TOO_LARGE);
        assert_eq!(input, b"x", "no payload byte was taken");
        assert_eq!(decoder.buffered(), 0);
        let mut more: &[u8] = &[0x13, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(decoder.decode(&mut more).unwrap_err(), err);
    }

    #[test]
    fn payload_errors_consume_their_frame_only() {
        // A WINDOW whose payload is an array, then a valid STREAM.
        let mut wire = vec![0x1A, 0, 0, 0, 0, 0, 0, 1, 0x90];
        wire.extend_from_slice(&stream(1, b"ok").to_bytes().unwrap());
        let mut input = Bytes::from(wire);
        let mut decoder = Decoder::new(1024);
        let err = decoder.decode(&mut input).unwrap_err();
        assert_eq!(err.code(), ErrorCode::MALFORMED_PAYLOAD);
        assert_eq!(decoder.decode(&mut input).unwrap(), Some(stream(1, b"ok")));
    }

    #[test]
    fn decode_all_reads_a_message_of_several_frames() {
        let mut wire = BytesMut::new();
        for i in 0..3u16 {
            stream(2 * i + 1, b"abc").encode(&mut wire).unwrap();
        }
        let frames = decode_all(wire.freeze(), 1024).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2].request_id(), RequestId(5));
    }

    #[test]
    fn a_message_ending_mid_frame_is_truncated() {
        let wire = stream(1, b"abcdef").to_bytes().unwrap();
        let err = decode_all(wire.slice(..10), 1024).unwrap_err();
        assert_eq!(err, FrameError::Truncated { buffered: 10 });
        assert_eq!(err.code(), ErrorCode::TRUNCATED_FRAME);
        let err = decode_all(wire.slice(..3), 1024).unwrap_err();
        assert_eq!(err, FrameError::Truncated { buffered: 3 });
    }
}
