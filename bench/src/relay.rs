//! Relay mode next to direct mode: the same echo and stream through
//! `asp-relay` to the Rust example function (hyper, same process), and the
//! function's own HTTP round trip, which the relay cannot avoid.

use std::time::Instant;

use asp_proto::Value;
use asp_relay::{RelayBuilder, RelayConfig, RelayHandle};
use asp_tokio::{Client, ClientBuilder};
use futures::future::BoxFuture;
use futures::StreamExt;

use crate::echo::{Echo, Latency};
use crate::{Tls, PAYLOAD};

#[path = "../../asp-relay/examples/function.rs"]
#[allow(dead_code, unreachable_pub)]
mod function;

/// The Rust example function on loopback; its base URL.
pub(crate) async fn function_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(function::serve(listener));
    url
}

/// The Rust example function on loopback and a relay (wss://) in front of it.
async fn start(tls: &Tls) -> (RelayHandle, String) {
    let url = function_url().await;
    let relay = RelayBuilder::new("127.0.0.1:0".parse().expect("address"), url.clone())
        .tls_pem(tls.cert_pem.as_bytes(), tls.key_pem.as_bytes())
        .expect("tls")
        .config(RelayConfig::default())
        .bind()
        .await
        .expect("bind")
        .spawn();
    (relay, url)
}

async fn client(relay: &RelayHandle, tls: &Tls) -> Client {
    ClientBuilder::new(relay.url()).trust_pem(tls.cert_pem.as_bytes()).expect("tls").connect().await.expect("connect")
}

fn payload() -> String {
    "x".repeat(PAYLOAD)
}

/// `echo` through the relay: the function answers the JSON of the arguments.
pub(crate) struct RelayEcho(Client);

impl RelayEcho {
    pub(crate) fn new(client: Client) -> RelayEcho {
        RelayEcho(client)
    }

    /// One echo call, checked.
    pub(crate) async fn call(&self) {
        let mut inv = self.0.invoke("echo", Value::from(payload())).await.expect("invoke");
        let mut out = Vec::new();
        while let Some(chunk) = inv.next().await {
            out.extend_from_slice(&chunk);
        }
        inv.result().await.expect("echo");
        assert_eq!(out.len(), PAYLOAD + 2, "the JSON string came back");
    }
}

impl Echo for RelayEcho {
    fn echo(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.call())
    }
}

/// The relay's own request to the function, alone (reqwest, keep-alive).
struct HttpEcho {
    http: reqwest::Client,
    url: String,
    body: String,
}

impl Echo for HttpEcho {
    fn echo(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let response = self
                .http
                .post(&self.url)
                .header("content-type", "application/json")
                .body(self.body.clone())
                .send()
                .await
                .expect("post");
            let body = response.bytes().await.expect("body");
            assert_eq!(body.len(), PAYLOAD + 2);
        })
    }
}

/// Sequential echo through the relay, and the bare HTTP call to the function.
pub(crate) async fn round_trips(tls: &Tls, calls: usize, warmup: usize) -> (Latency, Latency) {
    let (relay, url) = start(tls).await;
    let through = crate::echo::sequential(&RelayEcho::new(client(&relay, tls).await), calls, warmup).await;
    let body = serde_json::json!({"connection_id": "c-bench", "request_id": 2, "tool": "echo", "args": payload()});
    let http = HttpEcho { http: reqwest::Client::new(), url: format!("{url}/invoke"), body: body.to_string() };
    let bare = crate::echo::sequential(&http, calls, warmup).await;
    relay.shutdown();
    (through, bare)
}

/// How the function streams its 32-byte chunks.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Streaming {
    /// Plain mode: each chunk its own HTTP chunk (and STREAM frame).
    HttpChunks,
    /// Frames mode: 256 STREAM frames per HTTP chunk.
    Frames,
}

/// `chunks` 32-byte chunks from the function to the client through the
/// relay; chunks/s.
pub(crate) async fn streaming(tls: &Tls, chunks: usize, how: Streaming) -> f64 {
    let (relay, _) = start(tls).await;
    let client = client(&relay, tls).await;
    let tool = match how {
        Streaming::HttpChunks => "stream",
        Streaming::Frames => "stream_frames",
    };
    let args = serde_json::json!({"chunks": chunks, "size": PAYLOAD, "batch": 256});
    let args: Value = serde_json::from_value(args).expect("msgpack value");
    let rate = crate::asp::timed_stream(&client, tool, args, chunks).await;
    relay.shutdown();
    rate
}

/// The function's stream read over HTTP directly (reqwest), without the
/// relay: the ceiling for streaming through it; chunks/s.
pub(crate) async fn bare_streaming(chunks: usize) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/invoke", listener.local_addr().expect("address"));
    tokio::spawn(function::serve(listener));
    let body = serde_json::json!({"connection_id": "c-bench", "request_id": 2, "tool": "stream",
        "args": {"chunks": chunks, "size": PAYLOAD}});
    let started = Instant::now();
    let mut response = reqwest::Client::new().post(url).body(body.to_string()).send().await.expect("post");
    let mut bytes = 0;
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        bytes += chunk.len();
    }
    assert_eq!(bytes, chunks * PAYLOAD);
    chunks as f64 / started.elapsed().as_secs_f64()
}
