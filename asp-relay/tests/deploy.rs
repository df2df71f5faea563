//! The files under `deploy/` work as written: the environment file names
//! only variables the binary reads, the relay starts with it (addresses and
//! paths swapped for loopback ones) and stops cleanly on SIGTERM, and
//! `systemd-analyze verify` accepts the unit.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{http, rust_function};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file).canonicalize().unwrap()
}

/// `KEY=VALUE` lines of the environment file (comments skipped).
fn env_file() -> BTreeMap<String, String> {
    std::fs::read_to_string(deploy("asp-relay.env"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("not KEY=VALUE: {l}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn the_environment_file_names_only_variables_the_relay_reads() {
    let help = Command::new(env!("CARGO_BIN_EXE_asp-relay")).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let vars = env_file();
    assert!(vars.len() >= 8, "{vars:?}");
    for key in vars.keys() {
        let known = key == "ASP_LOG" || help.contains(&format!("[env: {key}"));
        assert!(known, "deploy/asp-relay.env sets {key}, which asp-relay does not read");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_runs_from_the_environment_file_and_drains_on_sigterm() {
    let function = rust_function().await;
    let dir = std::env::temp_dir().join(format!("asp-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let management = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut vars = env_file();
    // Only what cannot be the same on a test machine changes.
    let local = [
        ("ASP_RELAY_FUNCTION", function.clone()),
        ("ASP_RELAY_LISTEN", "127.0.0.1:0".to_owned()),
        ("ASP_RELAY_MANAGEMENT_LISTEN", management.to_string()),
        ("ASP_RELAY_TLS_CERT", dir.join("cert.pem").display().to_string()),
        ("ASP_RELAY_TLS_KEY", dir.join("key.pem").display().to_string()),
    ];
    for (key, value) in local {
        assert!(vars.insert(key.to_owned(), value).is_some(), "{key} is in the environment file");
    }
    let mut relay = Command::new(env!("CARGO_BIN_EXE_asp-relay"))
        .env_clear()
        .envs(&vars)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(relay.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap().strip_prefix("relay ").unwrap().to_owned();
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
    let ready = http().get(format!("http://{management}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let client = asp_tokio::ClientBuilder::new(&url)
        .trust_pem(cert.cert.pem().as_bytes())
        .unwrap()
        .token(vars["ASP_RELAY_CLIENT_TOKENS"].split(',').next().unwrap())
        .connect()
        .await
        .expect("a client with the file's token connects");
    assert!(client.connection_id().is_some());
    let term = Command::new("kill").args(["-TERM", &relay.id().to_string()]).status().unwrap();
    assert!(term.success());
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), client.closed()).await.unwrap();
    assert_eq!(closed.code, asp_tokio::proto::ErrorCode::NO_ERROR);
    let status = relay.wait().unwrap();
    assert!(status.success(), "exit 0 after draining: {status}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut relay.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.lines().all(|l| l.starts_with('{')), "ASP_RELAY_LOG_FORMAT=json: {stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `systemd-analyze verify` on the unit, with its binary and environment
/// file pointed at this build (it checks both exist).
#[test]
fn systemd_accepts_the_unit() {
    let unit = std::fs::read_to_string(deploy("asp-relay.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/asp-relay\n"));
    assert!(unit.contains("EnvironmentFile=/etc/asp-relay/asp-relay.env\n"));
    let unit = unit
        .replace("ExecStart=/usr/local/bin/asp-relay", &format!("ExecStart={}", env!("CARGO_BIN_EXE_asp-relay")))
        .replace(
            "EnvironmentFile=/etc/asp-relay/asp-relay.env",
            &format!("EnvironmentFile={}", deploy("asp-relay.env").display()),
        );
    let dir = std::env::temp_dir().join(format!("asp-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("asp-relay.service");
    std::fs::write(&path, unit).unwrap();
    let out =
        Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze (Debian: systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("asp-relay.service:"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
