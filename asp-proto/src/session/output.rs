//! Output of one invocation we handle that waits for the peer's credit
//! (SPEC.md §10), and its end.
//!
//! [`Session::send_chunk`] takes what credit allows and returns
//! [`SendError::Blocked`] with the rest left in place: the session keeps no
//! application buffers. Every caller that produces output faster than the
//! peer reads it (the driver's tool handlers, the relay's function calls)
//! needs the same queue behind it, with the same two rules, written here once:
//!
//! - **the end never overtakes the output**: COMPLETE or ERROR goes out only
//!   after every chunk queued before it (the session would otherwise close the
//!   invocation and the queued chunks would be lost);
//! - **an invocation that is gone stops everything**: once the session says
//!   the invocation is not open (interrupted, timed out, session closed),
//!   the rest of the queue is dropped and the caller told so.
//!
//! Each item carries a number of bytes to *release* once it has gone out (or
//! been dropped): the driver gives that room back to the handler's outbox,
//! the relay returns it to the adapter as body credit. A chunk that goes out
//! in part releases as much of its count as it sent.

use std::collections::VecDeque;
use web_time::Instant;

use bytes::Bytes;

use super::{SendError, Session};
use crate::{ErrorInfo, Progress, RequestId, ToolOp, ToolSpec, Value};

/// One thing an invocation's handler sends, in the order it was produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// STREAM bytes.
    Data(Bytes),
    /// A PROGRESS update: sent if credit allows when its turn comes,
    /// dropped otherwise (progress is advisory).
    Progress(Progress),
    /// A change to our tool set (TOOL_DEF); never blocks, and a failure
    /// (session draining) loses nothing the invocation needs.
    Tools(ToolOp, Vec<ToolSpec>),
    /// COMPLETE: the invocation's result, and the handler's CPU time if known.
    Complete {
        /// The result.
        result: Value,
        /// CPU time in microseconds.
        cpu_us: Option<u64>,
    },
    /// ERROR: the invocation failed.
    Fail(ErrorInfo),
}

impl Output {
    fn is_end(&self) -> bool {
        matches!(self, Output::Complete { .. } | Output::Fail(_))
    }
}

/// Where an invocation's queue stands after [`OutputQueue::flush`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum QueueState {
    /// Output waits for credit (retry after [`Event::Writable`](super::Event::Writable)),
    /// or everything went out and the end has not been queued yet.
    Open,
    /// The end went out: the invocation is over on our side.
    Ended,
    /// The session no longer has the invocation open (interrupted, timed
    /// out, closed): the queue was dropped.
    Gone,
}

/// What one [`OutputQueue::flush`] did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[must_use = "released bytes must be given back, and an ended invocation cleaned up"]
pub struct Flushed {
    /// Bytes to release: the counts of items that went out or were dropped.
    pub released: usize,
    /// Where the queue stands now.
    pub state: QueueState,
}

/// Output of one invocation we handle that waits for the peer's credit, in
/// order, with its end.
///
/// [`Session::send_chunk`] takes what credit allows and returns
/// [`SendError::Blocked`] with the rest: the session keeps no application
/// buffers. Every caller that produces output faster than the peer reads it
/// (the driver's tool handlers, the relay's function calls) needs this queue
/// behind it, with its two rules: **the end never overtakes the output**
/// (COMPLETE or ERROR goes out only after every chunk queued before it), and
/// **an invocation that is gone stops everything** (the rest of the queue is
/// dropped and [`QueueState::Gone`] says so).
///
/// Each item carries a count of bytes to *release* once it has gone out or
/// been dropped: the driver gives that room back to the handler's outbox,
/// the relay returns it to its adapter as body credit. A chunk that goes out
/// in part releases as much of its count as it sent. Call
/// [`flush`](Self::flush) after pushing and after every
/// [`Event::Writable`](super::Event::Writable).
#[derive(Debug, Default)]
pub struct OutputQueue {
    items: VecDeque<(Output, usize)>,
}

impl OutputQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `item`, to release `release` bytes once it has gone out.
    pub fn push(&mut self, item: Output, release: usize) {
        self.items.push_back((item, release));
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The end (COMPLETE or ERROR) is queued.
    pub fn has_end(&self) -> bool {
        self.items.back().is_some_and(|(item, _)| item.is_end())
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// What waits, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Output> {
        self.items.iter().map(|(item, _)| item)
    }

    /// Drops everything queued; returns the bytes to release.
    pub fn clear(&mut self) -> usize {
        self.items.drain(..).map(|(_, release)| release).sum()
    }

    /// Hands queued output to `session` for invocation `id`, in order, as
    /// far as credit goes. Stops at the first item the session cannot take
    /// yet, after the end, or when the invocation is gone.
    pub fn flush(&mut self, session: &mut Session, now: Instant, id: RequestId) -> Flushed {
        let mut released = 0;
        while let Some((item, release)) = self.items.pop_front() {
            let end = item.is_end();
            let result = match item {
                Output::Data(mut data) => {
                    let before = data.len();
                    let result = session.send_chunk(id, &mut data);
                    if result == Err(SendError::Blocked) {
                        let sent = (before - data.len()).min(release);
                        released += sent;
                        self.items.push_front((Output::Data(data), release - sent));
                        return Flushed { released, state: QueueState::Open };
                    }
                    result
                }
                // Progress is advisory (SPEC.md §6.4): an update without
                // credit is dropped, never waited for, so a window smaller
                // than one progress map cannot stall the output behind it.
                Output::Progress(progress) => match session.send_progress(id, progress) {
                    Err(SendError::Blocked) => Ok(()),
                    result => result,
                },
                Output::Tools(op, tools) => {
                    let _ = session.push_tools(op, tools);
                    Ok(())
                }
                Output::Complete { result, cpu_us } => session.complete(now, id, result, cpu_us),
                Output::Fail(error) => session.fail_with(id, error),
            };
            released += release;
            if result.is_err() {
                released += self.clear();
                return Flushed { released, state: QueueState::Gone };
            }
            if end {
                // Nothing may follow the end; whatever did is dropped.
                released += self.clear();
                return Flushed { released, state: QueueState::Ended };
            }
        }
        Flushed { released, state: QueueState::Open }
    }
}
