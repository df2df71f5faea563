//! A two-way bridge between MCP and Agent Socket (ASP/1), on the official
//! Rust MCP SDK (`rmcp`).
//!
//! - **MCP server → ASP agent** ([`McpBridgeBuilder`], `asp mcp serve`): an
//!   MCP server — a child process over stdio, or a Streamable HTTP URL —
//!   served to ASP clients. Its `tools/list` is the HELLO tool set and
//!   `tools/list_changed` becomes TOOL_DEF pushes; an INVOKE is a
//!   `tools/call`, MCP progress is PROGRESS, an INTERRUPT (or the INVOKE's
//!   deadline) is `notifications/cancelled`; text content is STREAM output
//!   and structured content the COMPLETE result.
//! - **ASP agent → MCP server** ([`ExposedAgent`], `asp mcp expose`): an
//!   ASP agent served to MCP clients over stdio or Streamable HTTP: STREAM
//!   output becomes progress notifications as it arrives and the final
//!   content, TOOL_DEF pushes `tools/list_changed`, cancellation INTERRUPT.
//!
//! [`mapping`] holds every conversion as a pure function; `docs/MCP.md`
//! writes the same mapping down as tables.
//!
//! ```no_run
//! use asp_mcp::{McpBridgeBuilder, McpServer, OnExit};
//! use asp_tokio::ServerBuilder;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = ServerBuilder::new("127.0.0.1:9443".parse()?).allow_plaintext().bind().await?;
//! let mcp = McpServer::Command { program: "my-mcp-server".into(), args: vec![] };
//! let bridge = McpBridgeBuilder::new(mcp).on_exit(OnExit::Exit).start(server.tools()).await?;
//! let handle = server.spawn();
//! eprintln!("gave up: {}", bridge.exited().await);
//! handle.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod expose;
pub mod mapping;
mod serve;
mod upstream;

pub use expose::ExposedAgent;
pub use serve::{McpBridge, McpBridgeBuilder, OnExit};
pub use upstream::McpServer;

/// Why the bridge could not start, or stopped.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The MCP server could not be started or reached, or did not complete
    /// MCP's handshake.
    #[error("cannot connect to the MCP server {server}: {reason}")]
    Connect {
        /// The command or URL.
        server: String,
        /// What failed.
        reason: String,
    },
    /// `tools/list` failed.
    #[error("the MCP server's tools/list failed: {0}")]
    ListTools(String),
    /// The MCP server exited (with [`OnExit::Exit`]).
    #[error("the MCP server {server} exited")]
    Exited {
        /// The command or URL.
        server: String,
    },
    /// Serving MCP (`expose`) failed.
    #[error("MCP: {0}")]
    Mcp(String),
    /// The bridge's task ended (its runtime is shutting down).
    #[error("the bridge stopped")]
    Stopped,
}
