//! Agent Socket (ASP/1) server and client on Tokio.
//!
//! A thin adapter: every protocol decision is in [`asp_proto`], the event
//! loop in [`asp_driver`]; this crate opens sockets, does TLS (rustls) and
//! the WebSocket upgrade (tokio-tungstenite), and runs the driver on Tokio.
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

mod client;
pub mod discovery;
mod runtime;
mod server;
#[doc(hidden)]
pub mod testing;
pub mod tls;

pub use asp_driver::{
    Completion, Connection, ConnectionError, Invocation, InvokeError, Tool, ToolContext, ToolError, ToolRegistry,
    SEND_BUDGET,
};
pub use asp_proto as proto;
pub use client::{Client, ClientBuilder, ConnectError};
pub use discovery::{Discovered, Discovery, DiscoveryBuilder};
pub use runtime::TokioRuntime;
pub use server::{Server, ServerBuilder, ServerHandle};

/// The WebSocket subprotocol token of ASP/1.
pub const SUBPROTOCOL: &str = "asp-v1";

/// The default upgrade path.
pub const DEFAULT_PATH: &str = "/v1/agent-socket";
