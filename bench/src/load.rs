//! ASP under load: many clients at once, and whether any of them starves.
//!
//! - **Direct**: `clients` asp-tokio clients (default 1,000) over `wss://`
//!   start one streaming call each at the same instant; each call streams
//!   [`CHUNKS_PER_CLIENT`] 32-byte chunks. Reported: aggregate chunks/s
//!   over the whole burst, time to first chunk (p50, p99, worst), and each
//!   client's own rate, median next to the slowest.
//! - **Relay**: `asp-relay` in a child process (so its resident set is its
//!   own) in front of the Rust example function; `idle` clients connect
//!   and stay idle (RSS growth per client), then [`RELAY_CALLERS`] more
//!   clients each make one streaming call at once (frames mode,
//!   [`RELAY_CHUNKS`] chunks of 32 bytes, 256 per HTTP chunk) while the
//!   idle ones stay connected: call time p50/p99, chunks/s, slowest client.
//!
//! The servers run on a one-worker Tokio runtime and the clients on another,
//! so each side has one of the two cores.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use asp_proto::Value;
use asp_tokio::TokioRuntime;
use futures::StreamExt;
use serde_json::json;

use crate::{asp, idle, us, Tls, PAYLOAD};

/// Chunks each of the direct clients streams.
pub(crate) const CHUNKS_PER_CLIENT: usize = 2_000;
/// Clients calling through the relay at once.
pub(crate) const RELAY_CALLERS: usize = 500;
/// Chunks each relay call streams.
pub(crate) const RELAY_CHUNKS: usize = 1_000;

/// One burst of concurrent streaming calls.
pub(crate) struct Burst {
    pub(crate) clients: usize,
    pub(crate) chunks_per_client: usize,
    /// All chunks over the time from the start to the last call's end.
    pub(crate) chunks_per_s: f64,
    /// Time to first chunk, sorted.
    first: Vec<Duration>,
    /// Each call's time, start to result, sorted.
    calls: Vec<Duration>,
    /// Each client's chunks/s over its own call, sorted ascending.
    rates: Vec<f64>,
}

impl Burst {
    fn at<T: Copy>(v: &[T], p: f64) -> T {
        v[((v.len() - 1) as f64 * p).round() as usize]
    }

    fn json(&self) -> serde_json::Value {
        let d = |d: Duration| d.as_secs_f64() * 1e6;
        json!({
            "clients": self.clients, "chunks_per_client": self.chunks_per_client,
            "aggregate_chunks_per_s": self.chunks_per_s,
            "first_chunk_us": { "p50": d(Self::at(&self.first, 0.5)), "p99": d(Self::at(&self.first, 0.99)), "max": d(self.first[self.first.len() - 1]) },
            "call_us": { "p50": d(Self::at(&self.calls, 0.5)), "p99": d(Self::at(&self.calls, 0.99)) },
            "client_chunks_per_s": { "median": Self::at(&self.rates, 0.5), "slowest": self.rates[0] },
        })
    }
}

/// What the load group reports.
pub(crate) struct Figures {
    pub(crate) direct: Burst,
    pub(crate) relay_idle: usize,
    pub(crate) relay_bytes_per_idle_client: f64,
    pub(crate) relay: Burst,
}

impl Figures {
    pub(crate) fn json(&self) -> serde_json::Value {
        json!({
            "direct_streaming": self.direct.json(),
            "relay": { "idle_clients": self.relay_idle, "rss_bytes_per_idle_client": self.relay_bytes_per_idle_client, "calls": self.relay.json() },
        })
    }
}

/// Starts every call of `clients` at once; each yields (first chunk, call
/// time, chunks) and the burst is summed up.
async fn burst<C, F>(clients: Vec<C>, chunks_per_client: usize, call: F) -> Burst
where
    C: Send + Sync + 'static,
    F: Fn(Arc<C>) -> futures::future::BoxFuture<'static, (Duration, usize)> + Send + Sync + 'static,
{
    let n = clients.len();
    let go = Arc::new(tokio::sync::Barrier::new(n + 1));
    let call = Arc::new(call);
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| {
            let (go, call, c) = (go.clone(), call.clone(), Arc::new(c));
            tokio::spawn(async move {
                go.wait().await;
                let started = Instant::now();
                let (first, chunks) = call(c).await;
                assert_eq!(chunks, chunks_per_client, "every chunk arrived");
                (first, started.elapsed())
            })
        })
        .collect();
    go.wait().await;
    let started = Instant::now();
    let mut first = Vec::with_capacity(n);
    let mut calls = Vec::with_capacity(n);
    for t in tasks {
        let (f, c) = t.await.expect("client task");
        first.push(f);
        calls.push(c);
    }
    let wall = started.elapsed();
    let mut rates: Vec<f64> = calls.iter().map(|c| chunks_per_client as f64 / c.as_secs_f64()).collect();
    rates.sort_by(f64::total_cmp);
    first.sort();
    calls.sort();
    Burst {
        clients: n,
        chunks_per_client,
        chunks_per_s: (n * chunks_per_client) as f64 / wall.as_secs_f64(),
        first,
        calls,
        rates,
    }
}

/// Reads one streaming call to its end: (time to first chunk, chunks).
async fn read_call(client: &asp_tokio::Client, tool: &str, args: Value) -> (Duration, usize) {
    let started = Instant::now();
    let mut inv = client.invoke(tool, args).await.expect("invoke");
    let mut first = None;
    let mut bytes = 0;
    while let Some(chunk) = inv.next().await {
        first.get_or_insert_with(|| started.elapsed());
        bytes += chunk.len();
    }
    inv.result().await.expect("the call completes");
    (first.unwrap_or_else(|| started.elapsed()), bytes / PAYLOAD)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime")
}

/// Opens `n` clients of `url`, 64 handshakes at a time.
async fn open(url: &str, tls: &Tls, n: usize) -> Vec<asp_tokio::Client> {
    let mut clients = Vec::with_capacity(n);
    for batch in (0..n).collect::<Vec<_>>().chunks(64) {
        let opened = futures::future::join_all(batch.iter().map(|_| asp::client::<TokioRuntime>(url, Some(tls)))).await;
        clients.extend(opened);
    }
    clients
}

/// Both parts of the load group.
pub(crate) fn run(tls: &Tls, clients: usize, idle: usize, limit: u64) -> Figures {
    let servers = runtime();
    let server = servers.block_on(asp::server::<TokioRuntime>(Some(tls), CHUNKS_PER_CLIENT));
    let client_rt = runtime();
    let direct = client_rt.block_on(async {
        let conns = open(server.url(), tls, clients).await;
        burst(conns, CHUNKS_PER_CLIENT, |c| Box::pin(async move { read_call(&c, "stream", Value::Nil).await })).await
    });
    drop(server);
    drop(servers);

    // The relay child holds the idle clients, the callers and their calls'
    // HTTP connections to the function.
    let idle = idle::fitting(idle, limit.saturating_sub(2 * RELAY_CALLERS as u64));
    let (relay_bytes_per_idle_client, relay) = client_rt.block_on(relay_load(tls, idle));
    Figures { direct, relay_idle: idle, relay_bytes_per_idle_client, relay }
}

/// The child: the example function and a relay (wss://) in front of it;
/// prints the relay's URL and certificate, then serves until killed.
pub(crate) async fn run_relay_server() {
    let tls = Tls::generate();
    let function = crate::relay::function_url().await;
    let relay = asp_relay::RelayBuilder::new("127.0.0.1:0".parse().expect("address"), function)
        .tls_pem(tls.cert_pem.as_bytes(), tls.key_pem.as_bytes())
        .expect("tls")
        .config(asp_relay::RelayConfig { max_connections: 100_000, ..Default::default() })
        .bind()
        .await
        .expect("bind")
        .spawn();
    println!("{}", relay.url());
    println!("{}", tls.cert_pem.replace('\n', "|"));
    futures::future::pending::<()>().await;
}

async fn relay_load(_tls: &Tls, idle: usize) -> (f64, Burst) {
    let exe = std::env::current_exe().expect("exe");
    let mut child =
        idle::Kill(Command::new(exe).arg("--relay-server").stdout(Stdio::piped()).spawn().expect("relay process"));
    let mut lines = BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    let url = lines.next().expect("url").expect("url");
    let cert_pem = lines.next().expect("cert").expect("cert").replace('|', "\n");
    let tls = Tls { cert_pem, key_pem: String::new() };
    let pid = child.0.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = idle::rss_kib(pid);
    let idle_clients = open(&url, &tls, idle).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = idle::rss_kib(pid);
    let per_client = (after.saturating_sub(before) * 1024) as f64 / idle.max(1) as f64;
    let callers = open(&url, &tls, RELAY_CALLERS).await;
    let args: Value =
        serde_json::from_value(json!({"chunks": RELAY_CHUNKS, "size": PAYLOAD, "batch": 256})).expect("msgpack value");
    let burst = burst(callers, RELAY_CHUNKS, move |c| {
        let args = args.clone();
        Box::pin(async move { read_call(&c, "stream_frames", args).await })
    })
    .await;
    assert!(idle_clients.iter().all(|c| !c.is_closed()), "the idle clients stayed connected");
    drop(idle_clients);
    (per_client, burst)
}

/// The load tables (markdown).
pub(crate) fn print(f: &Figures) {
    println!("| under load | clients | chunks/s (all) | first chunk p50 / p99 / worst µs | call p50 / p99 µs | client chunks/s median / slowest |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, b) in [
        (format!("direct, asp-tokio, wss://, {} chunks each", CHUNKS_PER_CLIENT), &f.direct),
        (
            format!("relay (wss://, frames mode), {} chunks each, beside {} idle clients", RELAY_CHUNKS, f.relay_idle),
            &f.relay,
        ),
    ] {
        println!(
            "| {name} | {} | {:.0} | {} / {} / {} | {} / {} | {:.0} / {:.0} |",
            b.clients,
            b.chunks_per_s,
            us(Burst::at(&b.first, 0.5)),
            us(Burst::at(&b.first, 0.99)),
            us(b.first[b.first.len() - 1]),
            us(Burst::at(&b.calls, 0.5)),
            us(Burst::at(&b.calls, 0.99)),
            Burst::at(&b.rates, 0.5),
            b.rates[0]
        );
    }
    println!();
    println!(
        "relay process RSS per idle client: {:.1} KiB ({} clients, wss://)",
        f.relay_bytes_per_idle_client / 1024.0,
        f.relay_idle
    );
}
