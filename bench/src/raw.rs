//! The floor: a plain tokio-tungstenite echo and stream, no protocol on top.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::echo::Echo;
use crate::{Tls, PAYLOAD};

/// What the raw server does with each connection.
#[derive(Clone, Copy)]
enum Mode {
    Echo,
    Stream(usize),
}

pub(crate) async fn serve_echo(tls: Option<&Tls>) -> String {
    serve(tls, Mode::Echo).await
}

async fn serve(tls: Option<&Tls>, mode: Mode) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tls.map(|t| {
        let config = asp_tokio::tls::server_config_from_pem(t.cert_pem.as_bytes(), t.key_pem.as_bytes()).expect("tls");
        tokio_rustls::TlsAcceptor::from(config)
    });
    let scheme = if acceptor.is_some() { "wss" } else { "ws" };
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => {
                        run(tokio_tungstenite::accept_async(a.accept(tcp).await.expect("tls")).await.expect("ws"), mode)
                            .await
                    }
                    None => run(tokio_tungstenite::accept_async(tcp).await.expect("ws"), mode).await,
                }
            });
        }
    });
    format!("{scheme}://{addr}/")
}

async fn run<S>(mut ws: tokio_tungstenite::WebSocketStream<S>, mode: Mode)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match mode {
        Mode::Echo => {
            while let Some(Ok(message)) = ws.next().await {
                if message.is_binary() && ws.send(message).await.is_err() {
                    return;
                }
            }
        }
        Mode::Stream(n) => {
            // Wait for the request, then write in batches, flushing each:
            // what the ASP driver does with frames that are ready together.
            let _ = ws.next().await;
            let chunk = Bytes::from_static(&[b'x'; PAYLOAD]);
            for i in 0..n {
                ws.feed(Message::Binary(chunk.clone())).await.expect("feed");
                if i % 64 == 63 {
                    ws.flush().await.expect("flush");
                }
            }
            ws.flush().await.expect("flush");
            let _ = ws.next().await;
        }
    }
}

async fn connect(url: &str, tls: Option<&Tls>) -> Ws {
    let connector = tls.map(|t| {
        let config: Arc<_> = asp_tokio::tls::client_config(Some(t.cert_pem.as_bytes())).expect("tls");
        tokio_tungstenite::Connector::Rustls(config)
    });
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, true, connector).await.expect("connect");
    ws
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw WebSocket client: send a payload (32 bytes unless set), wait for
/// it back.
pub(crate) struct RawEcho {
    ws: tokio::sync::Mutex<Ws>,
    payload: Bytes,
}

impl RawEcho {
    pub(crate) async fn connect(url: &str, tls: Option<&Tls>) -> RawEcho {
        RawEcho { ws: tokio::sync::Mutex::new(connect(url, tls).await), payload: Bytes::from_static(&[7u8; PAYLOAD]) }
    }

    /// Echoes `size` bytes instead.
    pub(crate) fn with_payload(mut self, size: usize) -> Self {
        self.payload = Bytes::from(vec![7u8; size]);
        self
    }
}

impl Echo for RawEcho {
    fn echo(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut ws = self.ws.lock().await;
            ws.send(Message::Binary(self.payload.clone())).await.expect("send");
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => assert_eq!(b, self.payload),
                other => panic!("echo: {other:?}"),
            }
        })
    }
}

pub(crate) async fn serve_stream(tls: Option<&Tls>, chunks: usize) -> String {
    serve(tls, Mode::Stream(chunks)).await
}

/// Asks the stream server at `url` for its chunks; chunks/s.
pub(crate) async fn stream_from(url: &str, tls: Option<&Tls>, chunks: usize) -> f64 {
    let mut ws = connect(url, tls).await;
    let started = Instant::now();
    ws.send(Message::Binary(Bytes::from_static(b"go"))).await.expect("send");
    let mut received = 0;
    while received < chunks {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                assert_eq!(b.len(), PAYLOAD);
                received += 1;
            }
            other => panic!("stream: {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    let _ = ws.send(Message::Binary(Bytes::from_static(b"done"))).await;
    let _ = tokio::time::timeout(Duration::from_millis(100), ws.close(None)).await;
    chunks as f64 / elapsed.as_secs_f64()
}
