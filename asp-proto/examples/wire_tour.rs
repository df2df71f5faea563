//! A tour of the ASP/1 wire format: one agent session written as frames,
//! shown as bytes, then read back one byte at a time the way a slow
//! network would deliver it, with the streamed tokens printed as they
//! complete. Ends with a quick decode-rate measurement.
//!
//! Run with `cargo run --release -p asp-proto --example wire_tour`.

use std::io::Write;
use std::time::Instant;

use asp_proto::*;
use bytes::{Bytes, BytesMut};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tokens = ["Agent", " Socket", " streams", " tokens", " as", " raw", " STREAM", " frames", "."];
    let mut session = vec![
        Frame::Hello(ClientHello {
            versions: vec![1],
            name: Some("wire-tour".into()),
            caps: vec!["resume".into(), "progress".into()],
            token: None,
            resume: None,
            limits: PeerLimits::default(),
            tools: None,
        }),
        Frame::HelloReply(ServerHello {
            version: 1,
            cid: "c-tour".into(),
            limits: PeerLimits::default(),
            hb: Some(limits::DEFAULT_HEARTBEAT_MS),
            caps: vec!["resume".into()],
            resume: None,
            resumed: None,
            resume_error: None,
            tools: Some(vec![ToolSpec { desc: Some("Stream N tokens".into()), ..ToolSpec::named("tokens") }]),
        }),
        Frame::Invoke(RequestId(1), Invoke::new("tokens", Value::from(tokens.len()))),
        Frame::Progress(RequestId(1), Progress { progress: 0.0, total: Some(tokens.len() as f64), message: None }),
    ];
    session.extend(tokens.iter().map(|t| Frame::Stream(RequestId(1), Bytes::from_static(t.as_bytes()))));
    session.push(Frame::Complete(
        RequestId(1),
        Complete { result: Value::from(tokens.len()), metrics: Metrics { wall_us: 840, cpu_us: Some(120) } },
    ));

    println!("== the session as frames on the wire");
    let mut wire = BytesMut::new();
    for frame in &session {
        let start = wire.len();
        frame.encode(&mut wire)?;
        let bytes = &wire[start..];
        let shown = bytes.iter().take(24).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
        let more = if bytes.len() > 24 { " …" } else { "" };
        println!("{:>9} id {:<2} {:>3} B  {shown}{more}", frame.frame_type().name(), frame.request_id().0, bytes.len());
    }
    let wire = wire.freeze();
    println!("{} frames, {} bytes in all\n", session.len(), wire.len());

    println!("== read back one byte at a time");
    let started = Instant::now();
    let mut decoder = Decoder::default();
    let mut first_token = None;
    let mut decoded = 0;
    for byte in wire.iter() {
        let mut input: &[u8] = std::slice::from_ref(byte);
        while let Some(frame) = decoder.decode(&mut input)? {
            decoded += 1;
            match frame {
                Frame::Stream(_, chunk) => {
                    first_token.get_or_insert_with(|| started.elapsed());
                    print!("{}", String::from_utf8_lossy(&chunk));
                    std::io::stdout().flush()?;
                }
                Frame::Complete(_, c) => println!("\n[COMPLETE result={} wall={}µs]", c.result, c.metrics.wall_us),
                other => println!("[{}]", other.frame_type()),
            }
        }
    }
    assert_eq!(decoded, session.len());
    println!(
        "decoded {decoded} frames from {} one-byte chunks in {:?}; first token after {:?}\n",
        wire.len(),
        started.elapsed(),
        first_token.unwrap_or_default()
    );

    println!("== decode rate, 16-byte STREAM frames from one buffer (zero-copy)");
    let mut batch = BytesMut::new();
    let frame = Frame::Stream(RequestId(1), Bytes::from_static(&[b'x'; 16]));
    for _ in 0..100_000 {
        frame.encode(&mut batch)?;
    }
    let batch = batch.freeze();
    let started = Instant::now();
    let rounds = 20;
    let mut count = 0u64;
    for _ in 0..rounds {
        let mut input = batch.clone();
        while let Some(f) = decoder.decode(&mut input)? {
            count += std::hint::black_box(f).request_id().0 as u64;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{count} frames in {elapsed:?}: {:.1} M frames/s (benchmarks proper: cargo bench -p asp-proto)",
        count as f64 / elapsed.as_secs_f64() / 1e6
    );
    Ok(())
}
