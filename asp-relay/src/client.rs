//! Client transports: one task per WebSocket that forwards messages to the
//! core and writes what the core routes back.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use asp_driver::{BoxTransport, HandshakeGate, Listener};
use asp_relay_proto::TransportId;
use asp_tokio::TokioRuntime;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::Message;

use crate::messages::{Backlog, Input, ToClient, CLIENT_BACKLOG};
use crate::shards::Shards;

/// Accepts client transports (TLS, upgrade checks and the upgrade timeout
/// are asp-driver's [`Listener`], shared with every ASP server) and serves
/// each in its own task.
pub(crate) async fn accept_loop(
    listener: Listener,
    socket: Arc<TcpListener>,
    config: WebSocketConfig,
    shards: Arc<Shards>,
) {
    listener
        .accept_loop(TokioRuntime, socket, config, move |ws, token, gate| serve(ws, token, gate, shards.clone()))
        .await
}

/// A transport's place in one core: its id there, and what that core writes.
struct Attached {
    core: mpsc::Sender<Input>,
    id: TransportId,
    outgoing: mpsc::UnboundedReceiver<ToClient>,
    backlog: Arc<Backlog>,
}

/// Opens the transport on core `core`.
async fn attach(core: &mpsc::Sender<Input>, token: Option<String>) -> Option<Attached> {
    let (writer, outgoing) = mpsc::unbounded_channel();
    let (reply, id) = oneshot::channel();
    let backlog = Arc::new(Backlog::default());
    core.send(Input::Opened { token, writer, backlog: backlog.clone(), reply }).await.ok()?;
    let id = id.await.ok()?;
    Some(Attached { core: core.clone(), id, outgoing, backlog })
}

async fn serve(ws: BoxTransport, token: Option<String>, gate: HandshakeGate, shards: Arc<Shards>) {
    let _running = shards.transport();
    let Some(mut at) = attach(shards.core(shards.next_shard()), token.clone()).await else { return };
    let mut first = true;
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            message = stream.next() => {
                if let Some(Ok(Message::Binary(bytes))) = &message {
                    // A resuming HELLO goes to the shard holding its session.
                    if std::mem::take(&mut first) {
                        if let Some(shard) = shards.resume_target(bytes) {
                            if !shards.core(shard).same_channel(&at.core) {
                                let _ = at.core.send(Input::Closed(at.id)).await;
                                let Some(moved) = attach(shards.core(shard), token.clone()).await else { return };
                                at = moved;
                            }
                        }
                    }
                }
                let input = match message {
                    Some(Ok(Message::Binary(bytes))) => Input::Message(at.id, bytes),
                    Some(Ok(Message::Text(_))) => Input::Text(at.id),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => continue, // WebSocket PING/PONG: tungstenite answers
                };
                if at.core.send(input).await.is_err() {
                    break;
                }
            }
            out = at.outgoing.recv() => {
                let Some(mut out) = out else { break };
                // Everything routed so far goes out in one flush.
                let mut written = 0;
                loop {
                    match out {
                        ToClient::Message(bytes) => {
                            // The core answers HELLO only once the client is
                            // accepted: the pre-handshake read limit is lifted.
                            gate.open();
                            written += bytes.len();
                            if sink.feed(Message::Binary(bytes)).await.is_err() {
                                return closed(&at.core, at.id).await;
                            }
                        }
                        ToClient::Close(code, reason) => {
                            let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
                            let _ = sink.send(Message::Close(Some(frame))).await;
                            // Read until the peer's close arrives (briefly): a socket
                            // closed with unread input sends RST, which makes the
                            // peer drop what it had not read yet.
                            let peer_closed = async { while let Some(Ok(_)) = stream.next().await {} };
                            let _ = tokio::time::timeout(Duration::from_secs(1), peer_closed).await;
                            return closed(&at.core, at.id).await;
                        }
                    }
                    match at.outgoing.try_recv() {
                        Ok(next) => out = next,
                        Err(_) => break,
                    }
                }
                if sink.flush().await.is_err() {
                    break;
                }
                // Taken by the socket: tell the core when a backed-up client
                // has drained below half its budget.
                let left = at.backlog.bytes.fetch_sub(written, Ordering::SeqCst) - written;
                if left < CLIENT_BACKLOG / 2
                    && at.backlog.blocked.swap(false, Ordering::SeqCst)
                    && at.core.send(Input::Drained(at.id)).await.is_err()
                {
                    break;
                }
            }
        }
    }
    closed(&at.core, at.id).await;
}

async fn closed(core: &mpsc::Sender<Input>, id: TransportId) {
    let _ = core.send(Input::Closed(id)).await;
}
