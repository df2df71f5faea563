//! Round-trip latency that holds from run to run.
//!
//! A single long run per system moved by 3–4x between two runs on a 2-core
//! machine, because where the client's and the server's threads landed
//! decided the figure, and one system's run could fall into a busy second
//! that the next one missed. So:
//!
//! - **Runtimes are fixed.** Every Tokio server (raw tungstenite, asp-tokio,
//!   rmcp) runs on one multi-thread Tokio runtime with **one worker**: one
//!   core for the servers, one for the clients, no thread hopping between
//!   workers. Clients run on a **current-thread** Tokio runtime (as a CLI
//!   or a test runs them; its driver task and the caller share the thread)
//!   except the row that names a multi-thread client. asp-async-std servers
//!   run on their runtime's own executor, with one thread as well
//!   (async-std's global pool sized by `ASYNC_STD_THREAD_COUNT=1`, which
//!   `main` sets unless given; smol's global executor, one thread by
//!   default); their clients on asp-async-std's
//!   [`CurrentThread`](asp_async_std::CurrentThread), the same arrangement
//!   as Tokio's current-thread runtime on `async-io`.
//! - **Cores are fixed** (where the machine has two): the calling thread,
//!   which runs every client, on one core; every server thread on the
//!   other ([`pin`](crate::pin)). Left to the kernel, the async-io rows'
//!   placement at start decided their figure for the whole run.
//! - **Rounds are interleaved**: every system makes `calls` calls, then the
//!   next system, and so on, `rounds` times (A B C … A B C …), so a slow
//!   second of the machine hits every system alike.
//! - **The figure is the median of the per-round medians**, shown with the
//!   spread (lowest and highest round median); p99 is over all samples.

use std::time::Duration;

use crate::echo::{timed, Echo};

/// One system under test: a connected client on its own runtime.
pub(crate) struct Subject {
    pub(crate) name: String,
    /// Makes `n` sequential calls on the client's runtime; one sample each.
    round: Box<dyn FnMut(usize) -> Vec<Duration>>,
    /// The server it calls, kept running as long as the subject.
    server: Option<Box<dyn std::any::Any>>,
}

/// How a subject's client blocks on its calls.
pub(crate) enum ClientRuntime {
    /// A Tokio runtime (current-thread or multi-thread) the subject owns.
    Tokio(tokio::runtime::Runtime),
    /// asp-async-std's [`CurrentThread`](asp_async_std::CurrentThread): the
    /// client's tasks run on the caller's thread (async-std or smol alike).
    FuturesIoCurrentThread(asp_async_std::CurrentThread),
}

impl ClientRuntime {
    /// A current-thread Tokio runtime, as a CLI or a test would run.
    pub(crate) fn current_thread() -> Self {
        ClientRuntime::Tokio(tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"))
    }

    /// asp-async-std's current-thread executor (for async-std and smol alike).
    pub(crate) fn futures_io_current_thread() -> Self {
        ClientRuntime::FuturesIoCurrentThread(asp_async_std::CurrentThread::new())
    }

    /// A multi-thread Tokio runtime with `workers` workers, each running
    /// `on_start` first (the bench lets them use every core).
    pub(crate) fn multi_thread(workers: usize, on_start: Option<impl Fn() + Send + Sync + 'static>) -> Self {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers).enable_all();
        if let Some(on_start) = on_start {
            builder.on_thread_start(on_start);
        }
        ClientRuntime::Tokio(builder.build().expect("runtime"))
    }

    /// Runs `future` to its end on this runtime.
    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        match self {
            ClientRuntime::Tokio(rt) => rt.block_on(future),
            ClientRuntime::FuturesIoCurrentThread(rt) => rt.block_on(future),
        }
    }
}

impl Subject {
    /// Connects with `connect` on `rt` and measures that client from then on.
    pub(crate) fn new<E, F>(name: impl Into<String>, rt: ClientRuntime, connect: F) -> Subject
    where
        E: Echo,
        F: std::future::Future<Output = E>,
    {
        let client = rt.block_on(connect);
        Subject { name: name.into(), round: Box::new(move |n| rt.block_on(timed(&client, n))), server: None }
    }

    /// A subject whose round is one run of `run` on `rt`, which returns the
    /// time per item (a streamed chunk): the figures are then per item.
    pub(crate) fn repeated<F, Fut>(name: impl Into<String>, rt: ClientRuntime, mut run: F) -> Subject
    where
        F: FnMut() -> Fut + 'static,
        Fut: std::future::Future<Output = Duration>,
    {
        Subject { name: name.into(), round: Box::new(move |_| vec![rt.block_on(run())]), server: None }
    }

    /// Keeps `server` (a handle whose drop would stop it) as long as this.
    pub(crate) fn serving(mut self, server: impl std::any::Any) -> Subject {
        self.server = Some(Box::new(server));
        self
    }
}

/// One subject's figures.
#[derive(Clone, Debug)]
pub(crate) struct Measured {
    pub(crate) name: String,
    /// Median of the per-round medians: the figure to compare.
    pub(crate) p50: Duration,
    /// The lowest and the highest round median.
    pub(crate) spread: (Duration, Duration),
    /// Over all samples of all rounds.
    pub(crate) p90: Duration,
    pub(crate) p99: Duration,
    pub(crate) round_medians: Vec<Duration>,
}

impl Measured {
    /// This figure over `other`'s, p50 to p50.
    pub(crate) fn ratio(&self, other: &Measured) -> f64 {
        self.p50.as_secs_f64() / other.p50.as_secs_f64()
    }
}

fn at(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `warmup` calls on each subject, then `rounds` interleaved rounds of
/// `calls` calls each.
pub(crate) fn interleaved(subjects: &mut [Subject], rounds: usize, calls: usize, warmup: usize) -> Vec<Measured> {
    for s in subjects.iter_mut() {
        (s.round)(warmup);
    }
    let mut all: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds * calls); subjects.len()];
    let mut medians: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); subjects.len()];
    for _ in 0..rounds {
        for (i, s) in subjects.iter_mut().enumerate() {
            let mut samples = (s.round)(calls);
            samples.sort();
            medians[i].push(at(&samples, 0.5));
            all[i].extend(samples);
        }
    }
    subjects
        .iter()
        .zip(all)
        .zip(medians)
        .map(|((s, mut all), round_medians)| {
            all.sort();
            let mut sorted = round_medians.clone();
            sorted.sort();
            Measured {
                name: s.name.clone(),
                p50: at(&sorted, 0.5),
                spread: (sorted[0], sorted[sorted.len() - 1]),
                p90: at(&all, 0.9),
                p99: at(&all, 0.99),
                round_medians,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subject whose round `r` answers every call in `per_round[r]` µs,
    /// except one slow call per round.
    fn scripted(name: &str, per_round: Vec<u64>) -> Subject {
        let mut round = 0;
        Subject {
            name: name.into(),
            round: Box::new(move |n| {
                // The warm-up round is the first call; rounds count after it.
                let us = per_round[round.min(per_round.len() - 1)];
                round += 1;
                let mut samples = vec![Duration::from_micros(us); n];
                if let Some(last) = samples.last_mut() {
                    *last = Duration::from_micros(us * 100);
                }
                samples
            }),
            server: None,
        }
    }

    #[test]
    fn the_figure_is_the_median_of_round_medians_with_their_spread() {
        // Warm-up (10), then five rounds, one of them a slow second of the machine.
        let mut subjects =
            vec![scripted("a", vec![10, 20, 21, 90, 19, 22]), scripted("b", vec![10, 40, 40, 40, 40, 40])];
        let m = interleaved(&mut subjects, 5, 9, 3);
        assert_eq!(m[0].name, "a");
        assert_eq!(m[0].p50, Duration::from_micros(21), "the slow round does not move the median");
        assert_eq!(m[0].spread, (Duration::from_micros(19), Duration::from_micros(90)));
        assert_eq!(m[0].round_medians.len(), 5);
        assert_eq!(m[0].p99, Duration::from_micros(9000), "p99 is over every call: the slow calls show there");
        assert!((m[0].ratio(&m[1]) - 21.0 / 40.0).abs() < 1e-9);
    }
}
