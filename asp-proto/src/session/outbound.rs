//! The encoded output waiting for the transport, and the hand-over of
//! sequenced frames to the replay buffer as they are transmitted.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::replay::ReplayBuffer;
use crate::{EncodeError, Frame};

/// What the output buffer allocates when it is empty.
const FIRST_ALLOCATION: usize = 1024;

/// Frames encoded and not yet taken by `poll_transmit`.
#[derive(Debug, Default)]
pub(super) struct Outbound {
    out: BytesMut,
    /// Where each frame in `out` ends, so transmits are cut between frames.
    frame_ends: VecDeque<usize>,
    /// Sequenced frames in `out`: (sequence number, start, end). They move
    /// to the replay buffer when transmitted.
    sequenced: Vec<(u64, usize, usize)>,
}

impl Outbound {
    /// Bytes queued.
    pub(super) fn len(&self) -> usize {
        self.out.len()
    }

    /// Encodes `frame` at the end, uncommitted; returns where it starts and
    /// its length. Follow with one of `commit`, `commit_sequenced`,
    /// `take_from` or `discard_from`.
    pub(super) fn encode(&mut self, frame: &Frame) -> Result<(usize, usize), EncodeError> {
        if self.out.capacity() == 0 {
            // One allocation for a typical batch rather than a string of
            // small ones as the encoder appends (see `cut`).
            self.out.reserve(FIRST_ALLOCATION);
        }
        let start = self.out.len();
        let len = frame.encode(&mut self.out)?;
        Ok((start, len))
    }

    /// Keeps the frame encoded at `start`.
    pub(super) fn commit(&mut self, start: usize, len: usize) {
        self.frame_ends.push_back(start + len);
    }

    /// Keeps the frame encoded at `start` as sequenced frame `seq`.
    pub(super) fn commit_sequenced(&mut self, seq: u64, start: usize, len: usize) {
        self.sequenced.push((seq, start, start + len));
        self.frame_ends.push_back(start + len);
    }

    /// Takes the frame encoded at `start` out of the queue.
    pub(super) fn take_from(&mut self, start: usize) -> Bytes {
        self.out.split_off(start).freeze()
    }

    /// Drops the frame encoded at `start`.
    pub(super) fn discard_from(&mut self, start: usize) {
        self.out.truncate(start);
    }

    /// Queues a frame replayed after a resume (sent before, so not numbered
    /// again).
    pub(super) fn push_replayed(&mut self, frame: &Bytes) {
        self.out.extend_from_slice(frame);
        self.frame_ends.push_back(self.out.len());
    }

    /// The next transmit: as many whole frames as fit in `limit` bytes (at
    /// least one). Sequenced frames in it move to `replay`.
    pub(super) fn cut(&mut self, limit: usize, replay: &mut ReplayBuffer) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        let mut cut = 0;
        while let Some(&end) = self.frame_ends.front() {
            if cut != 0 && end > limit {
                break;
            }
            cut = end;
            self.frame_ends.pop_front();
        }
        if cut == 0 {
            cut = self.out.len();
        }
        for end in self.frame_ends.iter_mut() {
            *end -= cut;
        }
        let batch = self.out.split_to(cut).freeze();
        if self.out.is_empty() {
            // The emptied buffer would keep the batch's allocation alive
            // after the batch is written and dropped (an idle connection
            // held its last transmit this way); the next frame allocates.
            self.out = BytesMut::new();
        }
        // `sequenced` is in buffer order: the frames in the batch come first.
        let sent = self.sequenced.partition_point(|&(_, _, end)| end <= cut);
        replay.push_batch(&batch, self.sequenced.drain(..sent));
        for (_, start, end) in &mut self.sequenced {
            *start -= cut;
            *end -= cut;
        }
        Some(batch)
    }

    /// The transport is lost: sequenced frames go to `replay` (resume sends
    /// them), the rest is dropped.
    pub(super) fn flush_to_replay(&mut self, replay: &mut ReplayBuffer) {
        self.frame_ends.clear();
        let batch = self.out.split().freeze();
        replay.push_batch(&batch, self.sequenced.drain(..));
    }

    /// Forgets which queued frames are sequenced (the session ended or
    /// started afresh).
    pub(super) fn forget_sequenced(&mut self) {
        self.sequenced.clear();
    }
}
