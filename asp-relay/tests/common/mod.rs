//! What the relay's end-to-end tests share: the example functions and an
//! HTTP client.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

#[path = "../../examples/function.rs"]
#[allow(unreachable_pub)]
pub mod rust_function;

/// The Python example function as a child process; killed on drop.
pub struct PyFunction {
    child: Child,
    pub url: String,
}

impl PyFunction {
    /// Starts it, telling it the relay's management API and secret.
    pub fn start(management: &str, secret: &str) -> PyFunction {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/function.py");
        let mut child = Command::new("python3")
            .args([script, "--port", "0", "--management-url", management, "--management-secret", secret])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the example function");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening ").expect("the function says where it listens").to_owned();
        PyFunction { child, url }
    }

    /// What the function saw (`GET /observed`).
    pub async fn observed(&self) -> serde_json::Value {
        http().get(format!("{}/observed", self.url)).send().await.unwrap().json().await.unwrap()
    }
}

impl Drop for PyFunction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client for the management API and the function's `/observed`.
pub fn http() -> reqwest::Client {
    let tls = asp_driver::tls::client_config(None).unwrap();
    reqwest::Client::builder().use_preconfigured_tls((*tls).clone()).build().unwrap()
}

/// The Rust example function on a loopback port of this runtime.
pub async fn rust_function() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(rust_function::serve(listener));
    url
}

/// A process's resident memory, from `/proc`.
pub fn rss_kib(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
