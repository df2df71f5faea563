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
