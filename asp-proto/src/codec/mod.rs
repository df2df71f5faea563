//! Turning byte chunks into frames: the streaming [`Decoder`] and the codec
//! errors. Encoding is [`Frame::encode`](crate::Frame::encode).

mod decoder;
mod error;

pub use decoder::{decode_all, Decoder};
pub use error::{EncodeError, FrameError, PayloadError};
