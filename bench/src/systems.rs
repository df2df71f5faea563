//! The systems the round-trip and streaming rows compare, each served and
//! called on the runtimes [`latency`](crate::latency) describes, and the
//! tables of their figures.

use std::time::Duration;

use asp_async_std::{AsyncStd, Smol};
use asp_driver::{Network, ServerHandle};
use asp_tokio::TokioRuntime;
use serde_json::{json, Value as Json};

use crate::latency::{interleaved, ClientRuntime, Measured, Subject};
use crate::mcp::{HttpClient, McpClient};
use crate::{asp, mcp, raw, us, Tls};

/// The runtime of every Tokio server of the rows: one worker thread, on
/// the servers' core while the calling (client) thread keeps the other
/// ([`pin`](crate::pin)); async-std's and smol's one executor thread each
/// go to the servers' core too. Dropping it stops the Tokio servers and
/// unpins the calling thread.
pub(crate) struct Servers {
    tokio: tokio::runtime::Runtime,
    pub(crate) split: Option<crate::pin::Split>,
}

impl Servers {
    pub(crate) fn new() -> Servers {
        let split = crate::pin::Split::new();
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(1).enable_all();
        if let Some(split) = &split {
            builder.on_thread_start(split.server_core());
            let (to_std, to_smol) = (split.server_core(), split.server_core());
            async_std::task::block_on(async_std::task::spawn(async move { to_std() }));
            smol::block_on(smol::spawn(async move { to_smol() }));
        }
        Servers { tokio: builder.build().expect("server runtime"), split }
    }

    fn on_tokio<F: std::future::Future>(&self, f: F) -> F::Output {
        self.tokio.block_on(f)
    }
}

/// One row: its name, and the rows it is compared with.
struct Row {
    name: String,
    /// The raw WebSocket row of the same scheme.
    floor: Option<String>,
    /// The asp-tokio row this one should match (other runtimes).
    par: Option<String>,
}

fn row(name: &str, floor: Option<&str>, par: Option<&str>) -> Row {
    Row { name: name.to_owned(), floor: floor.map(str::to_owned), par: par.map(str::to_owned) }
}

/// The figures of one group of rows, and how each compares.
pub(crate) struct Table {
    rows: Vec<Row>,
    pub(crate) measured: Vec<Measured>,
}

impl Table {
    pub(crate) fn get(&self, name: &str) -> Option<&Measured> {
        self.measured.iter().find(|m| m.name == name)
    }

    fn vs(&self, m: &Measured, other: &Option<String>) -> Option<f64> {
        other.as_deref().and_then(|o| self.get(o)).filter(|o| o.name != m.name).map(|o| m.ratio(o))
    }

    /// The ratios of row `i`: vs raw, vs asp-tokio, vs `reference`.
    fn ratios(&self, i: usize, reference: &str) -> [Option<f64>; 3] {
        let m = &self.measured[i];
        let r = &self.rows[i];
        [self.vs(m, &r.floor), self.vs(m, &r.par), self.vs(m, &Some(reference.to_owned()))]
    }
}

/// The candidates `filters` select: a filter that is a row's whole name
/// selects that row alone, any other every row containing it
/// (case-insensitive). No filters select all.
fn select<'a>(candidates: Vec<(Row, Build<'a>)>, filters: &[String]) -> (Vec<Row>, Vec<Subject>) {
    let names: Vec<String> = candidates.iter().map(|(r, _)| r.name.to_lowercase()).collect();
    let picks = |name: &str| {
        let name = name.to_lowercase();
        filters.is_empty()
            || filters.iter().map(|f| f.to_lowercase()).any(|f| {
                if names.contains(&f) {
                    name == f
                } else {
                    name.contains(&f)
                }
            })
    };
    candidates.into_iter().filter(|(r, _)| picks(&r.name)).map(|(r, build)| (r, build())).unzip()
}

/// Starts a row's server and connects its client.
type Build<'a> = Box<dyn FnOnce() -> Subject + 'a>;

pub(crate) const RAW_WS: &str = "raw tungstenite, ws://";
pub(crate) const RAW_WSS: &str = "raw tungstenite, wss://";
pub(crate) const ASP_WS: &str = "ASP, asp-tokio, ws://";
pub(crate) const ASP_WSS: &str = "ASP, asp-tokio, wss://";
pub(crate) const MCP_KEEP_ALIVE: &str = "MCP tools/call, rmcp, keep-alive client, http://";

/// The round-trip rows whose names contain one of `filters` (all when
/// empty), measured interleaved.
pub(crate) fn round_trips(
    tls: &Tls,
    payload: usize,
    filters: &[String],
    rounds: usize,
    calls: usize,
    warmup: usize,
) -> Table {
    let servers = Servers::new();
    let (tls_ws, tls_wss) = (None, Some(tls));
    let raw = |tls: Option<&Tls>| servers.on_tokio(raw::serve_echo(tls));
    let on_tokio = |tls: Option<&Tls>| servers.on_tokio(asp::server::<TokioRuntime>(tls, 0));
    let on_std = |tls: Option<&Tls>| async_std::task::block_on(asp::server::<AsyncStd>(tls, 0));
    let on_smol = |tls: Option<&Tls>| smol::block_on(asp::server::<Smol>(tls, 0));
    let mcp = || servers.on_tokio(mcp::serve(0));

    let ct = ClientRuntime::current_thread;
    let candidates: Vec<(Row, Build<'_>)> = vec![
        (
            row(RAW_WS, None, None),
            Box::new(|| {
                let url = raw(tls_ws);
                Subject::new(RAW_WS, ct(), async { raw::RawEcho::connect(&url, tls_ws).await.with_payload(payload) })
            }),
        ),
        (
            row(RAW_WSS, None, None),
            Box::new(|| {
                let url = raw(tls_wss);
                Subject::new(RAW_WSS, ct(), async { raw::RawEcho::connect(&url, tls_wss).await.with_payload(payload) })
            }),
        ),
        asp_row::<TokioRuntime>(ASP_WS, (Some(RAW_WS), None), Box::new(|| on_tokio(tls_ws)), ct, tls_ws, payload),
        asp_row::<TokioRuntime>(ASP_WSS, (Some(RAW_WSS), None), Box::new(|| on_tokio(tls_wss)), ct, tls_wss, payload),
        asp_row::<TokioRuntime>(
            "ASP, asp-tokio, ws://, multi-thread client (2 workers)",
            (Some(RAW_WS), Some(ASP_WS)),
            Box::new(|| on_tokio(tls_ws)),
            || ClientRuntime::multi_thread(2, servers.split.as_ref().map(|s| s.any_core())),
            tls_ws,
            payload,
        ),
        asp_row::<AsyncStd>(
            "ASP, asp-async-std, ws://",
            (Some(RAW_WS), Some(ASP_WS)),
            Box::new(|| on_std(tls_ws)),
            ClientRuntime::futures_io_current_thread,
            tls_ws,
            payload,
        ),
        asp_row::<AsyncStd>(
            "ASP, asp-async-std, wss://",
            (Some(RAW_WSS), Some(ASP_WSS)),
            Box::new(|| on_std(tls_wss)),
            ClientRuntime::futures_io_current_thread,
            tls_wss,
            payload,
        ),
        asp_row::<Smol>(
            "ASP, asp-async-std on smol, ws://",
            (Some(RAW_WS), Some(ASP_WS)),
            Box::new(|| on_smol(tls_ws)),
            ClientRuntime::futures_io_current_thread,
            tls_ws,
            payload,
        ),
        asp_row::<Smol>(
            "ASP, asp-async-std on smol, wss://",
            (Some(RAW_WSS), Some(ASP_WSS)),
            Box::new(|| on_smol(tls_wss)),
            ClientRuntime::futures_io_current_thread,
            tls_wss,
            payload,
        ),
        (
            row(MCP_KEEP_ALIVE, Some(RAW_WS), None),
            Box::new(|| {
                let url = mcp();
                Subject::new(MCP_KEEP_ALIVE, ct(), async {
                    McpClient::connect(&url, HttpClient::KeepAlive).await.with_payload(payload)
                })
            }),
        ),
        {
            const NAME: &str = "MCP tools/call, rmcp, default client, http://";
            (
                row(NAME, Some(RAW_WS), None),
                Box::new(|| {
                    let url = mcp();
                    Subject::new(NAME, ct(), async {
                        McpClient::connect(&url, HttpClient::Default).await.with_payload(payload)
                    })
                }),
            )
        },
    ];
    let (rows, mut subjects) = select(candidates, filters);
    let measured = interleaved(&mut subjects, rounds, calls, warmup);
    drop(subjects);
    drop(servers);
    Table { rows, measured }
}

/// An ASP echo row: `server` starts the server on its runtime, the client
/// connects over network `N` and blocks on the runtime `client` makes;
/// `(floor, par)` name the rows its ratios compare with.
fn asp_row<'a, N: Network>(
    name: &'static str,
    (floor, par): (Option<&str>, Option<&str>),
    server: Box<dyn FnOnce() -> ServerHandle<N> + 'a>,
    client: impl FnOnce() -> ClientRuntime + 'a,
    tls: Option<&'a Tls>,
    payload: usize,
) -> (Row, Build<'a>) {
    let build: Build<'a> = Box::new(move || {
        let server = server();
        Subject::new(name, client(), async {
            asp::AspEcho::new(asp::client::<N>(server.url(), tls).await).with_payload(payload)
        })
        .serving(server)
    });
    (row(name, floor, par), build)
}

/// An ASP streaming row: `chunks` 32-byte chunks from the server at `url`
/// per round, read by a client over network `N` on the runtime `client`
/// makes; the figure is the time per chunk.
fn asp_stream_row<'a, N: Network>(
    name: &'static str,
    (floor, par): (Option<&str>, Option<&str>),
    url: &str,
    tls: Option<&Tls>,
    client: impl FnOnce() -> ClientRuntime + 'a,
    chunks: usize,
) -> (Row, Build<'a>) {
    let (url, tls) = (url.to_owned(), tls.cloned());
    let build: Build<'a> = Box::new(move || {
        Subject::repeated(name, client(), move || {
            let (url, tls) = (url.clone(), tls.clone());
            async move { Duration::from_secs_f64(1.0 / asp::stream_from::<N>(&url, tls.as_ref(), chunks).await) }
        })
    });
    (row(name, floor, par), build)
}

/// The streaming rows whose names contain one of `filters`: `chunks`
/// 32-byte chunks server → client per round, `mcp_chunks` progress
/// notifications for MCP.
pub(crate) fn streaming(tls: &Tls, filters: &[String], rounds: usize, chunks: usize, mcp_chunks: usize) -> Table {
    let servers = Servers::new();
    let owned = tls.clone();
    let raw_wss = servers.on_tokio(raw::serve_stream(Some(tls), chunks));
    let asp_wss = servers.on_tokio(asp::server::<TokioRuntime>(Some(tls), chunks));
    let asp_ws = servers.on_tokio(asp::server::<TokioRuntime>(None, chunks));
    let mcp_url = servers.on_tokio(mcp::serve(mcp_chunks));
    let std_wss = async_std::task::block_on(asp::server::<AsyncStd>(Some(tls), chunks));
    let smol_wss = smol::block_on(asp::server::<Smol>(Some(tls), chunks));
    let per = |rate: f64| Duration::from_secs_f64(1.0 / rate);
    let ct = ClientRuntime::current_thread;
    let candidates: Vec<(Row, Build<'_>)> = vec![
        {
            const NAME: &str = "raw binary messages (batched writes), wss://";
            let url = raw_wss.clone();
            let tls = owned.clone();
            (
                row(NAME, None, None),
                Box::new(move || {
                    Subject::repeated(NAME, ct(), move || {
                        let (url, tls) = (url.clone(), tls.clone());
                        async move { per(raw::stream_from(&url, Some(&tls), chunks).await) }
                    })
                }),
            )
        },
        asp_stream_row::<TokioRuntime>(
            "ASP STREAM frames, asp-tokio, ws://",
            (None, None),
            asp_ws.url(),
            None,
            ct,
            chunks,
        ),
        asp_stream_row::<TokioRuntime>(
            "ASP STREAM frames, asp-tokio, wss://",
            (Some(STREAM_RAW), None),
            asp_wss.url(),
            Some(&owned),
            ct,
            chunks,
        ),
        asp_stream_row::<AsyncStd>(
            "ASP STREAM frames, asp-async-std, wss://",
            (Some(STREAM_RAW), Some(STREAM_ASP)),
            std_wss.url(),
            Some(&owned),
            ClientRuntime::futures_io_current_thread,
            chunks,
        ),
        asp_stream_row::<Smol>(
            "ASP STREAM frames, asp-async-std on smol, wss://",
            (Some(STREAM_RAW), Some(STREAM_ASP)),
            smol_wss.url(),
            Some(&owned),
            ClientRuntime::futures_io_current_thread,
            chunks,
        ),
        // The halves of the async-io rows apart: each async-io server with
        // an asp-tokio client, and an asp-async-std client of the asp-tokio
        // server. async-io has one reactor per process, so in the rows above
        // client and server share it; here each has a reactor to itself, as
        // across two processes.
        asp_stream_row::<TokioRuntime>(
            STREAM_STD_SERVER,
            (Some(STREAM_RAW), Some(STREAM_ASP)),
            std_wss.url(),
            Some(&owned),
            ct,
            chunks,
        ),
        asp_stream_row::<TokioRuntime>(
            STREAM_SMOL_SERVER,
            (Some(STREAM_RAW), Some(STREAM_ASP)),
            smol_wss.url(),
            Some(&owned),
            ct,
            chunks,
        ),
        asp_stream_row::<AsyncStd>(
            STREAM_STD_CLIENT,
            (Some(STREAM_RAW), Some(STREAM_ASP)),
            asp_wss.url(),
            Some(&owned),
            ClientRuntime::futures_io_current_thread,
            chunks,
        ),
        {
            const NAME: &str = STREAM_MCP;
            (
                row(NAME, Some(STREAM_RAW), None),
                Box::new(move || {
                    let rt = ct();
                    let client = std::rc::Rc::new(rt.block_on(McpClient::connect(&mcp_url, HttpClient::KeepAlive)));
                    Subject::repeated(NAME, rt, move || {
                        let client = client.clone();
                        async move { per(client.stream(mcp_chunks).await) }
                    })
                }),
            )
        },
    ];
    let (rows, mut subjects) = select(candidates, filters);
    let measured = interleaved(&mut subjects, rounds, 0, 1);
    drop(subjects);
    drop((asp_ws, asp_wss, std_wss, smol_wss, servers));
    Table { rows, measured }
}

pub(crate) const STREAM_RAW: &str = "raw binary messages (batched writes), wss://";
pub(crate) const STREAM_ASP: &str = "ASP STREAM frames, asp-tokio, wss://";
pub(crate) const STREAM_STD_SERVER: &str = "ASP STREAM frames, asp-async-std server → asp-tokio client, wss://";
pub(crate) const STREAM_SMOL_SERVER: &str = "ASP STREAM frames, smol server → asp-tokio client, wss://";
pub(crate) const STREAM_STD_CLIENT: &str = "ASP STREAM frames, asp-tokio server → asp-async-std client, wss://";
pub(crate) const STREAM_MCP: &str = "MCP progress notifications, rmcp, http://";

fn x(r: Option<f64>, digits: usize) -> String {
    r.map(|r| format!("{r:.digits$}x")).unwrap_or_default()
}

/// The round-trip table (markdown).
pub(crate) fn print_round_trips(t: &Table, payload: usize, rounds: usize, calls: usize) {
    println!(
        "| round trip ({payload} B echo), median of {rounds} interleaved rounds × {calls} calls | p50 µs | spread of round p50s µs | p99 µs | vs raw WS | vs asp-tokio | vs rmcp keep-alive |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, m) in t.measured.iter().enumerate() {
        let [raw, tokio, mcp] = t.ratios(i, MCP_KEEP_ALIVE);
        println!(
            "| {} | {} | {}–{} | {} | {} | {} | {} |",
            m.name,
            us(m.p50),
            us(m.spread.0),
            us(m.spread.1),
            us(m.p99),
            x(raw, 2),
            x(tokio, 2),
            x(mcp, 3)
        );
    }
}

/// The streaming table (markdown); a row's rate is 1 / its time per chunk.
pub(crate) fn print_streaming(t: &Table, rounds: usize) {
    let rate = |d: Duration| 1.0 / d.as_secs_f64();
    println!("| streaming 32 B chunks, server → client, median of {rounds} rounds | chunks/s | spread (chunks/s) | vs raw WS | vs asp-tokio | vs MCP |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (i, m) in t.measured.iter().enumerate() {
        // Rates are inverse times: a ratio of rates is the inverse ratio of times.
        let [raw, tokio, mcp] = t.ratios(i, STREAM_MCP).map(|r| r.map(|r| 1.0 / r));
        println!(
            "| {} | {:.0} | {:.0}–{:.0} | {} | {} | {} |",
            m.name,
            rate(m.p50),
            rate(m.spread.1),
            rate(m.spread.0),
            x(raw, 2),
            x(tokio, 2),
            x(mcp, 1)
        );
    }
}

/// The rows as JSON, with their ratios.
pub(crate) fn json(t: &Table, reference: &str, per_item: bool) -> Json {
    let value = |d: Duration| if per_item { json!(1.0 / d.as_secs_f64()) } else { json!(d.as_secs_f64() * 1e6) };
    t.measured
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let [raw, tokio, reference] = t.ratios(i, reference).map(|r| r.map(|r| if per_item { 1.0 / r } else { r }));
            json!({
                "name": m.name,
                "median": value(m.p50),
                // Low to high: for rates, the slowest round's time is the lowest rate.
                "spread": if per_item { [value(m.spread.1), value(m.spread.0)] } else { [value(m.spread.0), value(m.spread.1)] },
                "p90": value(m.p90), "p99": value(m.p99),
                "rounds": m.round_medians.iter().map(|d| value(*d)).collect::<Vec<_>>(),
                "vs_raw": raw, "vs_asp_tokio": tokio, "vs_reference": reference,
            })
        })
        .collect()
}
