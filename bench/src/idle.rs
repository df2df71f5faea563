//! Memory per idle connection, measured in the server's own process: the
//! harness starts itself again as a server (`--idle-server`), opens the
//! connections from this process, and reads the server's resident set from
//! `/proc/<pid>/status` before and after.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use asp_tokio::TokioRuntime;

use crate::Tls;

/// What the server child prints first: the URL, then it serves until killed.
pub(crate) async fn run_server(tls: bool) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let t = Tls { cert_pem: cert.cert.pem(), key_pem: cert.signing_key.serialize_pem() };
    let server = crate::asp::server::<TokioRuntime>(tls.then_some(&t), 0).await;
    println!("{}", server.url());
    if tls {
        // The parent needs the certificate to trust.
        println!("{}", t.cert_pem.replace('\n', "|"));
    }
    server.closed().await;
}

pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The result of one idle-connection run.
pub(crate) struct Idle {
    pub(crate) connections: usize,
    pub(crate) bytes_per_connection: f64,
    pub(crate) open_seconds: f64,
}

pub(crate) struct Kill(pub(crate) Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Opens `n` ASP connections (handshake done) to a fresh server process and
/// keeps them idle.
pub(crate) async fn measure(n: usize, tls: bool) -> Idle {
    let exe = std::env::current_exe().expect("exe");
    let mut args = vec!["--idle-server"];
    if tls {
        args.push("--tls");
    }
    let mut child = Kill(Command::new(&exe).args(&args).stdout(Stdio::piped()).spawn().expect("server process"));
    let mut lines = BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    let url = lines.next().expect("url").expect("url");
    let cert_pem = if tls { Some(lines.next().expect("cert").expect("cert").replace('|', "\n")) } else { None };
    let tls = cert_pem.map(|cert_pem| Tls { cert_pem, key_pem: String::new() });
    let pid = child.0.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let started = Instant::now();
    let mut clients = Vec::with_capacity(n);
    // 64 handshakes in flight at a time.
    for batch in (0..n).collect::<Vec<_>>().chunks(64) {
        let opened =
            futures::future::join_all(batch.iter().map(|_| crate::asp::client::<TokioRuntime>(&url, tls.as_ref())))
                .await;
        clients.extend(opened);
    }
    let open_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid);
    drop(clients);
    Idle { connections: n, bytes_per_connection: (after.saturating_sub(before) * 1024) as f64 / n as f64, open_seconds }
}

/// Descriptors kept free for everything else in a process.
const DESCRIPTOR_RESERVE: u64 = 200;

/// `n`, or fewer when the descriptor limit (both processes have `limit`)
/// cannot hold that many connections; says so.
pub(crate) fn fitting(n: usize, limit: u64) -> usize {
    let fits = usize::try_from(limit.saturating_sub(DESCRIPTOR_RESERVE)).unwrap_or(usize::MAX);
    if n > fits {
        eprintln!("the descriptor limit is {limit} (hard limit; raising it needs CAP_SYS_RESOURCE): measuring {fits} connections, not {n}");
    }
    n.min(fits)
}

impl Idle {
    pub(crate) fn json(&self, scheme: &str) -> serde_json::Value {
        serde_json::json!({
            "scheme": scheme, "connections": self.connections,
            "bytes_per_connection": self.bytes_per_connection, "open_seconds": self.open_seconds,
        })
    }
}

/// The idle table (markdown).
pub(crate) fn print(rows: &[(&str, Idle)]) {
    println!("| idle ASP connections (server process RSS growth) | connections | per connection | time to open all |");
    println!("|---|---:|---:|---:|");
    for (scheme, i) in rows {
        println!(
            "| asp-tokio, {scheme} | {} | {:.1} KiB | {:.2} s |",
            i.connections,
            i.bytes_per_connection / 1024.0,
            i.open_seconds
        );
    }
}
