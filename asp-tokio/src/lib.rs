//! Agent Socket (ASP/1) server and client on Tokio.
//!
//! Not written yet: this crate will be the thin Tokio adapter around the
//! Sans-IO core in [`asp_proto`] — a `wss://` server builder with async tool
//! handlers, a client whose invocations are streams, reconnect with resume,
//! and AID discovery. Until then it only re-exports the protocol crate so the
//! workspace layout is in place.
#![forbid(unsafe_code)]

pub use asp_proto as proto;
