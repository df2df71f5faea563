//! `asp serve --token … --origin …` and `asp conformance` against it, as a
//! user runs them: real processes on loopback ports, real clients.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use asp_proto::Value;
use asp_tokio::ClientBuilder;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

struct Serve {
    child: Child,
    url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `asp serve --bind 127.0.0.1:0 ARGS…`, once it prints its URL.
fn serve(args: &[&str]) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_asp"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run asp serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().nth(1).expect("serving URL …").to_owned();
    Serve { child, url }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_checks_tokens_and_origins() {
    let server = serve(&["--plaintext", "--token", "s3cret", "--origin", "https://app.example"]);

    let without = ClientBuilder::new(&server.url).allow_plaintext().connect().await;
    let error = without.expect_err("no token");
    assert!(error.to_string().contains("UNAUTHENTICATED"), "{error}");
    let wrong = ClientBuilder::new(&server.url).allow_plaintext().token("nope").connect().await;
    assert!(wrong.is_err());
    let client = ClientBuilder::new(&server.url).allow_plaintext().token("s3cret").connect().await.unwrap();
    let done = client.invoke("echo", Value::from("hi")).await.unwrap().result().await.unwrap();
    assert_eq!(done.result, Value::from("hi"));

    // A browser upgrade from another origin is refused with 403.
    let mut request = server.url.as_str().into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("asp-v1"));
    request.headers_mut().insert("Origin", HeaderValue::from_static("https://evil.example"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    let mut request = server.url.as_str().into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("asp-v1"));
    request.headers_mut().insert("Origin", HeaderValue::from_static("https://app.example"));
    assert!(tokio_tungstenite::connect_async(request).await.is_ok(), "the allowed origin upgrades");
}

fn conformance(url: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_asp"))
        .args(["conformance", url, "--json"])
        .args(extra)
        .output()
        .expect("run asp conformance");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

#[test]
fn our_server_passes_every_check() {
    let dir = std::env::temp_dir().join(format!("asp-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let server = serve(&["--write-cert", cert.to_str().unwrap()]);
    assert!(server.url.starts_with("wss://"));
    let (status, report) = conformance(&server.url, &["--ca", cert.to_str().unwrap()]);
    let failed: Vec<&serde_json::Value> =
        report["checks"].as_array().unwrap().iter().filter(|c| c["ok"] != true).collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    assert_eq!(status, 0);
    assert!(report["total"].as_u64().unwrap() >= 26);
    assert!(report["checks"].as_array().unwrap().iter().all(|c| c["section"].as_str().unwrap().starts_with('§')));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_server_that_refuses_the_runner_fails_with_reasons() {
    // The server wants a token the runner does not have: the handshake
    // checks fail, each with its reason, and the exit status says so.
    let server = serve(&["--plaintext", "--token", "not-given"]);
    let (status, report) = conformance(&server.url, &[]);
    assert_eq!(status, 1);
    let checks = report["checks"].as_array().unwrap();
    let failed: Vec<&serde_json::Value> = checks.iter().filter(|c| c["ok"] != true).collect();
    assert!(!failed.is_empty());
    assert!(failed.iter().all(|c| !c["detail"].as_str().unwrap_or_default().is_empty()));
    assert!(report["passed"].as_u64().unwrap() < report["total"].as_u64().unwrap());
}

/// The server's resident memory, from `/proc`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// SPEC §17: a client that stops reading costs the server at most its send
/// budgets, however large the windows it announces: per open invocation
/// `SEND_BUDGET` (64 KiB, each chunk counting 256 bytes more) and its state
/// (the task, the handler; 8 KiB allowed), per connection
/// 128 KiB of encoded output waiting for the socket, the replay buffer
/// (1 MiB) and the WebSocket write buffer (128 KiB). 50 clients announce the
/// largest windows, start as many endless one-word `tokens` streams as they
/// may (100) and never read; the server's growth stays within that budget,
/// plus a quarter for the allocator's slack (before the chunk overhead was
/// counted: 2.2 GB for 32 streams each), and a healthy client is served
/// meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_cost_bounded_memory() {
    use asp_proto::limits::{DEFAULT_MAX_CONCURRENT_INVOCATIONS, DEFAULT_REPLAY_BUFFER_BYTES, MAX_WINDOW};
    use asp_proto::{ClientHello, Frame, Invoke, PeerLimits, RequestId};
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    const CLIENTS: usize = 50;
    const CALLS: u16 = DEFAULT_MAX_CONCURRENT_INVOCATIONS;
    let server = serve(&["--plaintext"]);
    let pid = server.child.id();
    let before = rss_kib(pid);
    let mut stalled = Vec::new();
    for _ in 0..CLIENTS {
        let mut request = server.url.as_str().into_client_request().unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("asp-v1"));
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut hello = ClientHello::new();
        hello.caps = vec!["resume".into()];
        hello.limits = PeerLimits { win: Some(MAX_WINDOW), cwin: Some(MAX_WINDOW), ..Default::default() };
        ws.send(Message::Binary(Frame::Hello(hello).to_bytes().unwrap())).await.unwrap();
        for id in 0..CALLS {
            let args = serde_json::from_value(serde_json::json!({"n": 100_000_000u64, "delay_ms": 0})).unwrap();
            let invoke = Frame::Invoke(RequestId(2 * id + 1), Invoke::new("tokens", args));
            ws.send(Message::Binary(invoke.to_bytes().unwrap())).await.unwrap();
        }
        stalled.push(ws); // never read again
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let client = ClientBuilder::new(&server.url).allow_plaintext().connect().await.unwrap();
    let done = client.invoke("echo", Value::from("hi")).await.unwrap().result().await.unwrap();
    assert_eq!(done.result, Value::from("hi"), "a healthy client is served");
    let grown = rss_kib(pid).saturating_sub(before) as usize * 1024;
    let per_client = usize::from(CALLS) * (asp_driver::SEND_BUDGET + (8 << 10))
        + (128 << 10)
        + DEFAULT_REPLAY_BUFFER_BYTES
        + (128 << 10);
    eprintln!(
        "{CLIENTS} non-reading clients x {CALLS} streams: server RSS grew {} KiB ({} KiB each; budget {} KiB)",
        grown >> 10,
        (grown / CLIENTS) >> 10,
        per_client >> 10
    );
    assert!(
        grown < CLIENTS * per_client * 5 / 4,
        "the server grew {grown} bytes for {CLIENTS} clients that never read"
    );
    drop(stalled);
}

/// SIGTERM drains: a streaming call in flight completes, the client is
/// closed cleanly after it, and `asp serve` exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_streaming_call_finish_then_exits_zero() {
    use futures::StreamExt;
    let mut server = serve(&["--plaintext"]);
    let client = ClientBuilder::new(&server.url).allow_plaintext().connect().await.unwrap();
    let mut states = client.state_changes();
    let args = serde_json::from_value(serde_json::json!({"n": 20, "delay_ms": 50})).unwrap();
    let mut inv = client.invoke("tokens", args).await.unwrap();
    let mut chunks = vec![inv.next().await.expect("the first token")];
    let term = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let draining = tokio::time::timeout(std::time::Duration::from_secs(5), states.next()).await.unwrap();
    assert!(matches!(draining, Some(asp_tokio::ConnectionState::Draining { .. })), "GOAWAY at once: {draining:?}");
    while let Some(chunk) = inv.next().await {
        chunks.push(chunk);
    }
    let done = inv.result().await.expect("the call in flight completes");
    assert_eq!((done.result, chunks.len()), (Value::from(20), 20));
    assert_eq!(client.closed().await.code, asp_proto::ErrorCode::NO_ERROR);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "asp serve exits 0 after draining: {status}");
}

/// `asp ARGS…` with `stdin`; (exit status, stdout, stderr).
fn asp(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_asp"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run asp");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

/// `asp serve` with a self-signed certificate marked as a CA (as
/// `openssl req -x509` makes them), and the path of that certificate.
fn ca_certificate_server() -> (Serve, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let dir = std::env::temp_dir().join(format!("asp-ca-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let server = serve(&["--cert", cert_path.to_str().unwrap(), "--key", key_path.to_str().unwrap()]);
    (server, cert_path.to_str().unwrap().to_owned())
}

/// `asp invoke` and `asp tools` for scripts: JSON on stdout, arguments from
/// files and stdin, and an exit status per kind of failure.
#[test]
fn invoke_and_tools_serve_scripts() {
    let server = serve(&["--plaintext", "--token", "s3cret"]);
    let url = server.url.as_str();
    let auth = ["--plaintext", "--token", "s3cret"];
    let invoke = |extra: &[&str], stdin: &str| {
        let mut args = vec!["invoke", url];
        args.extend(auth);
        args.extend(extra);
        asp(&args, stdin)
    };

    // --json: the result is the last stdout line, and Python reads it.
    let (status, stdout, stderr) = invoke(&["echo", r#"{"q":"hi"}"#, "--json"], "");
    assert_eq!(status, 0, "{stderr}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["result"], serde_json::json!({"q": "hi"}));
    let python = Command::new("python3")
        .args(["-c", "import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])['result']['q'])"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut python.stdin.as_ref().unwrap(), stdout.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(python.wait_with_output().unwrap().stdout).unwrap().trim(), "hi");

    // Streamed output on stdout; progress on stderr on its own lines.
    let (status, stdout, stderr) = invoke(&["tokens", r#"{"n": 3, "delay_ms": 0}"#], "");
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.starts_with("Agent Socket streams"), "{stdout}");
    assert!(stderr.lines().any(|l| l == "progress 3/3"), "{stderr}");

    // Arguments from a file and from stdin.
    let file = std::env::temp_dir().join(format!("asp-args-{}.json", std::process::id()));
    std::fs::write(&file, r#"{"from":"file"}"#).unwrap();
    let at_file = format!("@{}", file.display());
    let (_, stdout, _) = invoke(&["echo", &at_file, "--json"], "");
    assert!(stdout.contains(r#""from":"file""#), "{stdout}");
    let (_, stdout, _) = invoke(&["echo", "-", "--json"], r#"{"from":"stdin"}"#);
    assert!(stdout.contains(r#""from":"stdin""#), "{stdout}");
    let _ = std::fs::remove_file(file);

    // `asp tools`, with schemas.
    let mut args = vec!["tools", url, "--json"];
    args.extend(auth);
    let (status, stdout, _) = asp(&args, "");
    assert_eq!(status, 0);
    let tools: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let tokens = tools.as_array().unwrap().iter().find(|t| t["name"] == "tokens").expect("tokens listed");
    assert_eq!(tokens["input"]["properties"]["n"]["type"], "integer");

    // One exit status per kind of failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    drop(std::net::TcpListener::bind(closed)); // nothing listens there now
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap(); // accepts, never answers
    let silent_url = format!("ws://{}/v1/agent-socket", silent.local_addr().unwrap());
    let closed_url = format!("ws://{closed}/v1/agent-socket");
    let tls_server = serve(&[]); // a self-signed certificate the client does not trust
    let not_pem = std::env::temp_dir().join(format!("asp-not-a-cert-{}.txt", std::process::id()));
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let not_pem = not_pem.to_str().unwrap().to_owned();
    let wss_url = tls_server.url.clone();
    // `openssl req -x509` makes a CA certificate; rustls refuses it as a
    // server's own.
    let (ca_server, ca_cert) = ca_certificate_server();
    let ca_url = ca_server.url.clone();
    let cases: [(Vec<&str>, i32); 9] = [
        (vec!["invoke", url, "--plaintext", "--token", "s3cret", "echo", "{not json"], 1),
        (vec!["invoke", &wss_url, "--ca", &not_pem, "echo"], 1),
        (vec!["invoke", &closed_url, "--plaintext", "echo"], 3),
        (vec!["invoke", &wss_url, "echo"], 4),
        (vec!["invoke", url, "--plaintext", "--token", "wrong", "echo"], 5),
        (vec!["invoke", url, "--plaintext", "--token", "s3cret", "no_such_tool"], 6),
        (vec!["invoke", &silent_url, "--plaintext", "--timeout", "500", "echo"], 8),
        (vec!["invoke", &silent_url, "--plaintext", "--connect-timeout", "300", "echo"], 8),
        (vec!["invoke", &ca_url, "--ca", &ca_cert, "echo"], 4),
    ];
    for (args, expected) in cases {
        let started = std::time::Instant::now();
        let (status, _, stderr) = asp(&args, "");
        assert_eq!(status, expected, "{args:?}: {stderr}");
        assert!(stderr.starts_with("asp: ") && stderr.len() > 6, "a message on stderr: {stderr}");
        if args.contains(&not_pem.as_str()) {
            assert!(stderr.contains(&not_pem) && stderr.contains("no certificate found"), "{stderr}");
        }
        if args.contains(&"--connect-timeout") {
            assert!(stderr.contains("no answer within 300 ms (WebSocket upgrade)"), "names stage and limit: {stderr}");
        }
        if args.contains(&wss_url.as_str()) && expected == 4 {
            assert!(stderr.contains("--ca FILE"), "says how to trust the server: {stderr}");
        }
        if args.contains(&ca_cert.as_str()) {
            assert!(stderr.contains("is a CA certificate") && stderr.contains("CA:FALSE"), "{stderr}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{args:?} took {:?}", started.elapsed());
    }
    let (status, _, stderr) = invoke(&["sleep", r#"{"ms": 2000}"#, "--deadline", "100"], "");
    assert_eq!(status, 8, "the tool's deadline passed: {stderr}");
    let _ = std::fs::remove_file(&not_pem);
}

/// `asp serve --metrics`: Prometheus text that a call moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_and_invocations() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics = format!("127.0.0.1:{port}");
    let server = serve(&["--plaintext", "--metrics", &metrics]);
    let client = ClientBuilder::new(&server.url).allow_plaintext().connect().await.unwrap();
    client.invoke("echo", Value::from("hi")).await.unwrap().result().await.unwrap();
    let scrape = || async {
        let mut tcp = tokio::net::TcpStream::connect(&metrics).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut text = String::new();
        tcp.read_to_string(&mut text).await.unwrap();
        text
    };
    let text = scrape().await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for expected in [
        r#"asp_connections_opened_total{role="server"} 1"#,
        r#"asp_connections_open{role="server"} 1"#,
        r#"asp_invocations_total{tool="echo",outcome="ok"} 1"#,
        r#"asp_invocation_seconds_count{tool="echo"} 1"#,
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    // A tool interrupted while it has no output pending is counted too.
    let sleep = client.invoke("sleep", Value::Map(vec![(Value::from("ms"), Value::from(10_000))])).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    sleep.interrupt();
    let expected = r#"asp_invocations_total{tool="sleep",outcome="interrupted"} 1"#;
    for attempt in 0.. {
        let text = scrape().await;
        if text.contains(expected) {
            break;
        }
        assert!(attempt < 50, "{expected} missing from:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `asp invoke` through a network that drops mid-stream: it says so on
/// stderr, reconnects, resumes, and the output is whole.
#[test]
fn invoke_reports_reconnects_and_resumes() {
    let server = serve(&["--plaintext"]);
    let upstream = server.url.trim_start_matches("ws://").split('/').next().unwrap().parse().unwrap();
    let proxy = asp_scenarios::Proxy::start(upstream);
    let url = format!("ws://{}/v1/agent-socket", proxy.addr);
    let mut child = Command::new(env!("CARGO_BIN_EXE_asp"))
        .args(["invoke", &url, "--plaintext", "tokens", r#"{"n": 30, "delay_ms": 30}"#])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 5];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert!(proxy.cut() > 0, "a connection to cut");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("asp: connection lost; reconnecting (attempt 1, in 50 ms)"), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("asp: resumed (c-")), "{stderr}");
    let text = format!("{}{rest}", String::from_utf8_lossy(&first));
    let words = text.lines().next().unwrap().split_whitespace().count();
    assert_eq!(words, 30, "every token exactly once: {text}");
}

/// `asp serve` logs connections and refused clients, as JSON lines on
/// stderr with `--log-format json`, at the level `ASP_LOG` picks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_connections_and_refusals() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_asp"))
        .args(["serve", "--bind", "127.0.0.1:0", "--plaintext", "--token", "s3cret", "--log-format", "json"])
        .env("ASP_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().nth(1).unwrap().to_owned();
    let client = ClientBuilder::new(&url).allow_plaintext().token("s3cret").connect().await.unwrap();
    let cid = client.connection_id().unwrap();
    let refused = ClientBuilder::new(&url).allow_plaintext().token("wrong").connect().await;
    assert!(refused.is_err());
    client.close(asp_proto::ErrorCode::NO_ERROR, "bye").unwrap();
    client.closed().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stderr).unwrap().lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    let find = |message: &str| {
        lines.iter().find(|l| l["fields"]["message"] == message).unwrap_or_else(|| panic!("{message}: {lines:?}"))
    };
    assert_eq!(find("connected")["fields"]["cid"], cid.as_str());
    let refusal = find("client refused by the auth hook");
    assert_eq!(
        (refusal["level"].as_str(), refusal["fields"]["code"].as_str()),
        (Some("WARN"), Some("400 UNAUTHENTICATED"))
    );
    let closed = lines.iter().find(|l| l["fields"]["message"] == "closed" && l["fields"]["cid"] == cid.as_str());
    assert!(closed.is_some(), "{lines:?}");
}

#[test]
fn an_agent_runs_as_a_child_process_over_stdio() {
    let asp = env!("CARGO_BIN_EXE_asp");
    let out = Command::new(asp)
        .args(["invoke", "--stdio", "--json", "tokens", r#"{"n": 3, "delay_ms": 0}"#, "--", asp, "serve", "--stdio"])
        .output()
        .expect("run asp invoke --stdio");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("Agent Socket streams"));
    let result: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(result["result"], 3);

    // The child's token check works as over a socket: the token is in HELLO.
    let refused = Command::new(asp)
        .args([
            "invoke", "--stdio", "--token", "wrong", "echo", "{}", "--", asp, "serve", "--stdio", "--token", "right",
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(5), "{}", String::from_utf8_lossy(&refused.stderr));
    let allowed = Command::new(asp)
        .args([
            "invoke",
            "--stdio",
            "--token",
            "right",
            "echo",
            r#"{"a": 1}"#,
            "--",
            asp,
            "serve",
            "--stdio",
            "--token",
            "right",
        ])
        .output()
        .unwrap();
    assert!(allowed.status.success());
    assert_eq!(String::from_utf8(allowed.stdout).unwrap().trim(), r#"{"a":1}"#);
}

#[test]
fn san_adds_names_to_the_generated_certificate() {
    let dir = std::env::temp_dir().join(format!("asp-san-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 127.0.0.2 is loopback too, but not in the default certificate.
    for (extra, works) in [(&["--san", "127.0.0.2"][..], true), (&[][..], false)] {
        let cert = dir.join("cert.pem");
        let mut child = Command::new(env!("CARGO_BIN_EXE_asp"))
            .args(["serve", "--bind", "127.0.0.2:0", "--write-cert", cert.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let server = Serve { url: line.split_whitespace().nth(1).expect("serving URL").to_owned(), child };
        let out = Command::new(env!("CARGO_BIN_EXE_asp"))
            .args(["invoke", &server.url, "--ca", cert.to_str().unwrap(), "echo", "1"])
            .output()
            .unwrap();
        assert_eq!(out.status.success(), works, "{}", String::from_utf8_lossy(&out.stderr));
        if !works {
            assert_eq!(out.status.code(), Some(4), "a TLS failure");
            assert!(String::from_utf8_lossy(&out.stderr).contains("does not name the host"));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
