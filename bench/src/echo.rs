//! One interface over every system's echo call, so the same loop measures
//! them all, sequentially and with many clients at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

/// Latency percentiles of one set of calls.
#[derive(Clone, Debug)]
pub(crate) struct Latency {
    pub(crate) p50: Duration,
    pub(crate) p90: Duration,
    pub(crate) p99: Duration,
    /// Calls per second over the whole set (all clients together).
    pub(crate) rate: f64,
}

/// A connected client of some system that can echo a 32-byte payload and
/// checks the answer.
pub(crate) trait Echo: Send + Sync + 'static {
    fn echo(&self) -> BoxFuture<'_, ()>;
}

pub(crate) fn percentiles(mut samples: Vec<Duration>, elapsed: Duration) -> Latency {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    Latency { p50: at(0.5), p90: at(0.9), p99: at(0.99), rate: samples.len() as f64 / elapsed.as_secs_f64() }
}

/// Sequential calls on one client after a warm-up.
pub(crate) async fn sequential(client: &dyn Echo, calls: usize, warmup: usize) -> Latency {
    for _ in 0..warmup {
        client.echo().await;
    }
    let started = Instant::now();
    let samples = timed(client, calls).await;
    percentiles(samples, started.elapsed())
}

/// Times `n` sequential calls of `client`: one sample each.
pub(crate) async fn timed(client: &dyn Echo, n: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client.echo().await;
        samples.push(t.elapsed());
    }
    samples
}

/// `clients` clients at once, each making `calls / clients` sequential
/// calls after its own warm-up (Tokio tasks on the current runtime).
pub(crate) async fn concurrent<E: Echo>(clients: Vec<E>, calls: usize, warmup: usize) -> Latency {
    let per_client = (calls / clients.len()).max(10);
    let clients: Vec<Arc<E>> = clients.into_iter().map(Arc::new).collect();
    for c in &clients {
        for _ in 0..warmup {
            c.echo().await;
        }
    }
    let started = Instant::now();
    let tasks: Vec<_> =
        clients.into_iter().map(|c| tokio::spawn(async move { timed(&*c, per_client).await })).collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.expect("client task"));
    }
    percentiles(samples, started.elapsed())
}
