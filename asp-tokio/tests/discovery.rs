//! AID discovery against a real DNS server on a loopback UDP port: a small
//! authoritative responder (wire format by hickory-proto) serving each case.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use asp_testkit::dns::{dns, Answer, Dns};
use asp_tokio::proto::aid::AidErrorCode;
use asp_tokio::proto::{ToolSpec, Value};
use asp_tokio::{ClientBuilder, ConnectError, Discovery, ServerBuilder, ToolContext, ToolError};

fn discovery(dns: &Dns) -> Discovery {
    // DNS alone here; the `.well-known` fallback has its own tests.
    Discovery::builder().nameservers([dns.addr]).timeout(Duration::from_millis(400)).well_known(false).build().unwrap()
}

fn zone() -> HashMap<&'static str, Answer> {
    let mut z = HashMap::new();
    z.insert(
        "_agent.good.test.",
        Answer::Txt(vec![vec!["v=aid1;p=websocket;u=wss://agent.good.test/v1/agent-socket;s=Good"]], 300),
    );
    z.insert("_agent.insecure.test.", Answer::Txt(vec![vec!["v=aid1;p=websocket;u=ws://agent.insecure.test/ws"]], 300));
    z.insert(
        "_agent.split.test.",
        Answer::Txt(vec![vec!["v=spf1 -all"], vec!["v=aid1;p=websocket;u=wss://agent.spl", "it.test/ws;s=Split"]], 300),
    );
    z.insert(
        "_agent.two.test.",
        Answer::Txt(
            vec![vec!["v=aid1;p=mcp;u=https://a.two.test/mcp"], vec!["v=aid1;p=mcp;u=https://b.two.test/mcp"]],
            300,
        ),
    );
    z.insert("_agent.broken.test.", Answer::Txt(vec![vec!["v=aid1;p=websocket"]], 300));
    z.insert("_agent.empty.test.", Answer::Txt(vec![], 300));
    z.insert(
        "_agent.slow.test.",
        Answer::Slow(Duration::from_secs(2), vec![vec!["v=aid1;p=mcp;u=https://slow.test/m"]]),
    );
    z.insert(
        "_agent._websocket.proto.test.",
        Answer::Txt(vec![vec!["v=aid1;p=websocket;u=wss://ws.proto.test/a"]], 300),
    );
    z.insert("_agent.proto.test.", Answer::Txt(vec![vec!["v=aid1;p=mcp;u=https://base.proto.test/mcp"]], 300));
    z.insert("_agent.short.test.", Answer::Txt(vec![vec!["v=aid1;p=mcp;u=https://short.test/mcp"]], 1));
    z.insert(
        "_agent.old.test.",
        Answer::Txt(vec![vec!["v=aid1;p=mcp;u=https://old.test/mcp;e=2020-01-01T00:00:00Z"]], 300),
    );
    z.insert("_agent.xn--bcher-kva.test.", Answer::Txt(vec![vec!["v=aid1;p=mcp;u=https://idn.test/mcp"]], 300));
    z
}

#[tokio::test]
async fn each_dns_case_gives_its_record_or_error() {
    let server = dns(zone()).await;
    let d = discovery(&server);
    let good = d.discover("good.test", None).await.unwrap();
    assert_eq!(good.record.uri, "wss://agent.good.test/v1/agent-socket");
    assert_eq!((good.name.as_str(), good.ttl), ("_agent.good.test", 300));
    let split = d.discover("split.test", None).await.unwrap();
    assert_eq!(split.record.uri, "wss://agent.split.test/ws");
    let cases = [
        ("insecure.test", AidErrorCode::Security),
        ("two.test", AidErrorCode::InvalidTxt),
        ("broken.test", AidErrorCode::InvalidTxt),
        ("missing.test", AidErrorCode::NoRecord),
        ("empty.test", AidErrorCode::NoRecord),
        ("slow.test", AidErrorCode::DnsLookupFailed),
        ("old.test", AidErrorCode::InvalidTxt),
    ];
    for (domain, code) in cases {
        let err = d.discover(domain, None).await.unwrap_err();
        assert_eq!(err.code, code, "{domain}: {err}");
    }
    // International names are queried as A-labels.
    assert_eq!(d.discover("Bücher.test", None).await.unwrap().record.uri, "https://idn.test/mcp");
}

#[tokio::test]
async fn a_protocol_name_is_tried_first_then_the_base_name() {
    let server = dns(zone()).await;
    let d = discovery(&server);
    let ws = d.discover("proto.test", Some("websocket")).await.unwrap();
    assert_eq!((ws.name.as_str(), ws.record.uri.as_str()), ("_agent._websocket.proto.test", "wss://ws.proto.test/a"));
    let base = d.discover("good.test", Some("websocket")).await.unwrap();
    assert_eq!(base.name, "_agent.good.test");
    // Never a parent: sub.good.test has no record of its own.
    assert_eq!(d.discover("sub.good.test", None).await.unwrap_err().code, AidErrorCode::NoRecord);
}

#[tokio::test]
async fn results_are_cached_no_longer_than_the_ttl() {
    let server = dns(zone()).await;
    let d = discovery(&server);
    d.discover("good.test", None).await.unwrap();
    let after_first = server.queries.load(Ordering::SeqCst);
    d.discover("good.test", None).await.unwrap();
    assert_eq!(server.queries.load(Ordering::SeqCst), after_first, "served from the cache within the TTL");
    d.discover("short.test", None).await.unwrap();
    let before = server.queries.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    d.discover("short.test", None).await.unwrap();
    assert!(server.queries.load(Ordering::SeqCst) > before, "asked again once the 1 s TTL passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_domain_reaches_the_agent_over_wss() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let agent = ServerBuilder::new("127.0.0.1:0".parse().unwrap())
        .tls_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes())
        .unwrap()
        .tool(ToolSpec::named("echo"), |_c: ToolContext, a: Value| async move { Ok::<_, ToolError>(a) })
        .bind()
        .await
        .unwrap()
        .spawn();
    // The record names the agent's real loopback URL.
    let record: &'static str = Box::leak(format!("v=aid1;p=websocket;u={};s=Test agent", agent.url()).into_boxed_str());
    let mut z = zone();
    z.insert("_agent.agent.test.", Answer::Txt(vec![vec![record]], 300));
    let server = dns(z).await;
    let d = discovery(&server);
    let client = ClientBuilder::for_domain("agent.test", &d)
        .await
        .unwrap()
        .trust_pem(cert.cert.pem().as_bytes())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let done = client.invoke("echo", Value::from("found by DNS")).await.unwrap().result().await.unwrap();
    assert_eq!(done.result, Value::from("found by DNS"));
    // A ws:// record never gets as far as a connection.
    match ClientBuilder::for_domain("insecure.test", &d).await {
        Err(ConnectError::Discovery(e)) => assert_eq!((e.code.name(), e.code.code()), ("ERR_SECURITY", 1003)),
        other => panic!("{other:?}"),
    }
}
