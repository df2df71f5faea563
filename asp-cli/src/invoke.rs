//! `asp invoke` and `asp tools`: for people and for scripts, in the manner
//! of grpcurl. Streamed output goes to stdout as it arrives; with `--json`
//! the result follows on stdout as one JSON line. Progress, metrics and
//! errors go to stderr, each on its own line. The exit status says what
//! failed ([`Failure::exit_code`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use asp_driver::{ConnectError, ConnectionState};
use asp_proto::{ErrorClass, ErrorCode, Invoke, Value};
use asp_tokio::{Client, ClientBuilder};
use futures::StreamExt;

/// Why `asp invoke` or `asp tools` failed; each has its exit status.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A bad argument, file or flag (exit 1).
    Usage(String),
    /// TCP, DNS or the WebSocket upgrade (exit 3).
    Connect(String),
    /// The TLS handshake or certificate (exit 4).
    Tls(String),
    /// The server refused the credentials (exit 5).
    Auth(String),
    /// No such tool (exit 6).
    UnknownTool(String),
    /// The tool, or the connection under it, failed (exit 7).
    Tool(String),
    /// `--timeout` passed (exit 8).
    Timeout(String),
}

impl Failure {
    /// The documented exit status (`asp invoke --help`).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 1,
            Failure::Connect(_) => 3,
            Failure::Tls(_) => 4,
            Failure::Auth(_) => 5,
            Failure::UnknownTool(_) => 6,
            Failure::Tool(_) => 7,
            Failure::Timeout(_) => 8,
        }
    }

    fn of_connect(error: ConnectError) -> Failure {
        let text = error.to_string();
        match &error {
            ConnectError::Rejected(reason) if reason.code.class() == ErrorClass::Auth => Failure::Auth(text),
            ConnectError::Rejected(reason) if reason.code == ErrorCode::HANDSHAKE_TIMEOUT => Failure::Timeout(text),
            ConnectError::TlsConfig(_) => Failure::Usage(text),
            ConnectError::Url(_) => Failure::Usage(text),
            ConnectError::Tls(_) | ConnectError::WebSocket(asp_driver::tungstenite::Error::Tls(_)) => {
                Failure::Tls(text)
            }
            ConnectError::Timeout(_) => Failure::Timeout(text),
            ConnectError::WebSocket(asp_driver::tungstenite::Error::Io(e)) if is_tls(e) => Failure::Tls(text),
            _ => Failure::Connect(text),
        }
    }
}

/// rustls reports certificate problems as I/O errors wrapping its own.
fn is_tls(error: &std::io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, text) = match self {
            Failure::Usage(t) => ("", t),
            Failure::Connect(t) => ("cannot connect: ", t),
            Failure::Tls(t) => ("TLS: ", t),
            Failure::Auth(t) => ("not authorized: ", t),
            Failure::UnknownTool(t) => ("unknown tool: ", t),
            Failure::Tool(t) => ("the tool failed: ", t),
            Failure::Timeout(t) => ("timed out: ", t),
        };
        write!(f, "{what}{text}")
    }
}

/// Where the server is and how to reach it.
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) ca: Option<PathBuf>,
    pub(crate) token: Option<String>,
    pub(crate) plaintext: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) connect_timeout: Duration,
    /// `--stdio`: the agent to start, speaking ASP on its stdin/stdout.
    pub(crate) stdio: Option<Vec<String>>,
}

/// What to invoke.
pub(crate) struct Call {
    pub(crate) tool: String,
    /// JSON text, `@FILE`, or `-` for stdin.
    pub(crate) args: Option<String>,
    /// `KEY=VALUE` pairs for the INVOKE's `meta`.
    pub(crate) meta: Vec<String>,
    /// The INVOKE's `timeout`, in ms.
    pub(crate) deadline_ms: Option<u32>,
    pub(crate) json: bool,
}

/// Parses JSON arguments (text, `@FILE` or `-` for stdin) into a MsgPack value.
pub(crate) fn parse_args(args: Option<&str>) -> Result<Value, String> {
    let text = match args {
        None => return Ok(Value::Nil),
        Some("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| format!("reading arguments from stdin: {e}"))?;
            text
        }
        Some(path) if path.starts_with('@') => {
            std::fs::read_to_string(&path[1..]).map_err(|e| format!("{}: {e}", &path[1..]))?
        }
        Some(text) => text.to_owned(),
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("the arguments are not JSON ({e}): {text:.60}"))?;
    rmpv::ext::to_value(json).map_err(|e| e.to_string())
}

fn to_json(value: &Value) -> serde_json::Value {
    rmpv::ext::from_value(value.clone()).unwrap_or(serde_json::Value::Null)
}

/// Runs `work` within the target's `--timeout`, if any.
async fn within<T>(
    target: &Target,
    what: &str,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match target.timeout {
        None => work.await,
        Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(Failure::Timeout(format!("{what} took longer than {} ms (--timeout)", limit.as_millis())))
        }),
    }
}

/// Starts the `--stdio` agent and connects over its pipes.
async fn connect_stdio(target: &Target, command: &[String]) -> Result<Client, Failure> {
    let (program, args) =
        command.split_first().ok_or_else(|| Failure::Usage("--stdio needs a command after `--`".into()))?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Failure::Connect(format!("{program}: {e}")))?;
    let pipes = asp_tokio::child_stdio(&mut child).expect("both pipes were asked for");
    // The child ends when its stdin closes, with us; reap it then.
    tokio::spawn(async move { child.wait().await });
    let mut builder = ClientBuilder::new("stdio:");
    if let Some(token) = &target.token {
        builder = builder.token(token.clone());
    }
    within(target, "connecting", async { builder.connect_stream(pipes).await.map_err(Failure::of_connect) }).await
}

/// Connects to the target, reporting reconnects and drains on stderr.
pub(crate) async fn connect(target: &Target) -> Result<Client, Failure> {
    if let Some(command) = &target.stdio {
        return connect_stdio(target, command).await;
    }
    let mut builder = ClientBuilder::new(target.url.clone());
    if let Some(ca) = &target.ca {
        let pem = std::fs::read(ca).map_err(|e| Failure::Usage(format!("--ca {}: {e}", ca.display())))?;
        builder = builder.trust_pem(&pem).map_err(|e| Failure::Usage(format!("--ca {}: {e}", ca.display())))?;
    }
    if let Some(token) = &target.token {
        builder = builder.token(token.clone());
    }
    if target.plaintext {
        builder = builder.allow_plaintext();
    }
    builder = builder.connect_timeout(target.connect_timeout);
    let client = within(target, "connecting", async { builder.connect().await.map_err(Failure::of_connect) }).await?;
    // Reconnects and drains on their own stderr lines, as they happen; the
    // end is reported by whatever was waiting on the connection.
    let mut states = client.state_changes();
    tokio::spawn(async move {
        while let Some(state) = states.next().await {
            if !matches!(state, ConnectionState::Closed(_) | ConnectionState::Connected { .. }) {
                eprintln!("asp: {state}");
            }
        }
    });
    Ok(client)
}

/// `asp invoke`.
pub(crate) async fn run(target: Target, call: Call) -> Result<(), Failure> {
    let args = parse_args(call.args.as_deref()).map_err(Failure::Usage)?;
    let mut meta = BTreeMap::new();
    for pair in &call.meta {
        let (key, value) =
            pair.split_once('=').ok_or_else(|| Failure::Usage(format!("--meta {pair}: expected KEY=VALUE")))?;
        meta.insert(key.to_owned(), value.to_owned());
    }
    let client = connect(&target).await?;
    let invoke = Invoke { timeout: call.deadline_ms, meta, ..Invoke::new(call.tool.clone(), args) };
    within(&target, "the invocation", async {
        let mut inv = client.invoke_with(invoke).await.map_err(|e| Failure::Tool(e.to_string()))?;
        let mut stdout = std::io::stdout();
        let mut last_progress = None;
        let mut wrote = false;
        let mut report = |progress: Option<&asp_proto::Progress>| {
            if let Some(p) = progress.filter(|p| Some(p.progress) != last_progress) {
                last_progress = Some(p.progress);
                let total = p.total.map(|t| format!("/{t}")).unwrap_or_default();
                eprintln!("progress {}{total}", p.progress);
            }
        };
        while let Some(chunk) = inv.next().await {
            stdout.write_all(&chunk).and_then(|_| stdout.flush()).map_err(|e| Failure::Usage(e.to_string()))?;
            wrote = true;
            report(inv.progress());
        }
        report(inv.progress());
        match inv.result().await {
            Ok(done) => {
                if call.json {
                    if wrote {
                        println!();
                    }
                    let line = serde_json::json!({
                        "result": to_json(&done.result),
                        "metrics": { "wall_us": done.metrics.wall_us, "cpu_us": done.metrics.cpu_us },
                    });
                    println!("{line}");
                } else {
                    if wrote {
                        println!();
                    }
                    println!("{}", to_json(&done.result));
                }
                let cpu = done.metrics.cpu_us.map(|c| format!(", cpu {c} µs")).unwrap_or_default();
                eprintln!("done in {} µs{cpu}", done.metrics.wall_us);
                Ok(())
            }
            Err(e) if e.code == ErrorCode::UNKNOWN_TOOL => {
                Err(Failure::UnknownTool(format!("{} {}", e.code, e.message)))
            }
            Err(e) if e.code == ErrorCode::DEADLINE_EXCEEDED => {
                Err(Failure::Timeout(format!("{} {}", e.code, e.message)))
            }
            Err(e) => Err(Failure::Tool(format!("{} {}", e.code, e.message))),
        }
    })
    .await
}

/// `asp tools`: the server's tools, with their schemas.
pub(crate) async fn list(target: Target, json: bool) -> Result<(), Failure> {
    let client = connect(&target).await?;
    let tools = client.peer_tools();
    if json {
        let tools: Vec<serde_json::Value> = tools
            .iter()
            .map(|t| serde_json::json!({ "name": t.name, "desc": t.desc, "input": to_json(&t.input), "output": to_json(&t.output) }))
            .collect();
        println!("{}", serde_json::Value::Array(tools));
    } else {
        for tool in &tools {
            println!("{}\t{}", tool.name, tool.desc.as_deref().unwrap_or(""));
        }
    }
    Ok(())
}
