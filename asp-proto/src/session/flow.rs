//! Flow control (SPEC.md §10): windows per invocation and for the
//! connection, credit given back in batches, `Writable` when blocked output
//! may go again.

use super::*;

/// The connection-level windows (each invocation keeps its own beside).
#[derive(Debug)]
pub(super) struct ConnFlow {
    /// STREAM bytes we may still send on the connection.
    pub(super) send_window: u32,
    /// A send found `send_window` empty: tell the application when it opens.
    pub(super) blocked: bool,
    /// STREAM bytes the peer may still send us.
    pub(super) recv_window: u32,
    /// Received and not yet given back by the application.
    pub(super) unconsumed: u32,
    /// Given back and not yet sent as WINDOW (batched at half a window).
    pub(super) pending_grant: u32,
}

impl ConnFlow {
    pub(super) fn new(config: &SessionConfig) -> Self {
        ConnFlow {
            send_window: 0,
            blocked: false,
            recv_window: config.connection_window,
            unconsumed: 0,
            pending_grant: 0,
        }
    }
}

impl Session {
    pub(super) fn on_stream(&mut self, id: RequestId, data: Option<Bytes>, progress: Option<Progress>) {
        // Flow control counts the payload as it was on the wire, whatever
        // encoding the peer chose.
        let len = self.decoder.last_payload_len();
        let (inv_window, state) = match self.invocations.get(&id) {
            Some(inv) if inv.role == InvocationRole::Invoker => (inv.recv_window, inv.state),
            _ => {
                return self
                    .protocol_error(ErrorCode::UNKNOWN_REQUEST, format!("STREAM for request {id}, which is not open"))
            }
        };
        if len > inv_window || len > self.conn_flow.recv_window {
            let conn = self.conn_flow.recv_window;
            return self.protocol_error(
                ErrorCode::FLOW_CONTROL,
                format!("STREAM of {len} bytes on {id} exceeds credit ({inv_window} invocation, {conn} connection)"),
            );
        }
        let inv = self.invocations.get_mut(&id).expect("looked up above");
        inv.recv_window -= len;
        self.conn_flow.recv_window -= len;
        self.resumption.recv_bytes_since_ack += len as usize;
        let delivering = state == InvocationState::Open;
        match (data, progress) {
            (Some(data), _) if delivering => {
                inv.unconsumed += len;
                self.conn_flow.unconsumed += len;
                self.events.push_back(Event::Chunk { id, data });
            }
            (None, Some(progress)) if delivering => {
                // Delivered as an event: consumed now.
                self.events.push_back(Event::Progress { id, progress });
                self.credit_back(id, len, len);
            }
            // Interrupted or timed out: nobody reads it; the connection
            // gets its credit back at once.
            _ => self.credit_back(id, 0, len),
        }
    }

    /// Returns credit: `inv` bytes to invocation `id` and `conn` bytes to
    /// the connection, sending WINDOW once half a window is due.
    pub(super) fn credit_back(&mut self, id: RequestId, inv: u32, conn: u32) {
        if inv > 0 {
            if let Some(record) = self.invocations.get_mut(&id) {
                record.pending_grant += inv;
                if record.pending_grant >= self.config.invocation_window / 2 {
                    let credit = std::mem::take(&mut record.pending_grant);
                    record.recv_window += credit;
                    let _ = self.send(&Frame::Window(id, Window { credit }));
                }
            }
        }
        self.conn_flow.pending_grant += conn;
        if self.conn_flow.pending_grant > 0 && self.conn_flow.pending_grant >= self.config.connection_window / 2 {
            let credit = std::mem::take(&mut self.conn_flow.pending_grant);
            self.conn_flow.recv_window += credit;
            let _ = self.send(&Frame::Window(RequestId::CONNECTION, Window { credit }));
        }
    }

    /// The application consumed `bytes` of invocation `id`'s output: return
    /// the credit to the handler. Grants are batched into WINDOW frames of
    /// half a window. Granting after the invocation ended (or with id 0)
    /// returns the connection's credit only. An invocation is never credited
    /// more than was delivered on it, so a grant that arrives after its id
    /// was reused cannot inflate the new invocation's window.
    pub fn grant(&mut self, id: RequestId, bytes: usize) {
        let n = u32::try_from(bytes).unwrap_or(u32::MAX).min(self.conn_flow.unconsumed);
        if n == 0 {
            return;
        }
        self.conn_flow.unconsumed -= n;
        let inv = match self.invocations.get_mut(&id) {
            Some(inv) if inv.role == InvocationRole::Invoker && inv.state == InvocationState::Open => {
                let k = n.min(inv.unconsumed);
                inv.unconsumed -= k;
                k
            }
            _ => 0,
        };
        self.credit_back(id, inv, n);
    }

    /// Sends output of invocation `id` (which we handle), taking from the
    /// front of `data` as much as credit allows. Returns `Ok` once `data` is
    /// empty, or [`SendError::Blocked`] with the rest left in `data`: retry
    /// after [`Event::Writable`]. Chunks larger than the peer's frame size
    /// are split.
    pub fn send_chunk(&mut self, id: RequestId, data: &mut Bytes) -> Result<(), SendError> {
        self.handler(id)?;
        if data.is_empty() {
            return self.send(&Frame::Stream(id, Bytes::new()));
        }
        while !data.is_empty() {
            let room = self.stream_room(id);
            if room == 0 {
                return Err(SendError::Blocked);
            }
            let take = room.min(data.len());
            let chunk = data.split_to(take);
            self.send(&Frame::Stream(id, chunk))?;
            self.consume_send_credit(id, take as u32);
        }
        Ok(())
    }

    /// Bytes of STREAM payload that may go out now on `id`; records who is
    /// blocked when it is zero.
    pub(super) fn stream_room(&mut self, id: RequestId) -> usize {
        let replay_room = if self.resumption.active {
            self.config.replay_buffer_bytes.saturating_sub(self.resumption.unacked_bytes + FrameHeader::LEN)
        } else {
            usize::MAX
        };
        let conn = self.conn_flow.send_window as usize;
        let inv_window = self.invocations.get(&id).map_or(0, |i| i.send_window as usize);
        let room = inv_window.min(conn).min(replay_room).min(self.peer.max_frame as usize);
        if room == 0 {
            if inv_window == 0 {
                if let Some(inv) = self.invocations.get_mut(&id) {
                    inv.blocked = true;
                }
            }
            if conn == 0 {
                self.conn_flow.blocked = true;
            }
            if replay_room == 0 {
                self.resumption.replay_blocked = true;
                // Ask for an acknowledgement rather than wait for the heartbeat.
                if self.transport && !self.resumption.ack_requested && self.state != SessionState::Detached {
                    self.resumption.ack_requested = true;
                    // No RTT sample: the point is the acknowledgement its PONG carries.
                    self.send_ping(None);
                }
            }
        }
        room
    }

    pub(super) fn consume_send_credit(&mut self, id: RequestId, n: u32) {
        self.conn_flow.send_window -= n;
        if let Some(inv) = self.invocations.get_mut(&id) {
            inv.send_window -= n;
        }
    }

    /// Sends a progress update on invocation `id` (which we handle). Counts
    /// against flow control like output. Dropped when the peer did not
    /// announce the `progress` capability.
    pub fn send_progress(&mut self, id: RequestId, progress: Progress) -> Result<(), SendError> {
        self.handler(id)?;
        if !self.peer_caps.iter().any(|c| c == caps::PROGRESS) {
            return Ok(());
        }
        let frame = Frame::Progress(id, progress);
        let len = frame.to_bytes()?.len() - FrameHeader::LEN;
        if self.stream_room(id) < len {
            return Err(SendError::Blocked);
        }
        self.send(&frame)?;
        self.consume_send_credit(id, len as u32);
        Ok(())
    }
}

impl Session {
    pub(super) fn on_window(&mut self, id: RequestId, credit: u32) {
        let (window, blocked) = if id.is_connection() {
            (&mut self.conn_flow.send_window, &mut self.conn_flow.blocked)
        } else {
            match self.invocations.get_mut(&id).filter(|i| i.role == InvocationRole::Handler) {
                Some(inv) => (&mut inv.send_window, &mut inv.blocked),
                None => return, // crossed our terminal frame
            }
        };
        let Some(raised) = window.checked_add(credit).filter(|w| *w <= MAX_WINDOW) else {
            return self
                .protocol_error(ErrorCode::FLOW_CONTROL, format!("WINDOW would raise the credit of {id} past 2^31-1"));
        };
        *window = raised;
        if std::mem::take(blocked) {
            self.events.push_back(Event::Writable { id });
        }
    }
}
