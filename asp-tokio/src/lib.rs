//! Agent Socket (ASP/1) server and client on Tokio.
//!
//! A thin adapter: every protocol decision is in [`asp_proto`]; the event
//! loop, TLS, the WebSocket upgrade, the server and client builders and
//! discovery are in [`asp_driver`], written once for every runtime. This
//! crate gives them Tokio's sockets, timers and spawning ([`TokioRuntime`])
//! and names the types for Tokio.
//!
//! ```no_run
//! use asp_tokio::{ServerBuilder, ToolContext, ToolError};
//! use asp_tokio::proto::{ToolSpec, Value};
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

#[cfg(feature = "axum")]
#[path = "mount.rs"]
pub mod axum;
mod runtime;
mod stdio;

#[cfg(feature = "discovery")]
pub use asp_driver::discovery::{DiscoverySource, WELL_KNOWN_MAX_BYTES};
#[cfg(feature = "discovery")]
pub use asp_driver::Discovered;
pub use asp_driver::{prove_endpoint, read_pka_key};
pub use asp_driver::{
    schemars, tls, typed, ByteStream, Caller, Completion, ConnectError, Connection, ConnectionError, ConnectionState,
    Invocation, InvokeError, Listener, PkaRequirement, Tool, ToolContext, ToolError, ToolRegistry, DEFAULT_PATH,
    PRE_HANDSHAKE_READ_LIMIT, SEND_BUDGET, SUBPROTOCOL,
};
pub use asp_proto as proto;
pub use runtime::TokioRuntime;
pub use stdio::{child_stdio, stdio};

asp_driver::runtime_types!(TokioRuntime, "Tokio");

/// The README's examples run as doc tests here (where the codec, the
/// driver and Tokio are all in reach), so they cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
