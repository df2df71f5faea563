//! An agent with a typed tool and a streaming tool, and a client calling
//! both, in one process (port 0, nothing written to disk):
//!
//!     cargo run -p asp-tokio --example quickstart
use asp_tokio::{typed, ClientBuilder, ServerBuilder, ToolContext, ToolError};
use futures::StreamExt;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Add {
    a: i64,
    b: i64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (words, stream) = typed::streaming("words", "Streams a sentence", |_ctx: ToolContext, n: usize| {
        futures::stream::iter(
            "agents stream tokens over one socket".split(' ').take(n).map(|w| Ok::<_, ToolError>(format!("{w} "))),
        )
    });
    let agent = ServerBuilder::new("127.0.0.1:0".parse()?)
        .allow_plaintext() // wss:// with .tls_pem(cert, key)
        .typed_tool("add", "Adds two integers", |_ctx: ToolContext, args: Add| async move {
            Ok::<_, ToolError>(args.a + args.b)
        })
        .tool(words, stream)
        .bind()
        .await?
        .spawn();

    let client = ClientBuilder::new(agent.url()).allow_plaintext().connect().await?;
    let sum = client
        .invoke("add", asp_tokio::proto::rmpv::ext::to_value(serde_json::json!({"a": 2, "b": 40}))?)
        .await?
        .result()
        .await?;
    println!("add → {}", sum.result);
    let mut words = client.invoke("words", 5.into()).await?;
    while let Some(chunk) = words.next().await {
        print!("{}", String::from_utf8_lossy(&chunk)); // as the tool sends it
    }
    println!("\n{:?}", words.result().await?.metrics);
    Ok(())
}
