//! End to end over real sockets on loopback with real TLS: a certificate is
//! generated for each test run with rcgen, and the client trusts exactly it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use asp_tokio::proto::{ErrorCode, Initiator, ToolOp, ToolSpec, Value};
use asp_tokio::{ClientBuilder, ConnectError, ServerBuilder, ServerHandle, ToolContext, ToolError};
use futures::StreamExt;
use tokio::time::timeout;

struct Tls {
    cert_pem: String,
    key_pem: String,
}

fn tls() -> Tls {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    Tls { cert_pem: cert.cert.pem(), key_pem: cert.signing_key.serialize_pem() }
}

async fn tokens(ctx: ToolContext, args: Value) -> Result<Value, ToolError> {
    let n = args.as_u64().unwrap_or(5);
    for i in 0..n {
        ctx.send(format!("tok{i} ")).await?;
    }
    Ok(Value::from(n))
}

async fn echo(_ctx: ToolContext, args: Value) -> Result<Value, ToolError> {
    Ok(args)
}

async fn server(tls: &Tls, cancelled: Arc<AtomicUsize>) -> ServerHandle {
    let slow = move |ctx: ToolContext, _args: Value| {
        let cancelled = cancelled.clone();
        async move {
            // Counts its own cancellation: the guard is dropped when the
            // driver aborts the handler.
            struct Guard(Arc<AtomicUsize>);
            impl Drop for Guard {
                fn drop(&mut self) {
                    self.0.fetch_add(1, Ordering::SeqCst);
                }
            }
            let _guard = Guard(cancelled);
            ctx.send("started").await?;
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Value::Nil)
        }
    };
    ServerBuilder::new("127.0.0.1:0".parse().unwrap())
        .tls_pem(tls.cert_pem.as_bytes(), tls.key_pem.as_bytes())
        .unwrap()
        .auth(|hello| match hello.token.as_deref() {
            Some("good") => Ok(()),
            _ => Err((ErrorCode::UNAUTHENTICATED, "bad token".into())),
        })
        .tool(ToolSpec::named("tokens"), tokens)
        .tool(ToolSpec::named("echo"), echo)
        .tool(ToolSpec::named("slow"), slow)
        .bind()
        .await
        .unwrap()
        .spawn()
}

fn client(tls: &Tls, url: &str) -> ClientBuilder {
    ClientBuilder::new(url).trust_pem(tls.cert_pem.as_bytes()).unwrap().token("good")
}

#[tokio::test]
async fn handshake_and_streaming_over_wss() {
    let tls = tls();
    let server = server(&tls, Arc::default()).await;
    assert!(server.url().starts_with("wss://127.0.0.1:"));
    let client = client(&tls, server.url()).connect().await.unwrap();
    assert!(client.connection_id().unwrap().starts_with("c-"));
    let names: Vec<String> = client.peer_tools().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["echo", "slow", "tokens"]);
    let mut inv = client.invoke("tokens", Value::from(4)).await.unwrap();
    let mut out = String::new();
    while let Some(chunk) = inv.next().await {
        out.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(out, "tok0 tok1 tok2 tok3 ");
    let done = inv.result().await.unwrap();
    assert_eq!(done.result, Value::from(4));
    let echoed = client.invoke("echo", Value::from("hi")).await.unwrap().result().await.unwrap();
    assert_eq!(echoed.result, Value::from("hi"));
}

#[tokio::test]
async fn unknown_tools_and_bad_tokens_get_their_codes() {
    let tls = tls();
    let server = server(&tls, Arc::default()).await;
    let client = client(&tls, server.url()).connect().await.unwrap();
    let err = client.invoke("nope", Value::Nil).await.unwrap().result().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UNKNOWN_TOOL);
    let refused = ClientBuilder::new(server.url())
        .trust_pem(tls.cert_pem.as_bytes())
        .unwrap()
        .token("bad")
        .connect()
        .await
        .unwrap_err();
    match refused {
        ConnectError::Rejected(reason) => {
            assert_eq!((reason.code, reason.initiator), (ErrorCode::UNAUTHENTICATED, Initiator::Peer));
        }
        other => panic!("{other:?}"),
    }
    // The healthy client was not disturbed.
    assert!(client.invoke("echo", Value::Nil).await.unwrap().result().await.is_ok());
}

#[tokio::test]
async fn dropping_an_invocation_cancels_the_handler() {
    let tls = tls();
    let cancelled = Arc::new(AtomicUsize::new(0));
    let server = server(&tls, cancelled.clone()).await;
    let client = client(&tls, server.url()).connect().await.unwrap();
    let mut inv = client.invoke("slow", Value::Nil).await.unwrap();
    assert_eq!(&inv.next().await.unwrap()[..], b"started");
    drop(inv);
    timeout(Duration::from_secs(5), async {
        while cancelled.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the handler observed its cancellation");
}

#[tokio::test]
async fn the_server_calls_a_client_tool_and_pushes_tools() {
    let tls = tls();
    let server = server(&tls, Arc::default()).await;
    let client = client(&tls, server.url())
        .tool(ToolSpec::named("ask_user"), |_ctx: ToolContext, q: Value| async move {
            Ok::<_, ToolError>(Value::from(format!("answer to {}", q.as_str().unwrap_or("?"))))
        })
        .connect()
        .await
        .unwrap();
    let mut changes = client.tool_changes();
    let conn = server.connections().pop().expect("one connection");
    let answer = conn.invoke("ask_user", Value::from("which file?")).await.unwrap().result().await.unwrap();
    assert_eq!(answer.result, Value::from("answer to which file?"));
    server.tools().add(ToolSpec::named("search"), echo);
    timeout(Duration::from_secs(5), changes.next()).await.unwrap();
    assert!(client.peer_tools().iter().any(|t| t.name == "search"));
    server.tools().remove("search");
    timeout(Duration::from_secs(5), changes.next()).await.unwrap();
    assert!(!client.peer_tools().iter().any(|t| t.name == "search"));
    let _ = ToolOp::Add;
}

#[tokio::test]
async fn upgrade_without_the_subprotocol_is_refused() {
    let tls = tls();
    let server = server(&tls, Arc::default()).await;
    let healthy = client(&tls, server.url()).connect().await.unwrap();
    let connector =
        tokio_tungstenite::Connector::Rustls(asp_tokio::tls::client_config(Some(tls.cert_pem.as_bytes())).unwrap());
    let err =
        tokio_tungstenite::connect_async_tls_with_config(server.url(), None, false, Some(connector)).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 400),
        other => panic!("{other:?}"),
    }
    assert!(healthy.invoke("echo", Value::Nil).await.unwrap().result().await.is_ok());
}

#[tokio::test]
async fn graceful_shutdown_drains_and_closes() {
    let tls = tls();
    let server = server(&tls, Arc::default()).await;
    let client = client(&tls, server.url()).connect().await.unwrap();
    let mut inv = client.invoke("tokens", Value::from(3)).await.unwrap();
    // Once output arrives the handler runs: GOAWAY cannot overtake the
    // INVOKE any more (if it did, GOING_AWAY would be the right answer).
    assert!(inv.next().await.is_some());
    server.shutdown(Duration::from_secs(2)).await;
    assert!(inv.result().await.is_ok(), "the open invocation finished");
    let reason = timeout(Duration::from_secs(5), client.closed()).await.unwrap();
    assert_eq!(reason.code, ErrorCode::NO_ERROR);
}
