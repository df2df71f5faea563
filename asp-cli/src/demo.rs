//! `asp demo`: a real server and client over `wss://` on 127.0.0.1.

use std::io::Write;
use std::time::{Duration, Instant};

use asp_proto::Value;
use asp_tokio::{ClientBuilder, ServerBuilder};
use futures::StreamExt;

use crate::agent::{self_signed, with_demo_tools};

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub(crate) async fn run(tokens: u64, token_delay_ms: u64, calls: usize) -> Result<(), String> {
    let (cert, key) = self_signed(&[])?;
    let server = with_demo_tools(ServerBuilder::new("127.0.0.1:0".parse().expect("address")))
        .tls_pem(cert.as_bytes(), key.as_bytes())
        .map_err(|e| e.to_string())?
        .bind()
        .await
        .map_err(|e| e.to_string())?
        .spawn();
    println!("server   {}  (self-signed certificate, generated now)", server.url());

    let started = Instant::now();
    let client = ClientBuilder::new(server.url())
        .trust_pem(cert.as_bytes())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let handshake = started.elapsed();
    println!(
        "client   connected as {} in {}  (TCP + TLS 1.3 + WebSocket upgrade + ASP HELLO)",
        client.connection_id().unwrap_or_default(),
        ms(handshake)
    );
    let tools: Vec<String> = client.peer_tools().into_iter().map(|t| t.name).collect();
    println!("tools    {}", tools.join(", "));

    println!("\n-- invoke tokens (n={tokens}, {token_delay_ms} ms apart), printed as they arrive:\n");
    let args = Value::Map(vec![
        (Value::from("n"), Value::from(tokens)),
        (Value::from("delay_ms"), Value::from(token_delay_ms)),
    ]);
    let started = Instant::now();
    let mut inv = client.invoke("tokens", args).await.map_err(|e| e.to_string())?;
    let mut first_token = None;
    let mut stdout = std::io::stdout();
    let mut received = 0;
    while let Some(chunk) = inv.next().await {
        first_token.get_or_insert_with(|| started.elapsed());
        received += 1;
        stdout.write_all(&chunk).and_then(|_| stdout.flush()).map_err(|e| e.to_string())?;
    }
    let done = inv.result().await.map_err(|e| e.to_string())?;
    let total = started.elapsed();
    println!("\n");
    if received as u64 != tokens || done.result != Value::from(tokens) {
        return Err(format!("expected {tokens} tokens, got {received} (result {})", done.result));
    }
    println!(
        "stream   {received} tokens; first after {}, all after {}; handler wall time {} µs",
        ms(first_token.unwrap_or_default()),
        ms(total),
        done.metrics.wall_us
    );

    println!("\n-- {calls} sequential echo round trips:");
    let mut rtts = Vec::with_capacity(calls);
    for i in 0..calls {
        let started = Instant::now();
        let echoed = client.invoke("echo", Value::from(i)).await.map_err(|e| e.to_string())?.result().await;
        rtts.push(started.elapsed());
        match echoed {
            Ok(done) if done.result == Value::from(i) => {}
            other => return Err(format!("echo {i} came back as {other:?}")),
        }
    }
    rtts.sort();
    let mean = rtts.iter().sum::<Duration>() / rtts.len().max(1) as u32;
    println!(
        "echo     p50 {}  p99 {}  max {}  mean {}",
        ms(percentile(&rtts, 0.50)),
        ms(percentile(&rtts, 0.99)),
        ms(*rtts.last().expect("calls > 0")),
        ms(mean)
    );

    let stats = client.stats().await.map_err(|e| e.to_string())?;
    println!(
        "client   {} frames / {} bytes out, {} frames / {} bytes in",
        stats.frames_out, stats.bytes_out, stats.frames_in, stats.bytes_in
    );
    server.shutdown(Duration::from_secs(2)).await;
    println!("\nok: server drained and closed");
    Ok(())
}
