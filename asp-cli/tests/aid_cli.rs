//! `asp aid …` as a user runs it: the real binary, its output and status.

use std::process::Command;

fn asp(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_asp")).args(args).output().expect("run asp");
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn parse_json_prints_one_object_with_long_names() {
    let (status, stdout, _) = asp(&[
        "aid",
        "parse",
        "--json",
        "v=aid1;p=websocket;uri=wss://events.example.com/stream;desc=Real-time Agent Feed",
    ]);
    assert_eq!(status, 0);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"ok": true, "record": {
            "v": "aid1", "uri": "wss://events.example.com/stream", "proto": "websocket", "desc": "Real-time Agent Feed"
        }})
    );
    assert_eq!(stdout.trim().lines().count(), 1, "exactly one JSON object");
}

#[test]
fn parse_json_reports_errors_with_name_and_code() {
    let (status, stdout, _) = asp(&["aid", "parse", "--json", "v=aid1;p=websocket;u=ws://events.example.com/stream"]);
    assert_eq!(status, 1);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"], "ERR_SECURITY");
    assert_eq!(v["code"], 1003);
    assert!(v["message"].as_str().unwrap().contains("wss://"));
    let (status, stdout, _) = asp(&["aid", "parse", "--json", "v=aid1;u=https://a.example/m;proto=unknown"]);
    assert_eq!(status, 1);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!((v["error"].as_str(), v["code"].as_u64()), (Some("ERR_UNSUPPORTED_PROTO"), Some(1002)));
}

#[test]
fn generate_prints_the_canonical_record() {
    let (status, stdout, _) = asp(&[
        "aid",
        "generate",
        "--uri",
        "wss://agent.example.com/v1/agent-socket",
        "--proto",
        "websocket",
        "--auth",
        "pat",
        "--desc",
        "Demo agent",
    ]);
    assert_eq!(status, 0);
    assert_eq!(stdout.trim(), "v=aid1;u=wss://agent.example.com/v1/agent-socket;p=websocket;a=pat;s=Demo agent");
    let (status, _, stderr) = asp(&["aid", "generate", "--uri", "ws://insecure.example", "--proto", "websocket"]);
    assert_eq!(status, 1);
    assert!(stderr.contains("ERR_SECURITY"), "{stderr}");
}
