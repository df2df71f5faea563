//! Why a command was refused.

use crate::{EncodeError, RequestId};

use super::SessionState;

/// A command the session refused. Nothing was sent and no state changed,
/// except for [`Blocked`](SendError::Blocked), which may have sent part of a
/// chunk.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Out of flow-control credit (or replay room): what is left was not
    /// sent. Retry after [`Event::Writable`](super::Event::Writable).
    #[error("blocked by flow control: wait for Event::Writable")]
    Blocked,
    /// The invocation is not open on our side in the needed role.
    #[error("request {0} is not open here")]
    NotOpen(RequestId),
    /// The session cannot do this in its current state.
    #[error("not possible while the session is {0:?}")]
    WrongState(SessionState),
    /// The peer's concurrency limit (or the id space) is exhausted.
    #[error("the peer accepts at most {0} concurrent invocations")]
    TooManyInvocations(u16),
    /// We or the peer sent GOAWAY: no new invocations.
    #[error("the session is draining (GOAWAY)")]
    GoingAway,
    /// The frame is larger than the peer accepts.
    #[error("frame payload of {len} bytes exceeds the peer's maximum of {max}")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The peer's `max_frame`.
        max: u32,
    },
    /// The frame breaks its schema (empty tool name, NaN progress…).
    #[error(transparent)]
    Invalid(#[from] EncodeError),
}

impl From<SendError> for std::io::Error {
    fn from(e: SendError) -> Self {
        let kind = match e {
            SendError::Blocked => std::io::ErrorKind::WouldBlock,
            SendError::Invalid(_) | SendError::TooLarge { .. } => std::io::ErrorKind::InvalidInput,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}
