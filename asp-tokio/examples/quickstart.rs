//! An agent with a typed tool and a streaming tool, and a client calling
//! both, in one process (port 0, nothing written to disk):
//!
//!     cargo run -p asp-tokio --example quickstart
use asp_tokio::{typed, ClientBuilder, ServerBuilder, ToolContext, ToolError};
use futures::StreamExt;

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Add {
    a: i64,
    b: i64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (words, stream) = typed::streaming("words", "Streams n words", |_ctx: ToolContext, n: usize| {
        let text = "agents stream tokens over one socket".split(' ').take(n);
        futures::stream::iter(text.map(|w| Ok::<_, ToolError>(format!("{w} "))))
    });
    let agent = ServerBuilder::new("127.0.0.1:0".parse()?)
        .allow_plaintext() // wss:// with .tls_pem(cert, key)
        .typed_tool(
            "add",
            "Adds two integers",
            |_ctx: ToolContext, x: Add| async move { Ok::<_, ToolError>(x.a + x.b) },
        )
        .tool(words, stream)
        .bind()
        .await?
        .spawn();

    let client = ClientBuilder::new(agent.url()).allow_plaintext().connect().await?;
    let sum: i64 = client.call("add", Add { a: 2, b: 40 }).await?;
    println!("add → {sum}");
    let mut words = client.invoke("words", 5.into()).await?;
    while let Some(chunk) = words.next().await {
        print!("{}", String::from_utf8_lossy(&chunk)); // as the tool sends it
    }
    println!();
    Ok(())
}
