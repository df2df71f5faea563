//! The `https://<host>/.well-known/agent` fallback, against a real HTTPS
//! server on loopback (hyper over rustls) and the loopback DNS server, which
//! has no `_agent` record for these hosts and points them at 127.0.0.1.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::time::Duration;

use asp_testkit::dns::{dns, Answer};
use asp_tokio::proto::aid::AidErrorCode;
use asp_tokio::Discovery;
use asp_tokio::DiscoverySource;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const HOSTS: [&str; 6] = ["ok.test", "redirect.test", "html.test", "big.test", "slow.test", "insecure.test"];

async fn respond(request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let host = request.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_owned();
    let json = |body: String| {
        Response::builder().header("content-type", "application/json").body(Full::new(Bytes::from(body))).unwrap()
    };
    Ok(match host.as_str() {
        "ok.test" => {
            json(r#"{"v":"aid1","u":"wss://agent.ok.test/v1/agent-socket","p":"websocket","s":"Via HTTPS"}"#.into())
        }
        "redirect.test" => Response::builder()
            .status(302)
            .header("location", "https://ok.test/.well-known/agent")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        "html.test" => Response::builder()
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from_static(b"<html></html>")))
            .unwrap(),
        "big.test" => {
            json(format!(r#"{{"v":"aid1","u":"https://big.test/m","p":"mcp","pad":"{}"}}"#, "x".repeat(70_000)))
        }
        "slow.test" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            json(r#"{"v":"aid1","u":"https://slow.test/m","p":"mcp"}"#.into())
        }
        "insecure.test" => json(r#"{"v":"aid1","u":"ws://agent.insecure.test/ws","p":"websocket"}"#.into()),
        _ => Response::builder().status(404).body(Full::new(Bytes::new())).unwrap(),
    })
}

/// An HTTPS server for all the test hosts; returns its port and CA PEM.
async fn https_server() -> (u16, String) {
    let cert = rcgen::generate_simple_self_signed(HOSTS.iter().map(|h| h.to_string()).collect::<Vec<_>>()).unwrap();
    let config =
        asp_tokio::tls::server_config_from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes())
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(respond);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    (port, cert.cert.pem())
}

async fn discovery() -> (Discovery, asp_testkit::dns::Dns) {
    let (port, ca) = https_server().await;
    let mut zone = HashMap::new();
    for host in HOSTS {
        zone.insert(Box::leak(format!("{host}.").into_boxed_str()) as &'static str, Answer::Addr(Ipv4Addr::LOCALHOST));
    }
    // An invalid DNS record: the fallback must not be tried for it.
    zone.insert("_agent.invalid-dns.test.", Answer::Txt(vec![vec!["v=aid1;p=websocket"]], 60));
    zone.insert("invalid-dns.test.", Answer::Addr(Ipv4Addr::LOCALHOST));
    let server = dns(zone).await;
    let discovery = Discovery::builder()
        .nameservers([server.addr])
        .timeout(Duration::from_millis(400))
        .well_known_port(port)
        .well_known_timeout(Duration::from_millis(800))
        .well_known_tls(asp_tokio::tls::client_config(Some(ca.as_bytes())).unwrap())
        .build()
        .unwrap();
    (discovery, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_finds_an_agent_when_dns_has_no_record() {
    let (d, _dns) = discovery().await;
    let found = d.discover("ok.test", Some("websocket")).await.unwrap();
    assert_eq!(found.source, DiscoverySource::WellKnown);
    assert_eq!(found.record.uri, "wss://agent.ok.test/v1/agent-socket");
    assert_eq!(found.record.desc.as_deref(), Some("Via HTTPS"));
    assert_eq!(found.ttl, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_guardrails_hold() {
    let (d, _dns) = discovery().await;
    for (host, why) in [
        ("redirect.test", "redirects are not followed"),
        ("html.test", "content type"),
        ("big.test", "body over"),
        ("slow.test", "timed out"),
    ] {
        let err = d.discover(host, None).await.unwrap_err();
        assert_eq!(err.code, AidErrorCode::FallbackFailed, "{host}: {err}");
        assert!(err.message.contains(why), "{host}: {err}");
    }
    // A ws:// record is a security failure, whatever its source.
    assert_eq!(d.discover("insecure.test", None).await.unwrap_err().code, AidErrorCode::Security);
    // An invalid DNS record is reported as such: no fallback.
    assert_eq!(d.discover("invalid-dns.test", None).await.unwrap_err().code, AidErrorCode::InvalidTxt);
}
