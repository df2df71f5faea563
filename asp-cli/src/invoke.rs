//! `asp invoke`.

use std::io::Write;
use std::path::PathBuf;

use asp_proto::Value;
use asp_tokio::ClientBuilder;
use futures::StreamExt;

/// Parses JSON arguments into a MsgPack value.
pub(crate) fn parse_args(args: Option<&str>) -> Result<Value, String> {
    match args {
        None => Ok(Value::Nil),
        Some(text) => {
            let json: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("arguments are not JSON: {e}"))?;
            rmpv::ext::to_value(json).map_err(|e| e.to_string())
        }
    }
}

pub(crate) async fn run(
    url: String,
    tool: String,
    args: Option<String>,
    ca: Option<PathBuf>,
    token: Option<String>,
    plaintext: bool,
) -> Result<(), String> {
    let args = parse_args(args.as_deref())?;
    let mut builder = ClientBuilder::new(url);
    if let Some(ca) = ca {
        let pem = std::fs::read(&ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        builder = builder.trust_pem(&pem).map_err(|e| e.to_string())?;
    }
    if let Some(token) = token {
        builder = builder.token(token);
    }
    if plaintext {
        builder = builder.allow_plaintext();
    }
    let client = builder.connect().await.map_err(|e| e.to_string())?;
    let mut inv = client.invoke(tool, args).await.map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout();
    let mut last_progress = None;
    while let Some(chunk) = inv.next().await {
        stdout.write_all(&chunk).and_then(|_| stdout.flush()).map_err(|e| e.to_string())?;
        if let Some(p) = inv.progress().cloned().filter(|p| Some(p.progress) != last_progress) {
            last_progress = Some(p.progress);
            let total = p.total.map(|t| format!("/{t}")).unwrap_or_default();
            eprint!("\r[progress {}{total}]", p.progress);
        }
    }
    match inv.result().await {
        Ok(done) => {
            println!();
            if last_progress.is_some() {
                eprintln!();
            }
            let cpu = done.metrics.cpu_us.map(|c| format!(", cpu {c} µs")).unwrap_or_default();
            eprintln!("result: {}  (wall {} µs{cpu})", done.result, done.metrics.wall_us);
            Ok(())
        }
        Err(e) => Err(format!("invocation failed: {e}")),
    }
}
