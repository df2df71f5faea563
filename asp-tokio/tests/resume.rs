//! The transport dies mid-stream; the client reconnects by itself, the
//! server hands the new transport to the old session, and the stream goes on
//! with nothing lost and nothing repeated. The network is a TCP proxy on
//! loopback whose connections the test cuts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asp_tokio::proto::{ToolSpec, Value};
use asp_tokio::{ClientBuilder, ServerBuilder, ToolContext, ToolError};
use bytes::Bytes;
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// A loopback TCP proxy; `cut` drops every connection through it (new ones
/// are still accepted).
struct Proxy {
    addr: SocketAddr,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let registry = links.clone();
        let accepted: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let link = tokio::spawn(async move {
                    let mut outbound = TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                registry.lock().unwrap().push(link);
            }
        });
        Proxy { addr, links, accepted }
    }

    fn cut(&self) -> usize {
        let links: Vec<_> = self.links.lock().unwrap().drain(..).collect();
        for link in &links {
            link.abort();
        }
        links.len()
    }
}

const RECORDS: u32 = 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_transport_resumes_with_nothing_lost_or_repeated() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let server = ServerBuilder::new("127.0.0.1:0".parse().unwrap())
        .tls_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes())
        .unwrap()
        .tool(ToolSpec::named("records"), |ctx: ToolContext, _a: Value| async move {
            for i in 0..RECORDS {
                let mut record = vec![0u8; 32];
                record[..4].copy_from_slice(&i.to_be_bytes());
                ctx.send(Bytes::from(record)).await?;
                if i % 256 == 255 {
                    tokio::task::yield_now().await;
                }
            }
            Ok::<_, ToolError>(Value::from(RECORDS))
        })
        .bind()
        .await
        .unwrap()
        .spawn();
    let proxy = Proxy::start(server.local_addr()).await;
    let url = format!("wss://{}/v1/agent-socket", proxy.addr);
    let client = ClientBuilder::new(url).trust_pem(cert.cert.pem().as_bytes()).unwrap().connect().await.unwrap();
    let cid = client.connection_id();

    let mut inv = client.invoke("records", Value::Nil).await.unwrap();
    let mut next = 0u32;
    let mut cuts = 0;
    let read_all = async {
        while let Some(chunk) = inv.next().await {
            for record in chunk.chunks(32) {
                let index = u32::from_be_bytes(record[..4].try_into().unwrap());
                assert_eq!(index, next, "a record was lost or repeated");
                next += 1;
            }
            // Cut the network three times while output is in flight.
            if cuts < 3 && next >= (cuts + 1) * RECORDS / 4 {
                assert!(proxy.cut() > 0, "there was a connection to cut");
                cuts += 1;
            }
        }
        inv.result().await
    };
    let done = timeout(Duration::from_secs(60), read_all).await.expect("the stream finishes").unwrap();
    assert_eq!(cuts, 3);
    assert_eq!(next, RECORDS);
    assert_eq!(done.result, Value::from(RECORDS));
    assert_eq!(client.connection_id(), cid, "the same session, resumed");
    assert_eq!(proxy.accepted.load(std::sync::atomic::Ordering::SeqCst), 4, "one connection and three reconnects");
    // And the resumed session keeps working.
    let echo = client.invoke("records", Value::Nil).await.unwrap().result().await.unwrap();
    assert_eq!(echo.result, Value::from(RECORDS));
}
