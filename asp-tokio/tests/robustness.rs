//! Bad input, slow readers and many connections, over real sockets with
//! TLS. Every bad input must get its documented answer while a healthy
//! client connected to the same server keeps working.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
    produced: Arc<AtomicUsize>,
}

async fn fixture() -> Fixture {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = produced.clone();
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
        .tool(ToolSpec::named("firehose"), move |ctx: ToolContext, _a: Value| {
            let counter = counter.clone();
            async move {
                let chunk = Bytes::from(vec![b'x'; 4096]);
                loop {
                    ctx.send(chunk.clone()).await?;
                    counter.fetch_add(chunk.len(), Ordering::SeqCst);
                }
            }
        })
        .bind()
        .await
        .unwrap()
        .spawn();
    Fixture { cert_pem: cert.cert.pem(), server, produced }
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

/// Reads until the server closes: the ERROR frames it sent and the close code.
async fn closing(ws: &mut RawWs) -> (Vec<ErrorCode>, Option<u16>) {
    let mut errors = Vec::new();
    let read = async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Binary(b)) => {
                    for frame in decode_all(b, u32::MAX).unwrap_or_default() {
                        if let Frame::Error(RequestId(0), e) = frame {
                            errors.push(e.code);
                        }
                    }
                }
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    };
    let code = timeout(Duration::from_secs(5), read).await.expect("the server closes");
    (errors, code)
}

async fn still_works(client: &Client) {
    let done = client.invoke("echo", Value::from("still here")).await.unwrap().result().await.unwrap();
    assert_eq!(done.result, Value::from("still here"));
}

#[tokio::test]
async fn a_text_message_is_closed_with_1003() {
    let f = fixture().await;
    let healthy = f.client().await;
    let mut ws = f.raw_after_hello().await;
    ws.send(Message::text("{\"json\": true}")).await.unwrap();
    let (errors, code) = closing(&mut ws).await;
    assert_eq!(errors, [ErrorCode::TEXT_MESSAGE]);
    assert_eq!(code, Some(1003));
    still_works(&healthy).await;
}

#[tokio::test]
async fn garbage_binary_is_closed_with_its_code() {
    let f = fixture().await;
    let healthy = f.client().await;
    let mut ws = f.raw_after_hello().await;
    ws.send(Message::Binary(Bytes::from_static(b"\xde\xad\xbe\xef garbage"))).await.unwrap();
    let (errors, code) = closing(&mut ws).await;
    // 0xDE: version nibble 13.
    assert_eq!(errors, [ErrorCode::UNSUPPORTED_VERSION]);
    assert_eq!(code, Some(4101));
    still_works(&healthy).await;
}

#[tokio::test]
async fn an_oversized_length_is_refused_before_buffering() {
    let f = fixture().await;
    let healthy = f.client().await;
    let mut ws = f.raw_after_hello().await;
    // A STREAM header declaring 4 GiB, and nothing else.
    ws.send(Message::Binary(Bytes::from_static(&[0x13, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]))).await.unwrap();
    let (errors, code) = closing(&mut ws).await;
    assert_eq!(errors, [ErrorCode::FRAME_TOO_LARGE]);
    assert_eq!(code, Some(4200));
    still_works(&healthy).await;
}

#[tokio::test]
async fn no_hello_in_time_is_closed() {
    let f = fixture().await;
    let healthy = f.client().await;
    let mut ws = f.raw().await;
    let (errors, code) = closing(&mut ws).await;
    assert_eq!(errors, [ErrorCode::HANDSHAKE_TIMEOUT]);
    assert_eq!(code, Some(4109));
    still_works(&healthy).await;
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

#[tokio::test]
async fn a_reader_that_stops_holds_the_handler_back() {
    let f = fixture().await;
    let healthy = f.client().await;
    let slow = f.client().await;
    let mut inv = slow.invoke("firehose", Value::Nil).await.unwrap();
    let _first = inv.next().await.unwrap();
    // The reader stops here. The handler can produce at most the
    // invocation window (256 KiB) plus its send budget (queued in the
    // driver), then waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let produced = f.produced.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.produced.load(Ordering::SeqCst), produced, "the handler is held back");
    assert!(produced <= 256 * 1024 + asp_tokio::SEND_BUDGET + 2 * 4096, "{produced} bytes produced without being read");
    // The server holds little for this connection.
    let conn = f.server.connections().into_iter().find(|c| c.connection_id() == slow.connection_id()).unwrap();
    let stats = conn.stats().await.unwrap();
    assert!(stats.buffered_bytes <= 512 * 1024, "server buffers {} bytes", stats.buffered_bytes);
    still_works(&healthy).await;
    // Reading again lets it go on.
    for _ in 0..100 {
        inv.next().await.unwrap();
    }
    assert!(f.produced.load(Ordering::SeqCst) > produced);
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
