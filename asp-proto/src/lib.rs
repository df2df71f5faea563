//! The Agent Socket Protocol (ASP/1) without I/O.
//!
//! This crate is the protocol and nothing else: it never opens a socket,
//! spawns a task or reads a clock. Runtime adapters (`asp-tokio`,
//! `asp-async-std`, through `asp-driver`) and the relay core
//! (`asp-relay-proto`) move the bytes; this crate decides what they mean.
//! The normative description is `SPEC.md` at the root of the repository;
//! section numbers in these docs refer to it.
//!
//! # Who owns what
//!
//! | type | owns | you give it | it gives you |
//! |---|---|---|---|
//! | [`Frame`] | one frame: header, typed MsgPack payload | a value to [`encode`](Frame::encode) | bytes |
//! | [`Decoder`] | the partial frame of one byte stream | bytes, in chunks of any size | [`Frame`]s (STREAM payloads as zero-copy slices) |
//! | [`Session`] | one connection, client or server: handshake, invocations both ways, flow control, liveness, resume | bytes, time, commands | transmits, [`Event`]s, a deadline |
//! | [`OutputQueue`] | one invocation's output waiting for the peer's credit, with its end behind it | output as the handler produces it | what went out, and whether the invocation ended |
//! | [`ResumeIndex`] | a server's resumable sessions by [`ResumeKey`] | sessions as they connect | the old session a resuming HELLO asks for |
//! | [`aid`] | AID discovery records (`_agent.<domain>` TXT) | TXT strings | a validated record, or the reason it is not one |
//! | [`limits`] | every number of SPEC §12 | | |
//!
//! # The loop
//!
//! A [`Session`] is driven the way quinn-proto's `Connection` and str0m's
//! `Rtc` are: the caller feeds it input, then drains its output, then
//! sleeps until the next input or the deadline it asked for.
//!
//! ```text
//!             ┌──────────────── your adapter (a task, a thread, a test) ───────────────┐
//!  socket ───►│ handle_message(now, bytes)                    poll_transmit() ─► bytes │──► socket
//!   clock ───►│ handle_timeout(now)         ┌─────────┐       poll_event()    ─► Event │──► application
//!    app  ───►│ invoke / send_chunk / grant │ Session │       poll_timeout()  ─► when  │──► timer
//!             │ complete / accept / ...     └─────────┘                                │
//!             └────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! 1. **Inputs**: bytes from the transport ([`Session::handle_message`] for
//!    one WebSocket message, [`Session::handle_input`] for a byte stream),
//!    the passing of a deadline ([`Session::handle_timeout`]), the end of
//!    the transport ([`Session::handle_transport_closed`]).
//! 2. **Commands** from the application: [`Session::invoke`],
//!    [`Session::send_chunk`], [`Session::complete`], [`Session::grant`],
//!    [`Session::accept`]… They never block: when a bound is reached they
//!    say so ([`SendError::Blocked`]) and an [`Event::Writable`] says when
//!    to try again ([`OutputQueue`] does that bookkeeping for you).
//! 3. **Outputs**, after *every* input or command: drain
//!    [`Session::poll_transmit`] (each result is one WebSocket binary
//!    message), then [`Session::poll_event`], then ask
//!    [`Session::poll_timeout`] when to call `handle_timeout` next.
//!
//! **Time is an input.** Every method that needs the time takes `now`, the
//! caller's monotonic clock; nothing here reads one. So the same session
//! runs on Tokio, on async-std, in a blocking thread, in WebAssembly, or in
//! a test on a virtual clock where an hour of heartbeats takes microseconds.
//!
//! **Bad input never panics.** A peer that breaks the protocol gets an
//! ERROR frame, and the session ends with [`Event::Closed`] and the reason.
//! Every buffer is bounded by [`SessionConfig`].
//!
//! # Writing an adapter
//!
//! `examples/blocking.rs` is a complete server and client over
//! `std::net::TcpStream` and synchronous `tungstenite` in about a hundred
//! lines: the smallest custom transport, and the reason a Sans-IO core
//! exists. `asp-driver` is the async one, with tools, reconnects and TLS.
//!
//! # The codec alone
//!
//! ```
//! use asp_proto::{Decoder, Frame, Invoke, RequestId, Value};
//! use bytes::BytesMut;
//!
//! let mut wire = BytesMut::new();
//! Frame::Invoke(RequestId(1), Invoke::new("echo", Value::from("hi"))).encode(&mut wire)?;
//!
//! let mut decoder = Decoder::default();
//! let mut input = wire.freeze();
//! let frame = decoder.decode(&mut input)?.expect("one whole frame");
//! assert!(matches!(frame, Frame::Invoke(RequestId(1), ref inv) if inv.tool == "echo"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # A session pair in memory
//!
//! ```
//! use std::time::Instant;
//! use asp_proto::{Event, Invoke, Session, SessionConfig, ToolSpec, Value};
//!
//! # struct Counter(u8);
//! # impl asp_proto::Entropy for Counter { fn fill(&mut self, b: &mut [u8]) { for x in b { self.0 = self.0.wrapping_add(1); *x = self.0; } } }
//! let now = Instant::now();
//! let tools = vec![ToolSpec::named("echo")];
//! let mut server = Session::server(SessionConfig { tools: tools.into(), ..Default::default() }, now, Box::new(Counter(0)));
//! let mut client = Session::client(SessionConfig::default(), now);
//!
//! // The adapter's job: move transmits across, act on events.
//! let mut pump = |client: &mut Session, server: &mut Session| loop {
//!     let mut moved = false;
//!     while let Some(m) = client.poll_transmit() { server.handle_message(now, m); moved = true; }
//!     while let Some(m) = server.poll_transmit() { client.handle_message(now, m); moved = true; }
//!     while let Some(event) = server.poll_event() {
//!         match event {
//!             Event::HelloReceived(_) => server.accept(now).unwrap(),
//!             Event::Invoked { id, invoke } => server.complete(now, id, invoke.args, None).unwrap(),
//!             _ => {}
//!         }
//!         moved = true;
//!     }
//!     if !moved { break; }
//! };
//! pump(&mut client, &mut server);
//! let id = client.invoke(now, Invoke::new("echo", Value::from("hi"))).unwrap();
//! pump(&mut client, &mut server);
//! let done = std::iter::from_fn(|| client.poll_event())
//!     .any(|e| matches!(e, Event::Completed { id: i, ref result, .. } if i == id && *result == Value::from("hi")));
//! assert!(done);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aid;
mod error_code;
pub mod limits;
pub mod session;
pub mod wire;

/// MsgPack values ([`Value`] is `rmpv::Value`), re-exported so that code
/// using this crate names the same version: `asp_proto::rmpv::ext::to_value`
/// turns any `Serialize` into a [`Value`].
pub use rmpv;

pub use error_code::{ErrorClass, ErrorCode};
pub use session::{
    CloseReason, DetachReason, Entropy, Event, Flushed, HelloInfo, Initiator, InvocationInfo, InvocationRole,
    InvocationState, Output, OutputQueue, QueueState, ResumeIndex, ResumeKey, ResumeOutcome, SendError, Session,
    SessionConfig, SessionState, Stats, ToolSet,
};
pub use wire::{decode_all, Decoder, EncodeError, FrameError, PayloadError};
pub use wire::{
    flags, ClientHello, Complete, ErrorInfo, Frame, FrameHeader, FrameType, GoAway, Interrupt, Invoke, Metrics,
    PeerLimits, Ping, Pong, Progress, RequestId, ResumeOffer, ResumeRequest, Resumed, Role, ServerHello, ToolDef,
    ToolOp, ToolSpec, Value, Window,
};
