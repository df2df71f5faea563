//! AID PKA from the command line, as an operator runs it: `asp aid generate
//! --pka-key` makes the key and the record, `asp serve --pka-key` proves it
//! to a client that read that record, and `asp aid pka-check` runs vector
//! files.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use asp_proto::aid::pka::EndpointKey;
use asp_proto::aid::{AidErrorCode, AidRecord};
use asp_proto::Value;
use asp_tokio::{ClientBuilder, ConnectError, PkaRequirement};

fn asp(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_asp")).args(args).output().expect("run asp");
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("asp-pka-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn vectors(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../asp-proto/tests/aid-vectors").join(name).display().to_string()
}

#[test]
fn generate_makes_a_key_once_and_publishes_it() {
    let dir = scratch("generate");
    let key = dir.join("agent.pem");
    let key_arg = key.to_str().unwrap();
    let base = ["aid", "generate", "--uri", "wss://agent.example.com/v1/agent-socket", "--proto", "websocket"];
    let (status, first, stderr) = asp(&[&base[..], &["--pka-key", key_arg]].concat());
    assert_eq!(status, 0, "{stderr}");
    assert!(stderr.contains("wrote a new Ed25519 PKA key"), "{stderr}");
    let record = AidRecord::parse(first.trim()).unwrap();
    assert_eq!(record.kid.as_deref(), Some("g1"));
    assert!(EndpointKey::from_record(&record).unwrap().is_some());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The same file again: the same key, and no new file.
    let (_, again, stderr) = asp(&[&base[..], &["--pka-key", key_arg]].concat());
    assert_eq!(again, first);
    assert!(stderr.is_empty(), "{stderr}");
    // aid2: base64url k, no kid, the same key.
    let (status, v2, _) = asp(&[&base[..], &["--pka-key", key_arg, "--aid2"]].concat());
    assert_eq!(status, 0);
    let v2 = AidRecord::parse(v2.trim()).unwrap();
    assert_eq!(v2.kid, None);
    let (k1, k2) =
        (EndpointKey::from_record(&record).unwrap().unwrap(), EndpointKey::from_record(&v2).unwrap().unwrap());
    assert_eq!(k1.public_key(), k2.public_key());
    // A file that is not a key is named in the error.
    let bad = dir.join("bad.pem");
    std::fs::write(&bad, "not a key").unwrap();
    let (status, _, stderr) = asp(&[&base[..], &["--pka-key", bad.to_str().unwrap()]].concat());
    assert_eq!(status, 1);
    assert!(stderr.contains("bad.pem") && stderr.contains("PKCS#8"), "{stderr}");
}

/// `asp serve --pka-key KEY --pka-kid a7 --write-cert CERT` and the first
/// line it prints on stdout (empty when it did not start).
fn serve(key: &Path, cert: &Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_asp"))
        .args(["serve", "--bind", "127.0.0.1:0", "--pka-kid", "a7", "--write-cert"])
        .arg(cert)
        .arg("--pka-key")
        .arg(key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_proves_the_key_generate_published() {
    let dir = scratch("serve");
    let key = dir.join("agent.pem");
    let cert = dir.join("cert.pem");
    // No key file yet: serve refuses to start, naming the file.
    let (mut child, out) = serve(&key, &cert);
    assert!(out.is_empty());
    let mut err = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut err).unwrap();
    assert!(err.contains("--pka-key") && err.contains("agent.pem"), "{err}");
    assert!(!child.wait().unwrap().success());

    let mut running = None;
    for v2 in [false, true] {
        let mut args = vec!["aid", "generate", "--uri", "wss://127.0.0.1/", "--proto", "websocket", "--kid", "a7"];
        args.extend(["--pka-key", key.to_str().unwrap()]);
        if v2 {
            args.retain(|a| *a != "--kid" && *a != "a7");
            args.push("--aid2");
        }
        let (status, record, stderr) = asp(&args);
        assert_eq!(status, 0, "{stderr}");
        let record = AidRecord::parse(record.trim()).unwrap();
        let requirement = PkaRequirement::new(EndpointKey::from_record(&record).unwrap().unwrap());
        if running.is_none() {
            // The key exists now (generate made it).
            let (child, line) = serve(&key, &cert);
            let url = line.split_whitespace().nth(1).expect("serving URL …").to_owned();
            running = Some((child, url));
        }
        let url = &running.as_ref().unwrap().1;
        let pem = std::fs::read(&cert).unwrap();
        let client = ClientBuilder::new(url).trust_pem(&pem).unwrap().pka(requirement).connect().await.unwrap();
        let done = client.invoke("echo", Value::from("proven")).await.unwrap().result().await.unwrap();
        assert_eq!(done.result, Value::from("proven"));
    }
    // A record whose kid is not the one the server signs as.
    let url = running.as_ref().unwrap().1.clone();
    let (_, record, _) = asp(&[
        "aid",
        "generate",
        "--uri",
        "wss://127.0.0.1/",
        "--proto",
        "websocket",
        "--pka-key",
        key.to_str().unwrap(),
    ]);
    let record = AidRecord::parse(record.trim()).unwrap();
    let requirement = PkaRequirement::new(EndpointKey::from_record(&record).unwrap().unwrap());
    let pem = std::fs::read(&cert).unwrap();
    match ClientBuilder::new(&url).trust_pem(&pem).unwrap().pka(requirement).connect().await {
        Err(ConnectError::Pka(e)) => assert_eq!(e.code, AidErrorCode::Security),
        other => panic!("{:?}", other.map(|_| "connected")),
    }
    let (mut child, _) = running.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn pka_check_reports_each_vector_and_exits_by_the_verdicts() {
    let (status, stdout, stderr) = asp(&["aid", "pka-check", &vectors("pka-vectors-v2.1.json")]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok ")).count(), 10, "{stdout}");
    assert!(stdout.contains("10 of 10 vectors match"));
    let (status, stdout, _) = asp(&["aid", "pka-check", "--json", &vectors("aid1-pka-fixed-time-vector.json")]);
    assert_eq!(status, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((report["ok"].as_bool(), report["total"].as_u64()), (Some(true), Some(1)));
    // A vector whose expectation is wrong makes the run fail, and says which.
    let dir = scratch("check");
    let text = std::fs::read_to_string(vectors("pka-vectors-v2.1.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["vectors"][4]["expect"] = "fail".into();
    let flipped = dir.join("flipped.json");
    std::fs::write(&flipped, json.to_string()).unwrap();
    let (status, stdout, _) = asp(&["aid", "pka-check", "--json", flipped.to_str().unwrap()]);
    assert_eq!(status, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["matched"].as_u64(), Some(9));
    let miss: Vec<_> = report["vectors"].as_array().unwrap().iter().filter(|v| v["match"] == false).collect();
    assert_eq!(miss[0]["id"], "v2-rfc9421-response-signature");
    // Not a vector file: status 2 and the file's name.
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "[1, 2]").unwrap();
    let (status, _, stderr) = asp(&["aid", "pka-check", junk.to_str().unwrap()]);
    assert_eq!(status, 2);
    assert!(stderr.contains("junk.json") && stderr.contains("not a PKA vector file"), "{stderr}");
}
