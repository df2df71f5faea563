//! A TCP stream on `async-io` that does not read a socket it has drained.
//!
//! `async-io`'s streams (and `async-net`'s over them) try the `recv` first
//! and wait for readiness only when it fails with `EAGAIN`: after every read
//! that empties the socket, one more `recv` is made only to learn that it is
//! empty. Streaming 32-byte chunks, those were half of the client's `recv`s
//! (11,399 `EAGAIN`s in 23,268 calls per million chunks) and the cause of
//! most of async-std's gap to Tokio, whose streams remember that a read
//! came back short and wait for the next readiness event instead. This
//! stream does the same: after a read that returned less than asked for
//! (the kernel had no more), the next read waits for readability first.
//! Writes go straight through.

use std::future::Future;
use std::io::{self, Read as _};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use async_io::{Async, ReadableOwned};
use futures::io::{AsyncRead, AsyncWrite};

/// A connected TCP stream (what [`AsyncStd`](crate::AsyncStd) and
/// [`Smol`](crate::Smol) hand the driver).
pub struct TcpStream {
    io: Arc<Async<std::net::TcpStream>>,
    /// Waiting for readability (kept across polls).
    readable: Option<ReadableOwned<std::net::TcpStream>>,
    /// The last read came back short: the socket was empty after it.
    drained: bool,
}

impl TcpStream {
    pub(crate) fn new(tcp: async_net::TcpStream) -> io::Result<TcpStream> {
        tcp.set_nodelay(true)?;
        Ok(TcpStream { io: tcp.into(), readable: None, drained: false })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.io.get_ref().peer_addr()
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream").field("peer", &self.peer_addr().ok()).finish_non_exhaustive()
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if !this.drained {
                match this.io.get_ref().read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Ok(n) => {
                        this.drained = n > 0 && n < buf.len();
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            let readable = this.readable.get_or_insert_with(|| this.io.clone().readable_owned());
            let result = ready!(Pin::new(readable).poll(cx));
            this.readable = None;
            this.drained = false;
            result?;
        }
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.io).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.io.get_ref().shutdown(Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::Duration;

    use futures::AsyncReadExt as _;

    use super::*;

    /// A connected pair: our stream and the peer's blocking socket.
    fn pair() -> (TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let ours = smol::block_on(async_net::TcpStream::connect(addr)).unwrap();
        let (peer, _) = listener.accept().unwrap();
        (TcpStream::new(ours).unwrap(), peer)
    }

    #[test]
    fn a_drained_socket_waits_for_readiness_and_loses_nothing() {
        let (mut ours, mut peer) = pair();
        smol::block_on(async {
            let mut buf = [0u8; 64];
            peer.write_all(b"first").unwrap();
            let n = ours.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"first");
            assert!(ours.drained, "a short read marks the socket drained");
            // Data arriving later is read once the reactor says so.
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                peer.write_all(b"second").unwrap();
                peer
            });
            let n = ours.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"second");
            // The peer closing is seen as the end, drained or not.
            drop(writer.join().unwrap());
            assert_eq!(ours.read(&mut buf).await.unwrap(), 0);
        });
    }

    #[test]
    fn a_full_read_reads_again_at_once() {
        let (mut ours, mut peer) = pair();
        smol::block_on(async {
            peer.write_all(&[7u8; 100]).unwrap();
            // Let all 100 bytes arrive before the first read.
            std::thread::sleep(Duration::from_millis(20));
            let mut buf = [0u8; 60];
            assert_eq!(ours.read(&mut buf).await.unwrap(), 60);
            assert!(!ours.drained, "a full buffer says nothing about the socket");
            assert_eq!(ours.read(&mut buf).await.unwrap(), 40);
        });
    }
}
