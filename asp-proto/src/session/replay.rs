//! The replay buffer: sequenced frames sent and not yet acknowledged
//! (SPEC.md §11.2).

use std::collections::VecDeque;

use bytes::Bytes;

/// Frames kept for resume, oldest first.
///
/// Frames are not copied: the buffer keeps each transmitted batch once and
/// records where its sequenced frames lie in it. (One `Bytes` slice per
/// frame cost two atomic reference-count operations per frame, 6% of a
/// 32-byte stream's server time; a batch carries hundreds of frames.) A
/// batch is dropped when its last kept frame is acknowledged.
#[derive(Debug, Default)]
pub(crate) struct ReplayBuffer {
    /// Batches holding kept frames, oldest first.
    batches: VecDeque<Bytes>,
    /// How many batches were dropped from the front so far: `Kept::batch`
    /// counts from the first batch ever kept.
    batches_dropped: u64,
    frames: VecDeque<Kept>,
    bytes: usize,
}

/// One kept frame: its sequence number and where it lies.
#[derive(Clone, Copy, Debug)]
struct Kept {
    seq: u64,
    batch: u64,
    start: u32,
    end: u32,
}

impl ReplayBuffer {
    /// Keeps frame `seq`, a batch of its own.
    pub(crate) fn push(&mut self, seq: u64, frame: Bytes) {
        let end = frame.len();
        self.push_batch(&frame, [(seq, 0, end)]);
    }

    /// Keeps the frames `(seq, start, end)` of `batch` (in order, numbered
    /// on from the last kept frame).
    pub(crate) fn push_batch(&mut self, batch: &Bytes, frames: impl IntoIterator<Item = (u64, usize, usize)>) {
        let index = self.batches_dropped + self.batches.len() as u64;
        let before = self.frames.len();
        for (seq, start, end) in frames {
            debug_assert!(self.frames.back().is_none_or(|k| k.seq + 1 == seq), "sequence gap");
            debug_assert!(start <= end && end <= batch.len());
            self.bytes += end - start;
            // Frames are at most 16 MiB and batches a few of them.
            self.frames.push_back(Kept { seq, batch: index, start: start as u32, end: end as u32 });
        }
        if self.frames.len() > before {
            self.batches.push_back(batch.clone());
        }
    }

    /// Drops the frames numbered below `acked`; returns the bytes freed.
    pub(crate) fn ack(&mut self, acked: u64) -> usize {
        let before = self.bytes;
        while let Some(kept) = self.frames.front() {
            if kept.seq >= acked {
                break;
            }
            self.bytes -= (kept.end - kept.start) as usize;
            self.frames.pop_front();
        }
        // Batches before the oldest kept frame's are no longer needed.
        let needed = self.frames.front().map_or(self.batches_dropped + self.batches.len() as u64, |k| k.batch);
        while self.batches_dropped < needed && self.batches.pop_front().is_some() {
            self.batches_dropped += 1;
        }
        before - self.bytes
    }

    /// The frames numbered `from` and later, or `None` if some of them are
    /// gone (`sent` is the number of sequenced frames sent in all).
    pub(crate) fn since(&self, from: u64, sent: u64) -> Option<impl Iterator<Item = Bytes> + '_> {
        let oldest = self.frames.front().map_or(sent, |k| k.seq);
        if from < oldest || from > sent {
            return None;
        }
        Some(self.frames.iter().filter(move |k| k.seq >= from).map(|k| {
            let batch = &self.batches[(k.batch - self.batches_dropped) as usize];
            batch.slice(k.start as usize..k.end as usize)
        }))
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn clear(&mut self) {
        self.batches_dropped += self.batches.len() as u64;
        self.batches.clear();
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

    #[test]
    fn frames_of_a_batch_share_it_until_the_last_is_acknowledged() {
        let mut r = ReplayBuffer::default();
        let first = Bytes::from_static(b"aabbbcc");
        // Frames 0 and 1 of the first batch ("cc" is not sequenced).
        r.push_batch(&first, [(0, 0, 2), (1, 2, 5)]);
        r.push_batch(&Bytes::from_static(b"xyz"), []);
        r.push_batch(&Bytes::from_static(b"dddd"), [(2, 0, 4)]);
        assert_eq!(r.bytes(), 9);
        assert_eq!(r.batches.len(), 2, "a batch without kept frames is not kept");
        let all: Vec<Bytes> = r.since(0, 3).unwrap().collect();
        assert_eq!(all, [&b"aa"[..], b"bbb", b"dddd"]);
        assert_eq!(r.ack(1), 2);
        assert_eq!(r.batches.len(), 2, "frame 1 still needs the first batch");
        assert_eq!(r.since(1, 3).unwrap().collect::<Vec<_>>(), [&b"bbb"[..], b"dddd"]);
        assert_eq!(r.ack(2), 3);
        assert_eq!(r.batches.len(), 1, "the first batch is gone with its last frame");
        assert_eq!(r.since(2, 3).unwrap().collect::<Vec<_>>(), [&b"dddd"[..]]);
        r.clear();
        r.push(3, Bytes::from_static(b"e"));
        assert_eq!(r.since(3, 4).unwrap().collect::<Vec<_>>(), [&b"e"[..]], "indices hold after a clear");
        assert_eq!(r.ack(4), 1);
        assert!(r.batches.is_empty());
    }
}
