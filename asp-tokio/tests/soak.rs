//! Connection churn does not leak: 10,000 connect/close cycles, each
//! announcing 48 KiB of client tools, against one server. Its own test
//! binary, so the process's resident memory is this test's alone.

use std::time::Duration;

use asp_tokio::proto::{ErrorCode, SessionConfig, ToolSpec, Value};
use asp_tokio::{ClientBuilder, ServerBuilder, ToolContext, ToolError};

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn client_tools() -> Vec<ToolSpec> {
    (0..96).map(|i| ToolSpec { desc: Some("d".repeat(500)), ..ToolSpec::named(format!("client-tool-{i}")) }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_with_tools_leave_no_trace() {
    let cycles: usize = std::env::var("ASP_SOAK_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let server = ServerBuilder::new("127.0.0.1:0".parse().unwrap())
        .allow_plaintext()
        .tool(ToolSpec::named("echo"), |_c: ToolContext, a: Value| async move { Ok::<_, ToolError>(a) })
        .bind()
        .await
        .unwrap()
        .spawn();
    let tools = client_tools();
    let cycle = |tools: Vec<ToolSpec>| {
        let url = server.url().to_owned();
        async move {
            let config = SessionConfig { resume: false, ..SessionConfig::default() };
            let mut builder = ClientBuilder::new(&url).allow_plaintext().session_config(config);
            for tool in tools {
                builder = builder.tool(tool, |_c: ToolContext, a: Value| async move { Ok::<_, ToolError>(a) });
            }
            let client = builder.connect().await.unwrap();
            client.close(ErrorCode::NO_ERROR, "bye").unwrap();
            client.closed().await;
        }
    };
    // Warm up allocator pools and the runtime, then measure.
    for _ in 0..500 {
        cycle(tools.clone()).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss();
    for _ in 0..cycles {
        cycle(tools.clone()).await;
    }
    // Let the server's tasks for the last connections finish.
    for _ in 0..50 {
        if server.connections().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = rss();
    assert!(server.connections().is_empty(), "{} connections still open", server.connections().len());
    let growth = after.saturating_sub(before);
    let per_cycle = growth / cycles as u64;
    println!("soak: {cycles} cycles, RSS {before} -> {after} bytes, {per_cycle} bytes per cycle");
    // The tool set each connection announced is ~48 KiB; keeping it would
    // grow by that per cycle. The bound allows allocator noise only.
    assert!(per_cycle < 1024, "RSS grew {growth} bytes over {cycles} cycles ({per_cycle} per cycle)");
}
