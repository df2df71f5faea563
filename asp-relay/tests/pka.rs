//! The relay binary proves its AID PKA key (`--pka-key`, SPEC.md §16.1):
//! clients that require the key (aid1 and domain-bound aid2) connect
//! through it to a real function; one that requires another key is refused
//! before HELLO; a bad key file stops the relay with a message naming it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use asp_relay::proto::aid::pka::Signer;
use asp_relay::proto::aid::{AidErrorCode, AidVersion};
use asp_relay::proto::{ErrorCode, Value};
use asp_scenarios::within;
use asp_tokio::{ClientBuilder, ConnectError, PkaRequirement};
use futures::StreamExt;

mod common;

use common::PyFunction;

const SECRET: &str = "management-secret-for-pka-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_proves_its_key_before_hello() {
    let dir = std::env::temp_dir().join(format!("asp-relay-pka-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let signer = Signer::from_seed(&[5; 32]).with_kid("r1").unwrap();
    let key_path = dir.join("pka.pem");
    std::fs::write(&key_path, signer.to_pem().unwrap()).unwrap();
    let cert_path = dir.join("relay.pem");
    let management = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let management_addr = management.local_addr().unwrap();
    drop(management); // the relay binds it again
    let function = PyFunction::start(&format!("http://{management_addr}"), SECRET);
    let mut relay = Command::new(env!("CARGO_BIN_EXE_asp-relay"))
        .args(["--listen", "127.0.0.1:0", "--self-signed"])
        .arg(&cert_path)
        .args(["--management-listen", &management_addr.to_string(), "--lifecycle-calls"])
        .args(["--pka-kid", "r1", "--pka-key"])
        .arg(&key_path)
        .env("ASP_RELAY_FUNCTION", &function.url)
        .env("ASP_RELAY_MANAGEMENT_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(relay.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap().strip_prefix("relay ").unwrap().to_owned();
    let cert = std::fs::read(&cert_path).unwrap();
    let client =
        |requirement: PkaRequirement| ClientBuilder::new(&url).trust_pem(&cert).unwrap().pka(requirement).connect();
    for requirement in [
        PkaRequirement::new(signer.endpoint_key(AidVersion::Aid1)),
        PkaRequirement::new(signer.endpoint_key(AidVersion::Aid2)).bound_to("relay.example"),
    ] {
        let connected =
            within(10, client(requirement.clone())).await.unwrap_or_else(|e| panic!("{requirement:?}: {e}"));
        let mut inv = connected.invoke("echo", Value::from("proven")).await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = within(10, inv.next()).await {
            out.extend_from_slice(&chunk);
        }
        assert_eq!(out, b"\"proven\"");
        connected.close(ErrorCode::NO_ERROR, "done").unwrap();
    }
    let stranger = Signer::from_seed(&[6; 32]);
    match within(10, client(PkaRequirement::new(stranger.endpoint_key(AidVersion::Aid2)))).await {
        Err(ConnectError::Pka(e)) => {
            assert_eq!(e.code, AidErrorCode::Security);
            assert!(e.message.contains("thumbprint"), "{e}");
        }
        other => panic!("{:?}", other.map(|_| "connected")),
    }
    // Only the two proven clients reached the function (lifecycle calls).
    let connects = || async { function.observed().await["connects"].as_array().map_or(0, Vec::len) };
    within(10, async {
        while connects().await < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(connects().await, 2);
    relay.kill().unwrap();
    relay.wait().unwrap();

    // A key file that is not a key: the relay does not start, and says which file.
    let bad = dir.join("not-a-key.pem");
    std::fs::write(&bad, "hello").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_asp-relay"))
        .args(["--listen", "127.0.0.1:0", "--plaintext", "--function", "http://127.0.0.1:9", "--pka-key"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--pka-key") && stderr.contains("not-a-key.pem"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
