//! End-to-end scenarios, written once and run on every runtime.
//!
//! Each scenario is generic over the server's network `S` and the client's
//! network `C` (an adapter's runtime type: `asp_tokio::TokioRuntime`,
//! `asp_async_std::AsyncStd`, `asp_async_std::Smol`). The test files
//! instantiate them with [`scenario_tests!`]: the same code against Tokio,
//! async-std and smol, and across them (a Tokio client against an
//! async-std server and the reverse). Everything goes over real loopback
//! sockets with TLS from a certificate generated per run.
//!
//! The scenarios use only runtime-neutral waiting (`async-io` timers, a
//! thread-based TCP proxy), so they run under any of the runtimes' block_on.

mod pka;
mod proxy;
mod redis;

pub use pka::pka_proves_the_endpoint;
pub use proxy::Proxy;
pub use redis::RedisServer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use asp_driver::net::{dial_raw, Network};
use asp_driver::{BoxTransport, ClientBuilder, ConnectError, ServerBuilder, ServerHandle, ToolContext, ToolError};
use asp_proto::{decode_all, ClientHello, ErrorCode, Frame, Initiator, RequestId, SessionConfig, ToolSpec, Value};
use bytes::Bytes;
use futures::future::{select, Either};
use futures::{FutureExt, SinkExt, StreamExt};
use tungstenite::Message;

/// A self-signed certificate for 127.0.0.1, made for this run.
pub struct Tls {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

impl Tls {
    /// A new certificate.
    pub fn new() -> Tls {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("certificate");
        Tls { cert_pem: cert.cert.pem(), key_pem: cert.signing_key.serialize_pem() }
    }
}

impl Default for Tls {
    fn default() -> Self {
        Tls::new()
    }
}

/// Waits for `future`, failing the test after `secs` seconds.
pub async fn within<F: Future>(secs: u64, future: F) -> F::Output {
    let limit = async_io::Timer::after(Duration::from_secs(secs));
    match select(Box::pin(future), limit).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => panic!("timed out after {secs} s"),
    }
}

/// Sleeps on `async-io`'s timer, which works under every runtime.
pub async fn sleep(duration: Duration) {
    async_io::Timer::after(duration).await;
}

/// Lets other tasks run once.
pub async fn yield_now() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// Counters the fixture's tools keep.
#[derive(Default, Clone)]
pub struct Counters {
    /// Handlers of `slow` that were cancelled (dropped).
    pub cancelled: Arc<AtomicUsize>,
    /// Bytes `firehose` got past `send`.
    pub produced: Arc<AtomicUsize>,
}

/// Records `records` streams: 32 bytes each, numbered.
pub const RECORDS: u32 = 40_000;

/// A server on `S` with the scenarios' tools; clients need the token `good`.
pub async fn server<S: Network>(tls: &Tls, counters: &Counters) -> ServerHandle<S> {
    let cancelled = counters.cancelled.clone();
    let slow = move |ctx: ToolContext, _args: Value| {
        let cancelled = cancelled.clone();
        async move {
            // Counts its own cancellation: the guard is dropped when the
            // driver aborts the handler.
            struct Guard(Arc<AtomicUsize>);
            impl Drop for Guard {
                fn drop(&mut self) {
                    self.0.fetch_add(1, Ordering::SeqCst);
                }
            }
            let _guard = Guard(cancelled);
            ctx.send("started").await?;
            sleep(Duration::from_secs(30)).await;
            Ok::<_, ToolError>(Value::Nil)
        }
    };
    let produced = counters.produced.clone();
    let firehose = move |ctx: ToolContext, _args: Value| {
        let produced = produced.clone();
        async move {
            let chunk = Bytes::from(vec![b'x'; 4096]);
            loop {
                ctx.send(chunk.clone()).await?;
                produced.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        }
    };
    ServerBuilder::<S>::new("127.0.0.1:0".parse().unwrap())
        .tls_pem(tls.cert_pem.as_bytes(), tls.key_pem.as_bytes())
        .unwrap()
        .session_config(SessionConfig { handshake_timeout: Duration::from_millis(500), ..SessionConfig::default() })
        .auth(|hello| match hello.token.as_deref() {
            Some("good") => Ok(()),
            _ => Err(asp_proto::ErrorInfo::new(ErrorCode::UNAUTHENTICATED, "bad token")),
        })
        .tool(ToolSpec::named("tokens"), |ctx: ToolContext, args: Value| async move {
            let n = args.as_u64().unwrap_or(5);
            for i in 0..n {
                ctx.send(format!("tok{i} ")).await?;
            }
            Ok::<_, ToolError>(Value::from(n))
        })
        .tool(ToolSpec::named("echo"), |_ctx: ToolContext, args: Value| async move { Ok::<_, ToolError>(args) })
        .tool(ToolSpec::named("blocks"), |ctx: ToolContext, args: Value| async move {
            let n = args.as_u64().unwrap_or(1);
            for _ in 0..n {
                ctx.send(vec![b'b'; 4096]).await?;
            }
            Ok::<_, ToolError>(Value::from(n))
        })
        .tool(ToolSpec::named("slow"), slow)
        .tool(ToolSpec::named("firehose"), firehose)
        .tool(ToolSpec::named("records"), |ctx: ToolContext, _args: Value| async move {
            for i in 0..RECORDS {
                ctx.send(Bytes::from(record(i).to_vec())).await?;
                if i % 256 == 255 {
                    yield_now().await;
                }
            }
            Ok::<_, ToolError>(Value::from(checksum(0..RECORDS)))
        })
        .bind()
        .await
        .unwrap()
        .spawn()
}

/// Record `i` of `records`: its number, then bytes derived from it.
fn record(i: u32) -> [u8; 32] {
    let mut r = [0u8; 32];
    r[..4].copy_from_slice(&i.to_be_bytes());
    for (k, b) in r[4..].iter_mut().enumerate() {
        *b = (i as usize).wrapping_mul(31).wrapping_add(k) as u8;
    }
    r
}

/// FNV-1a over records, in order: what the client must arrive at.
fn checksum(range: std::ops::Range<u32>) -> u64 {
    let mut sum = Fnv::default();
    for i in range {
        sum.write(&record(i));
    }
    sum.0
}

struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A client builder on `C` that trusts the run's certificate, with `good`.
pub fn client<C: Network>(tls: &Tls, url: &str) -> ClientBuilder<C> {
    ClientBuilder::<C>::new(url).trust_pem(tls.cert_pem.as_bytes()).unwrap().token("good")
}

async fn still_works(conn: &asp_driver::Connection) {
    let done = conn.invoke("echo", Value::from("still here")).await.unwrap().result().await.unwrap();
    assert_eq!(done.result, Value::from("still here"));
}

/// Handshake over wss, streamed output in order, a result.
pub async fn handshake_and_streaming<S: Network, C: Network>() {
    let tls = Tls::new();
    let server = server::<S>(&tls, &Counters::default()).await;
    assert!(server.url().starts_with("wss://127.0.0.1:"));
    let client = client::<C>(&tls, server.url()).connect().await.unwrap();
    assert!(client.connection_id().unwrap().starts_with("c-"));
    let names: Vec<String> = client.peer_tools().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["blocks", "echo", "firehose", "records", "slow", "tokens"]);
    let mut inv = client.invoke("tokens", Value::from(4)).await.unwrap();
    let mut out = String::new();
    while let Some(chunk) = within(10, inv.next()).await {
        out.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(out, "tok0 tok1 tok2 tok3 ");
    assert_eq!(inv.result().await.unwrap().result, Value::from(4));
}

/// An unknown tool and a bad token get their codes; others are unharmed.
pub async fn unknown_tools_and_bad_tokens<S: Network, C: Network>() {
    let tls = Tls::new();
    let server = server::<S>(&tls, &Counters::default()).await;
    let healthy = client::<C>(&tls, server.url()).connect().await.unwrap();
    let err = healthy.invoke("nope", Value::Nil).await.unwrap().result().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UNKNOWN_TOOL);
    let refused = client::<C>(&tls, server.url()).token("bad").connect().await.unwrap_err();
    match refused {
        ConnectError::Rejected(reason) => {
            assert_eq!((reason.code, reason.initiator), (ErrorCode::UNAUTHENTICATED, Initiator::Peer));
        }
        other => panic!("{other:?}"),
    }
    still_works(&healthy).await;
}

/// Dropping an invocation interrupts it: the handler is cancelled.
pub async fn dropping_an_invocation_interrupts_it<S: Network, C: Network>() {
    let tls = Tls::new();
    let counters = Counters::default();
    let server = server::<S>(&tls, &counters).await;
    let client = client::<C>(&tls, server.url()).connect().await.unwrap();
    let mut inv = client.invoke("slow", Value::Nil).await.unwrap();
    assert_eq!(&within(10, inv.next()).await.unwrap()[..], b"started");
    drop(inv);
    within(10, async {
        while counters.cancelled.load(Ordering::SeqCst) == 0 {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    still_works(&client).await;
}

/// The server invokes a tool the client offers, and pushes tool changes.
pub async fn server_calls_the_client_and_pushes_tools<S: Network, C: Network>() {
    let tls = Tls::new();
    let server = server::<S>(&tls, &Counters::default()).await;
    let client = client::<C>(&tls, server.url())
        .tool(ToolSpec::named("ask_user"), |_ctx: ToolContext, q: Value| async move {
            Ok::<_, ToolError>(Value::from(format!("answer to {}", q.as_str().unwrap_or("?"))))
        })
        .connect()
        .await
        .unwrap();
    let mut changes = client.tool_changes();
    let conn = server.connections().pop().expect("one connection");
    let answer = conn.invoke("ask_user", Value::from("which file?")).await.unwrap().result().await.unwrap();
    assert_eq!(answer.result, Value::from("answer to which file?"));
    server.tools().add(ToolSpec::named("search"), |_c: ToolContext, a: Value| async move { Ok::<_, ToolError>(a) });
    within(10, changes.next()).await.unwrap();
    assert!(client.peer_tools().iter().any(|t| t.name == "search"));
    let found = client.invoke("search", Value::from("q")).await.unwrap().result().await.unwrap();
    assert_eq!(found.result, Value::from("q"));
    server.tools().remove("search");
    within(10, changes.next()).await.unwrap();
    assert!(!client.peer_tools().iter().any(|t| t.name == "search"));
}

/// Graceful shutdown lets the open invocation finish, then closes cleanly.
pub async fn graceful_shutdown_drains<S: Network, C: Network>() {
    let tls = Tls::new();
    let server = server::<S>(&tls, &Counters::default()).await;
    let client = client::<C>(&tls, server.url()).connect().await.unwrap();
    let mut states = client.state_changes();
    // More output than the window: the call stays open until it is read.
    let mut inv = client.invoke("blocks", Value::from(128)).await.unwrap();
    assert!(within(10, inv.next()).await.is_some());
    let shutdown = server.shutdown(Duration::from_secs(10));
    let draining = async {
        // The client hears GOAWAY at once, and a new call fails at once.
        assert!(matches!(states.next().await, Some(asp_driver::ConnectionState::Draining { .. })));
        let refused = client.invoke("echo", Value::Nil).await.unwrap_err();
        assert_eq!(refused, asp_driver::ConnectionError::Refused(asp_proto::SendError::GoingAway));
        // Its credit goes on flowing while the server closes: the end of the
        // output must survive the close (no RST).
        while inv.next().await.is_some() {}
        assert_eq!(inv.result().await.unwrap().result, Value::from(128), "the open invocation finished");
    };
    within(20, futures::future::join(shutdown, draining)).await;
    let reason = within(10, client.closed()).await;
    assert_eq!(reason.code, ErrorCode::NO_ERROR);
    assert!(matches!(within(10, states.next()).await, Some(asp_driver::ConnectionState::Closed(r)) if r == reason));
}

/// A raw WebSocket (upgrade done, no session) to misbehave with.
async fn raw<C: Network>(tls: &Tls, url: &str, hello: bool) -> BoxTransport {
    let config = asp_driver::tls::client_config(Some(tls.cert_pem.as_bytes())).unwrap();
    let mut ws = dial_raw(&C::default(), url, Some("good"), config).await.unwrap();
    if hello {
        ws.send(Message::Binary(Frame::Hello(ClientHello::new()).to_bytes().unwrap())).await.unwrap();
        match within(10, ws.next()).await {
            Some(Ok(Message::Binary(b))) => {
                assert!(matches!(decode_all(b, u32::MAX).unwrap()[0], Frame::HelloReply(_)))
            }
            other => panic!("expected the server's HELLO, got {other:?}"),
        }
    }
    ws
}

/// Reads until the server closes: the connection-level ERROR codes it
/// sent and the close code.
async fn closing(ws: &mut BoxTransport) -> (Vec<ErrorCode>, Option<u16>) {
    let mut errors = Vec::new();
    let read = async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Binary(b)) => {
                    for frame in decode_all(b, u32::MAX).unwrap_or_default() {
                        if let Frame::Error(RequestId(0), e) = frame {
                            errors.push(e.code);
                        }
                    }
                }
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    };
    let code = within(10, read).await;
    (errors, code)
}

/// Bad input gets its documented answer while a healthy client connected
/// to the same server keeps working: a text message (1003), garbage
/// (4101), a 4 GiB length (4200, before buffering), no HELLO (4109).
pub async fn bad_input_is_answered_and_others_keep_working<S: Network, C: Network>() {
    let tls = Tls::new();
    let server = server::<S>(&tls, &Counters::default()).await;
    let healthy = client::<C>(&tls, server.url()).connect().await.unwrap();
    let cases: [(Option<Message>, ErrorCode, u16); 4] = [
        (Some(Message::text("{\"json\": true}")), ErrorCode::TEXT_MESSAGE, 1003),
        (Some(Message::Binary(Bytes::from_static(b"\xde\xad\xbe\xef garbage"))), ErrorCode::UNSUPPORTED_VERSION, 4101),
        (
            Some(Message::Binary(Bytes::from_static(&[0x13, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]))),
            ErrorCode::FRAME_TOO_LARGE,
            4200,
        ),
        (None, ErrorCode::HANDSHAKE_TIMEOUT, 4109),
    ];
    for (message, code, close) in cases {
        let mut ws = raw::<C>(&tls, server.url(), message.is_some()).await;
        if let Some(message) = message {
            ws.send(message).await.unwrap();
        }
        let (errors, got) = closing(&mut ws).await;
        assert_eq!(errors, [code]);
        assert_eq!(got, Some(close));
        still_works(&healthy).await;
    }
}

/// A client that stops reading holds the handler back at its window plus
/// send budget; the server buffers little; reading again lets it go on.
pub async fn a_slow_reader_holds_the_handler_back<S: Network, C: Network>() {
    let tls = Tls::new();
    let counters = Counters::default();
    let server = server::<S>(&tls, &counters).await;
    let healthy = client::<C>(&tls, server.url()).connect().await.unwrap();
    let slow = client::<C>(&tls, server.url()).connect().await.unwrap();
    let mut inv = slow.invoke("firehose", Value::Nil).await.unwrap();
    within(10, inv.next()).await.unwrap();
    sleep(Duration::from_millis(500)).await;
    let produced = counters.produced.load(Ordering::SeqCst);
    sleep(Duration::from_millis(500)).await;
    assert_eq!(counters.produced.load(Ordering::SeqCst), produced, "the handler is held back");
    assert!(
        produced <= 256 * 1024 + asp_driver::SEND_BUDGET + 2 * 4096,
        "{produced} bytes produced without being read"
    );
    let conn = server.connections().into_iter().find(|c| c.connection_id() == slow.connection_id()).unwrap();
    let stats = conn.stats().await.unwrap();
    assert!(stats.buffered_bytes <= 512 * 1024, "server buffers {} bytes", stats.buffered_bytes);
    still_works(&healthy).await;
    for _ in 0..100 {
        within(10, inv.next()).await.unwrap();
    }
    assert!(counters.produced.load(Ordering::SeqCst) > produced);
}

/// The transport dies three times mid-stream; the client reconnects, the
/// server hands the new transport to the old session, and every record
/// arrives exactly once, in order: the checksum matches the server's.
pub async fn resume_after_killed_transports<S: Network, C: Network>() {
    let tls = Tls::new();
    let server = server::<S>(&tls, &Counters::default()).await;
    let proxy = Proxy::start(server.local_addr());
    let url = format!("wss://{}/v1/agent-socket", proxy.addr);
    let client = client::<C>(&tls, &url).connect().await.unwrap();
    let cid = client.connection_id();
    let mut states = client.state_changes();
    let mut inv = client.invoke("records", Value::Nil).await.unwrap();
    let (mut next, mut cuts, mut sum) = (0u32, 0, Fnv::default());
    let read_all = async {
        while let Some(chunk) = inv.next().await {
            for record in chunk.chunks(32) {
                let index = u32::from_be_bytes(record[..4].try_into().unwrap());
                assert_eq!(index, next, "a record was lost or repeated");
                sum.write(record);
                next += 1;
            }
            if cuts < 3 && next >= (cuts + 1) * RECORDS / 4 {
                assert!(proxy.cut() > 0, "there was a connection to cut");
                cuts += 1;
            }
        }
        inv.result().await
    };
    let done = within(60, read_all.boxed()).await.unwrap();
    assert_eq!((cuts, next), (3, RECORDS));
    assert_eq!(done.result, Value::from(sum.0), "checksum of what arrived = the server's");
    assert_eq!(client.connection_id(), cid, "the same session, resumed");
    assert_eq!(proxy.accepted.load(Ordering::SeqCst), 4, "one connection and three reconnects");
    let seen: Vec<_> = std::iter::from_fn(|| states.next().now_or_never().flatten()).collect();
    let resumed = asp_driver::ConnectionState::Resumed { cid: cid.clone().unwrap() };
    assert_eq!(seen.iter().filter(|s| **s == resumed).count(), 3, "{seen:?}");
    assert!(matches!(seen[0], asp_driver::ConnectionState::Reconnecting { attempt: 1, .. }), "{seen:?}");
    still_works(&client).await;
}

/// A test DNS server (asp-tokio's loopback responder) on a Tokio runtime of
/// its own thread, so the runtime under test needs no Tokio.
pub fn dns_server(zone: std::collections::HashMap<&'static str, asp_testkit::dns::Answer>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let server = asp_testkit::dns::dns(zone).await;
            tx.send(server.addr).unwrap();
            futures::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// Discovery on `C` against a loopback DNS server serving `zone` (DNS only,
/// 500 ms per query).
pub fn dns_discovery<C: asp_driver::DnsRuntime>(
    zone: std::collections::HashMap<&'static str, asp_testkit::dns::Answer>,
) -> asp_driver::Discovery<C> {
    asp_driver::Discovery::<C>::builder()
        .nameservers([dns_server(zone)])
        .timeout(Duration::from_millis(500))
        .well_known(false)
        .build()
        .unwrap()
}

/// AID discovery with hickory on the client's runtime, against a real DNS
/// server on loopback: a record leads to a live agent; no record (1000), a
/// `ws://` record (1003) and a server slower than the timeout (1004) get
/// their codes.
pub async fn discovery_finds_the_agent<S: Network, C: asp_driver::DnsRuntime>() {
    use asp_proto::aid::AidErrorCode;
    use asp_testkit::dns::Answer;
    let tls = Tls::new();
    let server = server::<S>(&tls, &Counters::default()).await;
    let record: &'static str =
        Box::leak(format!("v=aid1;p=websocket;u={};s=Scenario agent", server.url()).into_boxed_str());
    let mut zone = std::collections::HashMap::new();
    zone.insert("_agent.agent.test.", Answer::Txt(vec![vec![record]], 300));
    zone.insert("_agent.insecure.test.", Answer::Txt(vec![vec!["v=aid1;p=websocket;u=ws://insecure.test/ws"]], 300));
    zone.insert("_agent.slow.test.", Answer::Slow(Duration::from_secs(2), vec![vec![record]]));
    let discovery = dns_discovery::<C>(zone);
    let found = within(10, discovery.discover("agent.test", Some("websocket"))).await.unwrap();
    assert_eq!(found.record.uri, server.url());
    assert_eq!(found.record.desc.as_deref(), Some("Scenario agent"));
    let client = ClientBuilder::for_domain("agent.test", &discovery)
        .await
        .unwrap()
        .trust_pem(tls.cert_pem.as_bytes())
        .unwrap()
        .token("good")
        .connect()
        .await
        .unwrap();
    still_works(&client).await;
    for (domain, code) in [
        ("missing.test", AidErrorCode::NoRecord),
        ("insecure.test", AidErrorCode::Security),
        ("slow.test", AidErrorCode::DnsLookupFailed),
    ] {
        let err = within(10, discovery.discover(domain, None)).await.unwrap_err();
        assert_eq!(err.code, code, "{domain}: {err}");
    }
}

/// Declares one `#[test]` per scenario, each running `scenario::<$server,
/// $client>()` under `$block_on`.
#[macro_export]
macro_rules! scenario_tests {
    ($server:ty, $client:ty, $block_on:path) => {
        $crate::scenario_tests!(@each $server, $client, $block_on;
            handshake_and_streaming,
            unknown_tools_and_bad_tokens,
            dropping_an_invocation_interrupts_it,
            server_calls_the_client_and_pushes_tools,
            graceful_shutdown_drains,
            bad_input_is_answered_and_others_keep_working,
            a_slow_reader_holds_the_handler_back,
            resume_after_killed_transports,
            discovery_finds_the_agent,
            pka_proves_the_endpoint
        );
    };
    (@each $server:ty, $client:ty, $block_on:path; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                $block_on($crate::$name::<$server, $client>());
            }
        )*
    };
}

/// Runs `future` on a two-thread Tokio runtime.
pub fn tokio_block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(future)
}
