//! The Agent Socket Protocol (ASP/1) without I/O.
//!
//! This crate is the protocol and nothing else: it never opens a socket,
//! spawns a task or reads a clock. Runtime adapters (`asp-tokio`,
//! `asp-async-std`, `asp-relay`) move the bytes; this crate decides what they
//! mean. The normative description of the wire format is `SPEC.md` at the
//! root of the repository; the section numbers in these docs refer to it.
//!
//! What is here so far:
//!
//! - [`Frame`]: the eleven frame types with their MsgPack payloads, and
//!   [`Frame::encode`], which writes a frame straight into an output buffer;
//! - [`Decoder`]: a streaming decoder fed chunks of any size (one byte at a
//!   time works) that checks each header before buffering its payload and
//!   hands STREAM output out as slices of the input;
//! - [`ErrorCode`]: the wire error codes, their classes and WebSocket close
//!   codes;
//! - [`limits`]: every protocol limit and default, in one place.
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
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aid;
pub mod codec;
mod error_code;
pub mod frame;
pub mod limits;
pub mod session;

/// The README's examples run as doc tests, so they cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub use codec::{decode_all, Decoder, EncodeError, FrameError, PayloadError};
pub use error_code::{ErrorClass, ErrorCode};
pub use frame::{
    flags, ClientHello, Complete, ErrorInfo, Frame, FrameHeader, FrameType, GoAway, Interrupt, Invoke, Metrics,
    PeerLimits, Ping, Pong, Progress, RequestId, RequestIdMap, ResumeOffer, ResumeRequest, Resumed, Role, ServerHello,
    ToolDef, ToolOp, ToolSpec, Value, Window,
};
pub use session::{
    CloseReason, DetachReason, Entropy, Event, Flushed, HelloInfo, Initiator, InvocationInfo, InvocationRole,
    InvocationState, Output, OutputQueue, QueueState, ResumeIndex, ResumeKey, ResumeOutcome, SendError, Session,
    SessionConfig, SessionState, Stats, ToolSet,
};
