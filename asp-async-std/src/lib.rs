//! Agent Socket (ASP/1) server and client on `futures-io`: one
//! implementation for the async-std runtime and for smol.
//!
//! async-std is discontinued upstream; smol is its successor. Both run
//! futures on top of the same reactor (`async-io`), so the sockets, timers
//! and DNS runtime here are written once against `async-io`/`async-net`;
//! the two differ only in the executor that spawns the connection tasks.
//! The types at the top level run on async-std; the same names in
//! [`smol`](mod@crate::smol) run on smol (or call `.runtime(Smol)` on a
//! builder).
//!
//! Everything above TCP — TLS, the WebSocket upgrade, the event loop, the
//! builders, reconnect with resume, discovery — is [`asp_driver`], shared
//! with `asp-tokio`.
//!
//! ```no_run
//! use asp_async_std::{ServerBuilder, ToolContext, ToolError};
//! use asp_async_std::proto::{ToolSpec, Value};
//!
//! # async fn run(cert_pem: &[u8], key_pem: &[u8]) -> std::io::Result<()> {
//! let server = ServerBuilder::new("127.0.0.1:9000".parse().unwrap())
//!     .tls_pem(cert_pem, key_pem)?
//!     .tool(ToolSpec::named("echo"), |ctx: ToolContext, args: Value| async move {
//!         ctx.send(args.to_string()).await?;
//!         Ok::<_, ToolError>(args)
//!     })
//!     .bind()
//!     .await?;
//! server.spawn().closed().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod dns;
mod runtime;

pub use asp_driver::discovery::{DiscoverySource, WELL_KNOWN_MAX_BYTES};
pub use asp_driver::{
    tls, Completion, ConnectError, Connection, ConnectionError, Discovered, Invocation, InvokeError, Tool, ToolContext,
    ToolError, ToolRegistry, DEFAULT_PATH, SEND_BUDGET, SUBPROTOCOL,
};
pub use asp_proto as proto;
pub use dns::AsyncIoDns;
pub use runtime::{AsyncStd, AsyncStdExecutor, Executor, FuturesIo, Smol, SmolExecutor};

/// Configures and binds a [`Server`] on async-std.
pub type ServerBuilder = asp_driver::ServerBuilder<AsyncStd>;
/// A bound server on async-std.
pub type Server = asp_driver::Server<AsyncStd>;
/// A running server on async-std.
pub type ServerHandle = asp_driver::ServerHandle<AsyncStd>;
/// Configures a [`Client`] on async-std.
pub type ClientBuilder = asp_driver::ClientBuilder<AsyncStd>;
/// A connected client on async-std.
pub type Client = asp_driver::Client<AsyncStd>;
/// AID discovery with hickory on async-std.
pub type Discovery = asp_driver::Discovery<AsyncStd>;
/// Configures a [`Discovery`] on async-std.
pub type DiscoveryBuilder = asp_driver::DiscoveryBuilder<AsyncStd>;

/// The same types on smol.
pub mod smol {
    use super::Smol;

    /// Configures and binds a [`Server`] on smol.
    pub type ServerBuilder = asp_driver::ServerBuilder<Smol>;
    /// A bound server on smol.
    pub type Server = asp_driver::Server<Smol>;
    /// A running server on smol.
    pub type ServerHandle = asp_driver::ServerHandle<Smol>;
    /// Configures a [`Client`] on smol.
    pub type ClientBuilder = asp_driver::ClientBuilder<Smol>;
    /// A connected client on smol.
    pub type Client = asp_driver::Client<Smol>;
    /// AID discovery with hickory on smol.
    pub type Discovery = asp_driver::Discovery<Smol>;
    /// Configures a [`Discovery`] on smol.
    pub type DiscoveryBuilder = asp_driver::DiscoveryBuilder<Smol>;
}
