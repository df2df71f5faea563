//! A client for the server example: invoke `shout` and print the output as
//! it streams in.
//!
//!     cargo run -p asp-tokio --example client -- URL CERT
use asp_tokio::proto::Value;
use asp_tokio::ClientBuilder;
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(cert)) = (args.next(), args.next()) else {
        return Err("usage: client URL CERT (as the server example prints them)".into());
    };
    let client = ClientBuilder::new(url).trust_pem(&std::fs::read(cert)?)?.connect().await?;
    let mut shout = client.invoke("shout", Value::from("agents stream tokens")).await?;
    while let Some(chunk) = shout.next().await {
        print!("{}", String::from_utf8_lossy(&chunk));
    }
    let done = shout.result().await?;
    println!("\nresult {} in {} µs", done.result, done.metrics.wall_us);
    Ok(())
}
