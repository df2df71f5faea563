//! `asp discover` as a user runs it, against a DNS server on loopback.

use std::collections::HashMap;
use std::process::Command;

use asp_testkit::dns::{dns, Answer};

fn asp(args: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_asp")).args(args).output().expect("run asp");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

// Multi-threaded: the blocking `asp` process wait must not starve the DNS server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_reports_records_and_errors() {
    let mut zone = HashMap::new();
    zone.insert(
        "_agent.good.test.",
        Answer::Txt(vec![vec!["v=aid1;p=websocket;u=wss://agent.good.test/ws;s=Good"]], 120),
    );
    zone.insert(
        "_agent.insecure.test.",
        Answer::Txt(vec![vec!["v=aid1;p=websocket;u=ws://agent.insecure.test/ws"]], 120),
    );
    let server = dns(zone).await;
    let ns = server.addr.to_string();
    let (status, json) = asp(&["discover", "good.test", "--nameserver", &ns, "--json"]);
    assert_eq!(status, 0);
    assert_eq!(json["ok"], true);
    assert_eq!(json["name"], "_agent.good.test");
    assert_eq!(json["ttl"], 120);
    assert_eq!(json["record"]["uri"], "wss://agent.good.test/ws");
    let (status, json) = asp(&["discover", "insecure.test", "--nameserver", &ns, "--json"]);
    assert_eq!(status, 1);
    assert_eq!((json["error"].as_str(), json["code"].as_u64()), (Some("ERR_SECURITY"), Some(1003)));
    let (status, json) = asp(&["discover", "missing.test", "--nameserver", &ns, "--no-fallback", "--json"]);
    assert_eq!(status, 1);
    assert_eq!((json["error"].as_str(), json["code"].as_u64()), (Some("ERR_NO_RECORD"), Some(1000)));
    // With the fallback, the missing record leads to https://missing.test/,
    // which does not resolve: the fallback's error is the answer.
    let (status, json) = asp(&["discover", "missing.test", "--nameserver", &ns, "--json"]);
    assert_eq!(status, 1);
    assert_eq!((json["error"].as_str(), json["code"].as_u64()), (Some("ERR_FALLBACK_FAILED"), Some(1005)));

    // --security: strict needs the AD bit and a key; balanced warns by code.
    let (status, json) = asp(&["discover", "good.test", "--nameserver", &ns, "--security", "strict", "--json"]);
    assert_eq!(status, 1);
    assert_eq!(json["error"], "ERR_SECURITY", "{json}");
    let (status, json) = asp(&["discover", "good.test", "--nameserver", &ns, "--security", "balanced", "--json"]);
    assert_eq!(status, 0);
    assert_eq!(json["security"]["dnssec_validated"], false);
    assert_eq!(json["security"]["warning_codes"], serde_json::json!(["DNSSEC_PREFERRED"]));
}
