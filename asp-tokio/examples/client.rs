//! A minimal client: invoke `shout` on the server example and print the
//! output as it streams in.
//!
//!     cargo run -p asp-tokio --example client
use asp_tokio::proto::Value;
use asp_tokio::ClientBuilder;
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = ClientBuilder::new("wss://127.0.0.1:9443/v1/agent-socket")
        .trust_pem(&std::fs::read("agent-cert.pem")?)?
        .connect()
        .await?;
    let mut shout = client.invoke("shout", Value::from("agents stream tokens")).await?;
    while let Some(chunk) = shout.next().await {
        print!("{}", String::from_utf8_lossy(&chunk));
    }
    let done = shout.result().await?;
    println!("\nresult {} in {} µs", done.result, done.metrics.wall_us);
    Ok(())
}
