//! `asp serve --token … --origin …` as a user runs it: a real process on a
//! loopback port, real clients.

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

fn serve(extra: &[&str]) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_asp"))
        .args(["serve", "--plaintext", "--bind", "127.0.0.1:0"])
        .args(extra)
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
    let server = serve(&["--token", "s3cret", "--origin", "https://app.example"]);

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
