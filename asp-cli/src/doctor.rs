//! `asp discover --check DOMAIN`: a doctor for a domain's AID setup, in the
//! manner of aid-doctor. Each check prints one line with a status and a
//! code: the record found, parsed, its deprecation, DNSSEC, the endpoint's
//! TLS certificate and its expiry, and the PKA proof (over the WebSocket
//! upgrade for `wss://`, over a plain GET for `https://`).
//!
//! Exit status: 0 when nothing failed (warnings allowed); 1 the record is
//! missing, invalid or deprecated; 3 TLS failed; 4 the PKA proof failed;
//! 2 bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use asp_proto::aid::pka::{Challenge, EndpointKey, Proof};
use asp_proto::aid::{AidErrorCode, AidRecord};
use asp_tokio::{Discovered, PkaRequirement};
use serde_json::{json, Map, Value};

/// A certificate expiring sooner than this is a warning.
const RENEW_DAYS: i64 = 21;

/// `asp discover --check`'s inputs.
pub(crate) struct CheckArgs {
    pub(crate) domain: String,
    pub(crate) protocol: Option<String>,
    pub(crate) nameserver: Option<std::net::SocketAddr>,
    pub(crate) well_known: bool,
    pub(crate) timeout: Duration,
    /// Extra CA (PEM) trusted for the endpoint and `.well-known`.
    pub(crate) ca: Option<PathBuf>,
    pub(crate) json: bool,
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Status {
    Ok,
    Info,
    Warn,
    Error,
    Skip,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Warn => "warn",
            Status::Error => "error",
            Status::Skip => "skip",
        }
    }
}

struct Line {
    check: &'static str,
    status: Status,
    code: String,
    message: String,
    /// The exit status when this line is the first error.
    exit: u8,
}

#[derive(Default)]
struct Report {
    lines: Vec<Line>,
}

impl Report {
    fn add(&mut self, check: &'static str, status: Status, code: &str, message: impl Into<String>) {
        let exit = match check {
            "tls" => 3,
            "pka" => 4,
            _ => 1,
        };
        self.lines.push(Line { check, status, code: code.to_owned(), message: message.into(), exit });
    }

    fn skip_rest(&mut self, after: &'static str) {
        const ORDER: [&str; 6] = ["record", "parse", "deprecation", "dnssec", "tls", "pka"];
        let from = ORDER.iter().position(|c| *c == after).map_or(0, |i| i + 1);
        for check in &ORDER[from..] {
            self.add(check, Status::Skip, "SKIPPED", "an earlier check failed");
        }
    }

    fn exit_code(&self) -> u8 {
        self.lines.iter().find(|l| l.status == Status::Error).map_or(0, |l| l.exit)
    }
}

pub(crate) async fn run(args: CheckArgs) -> ExitCode {
    let ca = match args.ca.as_ref().map(|p| std::fs::read(p).map_err(|e| format!("--ca {}: {e}", p.display()))) {
        Some(Err(e)) => return usage(&e),
        Some(Ok(pem)) => Some(pem),
        None => None,
    };
    let tls = match asp_tokio::tls::client_config(ca.as_deref()) {
        Ok(tls) => tls,
        Err(e) => return usage(&format!("--ca: {e}")),
    };
    let mut builder = asp_tokio::Discovery::builder()
        .well_known(args.well_known)
        .timeout(args.timeout)
        .well_known_timeout(args.timeout)
        .well_known_tls(tls.clone());
    if let Some(ns) = args.nameserver {
        builder = builder.nameservers([ns]);
    }
    let mut report = Report::default();
    let found = match builder.build() {
        Ok(discovery) => discovery.discover(&args.domain, args.protocol.as_deref()).await,
        Err(e) => Err(e),
    };
    let mut record = None;
    match found {
        Ok(found) => {
            record_lines(&mut report, &found);
            tls_line(&mut report, &found.record, &tls, args.timeout).await;
            pka_line(&mut report, &found.record, &args.domain, &tls, args.timeout).await;
            record = Some(found.record);
        }
        Err(e)
            if matches!(
                e.code,
                AidErrorCode::NoRecord | AidErrorCode::DnsLookupFailed | AidErrorCode::FallbackFailed
            ) =>
        {
            report.add("record", Status::Error, e.code.name(), e.message);
            report.skip_rest("record");
        }
        Err(e) if e.message.contains("deprecated at") => {
            report.add("record", Status::Ok, "RECORD_FOUND", "a record answered");
            report.add("parse", Status::Ok, "RECORD_VALID", "the record parses");
            report.add("deprecation", Status::Error, "DEPRECATED", e.message);
            report.skip_rest("deprecation");
        }
        Err(e) => {
            report.add("record", Status::Ok, "RECORD_FOUND", "a record answered");
            report.add("parse", Status::Error, e.code.name(), e.message);
            report.skip_rest("parse");
        }
    }
    print(&args, &report, record.as_ref());
    ExitCode::from(report.exit_code())
}

fn usage(message: &str) -> ExitCode {
    eprintln!("asp: {message}");
    ExitCode::from(2)
}

fn record_lines(report: &mut Report, found: &Discovered) {
    let r = &found.record;
    let text = r.to_txt();
    let origin = format!("{} from {}, TTL {} s, {} bytes", found.name, found.source, found.ttl, text.len());
    report.add("record", Status::Ok, "RECORD_FOUND", origin);
    report.add("parse", Status::Ok, "RECORD_VALID", format!("{}: p={} u={}", r.version.as_str(), r.proto, r.uri));
    match &r.dep {
        Some(dep) => report.add("deprecation", Status::Warn, "DEPRECATION_SCHEDULED", format!("deprecated from {dep}")),
        None => report.add("deprecation", Status::Ok, "NOT_DEPRECATED", "no dep"),
    }
    match found.security.dnssec_validated {
        Some(true) => report.add("dnssec", Status::Ok, "DNSSEC_VALIDATED", "the resolver set the AD bit"),
        Some(false) => report.add(
            "dnssec",
            Status::Info,
            "DNSSEC_NOT_VALIDATED",
            "no AD bit from the resolver: sign the zone (or use a validating resolver)",
        ),
        None => report.add("dnssec", Status::Info, "DNSSEC_NOT_APPLICABLE", "the record came from .well-known"),
    }
}

/// The endpoint's scheme, host and port, for `wss://` and `https://` URIs.
fn endpoint(record: &AidRecord) -> Option<(String, String, u16)> {
    let uri: hyper::Uri = record.uri.parse().ok()?;
    let scheme = uri.scheme_str()?.to_owned();
    if scheme != "wss" && scheme != "https" {
        return None;
    }
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_owned();
    Some((scheme, host, uri.port_u16().unwrap_or(443)))
}

async fn tls_line(report: &mut Report, record: &AidRecord, tls: &Arc<rustls::ClientConfig>, limit: Duration) {
    let Some((_, host, port)) = endpoint(record) else {
        return report.add(
            "tls",
            Status::Skip,
            "TLS_NOT_APPLICABLE",
            format!("`{}` is not wss:// or https://", record.uri),
        );
    };
    let handshake = async {
        let stream = connect_tls(&host, port, tls).await?;
        let cert = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned();
        cert.ok_or(("TLS_INVALID", "the server sent no certificate".to_owned()))
    };
    let cert = match tokio::time::timeout(limit, handshake).await {
        Ok(Ok(cert)) => cert,
        Ok(Err((code, why))) => return report.add("tls", Status::Error, code, format!("{host}:{port}: {why}")),
        Err(_) => {
            return report.add(
                "tls",
                Status::Error,
                "TLS_UNREACHABLE",
                format!("{host}:{port}: no answer within {} ms", limit.as_millis()),
            )
        }
    };
    let not_after = x509_parser::parse_x509_certificate(&cert).ok().map(|(_, c)| c.validity().not_after.timestamp());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    match not_after.map(|t| (t - now) / 86_400) {
        Some(days) if days < RENEW_DAYS => report.add(
            "tls",
            Status::Warn,
            "TLS_EXPIRES_SOON",
            format!("{host}:{port}: valid, expires in {days} days: renew it"),
        ),
        Some(days) => {
            report.add("tls", Status::Ok, "TLS_VALID", format!("{host}:{port}: valid, expires in {days} days"))
        }
        None => {
            report.add("tls", Status::Warn, "TLS_VALID", format!("{host}:{port}: valid; its expiry could not be read"))
        }
    }
}

async fn pka_line(
    report: &mut Report,
    record: &AidRecord,
    domain: &str,
    tls: &Arc<rustls::ClientConfig>,
    limit: Duration,
) {
    let key = match EndpointKey::from_record(record) {
        Ok(Some(key)) => key,
        Ok(None) => {
            return report.add(
                "pka",
                Status::Info,
                "PKA_ABSENT",
                "the record publishes no key (k): nothing proves the endpoint",
            )
        }
        Err(e) => return report.add("pka", Status::Error, "PKA_INVALID_KEY", e.message),
    };
    if report.lines.iter().any(|l| l.check == "tls" && l.status == Status::Error) {
        return report.add("pka", Status::Skip, "SKIPPED", "TLS failed");
    }
    let requirement = PkaRequirement::new(key).bound_to(domain);
    let proved = match endpoint(record) {
        Some((scheme, ..)) if scheme == "wss" => {
            let net = asp_tokio::TokioRuntime;
            asp_tokio::prove_endpoint(&net, &record.uri, &requirement, tls.clone(), limit).await.map_err(|e| match e {
                asp_tokio::ConnectError::Pka(e) => e.message,
                other => other.to_string(),
            })
        }
        Some(_) => http_proof(&record.uri, &requirement, domain, tls, limit).await,
        None => return report.add("pka", Status::Skip, "PKA_NOT_APPLICABLE", "a key on a non-network URI"),
    };
    match proved {
        Ok(proof) => {
            let binding = if proof.domain_bound { ", domain-bound" } else { "" };
            let label = format!("alg=ed25519, {} keyid={}{binding}", proof.version.as_str(), proof.keyid);
            report.add("pka", Status::Ok, "PKA_VERIFIED", label);
        }
        Err(why) => report.add("pka", Status::Error, "PKA_FAILED", why),
    }
}

/// TCP and TLS to `host:port`; a failure carries the doctor's code
/// (`TLS_UNREACHABLE`, `TLS_INVALID`) and the reason, with rustls's
/// explained.
async fn connect_tls(
    host: &str,
    port: u16,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, (&'static str, String)> {
    let tcp = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| ("TLS_UNREACHABLE", e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| ("TLS_INVALID", e.to_string()))?;
    tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp).await.map_err(|e| {
        let why = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()).map(asp_tokio::tls::explain);
        ("TLS_INVALID", why.unwrap_or_else(|| e.to_string()))
    })
}

/// The AID proof of an `https://` endpoint: one GET with the challenge.
async fn http_proof(
    uri: &str,
    requirement: &PkaRequirement,
    domain: &str,
    tls: &Arc<rustls::ClientConfig>,
    limit: Duration,
) -> Result<Proof, String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
    let challenge = Challenge::new(requirement.key().clone(), uri, nonce, now)
        .and_then(|c| c.with_domain(domain))
        .map_err(|e| e.message)?;
    let exchange = async {
        let url: hyper::Uri = uri.parse().map_err(|e| format!("{uri}: {e}"))?;
        let host = url.host().ok_or("no host")?.to_owned();
        let stream = connect_tls(&host, url.port_u16().unwrap_or(443), tls).await.map_err(|(_, why)| why)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut request = hyper::Request::get(url.path_and_query().map_or("/", |p| p.as_str()))
            .header("host", url.authority().map_or(host.as_str(), |a| a.as_str()));
        for (name, value) in challenge.request_headers() {
            request = request.header(name, value);
        }
        let request = request.body(http_body_util::Empty::<bytes::Bytes>::new()).map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
            .collect();
        Ok::<_, String>((response.status().as_u16(), headers))
    };
    let (status, headers) =
        tokio::time::timeout(limit, exchange).await.map_err(|_| "no answer in time".to_owned())??;
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    challenge.verify(status, &headers, now).map_err(|e| e.message)
}

fn print(args: &CheckArgs, report: &Report, record: Option<&AidRecord>) {
    let exit = report.exit_code();
    if args.json {
        let checks: Vec<Value> = report
            .lines
            .iter()
            .map(|l| json!({ "check": l.check, "status": l.status.name(), "code": l.code, "message": l.message }))
            .collect();
        let record = record
            .map(|r| r.fields().into_iter().map(|(k, v)| (k.to_owned(), json!(v))).collect::<Map<String, Value>>());
        println!(
            "{}",
            json!({ "domain": args.domain, "ok": exit == 0, "exit_code": exit, "checks": checks, "record": record })
        );
        return;
    }
    for l in &report.lines {
        println!("{:<5} {:<12} {:<22} {}", l.status.name(), l.check, l.code, l.message);
    }
    match exit {
        0 => println!("{}: healthy", args.domain),
        _ => println!("{}: failed (exit {exit})", args.domain),
    }
}
