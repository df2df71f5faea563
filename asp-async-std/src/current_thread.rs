//! A current-thread executor: the caller and its connections on one thread.
//!
//! async-std and smol run spawned tasks on executor threads of their own,
//! while the caller waits in `block_on` on another thread. A client's
//! connection task then wakes the caller across threads twice per call
//! (and the caller wakes it back), which on a 2-core machine cost smol
//! 1.8x asp-tokio's round trip, where Tokio's current-thread runtime keeps
//! both on one thread (docs/PERFORMANCE.md). [`CurrentThread`] does what
//! Tokio's does, on `async-io`'s reactor: the future you block on and every
//! connection task started inside it run on the calling thread.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use asp_driver::BoxFuture;

thread_local! {
    /// The executor of the `CurrentThread::block_on` running on this thread.
    static CURRENT: RefCell<Option<Rc<smol::LocalExecutor<'static>>>> = const { RefCell::new(None) };
}

/// A single-threaded executor for clients (and servers) on async-std or
/// smol, like Tokio's current-thread runtime.
///
/// Connection tasks started inside [`block_on`](Self::block_on) (a
/// client's driver, a server's connections) run on this thread, and only
/// while some `block_on` of this value runs; they live as long as the
/// `CurrentThread` does, so keep it for as long as the connections:
///
/// ```no_run
/// # fn run(url: &str) {
/// use asp_async_std::{ClientBuilder, CurrentThread};
///
/// let rt = CurrentThread::new();
/// let client = rt.block_on(ClientBuilder::new(url).connect()).unwrap();
/// // The client's connection task runs on this thread, inside block_on.
/// let sum: Result<i64, _> = rt.block_on(client.call("add", (2, 40)));
/// # let _ = sum;
/// # }
/// ```
///
/// Outside `block_on`, tasks go to the runtime's own executor as before.
/// Dropping the `CurrentThread` drops the tasks it still holds, which
/// closes their connections.
#[derive(Default)]
pub struct CurrentThread {
    executor: Rc<smol::LocalExecutor<'static>>,
}

impl CurrentThread {
    /// A new executor with no tasks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `future` to completion on this thread, with every task this
    /// executor holds, on `async-io`'s reactor.
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        let previous = CURRENT.with(|c| c.replace(Some(self.executor.clone())));
        // Restored on the way out, a panic included, so a nested block_on
        // hands the thread back to the outer one.
        let _restore = Restore(Some(previous));
        smol::block_on(self.executor.run(future))
    }
}

impl std::fmt::Debug for CurrentThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentThread").finish_non_exhaustive()
    }
}

struct Restore(Option<Option<Rc<smol::LocalExecutor<'static>>>>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take().flatten();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Spawns `future` on the [`CurrentThread`] running on this thread, or
/// gives it back when there is none.
pub(crate) fn spawn_here(future: BoxFuture<()>) -> Option<BoxFuture<()>> {
    CURRENT.with(|c| match c.borrow().as_ref() {
        Some(executor) => {
            executor.spawn(future).detach();
            None
        }
        None => Some(future),
    })
}

#[cfg(test)]
mod tests {
    use asp_driver::Runtime;

    use super::CurrentThread;
    use crate::{AsyncStd, Smol};

    /// Inside `block_on`, both runtimes spawn onto the caller's thread;
    /// outside it, onto their executors' threads.
    #[test]
    fn tasks_spawned_inside_block_on_run_on_the_calling_thread() {
        async fn thread_of_a_task_spawned_by(rt: impl Runtime) -> std::thread::ThreadId {
            let (tx, rx) = futures::channel::oneshot::channel();
            rt.spawn(Box::pin(async move {
                let _ = tx.send(std::thread::current().id());
            }));
            rx.await.unwrap()
        }
        let here = std::thread::current().id();
        let local = CurrentThread::new();
        assert_eq!(local.block_on(thread_of_a_task_spawned_by(Smol::default())), here);
        assert_eq!(local.block_on(thread_of_a_task_spawned_by(AsyncStd::default())), here);
        assert_ne!(smol::block_on(thread_of_a_task_spawned_by(Smol::default())), here);
        assert_ne!(smol::block_on(thread_of_a_task_spawned_by(AsyncStd::default())), here);
    }
}
