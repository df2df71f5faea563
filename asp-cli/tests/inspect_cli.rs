//! `asp inspect` as a user starts it: the page, the package and the wasm
//! core come from the binary; `/config.json` carries the command line's URL
//! and token. (The page itself is exercised in Chromium by clients/js.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Inspect {
    child: Child,
    addr: String,
}

impl Drop for Inspect {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn inspect(args: &[&str]) -> Inspect {
    let mut child = Command::new(env!("CARGO_BIN_EXE_asp"))
        .args(["inspect", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split("http://").nth(1).expect("an address").trim().trim_end_matches('/').to_owned();
    Inspect { child, addr }
}

/// One HTTP/1.1 request; returns (status line, headers, body).
fn request(addr: &str, method: &str, path: &str) -> (String, String, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    write!(tcp, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a header end");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let (status, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    (status.to_owned(), headers.to_ascii_lowercase(), raw[split + 4..].to_vec())
}

#[test]
fn serves_the_embedded_page_package_and_core() {
    let server = inspect(&["wss://127.0.0.1:9443/v1/agent-socket", "--token", "s3cret"]);

    let (status, headers, body) = request(&server.addr, "GET", "/");
    assert!(status.ends_with("200 OK"), "{status}");
    assert!(headers.contains("content-type: text/html"), "{headers}");
    assert!(String::from_utf8_lossy(&body).contains("<title>ASP Inspector</title>"));

    let (status, headers, body) = request(&server.addr, "GET", "/wasm/asp_wasm_bg.wasm");
    assert!(status.ends_with("200 OK"), "{status}");
    assert!(headers.contains("content-type: application/wasm"), "{headers}");
    assert!(body.starts_with(b"\0asm"), "not a WebAssembly module");

    let (_, headers, body) = request(&server.addr, "GET", "/dist/index.js");
    assert!(headers.contains("content-type: text/javascript"), "{headers}");
    assert!(String::from_utf8_lossy(&body).contains("export { connect"));

    let (status, _, body) = request(&server.addr, "GET", "/config.json");
    assert!(status.ends_with("200 OK"), "{status}");
    let config: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(config["url"], "wss://127.0.0.1:9443/v1/agent-socket");
    assert_eq!(config["token"], "s3cret");
    assert_eq!(config["autoConnect"], true);

    let (status, _, _) = request(&server.addr, "GET", "/etc/passwd");
    assert!(status.ends_with("404 Not Found"), "{status}");
    let (status, _, _) = request(&server.addr, "POST", "/");
    assert!(status.ends_with("405 Method Not Allowed"), "{status}");
}

#[test]
fn without_a_url_the_page_waits_for_one() {
    let server = inspect(&[]);
    let (_, _, body) = request(&server.addr, "GET", "/config.json");
    let config: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(config["autoConnect"], false);
    assert!(config["url"].is_null() && config["token"].is_null());
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_asp")).args(["inspect", "--listen", &addr]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("--listen {addr}")), "{stderr}");
}
