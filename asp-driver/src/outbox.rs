//! A tool handler's output on its way to the driver.
//!
//! One channel message per chunk would cost more than a small chunk (an
//! allocation and a wake-up each). Instead the handler appends to its
//! invocation's outbox and rings the driver only when the outbox was idle;
//! the driver takes everything queued at once. The bell is cleared in the
//! same critical section that drains the queue, so output appended after a
//! drain always rings again, and a handler's last bell always precedes its
//! result in the command channel: output is never stranded and never
//! overtaken.
//!
//! A streaming tool pushes once per chunk, so a push costs one lock and
//! nothing else: the queue, the bell and the byte count change together
//! under it (four atomic read-modify-writes per chunk were 8% of a
//! 32-byte stream's server time, `docs/PERFORMANCE.md`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::Poll;

use asp_proto::{Output, OutputQueue, Progress};
use bytes::Bytes;
use futures::task::AtomicWaker;

/// What one queued chunk costs beyond its bytes, measured: its `Bytes`
/// handle and allocation, its slots in the outbox and in the output queue
/// (80 bytes each, doubled by `VecDeque` growth). Counted against the send
/// budget so that a tool streaming many tiny chunks is held back by the
/// memory they take, not only by their length: 50 non-reading clients with
/// 32 one-word streams each held 2.2 GB before this was counted.
pub(crate) const CHUNK_OVERHEAD: usize = 256;

/// A chunk's share of the send budget.
pub(crate) fn cost(chunk: &Bytes) -> usize {
    chunk.len() + CHUNK_OVERHEAD
}

/// What the handler has queued, guarded by one lock.
#[derive(Default)]
struct Queued {
    chunks: VecDeque<Bytes>,
    /// The latest progress update not yet taken: updates replace each
    /// other (progress is advisory), so a tool reporting progress in a
    /// tight loop costs one update's memory, not a queue of them.
    progress: Option<Progress>,
    /// A bell (command) is on its way to the driver.
    rung: bool,
}

#[derive(Default)]
pub(crate) struct Outbox {
    queued: Mutex<Queued>,
    /// Cost ([`cost`]) of the chunks appended and not yet released by the
    /// driver. Written only under `queued`'s lock (so a plain load and
    /// store suffice); read without it by [`room`](Self::room).
    cost: AtomicUsize,
    /// The invocation has ended: further output is refused.
    closed: AtomicBool,
    /// Wakes a handler waiting for room.
    room: AtomicWaker,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("queued", &self.cost.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        // A handler never panics while holding the lock (nothing in the
        // critical sections can), so poisoning is not expected; recover
        // rather than spread a panic into the driver.
        self.queued.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `added` to the queued cost and takes `removed` off; `_held`
    /// proves the caller holds the lock.
    fn add_cost(&self, _held: &Queued, added: usize, removed: usize) {
        let now = (self.cost.load(Ordering::Relaxed) + added).saturating_sub(removed);
        self.cost.store(now, Ordering::Release);
    }

    /// Appends output; true when the caller must ring the driver.
    pub(crate) fn push(&self, data: Bytes) -> bool {
        let mut queued = self.lock();
        self.add_cost(&queued, cost(&data), 0);
        queued.chunks.push_back(data);
        !std::mem::replace(&mut queued.rung, true)
    }

    /// Replaces the pending progress update; true when the caller must
    /// ring the driver.
    pub(crate) fn set_progress(&self, progress: Progress) -> bool {
        let mut queued = self.lock();
        queued.progress = Some(progress);
        !std::mem::replace(&mut queued.rung, true)
    }

    /// Driver: moves everything queued (and then the latest progress
    /// update, which comes after that output) to `output`, and clears the
    /// bell. The outbox keeps its queue's capacity for the next batch.
    pub(crate) fn take_into(&self, output: &mut OutputQueue) {
        let mut queued = self.lock();
        queued.rung = false;
        for data in queued.chunks.drain(..) {
            let cost = cost(&data);
            output.push(Output::Data(data), cost);
        }
        if let Some(progress) = queued.progress.take() {
            output.push(Output::Progress(progress), 0);
        }
    }

    /// Driver: chunks costing `n` were taken by the session (or dropped).
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            let queued = self.lock();
            self.add_cost(&queued, 0, n);
            drop(queued);
            self.room.wake();
        }
    }

    /// Driver: the invocation ended; wake a waiting handler to tell it.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mut queued = self.lock();
        queued.rung = false;
        queued.progress = None;
        let dropped: usize = queued.chunks.drain(..).map(|c| cost(&c)).sum();
        self.add_cost(&queued, 0, dropped);
        drop(queued);
        self.room.wake();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Handler: waits until at most `budget` bytes are queued (or the
    /// invocation ended).
    pub(crate) async fn room(&self, budget: usize) {
        futures::future::poll_fn(|cx| {
            if self.cost.load(Ordering::Acquire) <= budget || self.is_closed() {
                return Poll::Ready(());
            }
            self.room.register(cx.waker());
            if self.cost.load(Ordering::Acquire) <= budget || self.is_closed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    impl Outbox {
        /// What `take_into` would move: the chunks and the progress update.
        fn take_all(&self) -> (Vec<Bytes>, Option<Progress>) {
            let mut output = OutputQueue::new();
            self.take_into(&mut output);
            let mut chunks = Vec::new();
            let mut progress = None;
            for item in output.iter().cloned() {
                match item {
                    Output::Data(data) => chunks.push(data),
                    Output::Progress(p) => progress = Some(p),
                    other => panic!("an outbox holds output only, not {other:?}"),
                }
            }
            (chunks, progress)
        }
    }

    #[test]
    fn the_bell_rings_once_per_batch_and_again_after_a_take() {
        let outbox = Outbox::default();
        assert!(outbox.push(Bytes::from_static(b"a")), "idle: ring");
        assert!(!outbox.push(Bytes::from_static(b"b")), "a bell is on its way");
        assert_eq!(outbox.take_all().0.len(), 2);
        assert!(outbox.push(Bytes::from_static(b"c")), "taken: ring again");
    }

    #[test]
    fn room_waits_for_release_and_close_frees_everything() {
        let outbox = Outbox::default();
        outbox.push(Bytes::from(vec![0u8; 100]));
        assert!(outbox.room(50).now_or_never().is_none(), "100 queued, budget 50");
        outbox.release(320);
        assert!(outbox.room(50).now_or_never().is_some(), "100 + overhead - 120 queued");
        outbox.push(Bytes::from(vec![0u8; 100]));
        outbox.close();
        assert!(outbox.is_closed());
        assert!(outbox.room(0).now_or_never().is_some(), "a closed outbox never holds a handler");
        assert!(outbox.take_all().0.is_empty(), "close drops what was queued");
    }

    #[test]
    fn tiny_chunks_are_held_back_by_their_overhead() {
        let outbox = Outbox::default();
        let mut pushed = 0;
        while outbox.room(crate::SEND_BUDGET).now_or_never().is_some() {
            outbox.push(Bytes::from_static(b" word"));
            pushed += 1;
        }
        assert_eq!(pushed, crate::SEND_BUDGET / (5 + CHUNK_OVERHEAD) + 1);
    }

    #[test]
    fn progress_updates_replace_each_other() {
        let outbox = Outbox::default();
        assert!(outbox.set_progress(Progress::new(1.0)), "idle: ring");
        for i in 2..10_000 {
            assert!(!outbox.set_progress(Progress::new(f64::from(i))), "one bell for the lot");
        }
        let (chunks, progress) = outbox.take_all();
        assert!(chunks.is_empty());
        assert_eq!(progress, Some(Progress::new(9_999.0)), "only the latest is kept");
        assert_eq!(outbox.take_all().1, None);
    }
}
