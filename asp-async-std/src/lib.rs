//! Agent Socket (ASP/1) server and client on `futures-io`: one
//! implementation for the async-std runtime and for smol, its successor
//! (async-std itself is discontinued upstream).
//!
//! Not written yet: it will share the runtime-neutral driver with
//! `asp-tokio` and differ only where the runtimes differ. Until then it only
//! re-exports the protocol crate so the workspace layout is in place.
#![forbid(unsafe_code)]

pub use asp_proto as proto;
