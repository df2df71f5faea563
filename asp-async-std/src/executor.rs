//! Where tasks run: the only thing async-std and smol do differently for
//! this crate.

use asp_driver::BoxFuture;

/// Where connection tasks run: the only thing async-std and smol do
/// differently for this crate.
pub trait Executor: Copy + Default + Send + Sync + 'static {
    /// Runs `future` in the background, detached.
    fn spawn(future: BoxFuture<()>);
}

/// async-std's global executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStdExecutor;

impl Executor for AsyncStdExecutor {
    fn spawn(future: BoxFuture<()>) {
        // Dropping async-std's JoinHandle detaches the task.
        drop(async_std::task::spawn(future));
    }
}

/// smol's global executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolExecutor;

impl Executor for SmolExecutor {
    fn spawn(future: BoxFuture<()>) {
        ::smol::spawn(future).detach();
    }
}
