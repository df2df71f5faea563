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
//! A client that blocks on its calls, as a CLI or a test does, runs fastest
//! on a [`CurrentThread`]: its connection task then shares the caller's
//! thread, as on Tokio's current-thread runtime, instead of waking it
//! from an executor thread on every call.
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

mod current_thread;
#[cfg(feature = "discovery")]
mod dns;
mod executor;
mod runtime;
mod tcp;

#[cfg(feature = "discovery")]
pub use asp_driver::discovery::{DiscoverySource, WELL_KNOWN_MAX_BYTES};
#[cfg(feature = "discovery")]
pub use asp_driver::Discovered;
pub use asp_driver::{prove_endpoint, read_pka_key};
pub use asp_driver::{
    tls, typed, ByteStream, Caller, Completion, ConnectError, Connection, ConnectionError, ConnectionState, Invocation,
    InvokeError, Listener, PkaRequirement, Tool, ToolContext, ToolError, ToolRegistry, DEFAULT_PATH,
    PRE_HANDSHAKE_READ_LIMIT, SEND_BUDGET, SUBPROTOCOL,
};
pub use asp_proto as proto;
pub use current_thread::CurrentThread;
#[cfg(feature = "discovery")]
pub use dns::AsyncIoDns;
pub use executor::{AsyncStdExecutor, Executor, SmolExecutor};
pub use runtime::{AsyncStd, FuturesIo, Smol};
pub use tcp::TcpStream;

asp_driver::runtime_types!(AsyncStd, "async-std");

/// The same types on smol.
pub mod smol {
    asp_driver::runtime_types!(super::Smol, "smol");
}
