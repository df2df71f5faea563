//! Agent Socket (ASP/1) relay mode: hold client sessions over `wss://` and
//! run tools by calling serverless functions over HTTP (SPEC.md §15).
//!
//! Not written yet: the library and the `asp-relay` binary arrive with the
//! relay issue. Until then it only re-exports the protocol crate so the
//! workspace layout is in place.
#![forbid(unsafe_code)]

pub use asp_proto as proto;
