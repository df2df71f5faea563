//! A minimal client on async-std: invoke `shout` on the server example and
//! print the output as it streams in.
//!
//!     cargo run -p asp-async-std --example async_std_client
use asp_async_std::proto::Value;
use asp_async_std::ClientBuilder;
use futures::StreamExt;

#[async_std::main]
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
