//! Graceful shutdown: GOAWAY to every client, running calls get the drain
//! time to finish, new calls are refused, then the server stops.
//!
//!     cargo run -p asp-tokio --example shutdown
use std::time::Duration;

use asp_tokio::proto::{ToolSpec, Value};
use asp_tokio::{ClientBuilder, ConnectionState, ServerBuilder, ToolContext, ToolError};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let agent = ServerBuilder::new("127.0.0.1:0".parse()?)
        .allow_plaintext()
        .tool(ToolSpec::named("work"), |ctx: ToolContext, _args: Value| async move {
            for step in 1..=3 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                ctx.send(format!("step {step} ")).await?;
            }
            Ok::<_, ToolError>(Value::from("done"))
        })
        .bind()
        .await?
        .spawn();
    let client = ClientBuilder::new(agent.url()).allow_plaintext().connect().await?;
    let mut states = client.state_changes();
    let mut call = client.invoke("work", Value::Nil).await?;
    // The call is running on the server once its first output is here (an
    // INVOKE still on its way when GOAWAY goes out is refused, SPEC §13).
    let first = call.next().await.expect("the first step");
    println!("running: {}", String::from_utf8_lossy(&first));

    // E.g. on SIGTERM: the running call has a second to finish.
    let stopping = tokio::spawn(agent.shutdown(Duration::from_secs(1)));
    while let Some(state) = states.next().await {
        if matches!(state, ConnectionState::Draining { .. }) {
            println!("client: {state}");
            break;
        }
    }
    // The client knows the server is draining: a new call fails at once.
    match client.invoke("work", Value::Nil).await {
        Ok(_) => println!("a new call was accepted"),
        Err(refused) => println!("a new call: {refused}"),
    }
    let done = call.result().await?;
    println!("the running call: {}", done.result);
    stopping.await?;
    println!("server stopped");
    Ok(())
}
