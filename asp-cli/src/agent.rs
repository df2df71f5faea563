//! The demo agent (`echo`, `tokens`, `sleep`, and `ask_client` and
//! `announce` to try calls and pushes towards the client), and `asp serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use asp_proto::{ErrorCode, ErrorInfo, Progress, ToolOp, ToolSpec, Value};
use asp_tokio::{ServerBuilder, ToolContext, ToolError};
use tokio::signal::unix::{signal, SignalKind};

/// Text the `tokens` tool streams, a word at a time, like a language model.
const TEXT: &str = "Agent Socket streams tokens over one WebSocket: binary frames, flow control, \
tools called in both directions, sessions that survive a dropped network, and no HTTP request per call.";

fn schema(json: serde_json::Value) -> Value {
    rmpv::ext::to_value(json).expect("JSON schemas convert to MsgPack")
}

/// Adds the demo tools to a server.
pub(crate) fn with_demo_tools(server: ServerBuilder) -> ServerBuilder {
    server
        .tool(
            ToolSpec { desc: Some("Returns its arguments".into()), ..ToolSpec::named("echo") },
            |_ctx: ToolContext, args: Value| async move { Ok::<_, ToolError>(args) },
        )
        .tool(
            ToolSpec {
                desc: Some("Streams n tokens, delay_ms apart".into()),
                input: schema(serde_json::json!({
                    "type": "object",
                    "properties": {"n": {"type": "integer"}, "delay_ms": {"type": "integer"}}
                })),
                ..ToolSpec::named("tokens")
            },
            tokens,
        )
        .tool(
            ToolSpec { desc: Some("Sleeps ms milliseconds".into()), ..ToolSpec::named("sleep") },
            |ctx: ToolContext, args: Value| async move {
                let ms = field(&args, "ms").unwrap_or(1000);
                ctx.progress(Progress::new(0.0).total(ms as f64).message("sleeping"))?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, ToolError>(Value::from(ms))
            },
        )
        .tool(
            ToolSpec {
                desc: Some("Calls the client's tool `tool` with `args` and returns its output and result".into()),
                input: schema(serde_json::json!({
                    "type": "object",
                    "properties": {"tool": {"type": "string"}, "args": {}},
                    "required": ["tool"]
                })),
                ..ToolSpec::named("ask_client")
            },
            ask_client,
        )
        .tool(
            ToolSpec {
                desc: Some("Pushes a tool named `name` to this client (TOOL_DEF add)".into()),
                input: schema(serde_json::json!({
                    "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]
                })),
                ..ToolSpec::named("announce")
            },
            |ctx: ToolContext, args: Value| async move {
                let name = text_field(&args, "name").ok_or_else(|| bad_args("`name` (a string) is required"))?;
                let spec = ToolSpec { desc: Some("Announced by `announce`".into()), ..ToolSpec::named(name.clone()) };
                ctx.connection().push_tools(ToolOp::Add, vec![spec])?;
                Ok::<_, ToolError>(Value::from(name))
            },
        )
}

fn bad_args(message: &str) -> ToolError {
    ToolError::from(ErrorInfo::new(ErrorCode::INVALID_ARGUMENTS, message))
}

fn text_field(args: &Value, key: &str) -> Option<String> {
    let value = args.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key))?.1.as_str()?;
    Some(value.to_owned())
}

/// A server→client call: the client's tool runs, its output and result
/// come back as this tool's result.
async fn ask_client(ctx: ToolContext, args: Value) -> Result<Value, ToolError> {
    let tool = text_field(&args, "tool").ok_or_else(|| bad_args("`tool` (a string) is required"))?;
    let inner = args.as_map().and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some("args"))).map(|(_, v)| v.clone());
    let mut call = ctx.connection().invoke(tool, inner.unwrap_or(Value::Nil)).await?;
    let mut output = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut call).await {
        output.extend_from_slice(&chunk);
    }
    let done = call.result().await.map_err(|e| ToolError::from(ErrorInfo::new(e.code, e.message)))?;
    Ok(Value::Map(vec![
        (Value::from("output"), Value::from(String::from_utf8_lossy(&output).into_owned())),
        (Value::from("result"), done.result),
    ]))
}

fn field(args: &Value, key: &str) -> Option<u64> {
    args.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).and_then(|(_, v)| v.as_u64())
}

async fn tokens(ctx: ToolContext, args: Value) -> Result<Value, ToolError> {
    let n = field(&args, "n").or_else(|| args.as_u64()).unwrap_or(16);
    let delay = Duration::from_millis(field(&args, "delay_ms").unwrap_or(20));
    let words: Vec<&str> = TEXT.split(' ').collect();
    for i in 0..n {
        if i > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let word = words[i as usize % words.len()];
        let token = if i == 0 { word.to_owned() } else { format!(" {word}") };
        ctx.send(token).await?;
        ctx.progress(Progress::new((i + 1) as f64).total(n as f64))?;
    }
    Ok(Value::from(n))
}

/// A self-signed certificate for localhost and 127.0.0.1: (cert PEM, key PEM).
/// With `extra` names (DNS names or IP addresses) besides those two.
pub(crate) fn self_signed(extra: &[String]) -> Result<(String, String), String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    names.extend(extra.iter().cloned());
    let cert = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    Ok((cert.cert.pem(), cert.signing_key.serialize_pem()))
}

/// Who may connect to `asp serve`.
#[derive(Debug, Default)]
pub(crate) struct Access {
    /// Allowed browser `Origin`s; empty allows any.
    pub(crate) origins: Vec<String>,
    /// Accepted bearer tokens; empty accepts every client.
    pub(crate) tokens: Vec<String>,
}

/// Where and how a server listens (`asp serve`, `asp mcp serve`).
pub(crate) struct Listen {
    pub(crate) bind: SocketAddr,
    /// PEM certificate chain and key; else a self-signed certificate.
    pub(crate) cert_key: Option<(PathBuf, PathBuf)>,
    /// Where to write the self-signed certificate.
    pub(crate) write_cert: Option<PathBuf>,
    /// More names for the self-signed certificate.
    pub(crate) sans: Vec<String>,
    pub(crate) plaintext: bool,
    pub(crate) access: Access,
    /// What open invocations get on SIGTERM or SIGINT.
    pub(crate) drain: Duration,
    /// The AID PKA key file and its kid.
    pub(crate) pka_key: Option<(PathBuf, String)>,
}

pub(crate) async fn serve(listen: Listen) -> Result<(), String> {
    let builder = configure(with_demo_tools(ServerBuilder::new(listen.bind)), &listen)?;
    let server = builder.bind().await.map_err(|e| format!("bind {}: {e}", listen.bind))?;
    println!("serving {} (tools: echo, tokens, sleep, ask_client, announce); Ctrl-C to stop", server.url());
    let handle = server.spawn();
    let mut stop = StopSignals::new()?;
    stop.first().await;
    stop.drain(handle, listen.drain).await;
    Ok(())
}

/// `asp serve --stdio`: the demo agent for one client on stdin/stdout.
pub(crate) async fn serve_stdio(listen: Listen) -> Result<(), String> {
    let listen = Listen { plaintext: true, ..listen };
    let service = configure(with_demo_tools(ServerBuilder::new(listen.bind)), &listen)?.into_service();
    service.serve_stream(asp_tokio::stdio()).await;
    Ok(())
}

/// TLS (a certificate from files, or a self-signed one made now) or
/// plaintext, and who may connect: what `asp serve` and `asp mcp serve`
/// share.
pub(crate) fn configure(mut builder: ServerBuilder, listen: &Listen) -> Result<ServerBuilder, String> {
    // Connections are capped below the descriptor limit; raise it as far as
    // the hard limit allows first.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    if !listen.access.origins.is_empty() {
        builder = builder.allowed_origins(listen.access.origins.clone());
    }
    if let Some((path, kid)) = &listen.pka_key {
        builder = builder.pka_key(asp_tokio::read_pka_key(path, kid).map_err(|e| format!("--pka-key {e}"))?);
    }
    if !listen.access.tokens.is_empty() {
        let tokens = listen.access.tokens.clone();
        builder = builder.auth(move |hello| {
            use subtle::ConstantTimeEq;
            let given = hello.token.as_deref().unwrap_or_default().as_bytes();
            // Constant time: the token is a secret.
            let ok = tokens.iter().any(|t| bool::from(t.as_bytes().ct_eq(given)));
            if ok {
                Ok(())
            } else if hello.token.is_none() {
                Err(ErrorInfo::new(ErrorCode::UNAUTHENTICATED, "a bearer token is required"))
            } else {
                Err(ErrorInfo::new(ErrorCode::UNAUTHENTICATED, "invalid token"))
            }
        });
    }
    if listen.plaintext {
        return Ok(builder.allow_plaintext());
    }
    let (cert, key) = match &listen.cert_key {
        Some((c, k)) => (
            std::fs::read(c).map_err(|e| format!("{}: {e}", c.display()))?,
            std::fs::read(k).map_err(|e| format!("{}: {e}", k.display()))?,
        ),
        None => {
            let (c, k) = self_signed(&listen.sans)?;
            if let Some(path) = &listen.write_cert {
                std::fs::write(path, &c).map_err(|e| format!("{}: {e}", path.display()))?;
                eprintln!("wrote the self-signed certificate to {}", path.display());
            }
            (c.into_bytes(), k.into_bytes())
        }
    };
    builder.tls_pem(&cert, &key).map_err(|e| e.to_string())
}

/// SIGINT and SIGTERM: the first drains, a second stops at once.
pub(crate) struct StopSignals {
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub(crate) fn new() -> Result<Self, String> {
        Ok(StopSignals { terminate: signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))? })
    }

    /// Waits for the first signal.
    pub(crate) async fn first(&mut self) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.terminate.recv() => {}
        }
    }

    /// GOAWAY to every client; open invocations get `drain` to finish,
    /// unless another signal comes.
    pub(crate) async fn drain(mut self, handle: asp_tokio::ServerHandle, drain: Duration) {
        eprintln!("draining for up to {} ms (a second signal stops at once)…", drain.as_millis());
        tokio::select! {
            () = handle.shutdown(drain) => {}
            _ = tokio::signal::ctrl_c() => eprintln!("stopped with connections still open"),
            _ = self.terminate.recv() => eprintln!("stopped with connections still open"),
        }
    }
}
