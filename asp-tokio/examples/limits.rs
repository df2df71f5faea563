//! Limits a server sets for each session (SPEC.md §12): concurrent
//! invocations, frame size, flow-control windows, heartbeat. A client that
//! goes past them gets the documented code; the session goes on.
//!
//!     cargo run -p asp-tokio --example limits
use std::time::Duration;

use asp_tokio::proto::{SessionConfig, ToolSpec, Value};
use asp_tokio::{ClientBuilder, ServerBuilder, ToolContext, ToolError};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let limits = SessionConfig {
        max_concurrent_invocations: 2, // more open calls: TOO_MANY_INVOCATIONS
        max_frame_payload: 64 * 1024,  // larger frames: FRAME_TOO_LARGE
        invocation_window: 128 * 1024, // unread output a call may have in flight
        heartbeat_interval: Duration::from_secs(10),
        ..SessionConfig::default()
    };
    let agent = ServerBuilder::new("127.0.0.1:0".parse()?)
        .allow_plaintext()
        .session_config(limits)
        .tool(ToolSpec::named("wait"), |_ctx: ToolContext, _args: Value| async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, ToolError>(Value::from("done"))
        })
        .bind()
        .await?
        .spawn();
    let client = ClientBuilder::new(agent.url()).allow_plaintext().connect().await?;
    // The client learns the server's limits in HELLO and keeps to them: a
    // third concurrent call is refused before it is sent.
    let first = client.invoke("wait", Value::Nil).await?;
    let second = client.invoke("wait", Value::Nil).await?;
    match client.invoke("wait", Value::Nil).await {
        Ok(_) => println!("a third call was accepted"),
        Err(refused) => println!("a third call at once: {refused}"),
    }
    println!("{} {}", first.result().await?.result, second.result().await?.result);
    println!("and now: {}", client.invoke("wait", Value::Nil).await?.result().await?.result);
    Ok(())
}
