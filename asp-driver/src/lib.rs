//! The runtime-neutral part of the Agent Socket adapters.
//!
//! `asp-proto` decides what bytes mean; this crate moves them. It owns one
//! [`asp_proto::Session`] per connection in one task (no shared mutable
//! session), and turns the Sans-IO events and commands into an idiomatic
//! async API: a [`Connection`] handle, [`Invocation`] streams, and async
//! [`Tool`] handlers with flow-controlled output.
//!
//! It is written against `futures` traits only. A runtime adapter supplies
//! spawning and timers ([`Runtime`]) and TCP sockets plus a DNS runtime
//! ([`Network`]); everything above TCP is here, once: TLS (rustls; servers
//! through [`tls::TlsServerStream`], clients through futures-rustls), the WebSocket upgrade with ASP's checks
//! (async-tungstenite), the [`ServerBuilder`], [`ClientBuilder`] with
//! reconnect and resume, and AID [`Discovery`]. `asp-tokio` and
//! `asp-async-std` name these types for their runtimes.
#![forbid(unsafe_code)]

mod byte_stream;
mod caller;
mod client;
mod command;
mod connection;
#[cfg(feature = "discovery")]
pub mod discovery;
mod driver;
mod error;
mod invocation;
mod listener;
pub mod memory;
mod metrics;
pub mod net;
mod outbox;
mod pka;
mod resume;
mod server;
pub mod tls;
mod tls_stream;
mod tools;
pub mod typed;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

pub use caller::{AuthHook, Caller};
pub use connection::{Connection, ConnectionState};
pub use error::{ConnectError, ConnectionError};
pub use invocation::{Completion, Invocation, InvokeError};
pub use resume::{BoxTransport, Transport};
pub use tools::{Tool, ToolContext, ToolError, ToolRegistry, SEND_BUDGET};

pub use byte_stream::ByteStream;
pub use client::{Client, ClientBuilder};
#[cfg(feature = "discovery")]
pub use discovery::{Discovered, Discovery, DiscoveryBuilder, DiscoverySource, DnsRuntime};
pub use listener::{
    default_max_connections, HandshakeGate, Listener, DEFAULT_MAX_PENDING, DEFAULT_UPGRADE_TIMEOUT,
    PRE_HANDSHAKE_READ_LIMIT, SERVER_READ_BUFFER,
};
pub use net::{Network, DEFAULT_PATH, SUBPROTOCOL};
pub use pka::{prove_endpoint, read_pka_key, PkaRequirement};
pub use server::{Server, ServerBuilder, ServerHandle, Service};

pub use asp_proto as proto;
/// The JSON Schema generator typed tools use (`#[derive(JsonSchema)]`).
pub use schemars;
/// The WebSocket types a [`Transport`] carries.
pub use tungstenite;

/// A boxed, sendable future: what [`Runtime`] spawns and sleeps with.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the driver needs from an async runtime.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// Runs `future` in the background.
    fn spawn(&self, future: BoxFuture<()>);
    /// Completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()>;
    /// The current time: every time the driver hands a session comes from
    /// here (as quinn's `Runtime::now`), so a runtime with a virtual clock
    /// can run the driver deterministically in tests.
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Randomness from the operating system's CSPRNG, for connection ids and
/// resume tickets.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl asp_proto::Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        getrandom::fill(buf).expect("the operating system's random number generator failed");
    }
}

/// Names the generic endpoint types for one runtime: `ServerBuilder`,
/// `Server`, `ServerHandle`, `ClientBuilder`, `Client`, `Discovery`,
/// `DiscoveryBuilder`. Each adapter invokes it once per runtime it serves.
#[macro_export]
macro_rules! runtime_types {
    ($rt:ty, $name:literal) => {
        #[doc = concat!("Configures and binds a [`Server`] on ", $name, ".")]
        pub type ServerBuilder = $crate::ServerBuilder<$rt>;
        #[doc = concat!("A bound server on ", $name, "; spawn it to accept connections.")]
        pub type Server = $crate::Server<$rt>;
        #[doc = concat!("A running server on ", $name, ".")]
        pub type ServerHandle = $crate::ServerHandle<$rt>;
        #[doc = concat!("A server for connections the application accepts itself, on ", $name, ".")]
        pub type Service = $crate::Service<$rt>;
        #[doc = concat!("Configures a [`Client`] on ", $name, ".")]
        pub type ClientBuilder = $crate::ClientBuilder<$rt>;
        #[doc = concat!("A connected client on ", $name, ".")]
        pub type Client = $crate::Client<$rt>;
        $crate::__discovery_types!($rt, $name);
    };
}

/// The discovery half of [`runtime_types!`]: the types with the feature,
/// nothing without it.
#[cfg(feature = "discovery")]
#[doc(hidden)]
#[macro_export]
macro_rules! __discovery_types {
    ($rt:ty, $name:literal) => {
        #[doc = concat!("AID discovery with hickory on ", $name, ".")]
        pub type Discovery = $crate::Discovery<$rt>;
        #[doc = concat!("Configures a [`Discovery`] on ", $name, ".")]
        pub type DiscoveryBuilder = $crate::DiscoveryBuilder<$rt>;
    };
}

#[cfg(not(feature = "discovery"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __discovery_types {
    ($rt:ty, $name:literal) => {};
}
