//! An agent run as a child process, speaking ASP on its stdin and stdout
//! (SPEC.md §2 allows any reliable byte stream). Run without arguments it
//! starts itself with `--agent` and calls the child.
//!
//!     cargo run -p asp-tokio --example stdio_agent
use asp_tokio::proto::{ErrorCode, ToolSpec, Value};
use asp_tokio::{ClientBuilder, ServerBuilder, ToolContext, ToolError};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--agent") {
        // The child: serve one client on stdio (log to stderr only).
        let agent = ServerBuilder::new("127.0.0.1:0".parse()?)
            .tool(ToolSpec::named("pid"), |_ctx: ToolContext, _args: Value| async move {
                Ok::<_, ToolError>(Value::from(std::process::id()))
            })
            .into_service();
        agent.serve_stream(asp_tokio::stdio()).await;
        return Ok(());
    }
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("--agent")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let pipes = asp_tokio::child_stdio(&mut child).expect("piped");
    let client = ClientBuilder::new("stdio:").connect_stream(pipes).await?;
    let done = client.invoke("pid", Value::Nil).await?.result().await?;
    println!("the agent runs as process {} (we are {})", done.result, std::process::id());
    // Closing the session closes the child's stdin: it ends by itself.
    client.close(ErrorCode::NO_ERROR, "done")?;
    client.closed().await;
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait()).await??;
    println!("the agent exited: {status}");
    Ok(())
}
