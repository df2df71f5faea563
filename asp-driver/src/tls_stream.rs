//! The server side of TLS on rustls's unbuffered API: a stream that holds no
//! buffer while its connection is idle.
//!
//! futures-rustls and tokio-rustls wrap rustls's buffered `ServerConnection`,
//! whose record reader keeps a zero-filled 4 KiB buffer for the life of the
//! connection (`READ_SIZE` in rustls 0.23, not configurable): more than a
//! quarter of what an idle `wss://` connection cost a server. Here the
//! buffers belong to the stream. Each is allocated when bytes arrive or
//! leave and released when the connection waits with nothing in it, so idle
//! connections hold no TLS buffer at all (docs/PERFORMANCE.md, "Idle
//! connections").
//!
//! TLS itself — the handshake, records, alerts, key updates, close_notify —
//! is rustls's; this module only moves bytes between rustls and the socket:
//! received bytes into [`UnbufferedServerConnection::process_tls_records`],
//! decrypted records to the reader, encrypted ones to the socket in order.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::ServerConfig;

/// Bytes asked of the socket per read (what rustls's own reader asks).
const READ_SIZE: usize = 4096;

/// Received bytes held without a complete TLS message: a handshake message
/// may be up to 64 KiB (rustls's own limit), a record 16 KiB plus overhead.
const MAX_INCOMING: usize = 0x10000 + 0x4800;

/// Encrypted bytes queued for the socket before a write waits for it; also
/// the most plaintext one write takes.
const WRITE_QUEUE: usize = 64 * 1024;

/// Encryption overhead allowed per 16 KiB record when sizing the output
/// (TLS 1.3 AES-GCM needs 22 bytes, TLS 1.2 29); rustls says when it needs
/// more and the write is retried with that.
const RECORD_OVERHEAD: usize = 32;

/// A server-side TLS stream over `io` (a `futures-io` stream), after
/// [`accept`](Self::accept) has completed the handshake.
///
/// Reads and writes behave as futures-rustls's: `poll_write` takes the
/// plaintext once it is encrypted (at most 64 KiB is queued for the socket
/// before a write waits), `poll_flush` sends it, `poll_close` sends
/// close_notify. A read returns end of file after the client's close_notify,
/// and an `UnexpectedEof` error when the socket closes without one.
pub struct TlsServerStream<S> {
    io: S,
    conn: UnbufferedServerConnection,
    /// Received TLS bytes: `incoming[..received]` are not yet processed.
    incoming: Vec<u8>,
    received: usize,
    /// Encrypted bytes for the socket: `outgoing[sent..]` are not yet sent.
    outgoing: Vec<u8>,
    sent: usize,
    /// Decrypted bytes the reader has not taken: `plain[taken..]`.
    plain: Vec<u8>,
    taken: usize,
    /// The client's close_notify arrived: reads end once `plain` is taken.
    peer_closed: bool,
    /// The socket reported end of file.
    io_eof: bool,
    /// Our close_notify is queued: nothing more may be written.
    write_closed: bool,
    /// rustls failed the connection (its alert is queued or sent): every
    /// later call returns this error without asking rustls again, which
    /// would process the same bad record and queue a second alert.
    failed: Option<(io::ErrorKind, String)>,
}

/// What `settle` should do once rustls lets the application write.
enum Output<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

/// Where rustls stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// The handshake needs more bytes from the client.
    Handshake,
    /// The handshake is done as far as writing goes; any output was taken.
    Traffic,
}

fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

fn io_error(kind: io::ErrorKind, what: &str) -> io::Error {
    io::Error::new(kind, what.to_owned())
}

/// Appends what `write` puts into a slice to `out`, growing the slice when
/// rustls says how much it needs (`needed`).
fn append<E: fmt::Display>(
    out: &mut Vec<u8>,
    mut room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    needed: impl Fn(&E) -> Option<usize>,
) -> io::Result<()> {
    let start = out.len();
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(written) => {
                out.truncate(start + written);
                return Ok(());
            }
            Err(e) => {
                out.truncate(start);
                match needed(&e) {
                    Some(more) if more > room => room = more,
                    _ => return Err(io::Error::other(e.to_string())),
                }
            }
        }
    }
}

fn encode_needs(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(size) => Some(size.required_size),
        _ => None,
    }
}

fn encrypt_needs(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(size) => Some(size.required_size),
        _ => None,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsServerStream<S> {
    /// Runs the TLS handshake over `io` as a server with `config`; the
    /// stream is returned once the client's Finished has been verified.
    pub async fn accept(io: S, config: Arc<ServerConfig>) -> io::Result<Self> {
        let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let mut stream = TlsServerStream {
            io,
            conn,
            incoming: Vec::new(),
            received: 0,
            outgoing: Vec::new(),
            sent: 0,
            plain: Vec::new(),
            taken: 0,
            peer_closed: false,
            io_eof: false,
            write_closed: false,
            failed: None,
        };
        futures::future::poll_fn(|cx| stream.poll_handshake(cx)).await?;
        Ok(stream)
    }

    /// The socket under the TLS.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// rustls's view of the connection: protocol version, cipher suite, SNI.
    pub fn connection(&self) -> &UnbufferedServerConnection {
        &self.conn
    }

    /// Bytes of buffer the stream holds now (received, queued and decrypted
    /// bytes with their spare room): zero on a connection waiting idle.
    pub fn buffered_capacity(&self) -> usize {
        self.incoming.capacity() + self.outgoing.capacity() + self.plain.capacity()
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let stage = self.settle_or_alert(cx, Output::Nothing)?;
            // Our flight goes out before we wait for the client's.
            ready!(self.poll_send(cx))?;
            if stage == Stage::Traffic && !self.conn.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            if self.peer_closed {
                return Poll::Ready(Err(io_error(io::ErrorKind::ConnectionAborted, "closed during the TLS handshake")));
            }
            if self.io_eof {
                return Poll::Ready(Err(io_error(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection during the TLS handshake",
                )));
            }
            ready!(self.poll_fill(cx))?;
        }
    }

    /// Feeds the received bytes to rustls until it waits on us: decrypted
    /// records go to `plain`, handshake records and alerts to `outgoing`,
    /// and once the application may write, `output` is encrypted there too.
    fn settle(&mut self, mut output: Output<'_>) -> io::Result<Stage> {
        if let Some((kind, what)) = &self.failed {
            return Err(io_error(*kind, what));
        }
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut self.incoming[..self.received]);
            let mut failure = None;
            let stage = match state {
                Err(e) => {
                    failure = Some(e);
                    Ok(None)
                }
                Ok(ConnectionState::ReadTraffic(mut traffic)) => loop {
                    match traffic.next_record() {
                        Some(Ok(record)) => self.plain.extend_from_slice(record.payload),
                        Some(Err(e)) => {
                            failure = Some(e);
                            break Ok(None);
                        }
                        None => break Ok(None),
                    }
                },
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    append(&mut self.outgoing, READ_SIZE, |out| encode.encode(out), encode_needs).map(|()| None)
                }
                // The encoded records are queued in `outgoing`, which reaches
                // the socket in order before anything written later.
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    Ok(None)
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    Ok(None)
                }
                Ok(ConnectionState::Closed) => {
                    self.peer_closed = true;
                    match output {
                        Output::Nothing => Ok(Some(Stage::Traffic)),
                        _ => Err(io_error(io::ErrorKind::BrokenPipe, "the TLS connection is closed")),
                    }
                }
                Ok(ConnectionState::BlockedHandshake) => match output {
                    Output::Nothing => Ok(Some(Stage::Handshake)),
                    _ => Err(io_error(io::ErrorKind::NotConnected, "the TLS handshake is not complete")),
                },
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let written = match std::mem::replace(&mut output, Output::Nothing) {
                        Output::Nothing => Ok(()),
                        Output::Data(data) => {
                            let room = data.len() + RECORD_OVERHEAD * (data.len() / 0x4000 + 1);
                            append(&mut self.outgoing, room, |out| traffic.encrypt(data, out), encrypt_needs)
                        }
                        Output::CloseNotify => append(
                            &mut self.outgoing,
                            RECORD_OVERHEAD,
                            |out| traffic.queue_close_notify(out),
                            encrypt_needs,
                        ),
                    };
                    written.map(|()| Some(Stage::Traffic))
                }
                // Early data is never enabled on the configurations here.
                Ok(ConnectionState::ReadEarlyData(_)) => {
                    Err(io_error(io::ErrorKind::InvalidData, "TLS early data, which this server does not accept"))
                }
                Ok(other) => Err(io::Error::other(format!("unexpected TLS state {other:?}"))),
            };
            self.discard(discard);
            if let Some(error) = failure {
                let error = tls_error(error);
                self.failed = Some((error.kind(), error.to_string()));
                return Err(error);
            }
            if let Some(stage) = stage? {
                return Ok(stage);
            }
        }
    }

    /// `settle`, and when rustls fails the connection also the alert it
    /// queued for it, sent if the socket takes it now (the connection is over
    /// either way).
    fn settle_or_alert(&mut self, cx: &mut Context<'_>, output: Output<'_>) -> io::Result<Stage> {
        let first_failure = self.failed.is_none();
        self.settle(output).inspect_err(|_| {
            if !(first_failure && self.failed.is_some()) {
                return;
            }
            // rustls hands out queued records before it reads any more, so
            // this one call yields the alert (if the error had one) without
            // processing the bad record again.
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut self.incoming[..self.received]);
            if let Ok(ConnectionState::EncodeTlsData(mut encode)) = state {
                let _ = append(&mut self.outgoing, READ_SIZE, |out| encode.encode(out), encode_needs);
            }
            self.discard(discard);
            let _ = self.poll_send(cx);
        })
    }

    /// Drops the first `processed` received bytes, as rustls asks after
    /// each `process_tls_records`.
    fn discard(&mut self, processed: usize) {
        self.incoming.copy_within(processed..self.received, 0);
        self.received -= processed;
    }

    /// Reads what the socket has into `incoming`.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.received >= MAX_INCOMING {
            return Poll::Ready(Err(io_error(
                io::ErrorKind::InvalidData,
                "over 80 KiB of TLS records without a complete message",
            )));
        }
        if self.received == 0 {
            // Read into the stack first: a read that finds nothing (the
            // usual end of a burst) then costs no allocation, and one that
            // finds a record keeps just its bytes.
            let mut first = [0u8; READ_SIZE];
            let read = ready!(Pin::new(&mut self.io).poll_read(cx, &mut first))?;
            self.io_eof = read == 0;
            self.incoming.clear();
            self.incoming.extend_from_slice(&first[..read]);
            self.received = read;
            return Poll::Ready(Ok(()));
        }
        let want = self.received + READ_SIZE;
        if self.incoming.len() < want {
            self.incoming.resize(want, 0);
        }
        let read = ready!(Pin::new(&mut self.io).poll_read(cx, &mut self.incoming[self.received..want]))?;
        if read == 0 {
            self.io_eof = true;
        }
        self.received += read;
        Poll::Ready(Ok(()))
    }

    /// Writes `outgoing` to the socket.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.len() {
            let wrote = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing[self.sent..]))?;
            if wrote == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += wrote;
        }
        self.outgoing.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// The connection waits for the client: let go of every empty buffer.
    fn release_idle(&mut self) {
        if self.received == 0 {
            self.incoming = Vec::new();
        }
        if self.outgoing.is_empty() {
            self.outgoing = Vec::new();
        }
        if self.plain.is_empty() {
            self.plain = Vec::new();
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsServerStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if this.taken < this.plain.len() {
                let n = buf.len().min(this.plain.len() - this.taken);
                buf[..n].copy_from_slice(&this.plain[this.taken..this.taken + n]);
                this.taken += n;
                if this.taken == this.plain.len() {
                    this.plain.clear();
                    this.taken = 0;
                }
                return Poll::Ready(Ok(n));
            }
            if this.peer_closed {
                return Poll::Ready(Ok(0));
            }
            if this.io_eof {
                return Poll::Ready(Err(io_error(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed connection without sending TLS close_notify",
                )));
            }
            this.settle_or_alert(cx, Output::Nothing)?;
            if !this.plain.is_empty() || this.peer_closed {
                continue;
            }
            // Nothing to hand out: send what rustls queued (a key update, an
            // alert), then wait for the client.
            if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            match this.poll_fill(cx) {
                Poll::Ready(filled) => filled?,
                Poll::Pending => {
                    this.release_idle();
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsServerStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.write_closed {
            return Poll::Ready(Err(io_error(io::ErrorKind::BrokenPipe, "the TLS stream is closed for writing")));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.outgoing.len() - this.sent >= WRITE_QUEUE {
            ready!(this.poll_send(cx))?;
        }
        let taken = buf.len().min(WRITE_QUEUE);
        this.settle_or_alert(cx, Output::Data(&buf[..taken]))?;
        // Start sending now; what the socket does not take yet stays queued
        // for the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.write_closed {
            this.write_closed = true;
            // A connection already closed both ways has nothing left to say.
            if let Err(e) = this.settle_or_alert(cx, Output::CloseNotify) {
                if e.kind() != io::ErrorKind::BrokenPipe {
                    return Poll::Ready(Err(e));
                }
            }
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_close(cx)
    }
}

impl<S> fmt::Debug for TlsServerStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerStream")
            .field("received", &self.received)
            .field("queued", &(self.outgoing.len() - self.sent))
            .field("decrypted", &(self.plain.len() - self.taken))
            .field("peer_closed", &self.peer_closed)
            .finish_non_exhaustive()
    }
}
