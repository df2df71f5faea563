//! AID record parsing against the shared vectors (`tests/aid-vectors/`,
//! copied from the AID reference fixtures and this project's edge cases),
//! plus aid2 and the selection rules among several TXT answers.

use std::path::Path;

use asp_proto::aid::{generate, select, AidErrorCode, AidRecord, AidVersion};
use serde_json::Value as Json;

fn load(name: &str) -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aid-vectors").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn code_named(name: &str) -> AidErrorCode {
    [
        AidErrorCode::NoRecord,
        AidErrorCode::InvalidTxt,
        AidErrorCode::UnsupportedProto,
        AidErrorCode::Security,
        AidErrorCode::DnsLookupFailed,
        AidErrorCode::FallbackFailed,
    ]
    .into_iter()
    .find(|c| c.name() == name)
    .unwrap_or_else(|| panic!("unknown code {name}"))
}

/// Checks one case: `expected` fields (only those present) or `errorCode`.
fn check(case: &Json) -> usize {
    let name = case["name"].as_str().unwrap();
    let raw = case["raw"].as_str().unwrap();
    let parsed = AidRecord::parse_v1(raw);
    if let Some(expected) = case.get("expected") {
        let record = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        let fields: std::collections::HashMap<&str, &str> = record.fields().into_iter().collect();
        for (key, value) in expected.as_object().unwrap() {
            assert_eq!(fields.get(key.as_str()).copied(), value.as_str(), "{name}: field {key}");
        }
        // And the canonical form parses back to the same record.
        assert_eq!(AidRecord::parse(&record.to_txt()).unwrap(), record, "{name}");
    } else {
        let code = case["errorCode"].as_str().unwrap();
        let err = parsed.expect_err(name);
        assert_eq!(err.code, code_named(code), "{name}: {err}");
    }
    1
}

#[test]
fn golden_vectors() {
    let golden = load("golden-v1.2.json");
    let n: usize =
        golden["records"].as_array().unwrap().iter().chain(golden["invalid"].as_array().unwrap()).map(check).sum();
    assert_eq!(n, 9);
}

#[test]
fn edge_vectors() {
    let edge = load("aid1-edge-vectors.json");
    let n: usize = edge["cases"].as_array().unwrap().iter().map(check).sum();
    assert_eq!(n, 39);
}

#[test]
fn ws_is_a_security_error_and_wss_is_required() {
    let ws = AidRecord::parse("v=aid1;p=websocket;u=ws://events.example.com/stream").unwrap_err();
    assert_eq!((ws.code, ws.code.code(), ws.code.name()), (AidErrorCode::Security, 1003, "ERR_SECURITY"));
    let https = AidRecord::parse("v=aid1;p=websocket;u=https://events.example.com").unwrap_err();
    assert_eq!(https.code, AidErrorCode::InvalidTxt);
}

#[test]
fn aid2_records_parse() {
    let key = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    let r = AidRecord::parse(&format!("v=aid2;u=wss://agent.example.com/v1/agent-socket;p=websocket;k={key}")).unwrap();
    assert_eq!(r.version, AidVersion::Aid2);
    assert_eq!(r.pka.as_deref(), Some(key));
}

fn txt(records: &[&[&str]]) -> Vec<Vec<String>> {
    records.iter().map(|strings| strings.iter().map(|s| s.to_string()).collect()).collect()
}

#[test]
fn selection_joins_strings_ignores_other_txt_and_prefers_aid2() {
    // A record split into several strings, among an SPF record.
    let answers = txt(&[&["v=spf1 -all"], &["v=aid1;u=wss://a.exa", "mple.com/ws;p=websocket"]]);
    assert_eq!(select(&answers).unwrap().uri, "wss://a.example.com/ws");
    // aid2 wins over aid1.
    let answers = txt(&[&["v=aid1;u=https://one.example/m;p=mcp"], &["v=aid2;u=https://two.example/m;p=mcp"]]);
    assert_eq!(select(&answers).unwrap().version, AidVersion::Aid2);
    // Malformed answers do not matter when exactly one is valid.
    let answers = txt(&[&["v=aid1;p=mcp"], &["v=aid1;u=https://ok.example/m;p=mcp"]]);
    assert_eq!(select(&answers).unwrap().uri, "https://ok.example/m");
}

#[test]
fn selection_errors() {
    let two = txt(&[&["v=aid1;u=https://a.example/m;p=mcp"], &["v=aid1;u=https://b.example/m;p=mcp"]]);
    let err = select(&two).unwrap_err();
    assert_eq!(err.code, AidErrorCode::InvalidTxt);
    assert!(err.message.contains("ambiguous"), "{err}");
    assert_eq!(select(&txt(&[&["v=spf1 -all"]])).unwrap_err().code, AidErrorCode::NoRecord);
    assert_eq!(select(&[]).unwrap_err().code, AidErrorCode::NoRecord);
    assert_eq!(select(&txt(&[&["v=aid1;p=mcp"]])).unwrap_err().code, AidErrorCode::InvalidTxt);
    assert_eq!(select(&txt(&[&["v=aid3;u=https://a.example/m;p=mcp"]])).unwrap_err().code, AidErrorCode::InvalidTxt);
    assert_eq!(select(&txt(&[&["v=aid1;p=websocket;u=ws://a.example"]])).unwrap_err().code, AidErrorCode::Security);
}

#[test]
fn generation_is_canonical_and_warns_past_255_bytes() {
    let record = AidRecord::parse("v=aid1;uri=wss://events.example.com/stream;proto=websocket;desc=Feed").unwrap();
    let (txt, warnings) = generate(&record).unwrap();
    assert_eq!(txt, "v=aid1;u=wss://events.example.com/stream;p=websocket;s=Feed");
    assert!(warnings.is_empty());
    let long = AidRecord { uri: format!("wss://events.example.com/{}", "x".repeat(240)), ..record };
    let (txt, warnings) = generate(&long).unwrap();
    assert!(txt.len() > 255);
    assert_eq!(warnings.len(), 1);
    assert!(generate(&AidRecord { desc: Some("x".repeat(61)), ..long }).is_err());
}
