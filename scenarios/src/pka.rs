//! AID PKA over the WebSocket upgrade (SPEC.md §16.1), on every runtime: a
//! client that discovered a record with a key gets the endpoint's proof in
//! the `101` response and checks it before HELLO; a wrong or missing proof
//! is `ERR_SECURITY` and the server never sees a HELLO.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use asp_driver::net::Network;
use asp_driver::{ClientBuilder, ConnectError, DnsRuntime, ServerBuilder, ServerHandle, ToolContext, ToolError};
use asp_proto::aid::pka::Signer;
use asp_proto::aid::AidErrorCode;
use asp_proto::{ToolSpec, Value};
use asp_testkit::dns::Answer;

use crate::{dns_discovery, within, Tls};

/// A wss:// echo agent on `S`, proving `signer` when asked (or not, with
/// `None`); `hellos` counts the HELLOs it receives.
async fn agent<S: Network>(tls: &Tls, signer: Option<Signer>, hellos: Arc<AtomicUsize>) -> ServerHandle<S> {
    let mut builder = ServerBuilder::<S>::new("127.0.0.1:0".parse().unwrap())
        .tls_pem(tls.cert_pem.as_bytes(), tls.key_pem.as_bytes())
        .unwrap()
        .auth(move |_hello| {
            hellos.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .tool(ToolSpec::named("echo"), |_c: ToolContext, a: Value| async move { Ok::<_, ToolError>(a) });
    if let Some(signer) = signer {
        builder = builder.pka_key(signer);
    }
    builder.bind().await.unwrap().spawn()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Discovery of aid1 and aid2 records with keys leads to a proven
/// connection; a record naming another key, and an agent that proves
/// nothing, are refused before HELLO with `ERR_SECURITY`.
pub async fn pka_proves_the_endpoint<S: Network, C: DnsRuntime>() {
    let tls = Tls::new();
    let signer = Signer::from_seed(&[42; 32]).with_kid("k1").unwrap();
    let impostor = Signer::from_seed(&[43; 32]);
    let hellos = Arc::new(AtomicUsize::new(0));
    let proving = Box::pin(agent::<S>(&tls, Some(signer.clone()), hellos.clone())).await;
    let silent = Box::pin(agent::<S>(&tls, None, hellos.clone())).await;
    let url = proving.url();
    let mut zone = HashMap::new();
    let aid1 = leak(format!("v=aid1;p=websocket;u={url};k={};i=k1", signer.aid1_pka()));
    let aid2 = leak(format!("v=aid2;p=websocket;u={url};k={}", signer.aid2_k()));
    let wrong = leak(format!("v=aid2;p=websocket;u={url};k={}", impostor.aid2_k()));
    let wrong_kid = leak(format!("v=aid1;p=websocket;u={url};k={};i=k2", signer.aid1_pka()));
    let unsigned = leak(format!("v=aid2;p=websocket;u={};k={}", silent.url(), signer.aid2_k()));
    for (name, record) in [
        ("_agent.aid1.test.", aid1),
        ("_agent.aid2.test.", aid2),
        ("_agent.impostor.test.", wrong),
        ("_agent.kid.test.", wrong_kid),
        ("_agent.unsigned.test.", unsigned),
        ("_agent.xn--bcher-kva.test.", aid2),
    ] {
        zone.insert(name, Answer::Txt(vec![vec![record]], 300));
    }
    let discovery = dns_discovery::<C>(zone);
    let connect = |domain: &'static str| {
        let discovery = &discovery;
        let tls = &tls;
        // Boxed: debug builds of these futures are large, and async-std's
        // block_on runs the scenario on the test thread's stack.
        Box::pin(async move {
            let builder = within(10, ClientBuilder::<C>::for_domain(domain, discovery)).await.unwrap();
            within(10, builder.trust_pem(tls.cert_pem.as_bytes()).unwrap().connect()).await
        })
    };
    // The IDN is bound in its A-label form.
    for domain in ["aid1.test", "aid2.test", "bücher.test"] {
        let client = connect(domain).await.unwrap_or_else(|e| panic!("{domain}: {e}"));
        let done = client.invoke("echo", Value::from(domain)).await.unwrap().result().await.unwrap();
        assert_eq!(done.result, Value::from(domain));
        client.close(asp_proto::ErrorCode::NO_ERROR, "done").unwrap();
    }
    assert_eq!(hellos.load(Ordering::SeqCst), 3);
    for (domain, why) in [
        ("impostor.test", "is not the thumbprint"),
        ("kid.test", "is not the record's kid"),
        ("unsigned.test", "sent no proof"),
    ] {
        match connect(domain).await {
            Err(ConnectError::Pka(e)) => {
                assert_eq!((e.code, e.code.code()), (AidErrorCode::Security, 1003), "{domain}");
                assert!(e.message.contains(why), "{domain}: {e}");
            }
            other => panic!("{domain}: {:?}", other.map(|_| "connected")),
        }
    }
    // Refused before HELLO: the servers saw only the three good clients.
    assert_eq!(hellos.load(Ordering::SeqCst), 3);
}
