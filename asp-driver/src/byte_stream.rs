//! ASP/1 over any reliable byte stream (SPEC.md §2): a child process's
//! stdin and stdout, a Unix socket, a pipe. Frames carry their own length
//! (SPEC.md §4), so no other framing is needed: [`ByteStream`] cuts the
//! bytes into whole frames and hands them to the driver as the messages a
//! WebSocket would have carried.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use asp_proto::FrameHeader;
use bytes::{Buf, Bytes, BytesMut};
use futures::{AsyncRead, AsyncWrite, Sink, Stream};
use tungstenite::Message;

/// Largest frame read whole from a byte stream. A header declaring more is
/// passed on alone, so that the session refuses it (`FRAME_TOO_LARGE`,
/// SPEC.md §4.4) without this side buffering it first.
const MAX_FRAME: usize = 16 * 1024 * 1024 + FrameHeader::LEN;

/// Bytes read from the stream at a time.
const READ_CHUNK: usize = 16 * 1024;

/// A byte stream as a [`Transport`](crate::Transport): each item is the
/// whole frames read so far (one or more), each sent message is written as
/// it is. A `futures-io` stream; on Tokio wrap yours with
/// `tokio_util::compat` (`asp_tokio::stdio_transport` does it for stdio).
pub struct ByteStream<S> {
    io: S,
    read: BytesMut,
    write: BytesMut,
    eof: bool,
}

impl<S> ByteStream<S> {
    /// Frames over `io`.
    pub fn new(io: S) -> Self {
        ByteStream { io, read: BytesMut::new(), write: BytesMut::new(), eof: false }
    }

    /// How many bytes at the front of `read` are whole frames (or one
    /// oversized header, to be refused by the session).
    fn complete(&self) -> usize {
        let mut at = 0;
        while self.read.len() - at >= FrameHeader::LEN {
            let len = u32::from_be_bytes(self.read[at + 4..at + 8].try_into().expect("four bytes")) as usize;
            let frame = FrameHeader::LEN + len;
            if frame > MAX_FRAME {
                return if at == 0 { FrameHeader::LEN } else { at };
            }
            if self.read.len() - at < frame {
                break;
            }
            at += frame;
        }
        at
    }
}

impl<S> std::fmt::Debug for ByteStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteStream").field("buffered", &self.read.len()).finish()
    }
}

fn closed(error: io::Error) -> tungstenite::Error {
    tungstenite::Error::Io(error)
}

impl<S: AsyncRead + Unpin> Stream for ByteStream<S> {
    type Item = Result<Message, tungstenite::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let whole = this.complete();
            if whole > 0 {
                return Poll::Ready(Some(Ok(Message::Binary(this.read.split_to(whole).freeze()))));
            }
            if this.eof {
                // What is left is a frame cut short: the session reports it
                // (TRUNCATED_FRAME) when the transport then ends.
                if this.read.is_empty() {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Ok(Message::Binary(this.read.split().freeze()))));
            }
            let start = this.read.len();
            this.read.resize(start + READ_CHUNK, 0);
            match Pin::new(&mut this.io).poll_read(cx, &mut this.read[start..]) {
                Poll::Ready(Ok(n)) => {
                    this.read.truncate(start + n);
                    this.eof = n == 0;
                }
                Poll::Ready(Err(e)) => {
                    this.read.truncate(start);
                    return Poll::Ready(Some(Err(closed(e))));
                }
                Poll::Pending => {
                    this.read.truncate(start);
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> ByteStream<S> {
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), tungstenite::Error>> {
        while !self.write.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.write) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(closed(io::ErrorKind::WriteZero.into()))),
                Poll::Ready(Ok(n)) => self.write.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(closed(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> Sink<Message> for ByteStream<S> {
    type Error = tungstenite::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Keep at most one batch of the driver's writes in memory.
        if self.write.len() >= READ_CHUNK * 4 {
            return self.poll_write_out(cx);
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        let data: Bytes = match item {
            Message::Binary(data) => data,
            // Nothing else has a meaning on a byte stream; the driver sends
            // only binary messages (and a close, below).
            _ => return Ok(()),
        };
        self.write.extend_from_slice(&data);
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        futures::ready!(self.poll_write_out(cx))?;
        Pin::new(&mut self.io).poll_flush(cx).map_err(closed)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        futures::ready!(self.poll_write_out(cx))?;
        Pin::new(&mut self.io).poll_close(cx).map_err(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};

    fn frame(len: usize) -> Vec<u8> {
        let mut f = vec![0x13, 0, 0, 1];
        f.extend_from_slice(&(len as u32).to_be_bytes());
        f.extend(std::iter::repeat_n(b'x', len));
        f
    }

    #[test]
    fn cuts_bytes_into_whole_frames() {
        futures::executor::block_on(async {
            let mut bytes = frame(3);
            bytes.extend(frame(0));
            bytes.extend(&frame(5)[..6]); // a frame cut short at the end
            let mut stream = ByteStream::new(futures::io::Cursor::new(bytes));
            let first = stream.next().await.unwrap().unwrap().into_data();
            assert_eq!(first.len(), 11 + 8, "the two whole frames together");
            let rest = stream.next().await.unwrap().unwrap().into_data();
            assert_eq!(rest.len(), 6, "the cut frame, for the session to report");
            assert!(stream.next().await.is_none());
        });
    }

    #[test]
    fn an_oversized_header_is_passed_on_alone() {
        futures::executor::block_on(async {
            let mut header = vec![0x13, 0, 0, 1];
            header.extend_from_slice(&u32::MAX.to_be_bytes());
            header.extend_from_slice(b"more bytes than anyone should buffer");
            let mut stream = ByteStream::new(futures::io::Cursor::new(header));
            assert_eq!(stream.next().await.unwrap().unwrap().into_data().len(), FrameHeader::LEN);
        });
    }

    #[test]
    fn writes_messages_as_they_are() {
        futures::executor::block_on(async {
            let mut stream = ByteStream::new(futures::io::Cursor::new(Vec::new()));
            stream.send(Message::Binary(Bytes::from(frame(2)))).await.unwrap();
            stream.send(Message::Text("ignored".into())).await.unwrap();
            assert_eq!(stream.io.into_inner(), frame(2));
        });
    }
}
