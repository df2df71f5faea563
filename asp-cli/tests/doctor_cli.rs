//! `asp discover --check` as an operator runs it: the real binary against a
//! DNS server on loopback, agents with real TLS certificates (trusted, not
//! trusted, about to expire), endpoints that prove their key over the
//! WebSocket upgrade and over HTTPS, and ones that do not.

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use asp_proto::aid::pka::{ProofRequest, Signer, Target};
use asp_testkit::dns::{dns, Answer};
use asp_tokio::{ServerBuilder, ServerHandle};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::Value as Json;

fn doctor(domain: &str, ns: &str, ca: &str) -> (i32, Json) {
    let args =
        ["discover", "--check", domain, "--nameserver", ns, "--ca", ca, "--no-fallback", "--json", "--timeout", "3000"];
    let out = Command::new(env!("CARGO_BIN_EXE_asp")).args(args).output().expect("run asp");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Json::Null);
    (out.status.code().unwrap_or(-1), json)
}

/// `check` → `code` of a report.
fn codes(report: &Json) -> HashMap<String, String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check"].as_str().unwrap().to_owned(), c["code"].as_str().unwrap().to_owned()))
        .collect()
}

/// A self-signed certificate for 127.0.0.1, named `cn`, valid for `days`
/// more days.
fn cert(cn: &str, days: i64) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    let key = rcgen::KeyPair::generate().unwrap();
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

async fn agent(cert: &(String, String), signer: Option<Signer>) -> ServerHandle {
    let mut builder =
        ServerBuilder::new("127.0.0.1:0".parse().unwrap()).tls_pem(cert.0.as_bytes(), cert.1.as_bytes()).unwrap();
    if let Some(signer) = signer {
        builder = builder.pka_key(signer);
    }
    builder.bind().await.unwrap().spawn()
}

/// An HTTPS endpoint (an MCP server, say) that answers every GET with 200
/// and, when asked, `signer`'s proof; returns its port.
async fn https_endpoint(cert: &(String, String), signer: Signer) -> u16 {
    let config = asp_tokio::tls::server_config_from_pem(cert.0.as_bytes(), cert.1.as_bytes()).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, signer) = (acceptor.clone(), signer.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let headers: Vec<(String, String)> = request
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                        .collect();
                    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let host = request.headers()["host"].to_str().unwrap();
                    let target = Target::from_request("https", host, request.uri().path()).unwrap();
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
                    let proof = ProofRequest { method: "GET", target: &target, headers: &headers };
                    let mut response = hyper::Response::builder();
                    for (name, value) in signer.sign(&proof, 200, now).unwrap().unwrap_or_default() {
                        response = response.header(name, value);
                    }
                    async move { Ok::<_, Infallible>(response.body(Full::new(Bytes::new())).unwrap()) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_every_stage_with_a_code_and_exit_status() {
    let dir = std::env::temp_dir().join(format!("asp-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (good, soon, untrusted) = (cert("good", 365), cert("soon", 10), cert("stranger", 365));
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, format!("{}{}", good.0, soon.0)).unwrap();
    let signer = Signer::from_seed(&[11; 32]);
    let proving = agent(&good, Some(signer.clone())).await;
    let silent = agent(&good, None).await;
    let expiring = agent(&soon, None).await;
    let stranger = agent(&untrusted, None).await;
    let mcp_port = https_endpoint(&good, signer.clone()).await;
    let k = signer.aid2_k();
    let records = [
        ("healthy", format!("v=aid2;p=websocket;u={};k={k}", proving.url()), true),
        ("plain", format!("v=aid1;p=websocket;u={};e=2999-01-01T00:00:00Z", silent.url()), false),
        ("impostor", format!("v=aid2;p=websocket;u={};k={k}", silent.url()), true),
        ("expiring", format!("v=aid1;p=websocket;u={}", expiring.url()), true),
        ("untrusted", format!("v=aid1;p=websocket;u={}", stranger.url()), true),
        ("old", format!("v=aid1;p=websocket;u={};e=2020-01-01T00:00:00Z", proving.url()), true),
        ("broken", "v=aid1;p=websocket".to_owned(), true),
        ("mcp", format!("v=aid1;p=mcp;u=https://127.0.0.1:{mcp_port}/mcp;k={};i=g1", signer.aid1_pka()), true),
    ];
    let mut zone = HashMap::new();
    for (name, record, validated) in records {
        let name: &'static str = Box::leak(format!("_agent.{name}.test.").into_boxed_str());
        let txt = vec![vec![&*Box::leak(record.into_boxed_str())]];
        zone.insert(name, if validated { Answer::Validated(txt, 60) } else { Answer::Txt(txt, 60) });
    }
    let server = dns(zone).await;
    let (ns, ca) = (server.addr.to_string(), ca.to_str().unwrap().to_owned());

    let (status, report) = doctor("healthy.test", &ns, &ca);
    assert_eq!((status, report["ok"].as_bool()), (0, Some(true)), "{report}");
    let c = codes(&report);
    for (check, code) in [
        ("record", "RECORD_FOUND"),
        ("parse", "RECORD_VALID"),
        ("deprecation", "NOT_DEPRECATED"),
        ("dnssec", "DNSSEC_VALIDATED"),
        ("tls", "TLS_VALID"),
        ("pka", "PKA_VERIFIED"),
    ] {
        assert_eq!(c[check], code, "{report}");
    }
    let pka = &report["checks"][5]["message"];
    assert!(pka.as_str().unwrap().contains("domain-bound"), "{pka}");

    let (status, report) = doctor("plain.test", &ns, &ca);
    assert_eq!(status, 0, "warnings and info do not fail: {report}");
    let c = codes(&report);
    assert_eq!(
        (c["deprecation"].as_str(), c["dnssec"].as_str(), c["pka"].as_str()),
        ("DEPRECATION_SCHEDULED", "DNSSEC_NOT_VALIDATED", "PKA_ABSENT")
    );

    let (status, report) = doctor("impostor.test", &ns, &ca);
    assert_eq!((status, codes(&report)["pka"].as_str()), (4, "PKA_FAILED"), "{report}");

    let (status, report) = doctor("expiring.test", &ns, &ca);
    assert_eq!((status, codes(&report)["tls"].as_str()), (0, "TLS_EXPIRES_SOON"), "{report}");

    let (status, report) = doctor("untrusted.test", &ns, &ca);
    assert_eq!((status, codes(&report)["tls"].as_str()), (3, "TLS_INVALID"), "{report}");
    assert!(report["checks"][4]["message"].as_str().unwrap().contains("not signed by a trusted CA"), "{report}");

    let (status, report) = doctor("old.test", &ns, &ca);
    assert_eq!((status, codes(&report)["deprecation"].as_str()), (1, "DEPRECATED"), "{report}");

    let (status, report) = doctor("broken.test", &ns, &ca);
    assert_eq!((status, codes(&report)["parse"].as_str()), (1, "ERR_INVALID_TXT"), "{report}");
    assert_eq!(codes(&report)["pka"], "SKIPPED");

    let (status, report) = doctor("missing.test", &ns, &ca);
    assert_eq!((status, codes(&report)["record"].as_str()), (1, "ERR_NO_RECORD"), "{report}");

    // An https:// endpoint proves its aid1 key over a plain GET.
    let (status, report) = doctor("mcp.test", &ns, &ca);
    assert_eq!((status, codes(&report)["pka"].as_str()), (0, "PKA_VERIFIED"), "{report}");

    // Text output: one line per check, then the verdict; bad arguments are 2.
    let out = Command::new(env!("CARGO_BIN_EXE_asp"))
        .args(["discover", "--check", "impostor.test", "--nameserver", &ns, "--ca", &ca, "--no-fallback"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 7, "{text}");
    assert!(text.lines().any(|l| l.starts_with("error") && l.contains("PKA_FAILED")), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_asp"))
        .args(["discover", "--check", "healthy.test", "--ca", "/nonexistent/ca.pem"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ca.pem"));
    let _ = std::fs::remove_dir_all(&dir);
}
