//! Agent Socket on either adapter: an `echo` tool and a `stream` tool.

use std::time::{Duration, Instant};

use asp_driver::{Client, ClientBuilder, Network, ServerBuilder, ServerHandle, ToolContext, ToolError};
use asp_proto::{ToolSpec, Value};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;

use crate::echo::Echo;
use crate::{Tls, PAYLOAD};

pub(crate) async fn server<N: Network>(tls: Option<&Tls>, chunks: usize) -> ServerHandle<N> {
    let builder = ServerBuilder::<N>::new("127.0.0.1:0".parse().expect("address"))
        .tool(ToolSpec::named("echo"), |_c: ToolContext, a: Value| async move { Ok::<_, ToolError>(a) })
        .tool(ToolSpec::named("stream"), move |ctx: ToolContext, _a: Value| async move {
            let chunk = Bytes::from_static(&[b'x'; PAYLOAD]);
            for _ in 0..chunks {
                ctx.send(chunk.clone()).await?;
            }
            Ok::<_, ToolError>(Value::Nil)
        });
    let builder = match tls {
        Some(t) => builder.tls_pem(t.cert_pem.as_bytes(), t.key_pem.as_bytes()).expect("tls"),
        None => builder.allow_plaintext(),
    };
    builder.bind().await.expect("bind").spawn()
}

pub(crate) async fn client<N: Network>(url: &str, tls: Option<&Tls>) -> Client<N> {
    let builder = ClientBuilder::<N>::new(url);
    let builder = match tls {
        Some(t) => builder.trust_pem(t.cert_pem.as_bytes()).expect("tls"),
        None => builder.allow_plaintext(),
    };
    builder.connect().await.expect("connect")
}

/// An ASP client calling `echo` with a binary payload (32 bytes unless set).
pub(crate) struct AspEcho<N> {
    client: Client<N>,
    payload: Value,
}

impl<N: Network> AspEcho<N> {
    pub(crate) fn new(client: Client<N>) -> Self {
        AspEcho { client, payload: Value::Binary(vec![7; PAYLOAD]) }
    }

    /// Echoes `size` bytes instead.
    pub(crate) fn with_payload(mut self, size: usize) -> Self {
        self.payload = Value::Binary(vec![7; size]);
        self
    }
}

impl<N: Network> Echo for AspEcho<N> {
    fn echo(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let done =
                self.client.invoke("echo", self.payload.clone()).await.expect("invoke").result().await.expect("echo");
            assert_eq!(done.result, self.payload);
        })
    }
}

/// Sequential echo latency on runtime `N` (the caller runs it there).
pub(crate) async fn round_trips<N: Network>(tls: Option<&Tls>, calls: usize, warmup: usize) -> crate::echo::Latency {
    let server = server::<N>(tls, 0).await;
    let client = AspEcho::new(client::<N>(server.url(), tls).await);
    let latency = crate::echo::sequential(&client, calls, warmup).await;
    server.shutdown(Duration::from_millis(100)).await;
    latency
}

/// Streams `chunks` 32-byte chunks through a client of `url`; chunks/s.
pub(crate) async fn stream_from<N: Network>(url: &str, tls: Option<&Tls>, chunks: usize) -> f64 {
    let client = client::<N>(url, tls).await;
    timed_stream(&client, "stream", Value::Nil, chunks).await
}

/// Invokes `tool`, reads all its output (checking it is `chunks` 32-byte
/// chunks) and the result; chunks/s.
pub(crate) async fn timed_stream<N: Network>(client: &Client<N>, tool: &str, args: Value, chunks: usize) -> f64 {
    let started = Instant::now();
    let mut inv = client.invoke(tool, args).await.expect("invoke");
    let mut bytes = 0;
    while let Some(chunk) = inv.next().await {
        bytes += chunk.len();
    }
    inv.result().await.expect("stream");
    let elapsed = started.elapsed();
    assert_eq!(bytes, chunks * PAYLOAD, "every chunk arrived");
    chunks as f64 / elapsed.as_secs_f64()
}

/// Streaming rate on runtime `N`.
pub(crate) async fn streaming<N: Network>(tls: Option<&Tls>, chunks: usize) -> f64 {
    let server = server::<N>(tls, chunks).await;
    let rate = stream_from::<N>(server.url(), tls, chunks).await;
    server.shutdown(Duration::from_millis(100)).await;
    rate
}
