//! The replay buffer: sequenced frames sent and not yet acknowledged
//! (SPEC.md §11.2).

use std::collections::VecDeque;

use bytes::Bytes;

/// Frames kept for resume, oldest first. Entries are slices of the
/// transmitted batches, so keeping them costs no copy.
#[derive(Debug, Default)]
pub(crate) struct ReplayBuffer {
    frames: VecDeque<(u64, Bytes)>,
    bytes: usize,
}

impl ReplayBuffer {
    pub(crate) fn push(&mut self, seq: u64, frame: Bytes) {
        debug_assert!(self.frames.back().is_none_or(|(s, _)| *s + 1 == seq), "sequence gap");
        self.bytes += frame.len();
        self.frames.push_back((seq, frame));
    }

    /// Drops the frames numbered below `acked`; returns the bytes freed.
    pub(crate) fn ack(&mut self, acked: u64) -> usize {
        let before = self.bytes;
        while let Some((seq, frame)) = self.frames.front() {
            if *seq >= acked {
                break;
            }
            self.bytes -= frame.len();
            self.frames.pop_front();
        }
        before - self.bytes
    }

    /// The frames numbered `from` and later, or `None` if some of them are
    /// gone (`sent` is the number of sequenced frames sent in all).
    pub(crate) fn since(&self, from: u64, sent: u64) -> Option<impl Iterator<Item = &Bytes>> {
        let oldest = self.frames.front().map_or(sent, |(s, _)| *s);
        if from < oldest || from > sent {
            return None;
        }
        Some(self.frames.iter().filter(move |(s, _)| *s >= from).map(|(_, f)| f))
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_drop_the_prefix_and_replay_needs_every_frame() {
        let mut r = ReplayBuffer::default();
        for seq in 0..4 {
            r.push(seq, Bytes::from(vec![0; 10]));
        }
        assert_eq!(r.ack(2), 20);
        assert_eq!(r.bytes(), 20);
        assert_eq!(r.since(2, 4).unwrap().count(), 2);
        assert_eq!(r.since(3, 4).unwrap().count(), 1);
        assert_eq!(r.since(4, 4).unwrap().count(), 0);
        assert!(r.since(1, 4).is_none(), "frame 1 is gone");
        assert!(r.since(5, 4).is_none(), "frame 4 was never sent");
    }
}
