//! Tokio's spawning, timers and sockets for the driver.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use asp_driver::{BoxFuture, Network, Runtime};
#[cfg(feature = "discovery")]
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// [`Runtime`] and [`Network`] on the current Tokio runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    fn spawn(&self, future: BoxFuture<()>) {
        tokio::spawn(future);
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
}

impl Network for TokioRuntime {
    type Tcp = Compat<TcpStream>;
    type Listener = TcpListener;

    fn bind(&self, addr: SocketAddr) -> BoxFuture<io::Result<TcpListener>> {
        Box::pin(TcpListener::bind(addr))
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn accept(&self, listener: Arc<TcpListener>) -> BoxFuture<io::Result<(Self::Tcp, SocketAddr)>> {
        Box::pin(async move {
            let (tcp, peer) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            Ok((tcp.compat(), peer))
        })
    }

    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<Self::Tcp>> {
        Box::pin(async move {
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            Ok(tcp.compat())
        })
    }
}

#[cfg(feature = "discovery")]
impl asp_driver::DnsRuntime for TokioRuntime {
    type Dns = TokioRuntimeProvider;

    fn dns(&self) -> TokioRuntimeProvider {
        TokioRuntimeProvider::default()
    }
}
