//! `asp mcp serve` and `asp mcp expose`: the MCP bridge (asp-mcp) on the
//! command line.

use std::net::SocketAddr;

use asp_mcp::{ExposedAgent, McpBridgeBuilder, McpServer, OnExit};
use asp_tokio::ServerBuilder;

use crate::agent::{configure, Listen, StopSignals};
use crate::invoke::{self, Failure, Target};

/// What `asp mcp serve` was asked to do.
pub(crate) struct ServeArgs {
    pub(crate) listen: Listen,
    pub(crate) on_exit: OnExit,
    pub(crate) server: McpServer,
}

/// `asp mcp serve`: the MCP server's tools on an ASP server until a signal
/// (drain, then exit 0) or, with `--on-exit exit`, until the MCP server
/// exits (drain, then an error).
pub(crate) async fn serve(args: ServeArgs) -> Result<(), String> {
    let builder = configure(ServerBuilder::new(args.listen.bind), &args.listen)?;
    let server = builder.bind().await.map_err(|e| format!("bind {}: {e}", args.listen.bind))?;
    let bridge = McpBridgeBuilder::new(args.server.clone())
        .on_exit(args.on_exit)
        .start(server.tools())
        .await
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = server.tools().specs().into_iter().map(|t| t.name).collect();
    println!("serving {} (MCP server {}; tools: {}); Ctrl-C to stop", server.url(), args.server, names.join(", "));
    let handle = server.spawn();
    let mut stop = StopSignals::new()?;
    let gave_up = tokio::select! {
        () = stop.first() => None,
        error = bridge.exited() => Some(error),
    };
    stop.drain(handle, args.listen.drain).await;
    gave_up.map_or(Ok(()), |error| Err(error.to_string()))
}

/// `asp mcp expose`: the agent at `target` as an MCP server, on stdio or,
/// with `http`, over Streamable HTTP.
pub(crate) async fn expose(target: Target, http: Option<SocketAddr>) -> Result<(), Failure> {
    let client = invoke::connect(&target).await?;
    let agent = ExposedAgent::new((*client).clone());
    match http {
        None => agent.serve_stdio().await.map_err(|e| Failure::Tool(e.to_string())),
        Some(addr) => {
            let (url, listener) = ExposedAgent::bind_http(addr).await.map_err(|e| Failure::Usage(e.to_string()))?;
            println!("serving {url} (MCP over Streamable HTTP, tools of {}); Ctrl-C to stop", target.url);
            let mut stop = StopSignals::new().map_err(Failure::Usage)?;
            tokio::select! {
                served = agent.serve_http(listener) => served.map_err(|e| Failure::Tool(e.to_string())),
                () = stop.first() => Ok(()),
            }
        }
    }
}
