//! The Rust side of the browser client's figures (clients/js/bench/figures.mjs):
//! echo round trip p50 and the `tokens` streaming rate against a running
//! `asp serve`, printed as one JSON line. A current-thread runtime, like the
//! browser's one JS thread.
//!
//!     cargo run --release -p asp-tokio --example client_figures -- ws://127.0.0.1:PORT/v1/agent-socket [CALLS] [TOKENS]
use std::time::Instant;

use asp_tokio::proto::Value;
use asp_tokio::ClientBuilder;
use futures::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: client_figures URL [CALLS] [TOKENS]")?;
    let calls: usize = args.next().map_or(Ok(2000), |a| a.parse())?;
    let tokens: u64 = args.next().map_or(Ok(50_000), |a| a.parse())?;
    let mut builder = ClientBuilder::new(url.as_str());
    if url.starts_with("ws://") {
        builder = builder.allow_plaintext();
    }
    let client = builder.connect().await?;

    let echo_args = Value::Map(vec![(Value::from("q"), Value::from("hi"))]);
    let mut rtts = Vec::with_capacity(calls);
    for i in 0..calls + calls / 10 {
        let started = Instant::now();
        client.invoke("echo", echo_args.clone()).await?.result().await?;
        if i >= calls / 10 {
            rtts.push(started.elapsed().as_secs_f64() * 1e6); // after a warm-up tenth
        }
    }
    rtts.sort_by(f64::total_cmp);

    let stream_args =
        Value::Map(vec![(Value::from("n"), Value::from(tokens)), (Value::from("delay_ms"), Value::from(0))]);
    // The best of three after an untimed run, as the JS side measures.
    let (mut seconds, mut bytes) = (f64::INFINITY, 0usize);
    for run in 0..4 {
        let started = Instant::now();
        let mut call = client.invoke("tokens", stream_args.clone()).await?;
        bytes = 0;
        while let Some(chunk) = call.next().await {
            bytes += chunk.len();
        }
        call.result().await?;
        if run > 0 {
            seconds = seconds.min(started.elapsed().as_secs_f64());
        }
    }
    println!(
        "{{\"client\":\"rust\",\"echo_p50_us\":{:.1},\"tokens_per_s\":{:.0},\"mib_per_s\":{:.2}}}",
        rtts[rtts.len() / 2],
        tokens as f64 / seconds,
        bytes as f64 / seconds / 1048576.0
    );
    Ok(())
}
