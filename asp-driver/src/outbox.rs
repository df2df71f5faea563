//! A tool handler's output on its way to the driver.
//!
//! One channel message per chunk would cost more than a small chunk (an
//! allocation and a wake-up each). Instead the handler appends to its
//! invocation's outbox and rings the driver only when the outbox was idle;
//! the driver takes everything queued at once. The driver clears the bell
//! *before* it drains, so output appended after a drain always rings again,
//! and a handler's last bell always precedes its result in the command
//! channel: output is never stranded and never overtaken.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::Poll;

use bytes::Bytes;
use futures::task::AtomicWaker;

#[derive(Default)]
pub(crate) struct Outbox {
    chunks: Mutex<VecDeque<Bytes>>,
    /// Bytes appended and not yet taken by the session.
    queued: AtomicUsize,
    /// A bell (command) is on its way to the driver.
    rung: AtomicBool,
    /// The invocation has ended: further output is refused.
    closed: AtomicBool,
    /// Wakes a handler waiting for room.
    room: AtomicWaker,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("queued", &self.queued.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl Outbox {
    /// Appends output; true when the caller must ring the driver.
    pub(crate) fn push(&self, data: Bytes) -> bool {
        self.queued.fetch_add(data.len(), Ordering::SeqCst);
        self.chunks.lock().expect("lock").push_back(data);
        !self.rung.swap(true, Ordering::SeqCst)
    }

    /// Driver: takes everything queued (the bell first, see the module doc).
    pub(crate) fn take_all(&self) -> VecDeque<Bytes> {
        self.rung.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.chunks.lock().expect("lock"))
    }

    /// Driver: `n` bytes were taken by the session (or dropped).
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.queued.fetch_sub(n, Ordering::SeqCst);
            self.room.wake();
        }
    }

    /// Driver: the invocation ended; wake a waiting handler to tell it.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let dropped: usize = self.take_all().iter().map(Bytes::len).sum();
        self.release(dropped);
        self.room.wake();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Handler: waits until at most `budget` bytes are queued (or the
    /// invocation ended).
    pub(crate) async fn room(&self, budget: usize) {
        futures::future::poll_fn(|cx| {
            if self.queued.load(Ordering::SeqCst) <= budget || self.is_closed() {
                return Poll::Ready(());
            }
            self.room.register(cx.waker());
            if self.queued.load(Ordering::SeqCst) <= budget || self.is_closed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}
