//! Tools that appear and go while clients are connected: the registry
//! pushes each change (TOOL_DEF) and the client sees its peer's new set.
//!
//!     cargo run -p asp-tokio --example live_tools
use asp_tokio::proto::{ToolSpec, Value};
use asp_tokio::{ClientBuilder, ServerBuilder, ToolContext, ToolError};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let agent = ServerBuilder::new("127.0.0.1:0".parse()?).allow_plaintext().bind().await?.spawn();
    let client = ClientBuilder::new(agent.url()).allow_plaintext().connect().await?;
    let mut changes = client.tool_changes();
    println!("tools at first: {:?}", names(&client));

    // A plug-in loads: its tool reaches every connected client.
    agent.tools().add(ToolSpec::named("translate"), |_ctx: ToolContext, text: Value| async move {
        Ok::<_, ToolError>(Value::from(format!("«{}»", text.as_str().unwrap_or_default())))
    });
    changes.next().await;
    println!("after add: {:?}", names(&client));
    let done = client.invoke("translate", Value::from("hello")).await?.result().await?;
    println!("translate → {}", done.result);

    agent.tools().remove("translate");
    changes.next().await;
    println!("after remove: {:?}", names(&client));
    Ok(())
}

fn names(client: &asp_tokio::Client) -> Vec<String> {
    client.peer_tools().into_iter().map(|t| t.name).collect()
}
