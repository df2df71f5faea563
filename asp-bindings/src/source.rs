//! Taking events from a session for a foreign caller: chunks merged, the
//! caller's clock mapped.

use std::time::Duration;

use asp_proto::{Event, RequestId, Session};
use bytes::Bytes;
use web_time::Instant;

use crate::events::{shape, ShapedEvent};

/// Merged chunks stop growing past this size, so that a consumer still sees
/// output (and grants credit) in steps.
pub const MERGED_CHUNK_LIMIT: usize = 64 * 1024;

/// Hands out a session's events shaped for a binding, with consecutive
/// chunks of one invocation merged into one (chunk boundaries carry no
/// meaning, SPEC §6.4): one foreign object and one byte array per batch
/// instead of per frame, which is most of a binding's cost when streaming.
///
/// It also maps time: the caller's clock is a number of `units_per_second`
/// (1000 for JS's `performance.now()`, 1 for Python's `loop.time()`).
#[derive(Debug)]
pub struct EventSource {
    base: Instant,
    base_at: f64,
    units_per_second: f64,
    pending: Option<Event>,
    closed: bool,
}

impl EventSource {
    /// `now` on the caller's clock stands for this instant from now on.
    pub fn new(now: f64, units_per_second: f64) -> EventSource {
        EventSource { base: Instant::now(), base_at: now, units_per_second, pending: None, closed: false }
    }

    /// The session's instant for `now` on the caller's clock.
    pub fn at(&self, now: f64) -> Instant {
        self.base + Duration::from_secs_f64(((now - self.base_at) / self.units_per_second).max(0.0))
    }

    /// The caller's clock reading for a session instant.
    pub fn caller_time(&self, at: Instant) -> f64 {
        self.base_at + at.saturating_duration_since(self.base).as_secs_f64() * self.units_per_second
    }

    /// True once the session has reported its end.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// The next event for the caller, or `None` when the session has none.
    pub fn next(&mut self, session: &mut Session) -> Option<ShapedEvent> {
        while let Some(event) = self.pending.take().or_else(|| session.poll_event()) {
            self.closed |= matches!(event, Event::Closed(_));
            let event = match event {
                Event::Chunk { id, data } => Event::Chunk { id, data: self.merge_chunks(session, id, data) },
                other => other,
            };
            if let Some(shaped) = shape(event, |at| self.caller_time(at)) {
                return Some(shaped);
            }
        }
        None
    }

    /// `first` and the chunks of invocation `id` that follow it, up to
    /// [`MERGED_CHUNK_LIMIT`] bytes.
    fn merge_chunks(&mut self, session: &mut Session, id: RequestId, first: Bytes) -> Bytes {
        let mut merged: Option<Vec<u8>> = None;
        loop {
            let size = merged.as_ref().map_or(first.len(), Vec::len);
            if size >= MERGED_CHUNK_LIMIT {
                break;
            }
            match session.poll_event() {
                Some(Event::Chunk { id: next_id, data }) if next_id == id => {
                    merged.get_or_insert_with(|| first.to_vec()).extend_from_slice(&data);
                }
                other => {
                    self.pending = other;
                    break;
                }
            }
        }
        merged.map_or(first, Bytes::from)
    }
}
