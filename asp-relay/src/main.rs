//! `asp-relay`: hold ASP/1 client sessions and run their tools on a
//! serverless function over HTTP. Every flag can also be set from the
//! environment (`ASP_RELAY_…`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use asp_relay::proto::ToolSpec;
use asp_relay::{BodyEncoding, RelayBuilder, RelayConfig};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "asp-relay",
    version,
    about = "Agent Socket relay: wss:// sessions for serverless agent functions",
    after_help = "Logging: ASP_LOG (or RUST_LOG) picks what is logged, in the tracing EnvFilter syntax, \
                  e.g. ASP_LOG=debug (default: warn,asp_relay=info,asp_relay_proto=info). Logs go to stderr, in colour only on a \
                  terminal; stdout carries the endpoint lines (relay, management, function, node)."
)]
struct Args {
    /// Log lines on stderr as `text` or `json` (one object per line).
    #[arg(long, env = "ASP_RELAY_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// The function's base URL; the relay posts to {function}/invoke.
    #[arg(long, env = "ASP_RELAY_FUNCTION")]
    function: String,
    /// Where clients connect.
    #[arg(long, env = "ASP_RELAY_LISTEN", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// The WebSocket upgrade path.
    #[arg(long, env = "ASP_RELAY_PATH", default_value = "/v1/agent-socket")]
    path: String,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "ASP_RELAY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "ASP_RELAY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Generate a self-signed certificate for localhost and write it here (PEM), for trying things out.
    #[arg(long, env = "ASP_RELAY_SELF_SIGNED", conflicts_with_all = ["tls_cert", "plaintext"])]
    self_signed: Option<PathBuf>,
    /// Serve plain ws:// (behind a TLS-terminating proxy).
    #[arg(long, env = "ASP_RELAY_PLAINTEXT")]
    plaintext: bool,
    /// Serve the management API here (plain HTTP; keep it private).
    #[arg(long, env = "ASP_RELAY_MANAGEMENT_LISTEN", requires = "management_secret")]
    management_listen: Option<SocketAddr>,
    /// The management API's shared secret (Authorization: Bearer ...).
    #[arg(long, env = "ASP_RELAY_MANAGEMENT_SECRET", hide_env_values = true)]
    management_secret: Option<String>,
    /// Sent to the function as Authorization: Bearer ...
    #[arg(long, env = "ASP_RELAY_FUNCTION_TOKEN", hide_env_values = true)]
    function_token: Option<String>,
    /// Extra CA certificate (PEM) trusted for an https:// function.
    #[arg(long, env = "ASP_RELAY_FUNCTION_CA")]
    function_ca: Option<PathBuf>,
    /// Client bearer tokens accepted (repeat, or comma-separated); none: any client.
    #[arg(long = "client-token", env = "ASP_RELAY_CLIENT_TOKENS", value_delimiter = ',', hide_env_values = true)]
    client_tokens: Vec<String>,
    /// Tools announced in HELLO: a JSON array of {"name", "desc", "input", ...}.
    #[arg(long, env = "ASP_RELAY_TOOLS")]
    tools: Option<PathBuf>,
    /// Encode request bodies as MsgPack instead of JSON.
    #[arg(long, env = "ASP_RELAY_MSGPACK")]
    msgpack: bool,
    /// Call {function}/connect and /disconnect around each session.
    #[arg(long, env = "ASP_RELAY_LIFECYCLE_CALLS")]
    lifecycle_calls: bool,
    /// Connections held at once.
    #[arg(long, env = "ASP_RELAY_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Function calls in flight at once.
    #[arg(long, env = "ASP_RELAY_MAX_CALLS", default_value_t = 1_000)]
    max_calls: usize,
    /// Client transports at once before their ASP handshake.
    #[arg(long, env = "ASP_RELAY_MAX_PENDING", default_value_t = 1024)]
    max_pending: usize,
    /// Function calls one connection may have in flight (its share).
    #[arg(long, env = "ASP_RELAY_MAX_CALLS_PER_CONNECTION", default_value_t = 32)]
    max_calls_per_connection: usize,
    /// Accept browser upgrades only from this `Origin` (repeat for more);
    /// others get 403.
    #[arg(long = "origin", env = "ASP_RELAY_ORIGINS", value_delimiter = ',')]
    origins: Vec<String>,
    /// Largest function state kept per connection, in bytes.
    #[arg(long, env = "ASP_RELAY_MAX_STATE_BYTES", default_value_t = 64 * 1024)]
    max_state_bytes: usize,
    /// Bytes of one call's body held while its client has no credit.
    #[arg(long, env = "ASP_RELAY_BODY_WINDOW", default_value_t = 64 * 1024)]
    body_window: usize,
    /// Milliseconds the function has to send its response head.
    #[arg(long, env = "ASP_RELAY_RESPONSE_TIMEOUT_MS", default_value_t = 30_000)]
    response_timeout_ms: u64,
    /// Milliseconds the function's body may stall.
    #[arg(long, env = "ASP_RELAY_IDLE_TIMEOUT_MS", default_value_t = 30_000)]
    idle_timeout_ms: u64,
    /// Milliseconds a call may run in all.
    #[arg(long, env = "ASP_RELAY_CALL_TIMEOUT_MS", default_value_t = 900_000)]
    call_timeout_ms: u64,
    /// Milliseconds open invocations get to finish on SIGTERM or SIGINT
    /// (a second signal stops at once).
    #[arg(long, env = "ASP_RELAY_DRAIN_MS", default_value_t = 10_000)]
    drain_ms: u64,
    /// Milliseconds between PINGs to each client (SPEC.md §9); a client
    /// acknowledges what it received with each PONG.
    #[arg(long, env = "ASP_RELAY_HEARTBEAT_MS", default_value_t = 15_000)]
    heartbeat_ms: u64,
    /// Core tasks the sessions are split among (0: one per CPU).
    #[arg(long, env = "ASP_RELAY_SHARDS", default_value_t = 0)]
    shards: usize,
    /// Run as one node of a cluster sharing this Redis server
    /// (redis://HOST:PORT[/DB]); exits with status 69 when it cannot be reached.
    #[arg(long, env = "ASP_RELAY_CLUSTER")]
    cluster: Option<String>,
    /// AID PKA key (Ed25519 PKCS#8 PEM): sign upgrade responses for clients
    /// that ask the endpoint to prove the key its AID record publishes.
    #[arg(long, env = "ASP_RELAY_PKA_KEY")]
    pka_key: Option<PathBuf>,
    /// The aid1 key id (`i`) the PKA key signs as.
    #[arg(long, env = "ASP_RELAY_PKA_KID", default_value = "g1")]
    pka_kid: String,
}

/// How log lines are written.
#[derive(Copy, Clone, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// What is logged without `ASP_LOG`: the relay's own lines and its core's
/// (connections opened and closed, refused clients) at info, others' warnings.
const DEFAULT_LOG: &str = "warn,asp_relay=info,asp_relay_proto=info";

/// Logs go to stderr (stdout carries the endpoint lines scripts read),
/// filtered by `ASP_LOG` (or `RUST_LOG`), in colour only on a terminal.
fn init_logging(format: LogFormat) {
    let filter = std::env::var("ASP_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
}

/// Exit status when the cluster store cannot be reached at start
/// (`EX_UNAVAILABLE` of sysexits.h).
const EXIT_STORE_UNAVAILABLE: i32 = 69;

#[tokio::main]
async fn main() {
    // Connections are capped below the descriptor limit; raise it as far as
    // the hard limit allows first.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let args = Args::parse();
    init_logging(args.log_format);
    if let Err(e) = run(args).await {
        eprintln!("asp-relay: {e}");
        let unavailable =
            e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
        std::process::exit(if unavailable { EXIT_STORE_UNAVAILABLE } else { 1 });
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = RelayConfig {
        encoding: if args.msgpack { BodyEncoding::MsgPack } else { BodyEncoding::Json },
        max_connections: args.max_connections,
        max_calls: args.max_calls,
        max_calls_per_connection: args.max_calls_per_connection,
        max_state_bytes: args.max_state_bytes,
        body_window: args.body_window,
        response_timeout: Duration::from_millis(args.response_timeout_ms),
        idle_timeout: Duration::from_millis(args.idle_timeout_ms),
        call_timeout: Duration::from_millis(args.call_timeout_ms),
        lifecycle_calls: args.lifecycle_calls,
        function_token: args.function_token,
        client_tokens: args.client_tokens.into_iter().filter(|t| !t.is_empty()).collect(),
        ..RelayConfig::default()
    };
    config.session.heartbeat_interval = Duration::from_millis(args.heartbeat_ms.max(1));
    if let Some(path) = &args.tools {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let tools: Vec<ToolSpec> = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        config.session.tools = tools.into();
    }
    let mut builder = RelayBuilder::new(args.listen, args.function.clone())
        .path(args.path)
        .config(config)
        .max_pending(args.max_pending);
    if let Some(path) = &args.pka_key {
        builder = builder.pka_key(asp_driver::read_pka_key(path, &args.pka_kid).map_err(|e| format!("--pka-key {e}"))?);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        builder = builder.tls_pem(&std::fs::read(cert)?, &std::fs::read(key)?)?;
    } else if let Some(path) = &args.self_signed {
        let (cert, key) = asp_relay::self_signed_certificate()?;
        std::fs::write(path, &cert)?;
        builder = builder.tls_pem(cert.as_bytes(), key.as_bytes())?;
    } else if args.plaintext {
        builder = builder.allow_plaintext();
    } else {
        return Err("give --tls-cert/--tls-key, --self-signed FILE, or --plaintext".into());
    }
    let origins: Vec<String> = args.origins.into_iter().filter(|o| !o.is_empty()).collect();
    if !origins.is_empty() {
        builder = builder.allowed_origins(origins);
    }
    if let Some(addr) = args.management_listen {
        builder = builder.management(addr, args.management_secret.unwrap_or_default());
    }
    if let Some(path) = &args.function_ca {
        builder = builder.function_ca_pem(&std::fs::read(path)?);
    }
    if args.shards > 0 {
        builder = builder.shards(args.shards);
    }
    if let Some(url) = args.cluster {
        builder = builder.cluster(url);
    }
    // Prometheus text at GET /metrics on the management listener: the
    // relay's counters and the driver's, recorded here.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("installing the metrics recorder: {e}"))?;
    builder = builder.metrics_endpoint(move || recorder.render());
    let relay = builder.bind().await?.spawn();
    // One line per endpoint on stdout, for scripts and tests that start the relay.
    println!("relay {}", relay.url());
    if let Some(url) = relay.management_url() {
        println!("management {url}");
    }
    println!("function {}", args.function);
    if let Some(node) = relay.node_id() {
        println!("node {node}");
    }
    tracing::info!(url = relay.url(), node = relay.node_id(), function = %args.function, "relay started");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!(drain_ms = args.drain_ms, "draining (a second signal stops at once)");
    let clean = tokio::select! {
        clean = relay.drain(Duration::from_millis(args.drain_ms)) => clean,
        _ = tokio::signal::ctrl_c() => false,
        _ = terminate.recv() => false,
    };
    relay.shutdown();
    if clean {
        tracing::info!("drained; stopped");
    } else {
        tracing::warn!("stopped with connections still open");
    }
    Ok(())
}
