//! Discovery security policies (`Discovery::builder().security(..)`) against
//! every case of the AID project's `enterprise-v2.1.json`, each run against
//! a real DNS server on loopback (with or without the AD bit) and a real
//! HTTPS `.well-known/agent` server; plus the cases the file leaves out
//! (a validated strict discovery passes, a remembered state detects the
//! next downgrade).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asp_testkit::dns::{dns, Answer};
use asp_tokio::proto::aid::policy::{
    DnssecPolicy, DowngradePolicy, PkaPolicy, PreviousSecurity, SecurityMode, SecurityPolicy, TrustSource,
    WellKnownPolicy,
};
use asp_tokio::proto::aid::AidVersion;
use asp_tokio::Discovery;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper_util::rt::TokioIo;
use serde_json::Value as Json;
use tokio::net::TcpListener;

/// An HTTPS server for example.com answering every request with `body`
/// (JSON), or 404 while it is `None`; returns its port and CA PEM.
async fn well_known_server(body: Arc<Mutex<Option<String>>>) -> (u16, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["example.com".to_owned()]).unwrap();
    let config =
        asp_tokio::tls::server_config_from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes())
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |_request| {
                    let body = body.lock().unwrap().clone();
                    async move {
                        Ok::<_, Infallible>(match body {
                            Some(json) => Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(json)))
                                .unwrap(),
                            None => Response::builder().status(404).body(Full::new(Bytes::new())).unwrap(),
                        })
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    (port, cert.cert.pem())
}

fn policy(options: &Json) -> SecurityPolicy {
    let mut policy = match options["securityMode"].as_str() {
        Some("strict") => SecurityMode::Strict.into(),
        Some("balanced") => SecurityMode::Balanced.into(),
        None => SecurityPolicy::default(),
        Some(other) => panic!("unknown securityMode {other}"),
    };
    if let Some(p) = options["dnssecPolicy"].as_str() {
        policy.dnssec = match p {
            "off" => DnssecPolicy::Off,
            "prefer" => DnssecPolicy::Prefer,
            "require" => DnssecPolicy::Require,
            other => panic!("dnssecPolicy {other}"),
        };
    }
    if let Some(p) = options["pkaPolicy"].as_str() {
        policy.pka = if p == "require" { PkaPolicy::Require } else { PkaPolicy::IfPresent };
    }
    if let Some(p) = options["downgradePolicy"].as_str() {
        policy.downgrade = match p {
            "off" => DowngradePolicy::Off,
            "warn" => DowngradePolicy::Warn,
            "fail" => DowngradePolicy::Fail,
            other => panic!("downgradePolicy {other}"),
        };
    }
    if let Some(p) = options["wellKnownPolicy"].as_str() {
        policy.well_known = if p == "disable" { WellKnownPolicy::Disable } else { WellKnownPolicy::Auto };
    }
    policy
}

fn previous(options: &Json) -> Option<PreviousSecurity> {
    let p = options.get("previousSecurity")?;
    let text = |k: &str| p[k].as_str().map(str::to_owned);
    Some(PreviousSecurity {
        version: text("version").map(|v| if v == "aid2" { AidVersion::Aid2 } else { AidVersion::Aid1 }),
        trust_source: text("trustSource").map(|s| if s == "dns" { TrustSource::Dns } else { TrustSource::WellKnown }),
        pka: text("pka"),
        kid: text("kid"),
        key_thumbprints: p["keyThumbprints"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
    })
}

/// A discovery for one case: its DNS answers (AD bit as the case says) and
/// its `.well-known` body.
async fn setup(
    case: &Json,
    body: &Arc<Mutex<Option<String>>>,
    port: u16,
    ca: &str,
) -> (Discovery, asp_testkit::dns::Dns) {
    let mut zone = HashMap::new();
    zone.insert("example.com.", Answer::Addr(Ipv4Addr::LOCALHOST));
    let answers: Vec<Vec<&'static str>> = case["dns"]["answers"]
        .as_array()
        .map(|a| a.iter().map(|r| vec![&*Box::leak(r["data"].as_str().unwrap().to_owned().into_boxed_str())]).collect())
        .unwrap_or_default();
    if !answers.is_empty() {
        let answer =
            if case["dns"]["ad"] == true { Answer::Validated(answers, 300) } else { Answer::Txt(answers, 300) };
        zone.insert("_agent.example.com.", answer);
    }
    *body.lock().unwrap() = case.get("wellKnown").map(|w| w["body"].to_string());
    let server = dns(zone).await;
    let discovery = Discovery::builder()
        .nameservers([server.addr])
        .timeout(Duration::from_millis(500))
        .well_known_port(port)
        .well_known_tls(asp_tokio::tls::client_config(Some(ca.as_bytes())).unwrap())
        .security(policy(&case["options"]))
        .build()
        .unwrap();
    (discovery, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_enterprise_case_gets_its_code_or_warnings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../asp-proto/tests/aid-vectors/enterprise-v2.1.json");
    let file: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = file["securityPolicies"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    let body = Arc::new(Mutex::new(None));
    let (port, ca) = well_known_server(body.clone()).await;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        assert_eq!(case["queryName"], "_agent.example.com", "{name}");
        let (discovery, _dns) = setup(case, &body, port, &ca).await;
        let result = discovery.discover_since("example.com", None, previous(&case["options"]).as_ref()).await;
        match (case["expect"]["errorCode"].as_str(), result) {
            (Some(code), Err(e)) => assert_eq!(e.code.name(), code, "{name}: {e}"),
            (None, Ok(found)) => {
                let want: Vec<&str> =
                    case["expect"]["warningCodes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
                let got: Vec<&str> = found.security.warnings.iter().map(|w| w.code).collect();
                assert_eq!(got, want, "{name}");
            }
            (expected, got) => panic!("{name}: expected {expected:?}, got {got:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validated_keyed_records_pass_strict_and_seen_state_catches_the_next_downgrade() {
    let body = Arc::new(Mutex::new(None));
    let (port, ca) = well_known_server(body.clone()).await;
    let k = "ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ";
    let keyed = serde_json::json!({
        "options": {"securityMode": "strict"},
        "dns": {"answers": [{"data": format!("v=aid2;u=https://api.example.com/mcp;p=mcp;k={k}")}], "ad": true},
    });
    let (discovery, _dns) = setup(&keyed, &body, port, &ca).await;
    let found = discovery.discover("example.com", None).await.unwrap();
    assert_eq!(found.security.dnssec_validated, Some(true));
    assert!(found.security.pka_present && found.security.warnings.is_empty());
    let seen = found.seen();
    assert_eq!(seen.key_thumbprints, ["WWpn_pfHui9YKR4CZtQsDGMu7_Gch2zYChfSvnxgtPk"]);
    // The same answer without the AD bit fails strict, and warns balanced.
    let mut unsigned = keyed.clone();
    unsigned["dns"]["ad"] = false.into();
    let (strict, _dns) = setup(&unsigned, &body, port, &ca).await;
    assert_eq!(strict.discover("example.com", None).await.unwrap_err().code.name(), "ERR_SECURITY");
    unsigned["options"]["securityMode"] = "balanced".into();
    let (balanced, _dns) = setup(&unsigned, &body, port, &ca).await;
    let found = balanced.discover_since("example.com", None, Some(&seen)).await.unwrap();
    let codes: Vec<&str> = found.security.warnings.iter().map(|w| w.code).collect();
    assert_eq!(codes, ["DNSSEC_PREFERRED"], "same key as seen: no downgrade");
    // Next time the key is gone: a downgrade against what was seen.
    let mut keyless = unsigned.clone();
    keyless["dns"]["answers"][0]["data"] = "v=aid2;u=https://api.example.com/mcp;p=mcp".into();
    let (balanced, _dns) = setup(&keyless, &body, port, &ca).await;
    let found = balanced.discover_since("example.com", None, Some(&seen)).await.unwrap();
    assert_eq!(found.security.downgrade.as_deref(), Some("a previously published key (pka) was removed"));
    assert!(found.warnings.iter().any(|w| w.starts_with("DOWNGRADE_DETECTED")), "{:?}", found.warnings);
}
