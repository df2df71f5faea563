//! Random operation sequences over a [`Pair`], checked against a small
//! reference model. Shared by the proptest (`tests/session_model.rs`) and
//! the `session_ops` fuzz target, which both feed it bytes.
//!
//! The model knows, for every invocation, which bytes the handler's
//! application handed to `send_chunk` and which the invoker's application
//! received, and how each side saw it end. It checks:
//!
//! - every invocation ends exactly once on each side;
//! - output arrives complete and in order (a prefix, when it ended early);
//! - across transport drops and resumes nothing is lost or repeated;
//! - no legal sequence of operations makes a session close;
//! - replay and decoder buffers stay within their bounds;
//! - `poll_timeout` is never in the past once everything is drained.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use crate::{Pair, Side};
use asp_proto::{ErrorCode, Event, Invoke, RequestId, SessionConfig, ToolSpec, Value};

/// One thing the applications or the network do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `side` invokes a tool of its peer, maybe with a deadline.
    Invoke {
        /// The invoker.
        side: Side,
        /// Deadline in ms, if any.
        timeout: Option<u32>,
    },
    /// A handler on `side` sends `len` bytes on its `pick`-th open invocation.
    Chunk {
        /// The handler's side.
        side: Side,
        /// Which open invocation.
        pick: u8,
        /// How many bytes.
        len: u16,
    },
    /// A handler completes (or, `fail`, fails) its `pick`-th invocation.
    End {
        /// The handler's side.
        side: Side,
        /// Which open invocation.
        pick: u8,
        /// Fail instead of complete.
        fail: bool,
    },
    /// An invoker interrupts its `pick`-th open invocation.
    Interrupt {
        /// The invoker's side.
        side: Side,
        /// Which invocation.
        pick: u8,
    },
    /// The application on `side` consumes everything it has received.
    Grant {
        /// Whose application.
        side: Side,
    },
    /// Time passes.
    Advance {
        /// Milliseconds.
        ms: u32,
    },
    /// The transport dies after delivering `deliver`/255 of what is in
    /// flight; the client reconnects and resumes.
    DropTransport {
        /// How much of the in-flight bytes arrive.
        deliver: u8,
    },
    /// A side changes its tools.
    PushTools {
        /// Who.
        side: Side,
    },
}

impl Op {
    /// Reads operations from bytes, three at a time, so a fuzzer's and
    /// proptest's byte strings both mean something.
    pub fn decode_all(data: &[u8]) -> Vec<Op> {
        data.chunks_exact(3)
            .map(|c| {
                let side = if c[1] & 1 == 0 { Side::Client } else { Side::Server };
                let pick = c[2];
                match c[0] % 16 {
                    0..=2 => Op::Invoke { side, timeout: (c[1] & 2 != 0).then_some(u32::from(c[2]) * 4) },
                    3..=6 => Op::Chunk { side, pick, len: u16::from(c[1] >> 1) * 97 + u16::from(c[2]) },
                    7 | 8 => Op::End { side, pick, fail: c[1] & 2 != 0 },
                    9 => Op::Interrupt { side, pick },
                    10 | 11 => Op::Grant { side },
                    12 | 13 => Op::Advance { ms: u32::from(c[1]) * u32::from(c[2]) * 4 },
                    14 => Op::DropTransport { deliver: c[2] },
                    _ => Op::PushTools { side },
                }
            })
            .collect()
    }
}

/// The configurations the model runs with: small windows and buffers, so
/// that blocking, splitting and acknowledgement happen all the time.
pub fn configs(knob: u8) -> (SessionConfig, SessionConfig) {
    let tools = vec![ToolSpec::named("work")];
    let base = |window: u32| SessionConfig {
        tools: tools.clone().into(),
        invocation_window: window,
        connection_window: window * 2,
        replay_buffer_bytes: 16 * 1024 + usize::from(knob) * 512,
        max_concurrent_invocations: 8,
        ..SessionConfig::default()
    };
    (base(1024 + u32::from(knob) * 64), base(2048 + u32::from(knob % 7) * 512))
}

#[derive(Default)]
struct Record {
    sent: Vec<u8>,
    received: Vec<u8>,
    /// Handler bytes not yet accepted by `send_chunk` (blocked).
    pending: Bytes,
    invoker_ends: u32,
    handler_ends: u32,
    completed: bool,
    handler_open: bool,
    /// Bytes the invoker's application received and has not granted.
    unconsumed: usize,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Record {{ sent: {} B, received: {} B, pending: {} B, invoker_ends: {}, handler_ends: {}, completed: {}, handler_open: {} }}",
            self.sent.len(),
            self.received.len(),
            self.pending.len(),
            self.invoker_ends,
            self.handler_ends,
            self.completed,
            self.handler_open
        )
    }
}

/// Where two byte strings first differ, for readable failures.
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()))
}

/// The model: records by (invoker side, request id), current generation.
#[derive(Default)]
struct Model {
    open: BTreeMap<(Side, u16), Record>,
    done: Vec<Record>,
    /// Bytes received on invocations that have ended, not yet granted.
    orphaned: [usize; 2],
    counter: u8,
}

fn index(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    }
}

/// Runs `ops` and checks every invariant; panics with a description on the
/// first violation.
pub fn run(knob: u8, seed: u64, ops: &[Op]) {
    run_chunked(knob, seed, ops, 1);
}

/// [`run`], with transmits delivered in pieces of at least `min_chunk`
/// bytes. The fuzz target delivers in larger pieces than the proptest:
/// byte-at-a-time delivery costs most of a run, and chunking is what the
/// `decoder_chunked` target and the proptests cover.
pub fn run_chunked(knob: u8, seed: u64, ops: &[Op], min_chunk: usize) {
    let (client, server) = configs(knob);
    let replay_bound = client.replay_buffer_bytes.max(server.replay_buffer_bytes);
    let mut pair = Pair::connected(client, server, seed);
    pair.max_chunk = min_chunk.max(1 + usize::from(knob) * 13);
    assert!(pair.is_connected(), "handshake");
    let mut model = Model::default();
    for op in ops {
        apply(&mut pair, &mut model, op);
        settle_events(&mut pair, &mut model);
        check_bounds(&pair, replay_bound);
    }
    finish(&mut pair, &mut model);
}

fn session(pair: &mut Pair, side: Side) -> &mut asp_proto::Session {
    match side {
        Side::Client => &mut pair.client,
        Side::Server => &mut pair.server,
    }
}

/// The `pick`-th record (in key order) matching a filter.
fn pick_key(model: &Model, pick: u8, f: impl Fn(&(Side, u16), &Record) -> bool) -> Option<(Side, u16)> {
    let keys: Vec<(Side, u16)> = model.open.iter().filter(|(k, r)| f(k, r)).map(|(k, _)| *k).collect();
    (!keys.is_empty()).then(|| keys[usize::from(pick) % keys.len()])
}

fn apply(pair: &mut Pair, model: &mut Model, op: &Op) {
    let now = pair.now;
    match *op {
        Op::Invoke { side, timeout } => {
            let invoke = Invoke { timeout, ..Invoke::new("work", Value::Nil) };
            if let Ok(id) = session(pair, side).invoke(now, invoke) {
                let stale = model.open.insert((side, id.0), Record::default());
                assert!(stale.is_none(), "id {id:?} reused while its invocation was still tracked: {stale:?}");
            }
        }
        Op::Chunk { side, pick, len } => {
            let handler = side;
            if let Some(key) = pick_key(model, pick, |k, r| k.0 == other(handler) && r.handler_open) {
                model.counter = model.counter.wrapping_add(1);
                let start = model.counter;
                let data: Vec<u8> = (0..len).map(|i| start.wrapping_add(i as u8)).collect();
                let rec = model.open.get_mut(&key).expect("picked");
                let mut pending = std::mem::take(&mut rec.pending).to_vec();
                pending.extend_from_slice(&data);
                rec.pending = Bytes::from(pending);
            }
        }
        Op::End { side, pick, fail } => {
            let handler = side;
            if let Some(key) =
                pick_key(model, pick, |k, r| k.0 == other(handler) && r.handler_open && r.pending.is_empty())
            {
                let id = RequestId(key.1);
                let result = if fail {
                    session(pair, handler).fail(id, ErrorCode::TOOL_FAILED, "model says fail")
                } else {
                    session(pair, handler).complete(now, id, Value::from(key.1), None)
                };
                result.expect("ending an open invocation");
                let rec = model.open.get_mut(&key).expect("picked");
                rec.handler_open = false;
                rec.handler_ends += 1;
            }
        }
        Op::Interrupt { side, pick } => {
            if let Some(key) = pick_key(model, pick, |k, r| k.0 == side && r.invoker_ends == 0) {
                // May be refused when already interrupted: that is fine.
                let _ = session(pair, side).interrupt(RequestId(key.1), None);
            }
        }
        Op::Grant { side } => grant_all(pair, model, side),
        Op::Advance { ms } => pair.advance(Duration::from_millis(ms.into())),
        Op::DropTransport { deliver } => {
            flush_pending(pair, model);
            pair.kill_transport_after(deliver);
            settle_events(pair, model);
            assert!(pair.reconnect(), "a resume within the grace period must succeed");
        }
        Op::PushTools { side } => {
            let tools = vec![ToolSpec::named("work")];
            session(pair, side).push_tools(asp_proto::ToolOp::Replace, tools).expect("push tools");
        }
    }
    flush_pending(pair, model);
    // Output stays in flight until the next operation, so that a transport
    // drop can catch it on the wire.
    if !matches!(op, Op::Chunk { .. }) {
        pair.drive();
    }
}

fn grant_all(pair: &mut Pair, model: &mut Model, side: Side) {
    let grants: Vec<(u16, usize)> = model
        .open
        .iter_mut()
        .filter(|(k, _)| k.0 == side)
        .map(|(k, r)| (k.1, std::mem::take(&mut r.unconsumed)))
        .filter(|(_, n)| *n > 0)
        .collect();
    for (id, n) in grants {
        session(pair, side).grant(RequestId(id), n);
    }
    // Output of invocations that have ended still holds connection credit.
    let orphan = std::mem::take(&mut model.orphaned[index(side)]);
    session(pair, side).grant(RequestId::CONNECTION, orphan);
}

/// Hands blocked handler bytes to the sessions again; what `send_chunk`
/// accepts is what the invoker must eventually see.
fn flush_pending(pair: &mut Pair, model: &mut Model) {
    let keys: Vec<(Side, u16)> = model.open.iter().filter(|(_, r)| !r.pending.is_empty()).map(|(k, _)| *k).collect();
    for key in keys {
        let mut data = std::mem::take(&mut model.open.get_mut(&key).expect("listed").pending);
        let original = data.clone();
        let result = session(pair, other(key.0)).send_chunk(RequestId(key.1), &mut data);
        let accepted = original.len() - data.len();
        let rec = model.open.get_mut(&key).expect("listed");
        rec.sent.extend_from_slice(&original[..accepted]);
        rec.pending = match result {
            Ok(()) | Err(asp_proto::SendError::Blocked) => data,
            // Interrupted or timed out meanwhile: the rest is dropped.
            Err(asp_proto::SendError::NotOpen(_)) => Bytes::new(),
            Err(e) => panic!("send_chunk failed unexpectedly: {e}"),
        };
    }
}

fn settle_events(pair: &mut Pair, model: &mut Model) {
    for side in [Side::Client, Side::Server] {
        let events: Vec<Event> = match side {
            Side::Client => pair.client_events.drain(..).collect(),
            Side::Server => pair.server_events.drain(..).collect(),
        };
        for event in events {
            on_event(model, side, event);
        }
    }
}

fn on_event(model: &mut Model, side: Side, event: Event) {
    match event {
        Event::Invoked { id, .. } => {
            let rec = model
                .open
                .get_mut(&(other(side), id.0))
                .unwrap_or_else(|| panic!("{side:?} got INVOKE {id:?} nobody sent"));
            assert!(!rec.handler_open && rec.handler_ends == 0, "INVOKE {id:?} delivered twice");
            rec.handler_open = true;
        }
        Event::Chunk { id, data } => {
            let rec = model.open.get_mut(&(side, id.0)).unwrap_or_else(|| panic!("chunk for unknown {id:?}"));
            assert_eq!(rec.invoker_ends, 0, "chunk after the end of {id:?}");
            rec.received.extend_from_slice(&data);
            rec.unconsumed += data.len();
        }
        Event::Completed { id, .. } | Event::Failed { id, .. } => {
            let completed = matches!(event, Event::Completed { .. });
            let rec = model.open.get_mut(&(side, id.0)).unwrap_or_else(|| panic!("terminal for unknown {id:?}"));
            rec.invoker_ends += 1;
            rec.completed = completed;
        }
        Event::Interrupted { id, code } => {
            let rec =
                model.open.get_mut(&(other(side), id.0)).unwrap_or_else(|| panic!("interrupt for unknown {id:?}"));
            assert!(rec.handler_open, "Interrupted for {id:?}, which the handler had ended ({code:?})");
            rec.handler_open = false;
            rec.handler_ends += 1;
            rec.pending = Bytes::new();
        }
        Event::Closed(reason) => panic!("{side:?} closed during a legal run: {reason:?}"),
        _ => {}
    }
    // Retire records that ended on both sides.
    let finished: Vec<(Side, u16)> =
        model.open.iter().filter(|(_, r)| r.invoker_ends > 0 && r.handler_ends > 0).map(|(k, _)| *k).collect();
    for key in finished {
        let mut rec = model.open.remove(&key).expect("listed");
        model.orphaned[index(key.0)] += std::mem::take(&mut rec.unconsumed);
        model.done.push(rec);
    }
}

fn check_bounds(pair: &Pair, replay_bound: usize) {
    for (name, s) in [("client", &pair.client), ("server", &pair.server)] {
        let stats = s.stats();
        // Control frames are never refused, so the replay buffer may pass
        // its STREAM bound by a little.
        assert!(stats.replay_bytes <= replay_bound + 16 * 1024, "{name} replay {} > bound", stats.replay_bytes);
        assert!(
            stats.buffered_bytes <= replay_bound + 16 * 1024 + 1024 * 1024,
            "{name} buffers {}",
            stats.buffered_bytes
        );
        if let Some(at) = s.poll_timeout() {
            assert!(at >= pair.now, "{name} poll_timeout is in the past");
        }
    }
}

/// Ends everything still open, lets it drain, and checks every record.
fn finish(pair: &mut Pair, model: &mut Model) {
    for _ in 0..10_000 {
        grant_all(pair, model, Side::Client);
        grant_all(pair, model, Side::Server);
        flush_pending(pair, model);
        pair.drive();
        settle_events(pair, model);
        let ready: Vec<(Side, u16)> =
            model.open.iter().filter(|(_, r)| r.handler_open && r.pending.is_empty()).map(|(k, _)| *k).collect();
        for key in &ready {
            let now = pair.now;
            session(pair, other(key.0)).complete(now, RequestId(key.1), Value::Nil, None).expect("complete");
            let rec = model.open.get_mut(key).expect("listed");
            rec.handler_open = false;
            rec.handler_ends += 1;
        }
        pair.drive();
        settle_events(pair, model);
        if model.open.is_empty() {
            break;
        }
        if ready.is_empty() && model.open.values().all(|r| r.pending.is_empty()) {
            // Only invoker-side ends are outstanding (timed-out invocations
            // waiting for a terminal frame): let time pass.
            pair.advance(Duration::from_millis(100));
            settle_events(pair, model);
        }
    }
    assert!(model.open.is_empty(), "invocations never ended: {:?}", model.open);
    for rec in &model.done {
        assert_eq!((rec.invoker_ends, rec.handler_ends), (1, 1), "ended more than once: {rec:?}");
        let at = first_difference(&rec.received, &rec.sent);
        if rec.completed {
            assert!(rec.received == rec.sent, "completed output differs from what was sent at byte {at}: {rec:?}");
        } else {
            assert!(
                rec.sent.starts_with(&rec.received),
                "output is not a prefix of what was sent (byte {at}): {rec:?}"
            );
        }
    }
}
