//! Tokio-only robustness cases over real sockets with TLS: floods, many
//! connections, ordering under credit exhaustion, a refused upgrade. The
//! bad-input, slow-reader, resume and end-to-end cases every adapter must
//! pass are shared scenarios in the `asp-scenarios` crate, run there on
//! Tokio, async-std, smol and across them.

use std::time::Duration;

use asp_tokio::proto::{decode_all, ClientHello, ErrorCode, Frame, Invoke, RequestId, SessionConfig, ToolSpec, Value};
use asp_tokio::{Client, ClientBuilder, ServerBuilder, ServerHandle, ToolContext, ToolError};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

type RawWs = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Fixture {
    cert_pem: String,
    server: ServerHandle,
}

async fn fixture() -> Fixture {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let server = ServerBuilder::new("127.0.0.1:0".parse().unwrap())
        .tls_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes())
        .unwrap()
        .session_config(SessionConfig {
            handshake_timeout: Duration::from_millis(300),
            max_concurrent_invocations: 4,
            ..SessionConfig::default()
        })
        .tool(ToolSpec::named("echo"), |_c: ToolContext, a: Value| async move { Ok::<_, ToolError>(a) })
        .tool(ToolSpec::named("hold"), |_c: ToolContext, _a: Value| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, ToolError>(Value::Nil)
        })
        .bind()
        .await
        .unwrap()
        .spawn();
    Fixture { cert_pem: cert.cert.pem(), server }
}

impl Fixture {
    async fn client(&self) -> Client {
        ClientBuilder::new(self.server.url()).trust_pem(self.cert_pem.as_bytes()).unwrap().connect().await.unwrap()
    }

    /// A raw WebSocket with the right subprotocol, to misbehave with.
    async fn raw(&self) -> RawWs {
        let mut request = self.server.url().into_client_request().unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("asp-v1"));
        let tls = asp_tokio::tls::client_config(Some(self.cert_pem.as_bytes())).unwrap();
        let connector = tokio_tungstenite::Connector::Rustls(tls);
        let (ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector)).await.unwrap();
        ws
    }

    /// A raw WebSocket past the ASP handshake.
    async fn raw_after_hello(&self) -> RawWs {
        let mut ws = self.raw().await;
        ws.send(Message::Binary(Frame::Hello(ClientHello::new()).to_bytes().unwrap())).await.unwrap();
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                assert!(matches!(decode_all(b, u32::MAX).unwrap()[0], Frame::HelloReply(_)))
            }
            other => panic!("expected the server's HELLO, got {other:?}"),
        }
        ws
    }
}

async fn still_works(client: &Client) {
    let done = client.invoke("echo", Value::from("still here")).await.unwrap().result().await.unwrap();
    assert_eq!(done.result, Value::from("still here"));
}

#[tokio::test]
async fn an_invoke_flood_is_refused_per_invocation() {
    let f = fixture().await;
    let healthy = f.client().await;
    let mut ws = f.raw_after_hello().await;
    let mut batch = bytes::BytesMut::new();
    for id in (1u16..=19).step_by(2) {
        Frame::Invoke(RequestId(id), Invoke::new("hold", Value::Nil)).encode(&mut batch).unwrap();
    }
    ws.send(Message::Binary(batch.freeze())).await.unwrap();
    let mut refused = Vec::new();
    while refused.len() < 6 {
        match timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => {
                for frame in decode_all(b, u32::MAX).unwrap() {
                    if let Frame::Error(id, e) = frame {
                        assert_eq!(e.code, ErrorCode::TOO_MANY_INVOCATIONS);
                        refused.push(id.0);
                    }
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, [9, 11, 13, 15, 17, 19], "four run, the rest are refused");
    // The flooding connection itself stays open and usable.
    ws.send(Message::Binary(Frame::Ping(asp_tokio::proto::Ping { seq: 7, recv: None }).to_bytes().unwrap()))
        .await
        .unwrap();
    let pong = timeout(Duration::from_secs(5), ws.next()).await.unwrap();
    assert!(matches!(pong, Some(Ok(Message::Binary(_)))));
    still_works(&healthy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections_each_invoke() {
    let f = fixture().await;
    let mut clients = Vec::new();
    for _ in 0..1000 {
        clients.push(f.client().await);
    }
    let calls = clients
        .iter()
        .enumerate()
        .map(|(i, c)| async move { c.invoke("echo", Value::from(i)).await.unwrap().result().await.unwrap().result });
    let results = timeout(Duration::from_secs(60), futures::future::join_all(calls)).await.unwrap();
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r, Value::from(i));
    }
    assert_eq!(f.server.connections().len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_never_overtakes_queued_output() {
    // A handler that streams far more than one window in small chunks and
    // returns at once: its COMPLETE must wait for every queued chunk.
    let f = fixture().await;
    f.server.tools().add(ToolSpec::named("burst"), |ctx: ToolContext, _a: Value| async move {
        for i in 0..20_000u32 {
            let mut chunk = vec![0u8; 64];
            chunk[..4].copy_from_slice(&i.to_be_bytes());
            ctx.send(Bytes::from(chunk)).await?;
        }
        Ok::<_, ToolError>(Value::from(20_000))
    });
    let client = f.client().await;
    for _ in 0..5 {
        let mut inv = client.invoke("burst", Value::Nil).await.unwrap();
        let mut expected = 0u32;
        while let Some(chunk) = inv.next().await {
            for record in chunk.chunks(64) {
                let index = u32::from_be_bytes(record[..4].try_into().unwrap());
                assert_eq!(index, expected, "output out of order or lost");
                expected += 1;
            }
            // A reader that pauses now and then: credit runs out while the
            // handler still has output queued, and it finishes meanwhile.
            if expected % 1024 < 8 {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
        assert_eq!(inv.result().await.unwrap().result, Value::from(20_000));
        assert_eq!(expected, 20_000, "every chunk arrived before the result");
    }
}

#[tokio::test]
async fn output_queued_behind_exhausted_credit_precedes_the_result() {
    // One window (256 KiB) goes out at once; 32 KiB more waits for credit in
    // the driver while the handler, within its send budget, has already
    // returned. The reader only starts afterwards.
    let f = fixture().await;
    let total = 256 * 1024 + 32 * 1024;
    f.server.tools().add(ToolSpec::named("window_plus"), move |ctx: ToolContext, _a: Value| async move {
        for i in 0..total / 1024 {
            ctx.send(Bytes::from(vec![b'z'; 1024])).await?;
            // Paced, so the driver takes each chunk as it comes: little is
            // ever queued, and the handler never waits.
            if i % 8 == 7 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        Ok::<_, ToolError>(Value::from("done"))
    });
    let client = f.client().await;
    let mut inv = client.invoke("window_plus", Value::Nil).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut received = 0;
    while let Some(chunk) = inv.next().await {
        received += chunk.len();
    }
    assert_eq!(inv.result().await.unwrap().result, Value::from("done"));
    assert_eq!(received, total, "output was dropped when the result overtook it");
}

#[tokio::test]
async fn upgrade_without_the_subprotocol_is_refused() {
    let f = fixture().await;
    let healthy = f.client().await;
    let tls = asp_tokio::tls::client_config(Some(f.cert_pem.as_bytes())).unwrap();
    let connector = tokio_tungstenite::Connector::Rustls(tls);
    let err = tokio_tungstenite::connect_async_tls_with_config(f.server.url(), None, false, Some(connector))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 400),
        other => panic!("{other:?}"),
    }
    still_works(&healthy).await;
}

/// An echo server over TLS with a certificate made now, configured by
/// `configure` (timeouts, caps), with its client-side fixture.
async fn echo_server(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Fixture {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert_pem = cert.cert.pem();
    let builder = ServerBuilder::new("127.0.0.1:0".parse().unwrap())
        .tls_pem(cert_pem.as_bytes(), cert.signing_key.serialize_pem().as_bytes())
        .unwrap()
        .tool(ToolSpec::named("echo"), |_c: ToolContext, a: Value| async move { Ok::<_, ToolError>(a) });
    let server = configure(builder).bind().await.unwrap().spawn();
    Fixture { cert_pem, server }
}

/// Reads until the server closes the socket; `Err` if it stays open `within`.
async fn closed_by_server<S: tokio::io::AsyncRead + Unpin>(socket: &mut S, within: Duration) -> Result<(), ()> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    loop {
        match timeout(within, socket.read(&mut buf)).await {
            Err(_) => return Err(()),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => {} // e.g. a TLS alert before the close
        }
    }
}

#[tokio::test]
async fn sockets_that_never_finish_tls_or_the_upgrade_are_dropped_after_the_timeout() {
    let fixture = echo_server(|b| b.upgrade_timeout(Duration::from_millis(600))).await;
    let addr = fixture.server.local_addr();

    // One socket opens TCP and says nothing; one finishes TLS and never
    // sends the HTTP upgrade.
    let mut silent_tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = asp_tokio::tls::client_config(Some(fixture.cert_pem.as_bytes())).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut silent_tls = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.unwrap();

    // Both are still open before the timeout, and other clients are served.
    assert!(closed_by_server(&mut silent_tcp, Duration::from_millis(150)).await.is_err());
    assert!(closed_by_server(&mut silent_tls, Duration::from_millis(150)).await.is_err());
    let client = fixture.client().await;
    still_works(&client).await;

    // Then the server drops both.
    assert_eq!(closed_by_server(&mut silent_tcp, Duration::from_secs(3)).await, Ok(()), "silent TCP kept open");
    assert_eq!(
        closed_by_server(&mut silent_tls, Duration::from_secs(3)).await,
        Ok(()),
        "TLS without upgrade kept open"
    );
    still_works(&client).await;
}

#[tokio::test]
async fn a_client_cannot_make_the_server_buffer_more_than_the_pre_handshake_limit() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
    // Default handshake timeout (10 s): without the read limit the server
    // would keep buffering this message until then.
    let fixture = echo_server(|b| b).await;
    let mut ws = fixture.raw().await;
    // Fragments of one binary message that never ends, 64 KiB each, before
    // any HELLO: 1 MiB in all if the server let it.
    let mut refused = false;
    for i in 0..16 {
        let opcode = if i == 0 { OpCode::Data(Data::Binary) } else { OpCode::Data(Data::Continue) };
        let fragment = WsFrame::message(vec![0x13u8; 64 * 1024], opcode, false);
        if ws.send(Message::Frame(fragment)).await.is_err() {
            refused = true;
            break;
        }
    }
    if !refused {
        let end = timeout(Duration::from_secs(3), ws.next()).await.expect("the server must drop the connection");
        assert!(!matches!(end, Some(Ok(Message::Binary(_)))), "no session: {end:?}");
    }
    let client = fixture.client().await;
    still_works(&client).await;
}

#[tokio::test]
async fn connection_and_handshake_caps_refuse_only_the_extra_sockets() {
    let fixture = echo_server(|b| b.max_connections(3).max_pending(2)).await;
    let addr = fixture.server.local_addr();
    let established = fixture.client().await;

    // Two sockets that never speak fill the handshake slots; a third is
    // closed at once, while the established client is served.
    let mut silent: Vec<tokio::net::TcpStream> = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(closed_by_server(&mut extra, Duration::from_secs(2)).await, Ok(()), "the third pending socket");
    still_works(&established).await;

    // Freed handshake slots admit clients again, up to the connection cap.
    drop(silent);
    let connect = || async {
        // The freed slots come back as the server notices the closed sockets.
        for _ in 0..50 {
            let attempt = ClientBuilder::new(fixture.server.url()).trust_pem(fixture.cert_pem.as_bytes()).unwrap();
            if let Ok(client) = attempt.connect().await {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no handshake slot came back");
    };
    let second = connect().await;
    let third = connect().await;
    still_works(&second).await;
    still_works(&third).await;
    let fourth =
        ClientBuilder::new(fixture.server.url()).trust_pem(fixture.cert_pem.as_bytes()).unwrap().connect().await;
    assert!(fourth.is_err(), "a fourth connection is over the cap");
    still_works(&established).await;
}

/// A server that accepts TCP and never answers: the client gives up at its
/// connect timeout and says which stage went unanswered; a server that
/// upgrades and never sends HELLO hits the handshake timeout instead.
#[tokio::test]
async fn a_silent_server_fails_the_client_within_its_timeouts() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://{}/v1/agent-socket", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let error = ClientBuilder::new(&url).connect_timeout(Duration::from_millis(300)).connect().await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(&error, asp_tokio::ConnectError::Timeout(why) if why.contains("TLS handshake")), "{error}");
    assert!(error.to_string().contains("300 ms"), "{error}");
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(3), "{waited:?}");

    // Upgrade done (asp-v1 selected), then silence.
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v1/agent-socket", mute.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = mute.accept().await.unwrap();
        #[allow(clippy::result_large_err)] // tungstenite's `Callback` contract
        let select = |_: &tokio_tungstenite::tungstenite::handshake::server::Request,
                      mut response: tokio_tungstenite::tungstenite::handshake::server::Response| {
            response.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("asp-v1"));
            Ok(response)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, select).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {} // reads the HELLO, answers nothing
    });
    let config = SessionConfig { handshake_timeout: Duration::from_millis(300), ..SessionConfig::default() };
    let started = std::time::Instant::now();
    let error = ClientBuilder::new(&url).allow_plaintext().session_config(config).connect().await.unwrap_err();
    assert!(
        matches!(&error, asp_tokio::ConnectError::Rejected(r) if r.code == ErrorCode::HANDSHAKE_TIMEOUT),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    server.abort();
}
