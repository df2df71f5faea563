//! hickory's resolver on `async-io`: its runtime provider, so discovery
//! needs no Tokio. UDP and TCP are `async-io` sockets, timers its `Timer`,
//! background tasks the executor's.

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use async_io::{Async, Timer};
use futures::future::{select, Either};
use futures::{AsyncRead, AsyncWrite, FutureExt};
use hickory_resolver::net::runtime::{DnsTcpStream, DnsUdpSocket, RuntimeProvider, Spawn, Time};

use crate::executor::Executor;

/// hickory's [`RuntimeProvider`] on `async-io` with the executor `E`.
#[derive(Debug)]
pub struct AsyncIoDns<E>(PhantomData<fn() -> E>);

impl<E> Default for AsyncIoDns<E> {
    fn default() -> Self {
        AsyncIoDns(PhantomData)
    }
}

impl<E> Clone for AsyncIoDns<E> {
    fn clone(&self) -> Self {
        AsyncIoDns(PhantomData)
    }
}

/// Spawns the resolver's background tasks on `E`.
#[derive(Debug)]
pub struct DnsSpawner<E>(PhantomData<fn() -> E>);

impl<E> Clone for DnsSpawner<E> {
    fn clone(&self) -> Self {
        DnsSpawner(PhantomData)
    }
}

impl<E: Executor> Spawn for DnsSpawner<E> {
    fn spawn_bg(&mut self, future: impl Future<Output = ()> + Send + 'static) {
        E::spawn(Box::pin(future));
    }
}

/// `async-io`'s timers for hickory.
#[derive(Clone, Copy, Debug)]
pub struct DnsTimer;

#[async_trait::async_trait]
impl Time for DnsTimer {
    async fn delay_for(duration: Duration) {
        Timer::after(duration).await;
    }

    async fn timeout<F: 'static + Future + Send>(duration: Duration, future: F) -> Result<F::Output, io::Error> {
        match select(Box::pin(future), Timer::after(duration).boxed()).await {
            Either::Left((output, _)) => Ok(output),
            Either::Right(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "future timed out")),
        }
    }
}

/// A UDP socket registered with `async-io`.
#[derive(Debug)]
pub struct DnsUdp(Async<UdpSocket>);

impl DnsUdpSocket for DnsUdp {
    type Time = DnsTimer;

    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>> {
        loop {
            match self.0.get_ref().recv_from(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(self.0.poll_readable(cx))?,
                result => return Poll::Ready(result),
            }
        }
    }

    fn poll_send_to(&self, cx: &mut Context<'_>, buf: &[u8], target: SocketAddr) -> Poll<io::Result<usize>> {
        loop {
            match self.0.get_ref().send_to(buf, target) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(self.0.poll_writable(cx))?,
                result => return Poll::Ready(result),
            }
        }
    }
}

/// A TCP stream registered with `async-io` (DNS over TCP for truncated
/// answers).
#[derive(Debug)]
pub struct DnsTcp(Async<TcpStream>);

impl AsyncRead for DnsTcp {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for DnsTcp {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

impl DnsTcpStream for DnsTcp {
    type Time = DnsTimer;
}

/// How long a DNS-over-TCP connect may take when hickory gives no limit.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl<E: Executor> RuntimeProvider for AsyncIoDns<E> {
    type Handle = DnsSpawner<E>;
    type Timer = DnsTimer;
    type Udp = DnsUdp;
    type Tcp = DnsTcp;

    fn create_handle(&self) -> DnsSpawner<E> {
        DnsSpawner(PhantomData)
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        _bind_addr: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Send + Future<Output = io::Result<DnsTcp>>>> {
        Box::pin(async move {
            let connect = Box::pin(Async::<TcpStream>::connect(server_addr));
            let limit = Timer::after(timeout.unwrap_or(TCP_CONNECT_TIMEOUT));
            match select(connect, limit).await {
                Either::Left((stream, _)) => {
                    let stream = stream?;
                    stream.get_ref().set_nodelay(true)?;
                    Ok(DnsTcp(stream))
                }
                Either::Right(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TCP connect timed out")),
            }
        })
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        _server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = io::Result<DnsUdp>>>> {
        Box::pin(async move { Ok(DnsUdp(Async::<UdpSocket>::bind(local_addr)?)) })
    }
}
