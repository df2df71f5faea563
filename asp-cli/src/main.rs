//! `asp`: run a demo agent, invoke tools on any Agent Socket server, or run
//! the end-to-end demo (a real `wss://` server and client on this machine).
#![forbid(unsafe_code)]

mod agent;
mod aid;
mod conformance;
mod demo;
mod doctor;
mod inspect;
mod invoke;
mod mcp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Agent Socket (ASP/1) command line.
#[derive(Parser)]
#[command(name = "asp", version, about, after_help = LOGGING_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr as `text` or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
}

const EXIT_CODES_HELP: &str = "Exit status: 0 done; 1 bad arguments, files or flags; 2 usage (clap); 3 cannot \
    connect; 4 TLS; 5 not authorized; 6 unknown tool; 7 the tool (or the connection) failed; 8 --timeout or the \
    tool's deadline passed. Streamed output goes to stdout; progress, timings and errors to stderr.";

/// Where a server is and how to reach it.
#[derive(clap::Args)]
struct TargetArgs {
    /// The server, e.g. wss://127.0.0.1:9443/v1/agent-socket.
    url: String,
    /// Trust this CA or self-signed certificate (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Bearer token.
    #[arg(long)]
    token: Option<String>,
    /// Allow a ws:// URL.
    #[arg(long)]
    plaintext: bool,
    /// Give up after this many milliseconds (connecting, then the call).
    #[arg(long)]
    timeout: Option<u64>,
    /// Limit for TCP, TLS and the WebSocket upgrade together, in ms (each
    /// reconnect attempt too).
    #[arg(long, default_value_t = 10_000)]
    connect_timeout: u64,
}

impl TargetArgs {
    fn target(self) -> invoke::Target {
        invoke::Target {
            url: self.url,
            ca: self.ca,
            token: self.token,
            plaintext: self.plaintext,
            timeout: self.timeout.map(Duration::from_millis),
            connect_timeout: Duration::from_millis(self.connect_timeout),
            stdio: None,
        }
    }
}

const LOGGING_HELP: &str = "Logging: ASP_LOG (or RUST_LOG) picks what is logged, in the tracing \
    EnvFilter syntax, e.g. ASP_LOG=debug or ASP_LOG=asp_driver=trace (default: warn). Logs go to \
    stderr, in colour only on a terminal.";

/// How log lines are written.
#[derive(Copy, Clone, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr, filtered by `ASP_LOG` (or `RUST_LOG`; default `default`).
fn init_logging(format: LogFormat, default: &str) {
    let filter = std::env::var("ASP_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the demo agent (tools `echo`, `tokens`, `sleep`).
    Serve {
        #[command(flatten)]
        listen: ListenArgs,
        /// Serve one client on stdin and stdout instead of listening (an
        /// agent started as a child process: `asp invoke --stdio … -- asp
        /// serve --stdio`); nothing else is written to stdout.
        #[arg(long, conflicts_with_all = ["metrics", "write_cert", "cert"])]
        stdio: bool,
        /// Serve Prometheus metrics at http://ADDR/metrics (connections,
        /// invocations by tool and outcome, errors by code, latency, bytes).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
    },
    /// Bridge MCP and ASP: serve an MCP server's tools as an ASP agent, or
    /// an ASP agent's tools as an MCP server.
    Mcp {
        #[command(subcommand)]
        command: McpCommand,
    },
    /// Check an ASP server against the MUSTs of SPEC.md observable on the
    /// wire (framing, validation, handshake, limits, flow control, liveness,
    /// resume, closing); exit 1 when a check fails.
    Conformance {
        /// The server's URL (wss://, or ws:// for a plaintext server).
        url: String,
        /// PEM CA to trust (e.g. `asp serve --write-cert`).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Bearer token, if the server requires one.
        #[arg(long)]
        token: Option<String>,
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Invoke a tool and stream its output to stdout; progress and metrics
    /// go to stderr.
    #[command(after_help = EXIT_CODES_HELP)]
    ///
    /// With `--stdio` there is no URL: `asp invoke --stdio TOOL [ARGS] --
    /// COMMAND…` starts COMMAND and speaks ASP on its stdin and stdout (an
    /// agent run as a child process, e.g. `asp serve --stdio`).
    Invoke {
        #[command(flatten)]
        target: TargetArgs,
        /// The tool (with --stdio: its arguments).
        #[arg(required_unless_present = "stdio")]
        tool: Option<String>,
        /// Arguments as JSON, `@FILE` to read them from a file, or `-` for stdin.
        args: Option<String>,
        /// Start the command after `--` and speak ASP over its stdin/stdout.
        #[arg(long, requires = "command")]
        stdio: bool,
        /// The agent to start, with its arguments (after `--`; with --stdio).
        #[arg(last = true)]
        command: Vec<String>,
        /// Print the result on stdout as one JSON line (after the streamed output).
        #[arg(long)]
        json: bool,
        /// INVOKE metadata, `KEY=VALUE` (repeat for more).
        #[arg(long = "meta")]
        meta: Vec<String>,
        /// The tool's deadline (the INVOKE's `timeout`), in milliseconds.
        #[arg(long)]
        deadline: Option<u32>,
    },
    /// List the server's tools with their schemas.
    #[command(after_help = EXIT_CODES_HELP)]
    Tools {
        #[command(flatten)]
        target: TargetArgs,
        /// As a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Find the agent a domain announces (`_agent.<domain>` TXT).
    Discover {
        /// The domain.
        domain: String,
        /// Try `_agent._<protocol>.<domain>` first.
        #[arg(long)]
        protocol: Option<String>,
        /// Ask this DNS server (ADDR:PORT) instead of the system's.
        #[arg(long)]
        nameserver: Option<SocketAddr>,
        /// Do not try `https://<domain>/.well-known/agent` when DNS has nothing.
        #[arg(long)]
        no_fallback: bool,
        /// Limit for the DNS query and for the `.well-known` fetch, each, in ms.
        #[arg(long, default_value_t = 5_000)]
        timeout: u64,
        /// Print exactly one JSON object.
        #[arg(long)]
        json: bool,
        /// Diagnose: record found, parsed, deprecation, DNSSEC, the
        /// endpoint's TLS certificate and expiry, and its PKA proof, one line
        /// (code) each. Exit 0 healthy (warnings allowed), 1 record missing,
        /// invalid or deprecated, 3 TLS failed, 4 PKA proof failed, 2 bad
        /// arguments.
        #[arg(long)]
        check: bool,
        /// PEM CA to trust besides the system's (the endpoint, `.well-known`).
        #[arg(long, requires = "check")]
        ca: Option<PathBuf>,
        /// Apply the AID security policies of this mode: `strict` requires
        /// DNSSEC (the resolver's AD bit) and a key, and disables
        /// `.well-known`; `balanced` warns instead (exit 1 on ERR_SECURITY).
        #[arg(long, value_enum, conflicts_with = "check")]
        security: Option<SecurityArg>,
    },
    /// Serve the ASP Inspector on a local web page: connect to a server,
    /// list its tools and schemas, invoke with JSON arguments and watch the
    /// output stream, interrupt, see tool pushes, frames and RTT.
    Inspect {
        /// The server to connect to when the page opens (ws:// or wss://).
        url: Option<String>,
        /// Bearer token to fill in (the page can hold it too).
        #[arg(long)]
        token: Option<String>,
        /// Where the page is served; keep it on loopback.
        #[arg(long, default_value = "127.0.0.1:7656")]
        listen: SocketAddr,
    },
    /// AID discovery records (`_agent.<domain>` TXT).
    Aid {
        #[command(subcommand)]
        command: AidCommand,
    },
    /// A wss:// server and client on 127.0.0.1: streams tokens, then times
    /// 1,000 echo round trips.
    Demo {
        /// Tokens to stream.
        #[arg(long, default_value_t = 24)]
        tokens: u64,
        /// Delay between tokens, in ms (like a language model).
        #[arg(long, default_value_t = 25)]
        token_delay_ms: u64,
        /// Sequential echo calls to time.
        #[arg(long, default_value_t = 1000)]
        calls: usize,
    },
}

/// Where and how an ASP server listens: `asp serve` and `asp mcp serve`.
#[derive(clap::Args)]
struct ListenArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9443")]
    bind: SocketAddr,
    /// PEM certificate chain (with --key); without it a self-signed
    /// certificate for localhost and 127.0.0.1 is generated.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Where to write the generated certificate, for clients to trust.
    #[arg(long)]
    write_cert: Option<PathBuf>,
    /// Another name (DNS name or IP address) for the generated certificate,
    /// besides localhost and 127.0.0.1 (repeat for more).
    #[arg(long = "san", value_name = "NAME", conflicts_with = "cert")]
    sans: Vec<String>,
    /// Serve plain ws:// (loopback and tests only).
    #[arg(long)]
    plaintext: bool,
    /// Accept browser upgrades only from this `Origin` (repeat for more);
    /// others get 403. Requests without an `Origin` are not browsers and
    /// are accepted.
    #[arg(long = "origin")]
    origins: Vec<String>,
    /// Require this bearer token (in HELLO or `Authorization`; repeat, or
    /// give `a,b`, for more); other clients get UNAUTHENTICATED.
    #[arg(long = "token", value_delimiter = ',')]
    tokens: Vec<String>,
    /// Milliseconds open invocations get to finish on SIGTERM or SIGINT
    /// (a second signal stops at once).
    #[arg(long, default_value_t = 10_000)]
    drain_ms: u64,
    /// AID PKA key (Ed25519 PKCS#8 PEM, from `asp aid generate --pka-key`):
    /// sign upgrade responses for clients that ask the endpoint to prove the
    /// key its record publishes.
    #[arg(long, value_name = "FILE")]
    pka_key: Option<PathBuf>,
    /// The aid1 key id (`i`) the PKA key signs as.
    #[arg(long, default_value = "g1", requires = "pka_key")]
    pka_kid: String,
}

impl ListenArgs {
    fn listen(self) -> agent::Listen {
        let access = agent::Access {
            origins: self.origins,
            tokens: self.tokens.into_iter().filter(|t| !t.is_empty()).collect(),
        };
        agent::Listen {
            bind: self.bind,
            cert_key: self.cert.zip(self.key),
            write_cert: self.write_cert,
            sans: self.sans,
            plaintext: self.plaintext,
            access,
            drain: Duration::from_millis(self.drain_ms),
            pka_key: self.pka_key.map(|path| (path, self.pka_kid)),
        }
    }
}

#[derive(Subcommand)]
enum McpCommand {
    /// Serve an MCP server's tools to ASP clients: `asp mcp serve [FLAGS] --
    /// COMMAND ARGS…` starts it as a child (stdio), `--url` reaches one over
    /// Streamable HTTP. tools/list_changed → TOOL_DEF, progress → PROGRESS,
    /// INTERRUPT → notifications/cancelled (docs/MCP.md has the mapping).
    Serve {
        #[command(flatten)]
        listen: ListenArgs,
        /// When the MCP server exits: `restart` it (open calls fail with
        /// BACKEND_UNAVAILABLE), or drain and `exit` with status 1.
        #[arg(long, value_enum, default_value = "restart")]
        on_exit: OnExitArg,
        /// A Streamable HTTP MCP server (e.g. http://127.0.0.1:8000/mcp)
        /// instead of a command.
        #[arg(long, conflicts_with = "command", required_unless_present = "command")]
        url: Option<String>,
        /// The MCP server to start, with its arguments (after `--`).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Serve an ASP agent to MCP clients: on stdio (for an MCP client that
    /// starts this command), or with `--http ADDR` over Streamable HTTP at
    /// http://ADDR/mcp. STREAM output → progress notifications and content,
    /// TOOL_DEF → tools/list_changed, notifications/cancelled → INTERRUPT.
    Expose {
        #[command(flatten)]
        target: TargetArgs,
        /// Serve Streamable HTTP here instead of stdio.
        #[arg(long, value_name = "ADDR")]
        http: Option<SocketAddr>,
    },
}

/// `--on-exit`.
#[derive(Copy, Clone, Debug, clap::ValueEnum)]
enum OnExitArg {
    Restart,
    Exit,
}

/// `asp discover --security`.
#[derive(Copy, Clone, clap::ValueEnum)]
enum SecurityArg {
    Balanced,
    Strict,
}

#[derive(Subcommand)]
enum AidCommand {
    /// Parse one TXT record string; exit 0 when valid, 1 when not.
    Parse {
        /// Print exactly one JSON object.
        #[arg(long)]
        json: bool,
        /// The record, e.g. "v=aid1;p=websocket;u=wss://agent.example.com/v1/agent-socket".
        record: String,
    },
    /// Print the canonical record (short keys, in order).
    Generate {
        /// The agent's URI (wss:// for websocket).
        #[arg(long)]
        uri: String,
        /// The protocol token (websocket, mcp, …).
        #[arg(long)]
        proto: String,
        /// Auth hint token.
        #[arg(long)]
        auth: Option<String>,
        /// Description (at most 60 UTF-8 bytes).
        #[arg(long)]
        desc: Option<String>,
        /// Documentation URL (https://).
        #[arg(long)]
        docs: Option<String>,
        /// Deprecation time, YYYY-MM-DDTHH:MM:SSZ.
        #[arg(long)]
        dep: Option<String>,
        /// Public key for endpoint proof (needs --kid).
        #[arg(long, conflicts_with = "pka_key")]
        pka: Option<String>,
        /// Key id (aid1; with --pka-key the default is g1).
        #[arg(long)]
        kid: Option<String>,
        /// Publish this PKA key file's public key (`k`, and `i` for aid1);
        /// the file is created with a new Ed25519 key when it does not exist.
        /// Serve with `asp serve --pka-key FILE`.
        #[arg(long, value_name = "FILE")]
        pka_key: Option<PathBuf>,
        /// Emit an aid2 record (`k` as base64url, no `i`).
        #[arg(long)]
        aid2: bool,
    },
    /// Run AID PKA test vectors (the AID project's pka_vectors.json format,
    /// or one vector object) and print each verdict against its `expect`;
    /// exit 0 only when all match.
    PkaCheck {
        /// Print exactly one JSON object.
        #[arg(long)]
        json: bool,
        /// The clock for generated vectors, in seconds since the epoch
        /// (default: now).
        #[arg(long)]
        now: Option<u64>,
        /// The vector file.
        file: PathBuf,
    },
}

/// The exit status for `asp invoke` and `asp tools`.
fn exit(result: Result<(), invoke::Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("asp: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, "warn");
    let result = match cli.command {
        Command::Aid { command: AidCommand::Parse { json, record } } => return aid::parse(&record, json),
        Command::Discover { domain, protocol, nameserver, no_fallback, timeout, json, check: true, ca, .. } => {
            let timeout = Duration::from_millis(timeout);
            let well_known = !no_fallback;
            let args = doctor::CheckArgs { domain, protocol, nameserver, well_known, timeout, ca, json };
            return doctor::run(args).await;
        }
        Command::Discover { domain, protocol, nameserver, no_fallback, timeout, json, security, .. } => {
            let security = security.map(|s| match s {
                SecurityArg::Balanced => asp_proto::aid::policy::SecurityMode::Balanced,
                SecurityArg::Strict => asp_proto::aid::policy::SecurityMode::Strict,
            });
            let timeout = Duration::from_millis(timeout);
            let query = aid::Query { domain, protocol, nameserver, well_known: !no_fallback, timeout, security };
            return aid::discover(query, json).await;
        }
        Command::Aid {
            command: AidCommand::Generate { uri, proto, auth, desc, docs, dep, pka, kid, pka_key, aid2 },
        } => {
            let args = aid::GenerateArgs { uri, proto, auth, desc, docs, dep, pka, kid, pka_key, aid2 };
            return aid::generate_record(args);
        }
        Command::Aid { command: AidCommand::PkaCheck { json, now, file } } => return aid::pka_check(&file, now, json),
        Command::Serve { listen, stdio: true, .. } => agent::serve_stdio(listen.listen()).await,
        Command::Serve { listen, metrics, .. } => {
            if let Some(addr) = metrics {
                let exporter = metrics_exporter_prometheus::PrometheusBuilder::new().with_http_listener(addr).install();
                if let Err(e) = exporter {
                    eprintln!("asp: --metrics {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            agent::serve(listen.listen()).await
        }
        Command::Mcp { command: McpCommand::Serve { listen, on_exit, url, command } } => {
            let server = match (url, command.split_first()) {
                (Some(url), _) => asp_mcp::McpServer::Url(url),
                (None, Some((program, args))) => {
                    asp_mcp::McpServer::Command { program: program.clone(), args: args.to_vec() }
                }
                (None, None) => unreachable!("clap requires --url or a command"),
            };
            let on_exit = match on_exit {
                OnExitArg::Restart => asp_mcp::OnExit::Restart,
                OnExitArg::Exit => asp_mcp::OnExit::Exit,
            };
            mcp::serve(mcp::ServeArgs { listen: listen.listen(), on_exit, server }).await
        }
        Command::Mcp { command: McpCommand::Expose { target, http } } => {
            return exit(mcp::expose(target.target(), http).await);
        }
        Command::Invoke { target, tool, args, stdio, command, json, meta, deadline } => {
            let mut target = target.target();
            // With --stdio the first positional is the tool, the second its
            // arguments: there is no URL.
            let (tool, args) = if stdio {
                target.stdio = Some(command);
                (std::mem::take(&mut target.url), tool)
            } else {
                (tool.unwrap_or_default(), args)
            };
            let call = invoke::Call { tool, args, meta, deadline_ms: deadline, json };
            return exit(invoke::run(target, call).await);
        }
        Command::Tools { target, json } => return exit(invoke::list(target.target(), json).await),
        Command::Inspect { url, token, listen } => inspect::run(listen, inspect::PageConfig { url, token }).await,
        Command::Demo { tokens, token_delay_ms, calls } => demo::run(tokens, token_delay_ms, calls).await,
        Command::Conformance { url, ca, token, json } => {
            let ca = match ca.map(|p| std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))).transpose() {
                Ok(ca) => ca,
                Err(e) => {
                    eprintln!("asp: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let tls = match asp_tokio::tls::client_config(ca.as_deref()) {
                Ok(tls) => tls,
                Err(e) => {
                    eprintln!("asp: --ca: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let outcomes = conformance::run(&conformance::Target { url, token, tls }).await;
            return if conformance::report(&outcomes, json) { ExitCode::SUCCESS } else { ExitCode::FAILURE };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("asp: {e}");
            ExitCode::FAILURE
        }
    }
}
