//! Bytes on the wire, counted at the socket: a loopback TCP proxy that
//! counts what passes each way. Everything the protocol puts on the wire is
//! counted (WebSocket or HTTP framing, headers, JSON or MessagePack), not
//! TLS: both systems are measured in plaintext so that neither pays for the
//! other's record overhead.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A counting proxy to one upstream address.
pub(crate) struct Counter {
    pub(crate) addr: SocketAddr,
    bytes: Arc<AtomicU64>,
}

impl Counter {
    pub(crate) async fn start(upstream: SocketAddr) -> Counter {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let bytes: Arc<AtomicU64> = Arc::default();
        let total = bytes.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let outbound = TcpStream::connect(upstream).await.expect("upstream");
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pipe(ri, wo, total.clone()));
                tokio::spawn(pipe(ro, wi, total.clone()));
            }
        });
        Counter { addr, bytes }
    }

    /// Bytes through the proxy so far, both directions.
    pub(crate) fn total(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    total: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total.fetch_add(n as u64, Ordering::SeqCst);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Rewrites `scheme://host:port/path` to go through the proxy at `via`.
pub(crate) fn through(url: &str, via: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
    format!("{scheme}://{via}{path}")
}

/// The address in `scheme://host:port/path`.
pub(crate) fn addr_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("scheme").1;
    rest.split('/').next().expect("authority").parse().expect("address")
}
