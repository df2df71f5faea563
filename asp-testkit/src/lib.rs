//! Test harness for the ASP/1 Sans-IO cores (unpublished).
//!
//! Everything here drives the public APIs of `asp-proto` and
//! `asp-relay-proto` in memory, on a virtual clock, with no sockets:
//!
//! - [`Pair`]: a client and a server [`Session`](asp_proto::Session) joined by
//!   an in-memory transport that splits transmits at random points, drops the
//!   transport on demand and routes a resuming HELLO like a server adapter
//!   (after quinn-proto's `tests/util.rs`);
//! - [`model`]: random operation sequences over a [`Pair`] checked against a
//!   reference model (the proptest and the `session_ops` fuzz target);
//! - [`fuzz`]: the bodies of the cargo-fuzz targets in `fuzz/`, so that
//!   `tests/fuzz_corpus.rs` replays every corpus file on stable through
//!   exactly the code the fuzzer runs;
//! - [`RelayHarness`]: the same for the relay core, with real client
//!   sessions (its tests and its fuzz target);
//! - [`TestEntropy`]: deterministic randomness for server sessions;
//! - `dns` (feature `dns`): an authoritative DNS server on a loopback UDP
//!   port, for the discovery tests of the adapters, the scenarios and the CLI.
//!
//! It lives outside the published crates (as quinn keeps its `Pair` under
//! `cfg(test)`), so none of it is part of their semver surface. Integration
//! tests of `asp-proto` and `asp-relay-proto` take it as a dev-dependency.
#![forbid(unsafe_code)]

#[cfg(feature = "dns")]
pub mod dns;
pub mod fuzz;
pub mod model;
mod pair;
mod relay;

pub use pair::{Pair, Side, TestEntropy};
pub use relay::{RelayClient, RelayHarness};
