//! A minimal client on async-std: invoke `shout` on the server example and
//! print the output as it streams in.
//!
//! The client runs on a [`CurrentThread`]: its connection task shares this
//! thread with `main`, as on Tokio's current-thread runtime, instead of
//! waking `main` from an executor thread for every message.
//!
//!     cargo run -p asp-async-std --example async_std_client
use asp_async_std::proto::Value;
use asp_async_std::{ClientBuilder, CurrentThread};
use futures::StreamExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    CurrentThread::new().block_on(async {
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
    })
}
