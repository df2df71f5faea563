//! Tools in both directions: the client offers `confirm`, and the agent's
//! `delete` asks the client through it before doing anything.
//!
//!     cargo run -p asp-tokio --example client_tools
use asp_tokio::proto::{ToolSpec, Value};
use asp_tokio::{ClientBuilder, ServerBuilder, ToolContext, ToolError};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let agent = ServerBuilder::new("127.0.0.1:0".parse()?)
        .allow_plaintext()
        .tool(ToolSpec::named("delete"), |ctx: ToolContext, args: Value| async move {
            // A call on the same connection, the other way.
            let answer = ctx.connection().invoke("confirm", args.clone()).await?.result().await?;
            if answer.result != Value::from(true) {
                return Err(ToolError::new(asp_tokio::proto::ErrorCode::FORBIDDEN, "the user said no"));
            }
            Ok(Value::from(format!("deleted {args}")))
        })
        .bind()
        .await?
        .spawn();

    let client = ClientBuilder::new(agent.url())
        .allow_plaintext()
        .tool(ToolSpec::named("confirm"), |_ctx: ToolContext, what: Value| async move {
            println!("agent asks: may I delete {what}? yes");
            Ok::<_, ToolError>(Value::from(true))
        })
        .connect()
        .await?;
    let done = client.invoke("delete", Value::from("draft.txt")).await?.result().await?;
    println!("{}", done.result);
    Ok(())
}
