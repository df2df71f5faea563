//! Clients on one core, servers on another, for the interleaved rows.
//!
//! On this 2-core VM the async-std and smol streaming rows moved between
//! 0.65x and 0.9x of Tokio's rate from one run to the next, with the same
//! code: where the kernel placed the client, the server's executor and
//! `async-io`'s reactor at start decided it, and the placement held for the
//! run. Pinning takes the placement out of the figure: the calling thread
//! (every client runtime's, as a CLI runs them) on the first core this
//! process may use, every server thread on the second. The multi-thread
//! client row's workers may use every core, as before.

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The split, while it lasts: dropping it lets the calling thread use
/// every core again.
pub(crate) struct Split {
    all: CpuSet,
    server: usize,
}

impl Split {
    /// Pins the calling thread to the first core and returns the split; `None`
    /// (nothing pinned) with fewer than two cores or where affinity cannot
    /// be set.
    pub(crate) fn new() -> Option<Split> {
        let all = sched_getaffinity(Pid::from_raw(0)).ok()?;
        let mut cores = (0..CpuSet::count()).filter(|&i| all.is_set(i).unwrap_or(false));
        let (client, server) = (cores.next()?, cores.next()?);
        pin_to(client).ok()?;
        Some(Split { all, server })
    }

    /// Pins the calling thread to the servers' core.
    pub(crate) fn server_core(&self) -> impl Fn() + Send + Sync + Clone + 'static {
        let core = self.server;
        move || {
            let _ = pin_to(core);
        }
    }

    /// Lets the calling thread use every core.
    pub(crate) fn any_core(&self) -> impl Fn() + Send + Sync + Clone + 'static {
        let all = self.all;
        move || {
            let _ = sched_setaffinity(Pid::from_raw(0), &all);
        }
    }
}

impl Drop for Split {
    fn drop(&mut self) {
        (self.any_core())();
    }
}

fn pin_to(core: usize) -> nix::Result<()> {
    let mut one = CpuSet::new();
    one.set(core)?;
    sched_setaffinity(Pid::from_raw(0), &one)
}
