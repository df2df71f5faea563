//! One HTTP call to the function, as the relay core sees it: what the
//! adapter is asked to send, what it reports back, and the output waiting
//! for the client's credit.

use std::fmt;
use std::time::Instant;

use bytes::Bytes;

use asp_proto::{Decoder, Output, OutputQueue, RequestId};

use super::SessionKey;

/// Names one function call for its whole life. Never reused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call#{}", self.0)
    }
}

/// Why the relay calls the function.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// An INVOKE: `POST {function}/invoke`; its body is streamed to the client.
    Invoke,
    /// A session started: `POST {function}/connect`. Its body is ignored; its
    /// `X-Asp-State` is stored.
    Connect,
    /// A session ended: `POST {function}/disconnect`. Fire and forget.
    Disconnect,
}

impl CallKind {
    /// The path appended to the function's base URL.
    pub fn path(self) -> &'static str {
        match self {
            CallKind::Invoke => "/invoke",
            CallKind::Connect => "/connect",
            CallKind::Disconnect => "/disconnect",
        }
    }
}

/// An HTTP request the adapter must send: `POST {function}{kind.path()}`.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionCall {
    /// Report everything about this request under this id.
    pub call: CallId,
    /// Which endpoint.
    pub kind: CallKind,
    /// Request headers (`Content-Type`, `X-Asp-Connection-Id`, …).
    pub headers: Vec<(&'static str, String)>,
    /// The request body, already encoded.
    pub body: Bytes,
}

/// The function's response head, as raw header values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseHead {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `X-Cpu-Time`.
    pub cpu_time: Option<String>,
    /// `X-Asp-State`.
    pub state: Option<String>,
}

/// Why a call failed below HTTP semantics, as the adapter saw it. The
/// string is the adapter's detail, for its own log: the client is told only
/// the class (SPEC.md §15).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallFailure {
    /// No connection: refused, DNS, TLS (`BACKEND_UNAVAILABLE`).
    Unavailable(String),
    /// The body ended before its declared end (`BACKEND_TRUNCATED`).
    Truncated(String),
    /// The adapter gave up waiting (`BACKEND_TIMEOUT`).
    Timeout(String),
    /// The response could not be read as HTTP (`BACKEND_INVALID_RESPONSE`).
    Invalid(String),
}

/// How the body of an INVOKE's response is read.
#[derive(Debug)]
pub(super) enum BodyMode {
    /// Waiting for the head.
    AwaitingHead,
    /// Each chunk is output.
    Plain,
    /// The body is ASP frames.
    Frames(Box<Decoder>),
    /// A terminal item is queued; the rest of the body is ignored.
    Done,
}

#[derive(Debug)]
pub(super) struct Call {
    pub conn: SessionKey,
    pub kind: CallKind,
    /// The invocation it runs (for `Invoke`).
    pub id: RequestId,
    pub mode: BodyMode,
    pub started: Instant,
    /// The head has arrived.
    pub head_at: Option<Instant>,
    /// The last time body bytes arrived while the relay waited for them.
    pub last_body: Instant,
    /// CPU time from `X-Cpu-Time`.
    pub cpu_us: Option<u64>,
    /// Output waiting for the client's credit; each item releases the body
    /// bytes it accounts for, returned to the adapter as credit.
    pub output: OutputQueue,
    /// Body bytes handed to the core and not yet credited back.
    pub uncredited: usize,
    /// The deadline registered in the relay's timer set.
    pub armed: Option<Instant>,
    /// The adapter reported the end of the body (or a failure): nothing to abort.
    pub body_ended: bool,
}

impl Call {
    pub(super) fn new(conn: SessionKey, kind: CallKind, id: RequestId, now: Instant) -> Call {
        Call {
            conn,
            kind,
            id,
            mode: BodyMode::AwaitingHead,
            started: now,
            head_at: None,
            last_body: now,
            cpu_us: None,
            output: OutputQueue::new(),
            uncredited: 0,
            armed: None,
            body_ended: false,
        }
    }

    /// A terminal item is queued (or sent): nothing more comes from the body.
    pub(super) fn finished(&self) -> bool {
        matches!(self.mode, BodyMode::Done)
    }

    /// Queues an item accounting for `credit` body bytes.
    pub(super) fn queue(&mut self, item: Output, credit: usize) {
        if matches!(item, Output::Complete { .. } | Output::Fail(_)) {
            self.mode = BodyMode::Done;
        }
        self.output.push(item, credit);
    }
}
