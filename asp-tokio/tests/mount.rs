//! Ways in besides the server's own listener: an axum application's route
//! (beside its HTTP routes), and a byte stream (a Unix socket) — the same
//! tools, auth and typed arguments on each.

use asp_tokio::proto::{ErrorCode, ErrorInfo, Value};
use asp_tokio::{ClientBuilder, ServerBuilder, Service, ToolContext, ToolError};
use futures::StreamExt;
use tokio_util::compat::TokioAsyncReadCompatExt;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Greet {
    who: String,
}

fn service() -> Service {
    ServerBuilder::new("127.0.0.1:0".parse().unwrap())
        .auth(|hello| match hello.token.as_deref() {
            Some("t0k") => Ok(()),
            _ => Err(ErrorInfo::new(ErrorCode::UNAUTHENTICATED, "token t0k required")),
        })
        .typed_tool("greet", "Greets", |ctx: ToolContext, args: Greet| async move {
            ctx.send(format!("hello {}", args.who)).await?;
            Ok::<_, ToolError>(ctx.caller().name().map(str::to_owned))
        })
        .into_service()
}

async fn greet(client: &asp_tokio::Client) -> (String, Value) {
    let args = Value::Map(vec![(Value::from("who"), Value::from("you"))]);
    let mut inv = client.invoke("greet", args).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = inv.next().await {
        out.extend_from_slice(&chunk);
    }
    (String::from_utf8(out).unwrap(), inv.result().await.unwrap().result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asp_on_an_axum_route_beside_http() {
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route("/v1/agent-socket", asp_tokio::axum::route(service()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = ClientBuilder::new(format!("ws://{addr}/v1/agent-socket"))
        .allow_plaintext()
        .token("t0k")
        .connect()
        .await
        .expect("ASP through axum");
    assert_eq!(greet(&client).await.0, "hello you");
    let refused = ClientBuilder::new(format!("ws://{addr}/v1/agent-socket")).allow_plaintext().connect().await;
    assert!(refused.unwrap_err().to_string().contains("token t0k required"));

    // The application's own route still answers; an upgrade without asp-v1
    // gets SPEC §2's 400.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /health HTTP/1.0\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.ends_with("ok"), "{answer}");
    let plain = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/agent-socket")).await;
    match plain {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asp_over_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("asp-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("agent.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let service = service();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move { service.serve_stream(stream.compat()).await });
        }
    });
    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let client =
        ClientBuilder::new("unix:").token("t0k").connect_stream(stream.compat()).await.expect("over the socket");
    assert_eq!(greet(&client).await, ("hello you".into(), Value::Nil));
    // The token went in HELLO (there is no upgrade request).
    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let refused = ClientBuilder::new("unix:").connect_stream(stream.compat()).await;
    assert!(refused.unwrap_err().to_string().contains("UNAUTHENTICATED"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_and_connections_the_application_accepted() {
    // A listener bound elsewhere (inherited, socket-activated) becomes the server's.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ServerBuilder::new("0.0.0.0:1".parse().unwrap()) // not used
        .allow_plaintext()
        .typed_tool("greet", "Greets", |ctx: ToolContext, args: Greet| async move {
            ctx.send(format!("hello {}", args.who)).await?;
            Ok::<_, ToolError>(Value::Nil)
        })
        .with_listener(listener)
        .unwrap();
    assert_eq!(server.local_addr(), addr);
    let handle = server.spawn();
    let client = ClientBuilder::new(format!("ws://{addr}/v1/agent-socket")).allow_plaintext().connect().await.unwrap();
    assert_eq!(greet(&client).await.0, "hello you");

    // A TCP connection the application accepted itself: the same upgrade
    // checks (path, asp-v1), then the session.
    let own = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let own_addr = own.local_addr().unwrap();
    let service = handle.service();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = own.accept().await {
            let service = service.clone();
            tokio::spawn(async move { service.serve_connection(tcp.compat()).await });
        }
    });
    let client =
        ClientBuilder::new(format!("ws://{own_addr}/v1/agent-socket")).allow_plaintext().connect().await.unwrap();
    assert_eq!(greet(&client).await.0, "hello you");
    assert_eq!(handle.connections().len(), 2, "both ways in share the server");
    match tokio_tungstenite::connect_async(format!("ws://{own_addr}/elsewhere")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
}

/// The axum route carries the AID PKA proof too (SPEC §16.1), for the
/// `wss://` target even over this plaintext hop (as behind a TLS proxy);
/// a client pinning another key is refused before HELLO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_route_proves_its_pka_key() {
    use asp_tokio::proto::aid::pka::Signer;
    use asp_tokio::proto::aid::AidVersion;
    use asp_tokio::{ConnectError, PkaRequirement};
    let signer = Signer::from_seed(&[21; 32]);
    let service = ServerBuilder::new("127.0.0.1:0".parse().unwrap())
        .pka_key(signer.clone())
        .tool(
            asp_tokio::proto::ToolSpec::named("echo"),
            |_c: ToolContext, a: Value| async move { Ok::<_, ToolError>(a) },
        )
        .into_service();
    let app = axum::Router::new().route("/v1/agent-socket", asp_tokio::axum::route(service));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("ws://{addr}/v1/agent-socket");
    for version in [AidVersion::Aid1, AidVersion::Aid2] {
        let requirement = PkaRequirement::new(signer.endpoint_key(version)).bound_to("example.com");
        let client = ClientBuilder::new(&url).allow_plaintext().pka(requirement).connect().await.unwrap();
        let done = client.invoke("echo", Value::from("bound")).await.unwrap().result().await.unwrap();
        assert_eq!(done.result, Value::from("bound"));
    }
    let other = PkaRequirement::new(Signer::from_seed(&[22; 32]).endpoint_key(AidVersion::Aid2));
    match ClientBuilder::new(&url).allow_plaintext().pka(other).connect().await {
        Err(ConnectError::Pka(e)) => assert!(e.message.contains("thumbprint"), "{e}"),
        other => panic!("{:?}", other.map(|_| "connected")),
    }
}
