//! Spawning, timers and sockets on `async-io`, with the executor of
//! async-std or of smol.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use asp_driver::{BoxFuture, Network, Runtime};
use async_net::TcpListener;

use crate::tcp::TcpStream;

#[cfg(feature = "discovery")]
use crate::dns::AsyncIoDns;
use crate::executor::{AsyncStdExecutor, Executor, SmolExecutor};

/// [`Runtime`] and [`Network`] on `async-io`'s reactor with the executor `E`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FuturesIo<E>(E);

/// The async-std runtime.
pub type AsyncStd = FuturesIo<AsyncStdExecutor>;
/// The smol runtime.
pub type Smol = FuturesIo<SmolExecutor>;

impl<E: Executor> Runtime for FuturesIo<E> {
    fn spawn(&self, future: BoxFuture<()>) {
        if let Some(future) = crate::current_thread::spawn_here(future) {
            E::spawn(future);
        }
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(async move {
            async_io::Timer::at(deadline).await;
        })
    }
}

impl<E: Executor> Network for FuturesIo<E> {
    type Tcp = TcpStream;
    type Listener = TcpListener;

    fn bind(&self, addr: SocketAddr) -> BoxFuture<io::Result<TcpListener>> {
        Box::pin(TcpListener::bind(addr))
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn accept(&self, listener: Arc<TcpListener>) -> BoxFuture<io::Result<(TcpStream, SocketAddr)>> {
        Box::pin(async move {
            let (tcp, peer) = listener.accept().await?;
            Ok((TcpStream::new(tcp)?, peer))
        })
    }

    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<TcpStream>> {
        Box::pin(async move { TcpStream::new(async_net::TcpStream::connect((host.as_str(), port)).await?) })
    }
}

#[cfg(feature = "discovery")]
impl<E: Executor> asp_driver::DnsRuntime for FuturesIo<E> {
    type Dns = AsyncIoDns<E>;

    fn dns(&self) -> AsyncIoDns<E> {
        AsyncIoDns::default()
    }
}
