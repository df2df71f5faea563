//! `asp aid parse`, `asp aid generate`, `asp aid pka-check` and `asp discover`.

use std::process::ExitCode;

use asp_proto::aid::pka::vectors::VectorFile;
use asp_proto::aid::pka::Signer;
use asp_proto::aid::{generate, AidRecord, AidVersion};
use serde_json::{json, Map, Value};

/// Parses one TXT string; prints the record (or JSON); exit 0 valid, 1 not.
pub(crate) fn parse(record: &str, as_json: bool) -> ExitCode {
    match AidRecord::parse(record) {
        Ok(r) => {
            if as_json {
                let fields: Map<String, Value> =
                    r.fields().into_iter().map(|(k, v)| (k.to_owned(), json!(v))).collect();
                println!("{}", json!({ "ok": true, "record": fields }));
            } else {
                for (key, value) in r.fields() {
                    println!("{key:>5}  {value}");
                }
                println!("canonical  {}", r.to_txt());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if as_json {
                println!(
                    "{}",
                    json!({ "ok": false, "error": e.code.name(), "code": e.code.code(), "message": e.message })
                );
            } else {
                eprintln!("invalid: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The fields `asp aid generate` takes.
pub(crate) struct GenerateArgs {
    pub(crate) uri: String,
    pub(crate) proto: String,
    pub(crate) auth: Option<String>,
    pub(crate) desc: Option<String>,
    pub(crate) docs: Option<String>,
    pub(crate) dep: Option<String>,
    pub(crate) pka: Option<String>,
    pub(crate) kid: Option<String>,
    pub(crate) pka_key: Option<std::path::PathBuf>,
    pub(crate) aid2: bool,
}

/// The key in `path`, or a new one written there (mode 0600) when the file
/// does not exist.
fn load_or_create_key(path: &std::path::Path) -> Result<Signer, String> {
    if path.exists() {
        return asp_tokio::read_pka_key(path, "g1");
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("random key: {e}"))?;
    let signer = Signer::from_seed(&seed);
    let pem = signer.to_pem().map_err(|e| e.message)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, pem.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote a new Ed25519 PKA key to {} (keep it secret)", path.display());
    Ok(signer)
}

/// Prints the canonical record, warnings on stderr; exit 1 if invalid.
pub(crate) fn generate_record(args: GenerateArgs) -> ExitCode {
    let version = if args.aid2 { AidVersion::Aid2 } else { AidVersion::Aid1 };
    let (mut pka, mut kid) = (args.pka, args.kid);
    if let Some(path) = &args.pka_key {
        let signer = match load_or_create_key(path) {
            Ok(signer) => signer,
            Err(e) => {
                eprintln!("asp: --pka-key {e}");
                return ExitCode::FAILURE;
            }
        };
        match version {
            AidVersion::Aid1 => {
                pka = Some(signer.aid1_pka());
                kid = Some(kid.unwrap_or_else(|| signer.kid().to_owned()));
            }
            AidVersion::Aid2 => pka = Some(signer.aid2_k()),
        }
    }
    let record = AidRecord {
        version,
        uri: args.uri,
        proto: args.proto,
        auth: args.auth,
        desc: args.desc,
        docs: args.docs,
        dep: args.dep,
        pka,
        kid,
    };
    match generate(&record) {
        Ok((txt, warnings)) => {
            println!("{txt}");
            for w in warnings {
                eprintln!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("asp: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `asp aid pka-check`: runs every vector of `file`; one line (or one JSON
/// object) per vector; exit 0 only when every verdict matches `expect`.
pub(crate) fn pka_check(file: &std::path::Path, now: Option<u64>, as_json: bool) -> ExitCode {
    let parsed = std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str::<VectorFile>(&text).map_err(|e| format!("not a PKA vector file: {e}")));
    let vectors = match parsed {
        Ok(file) => file.into_vectors(),
        Err(e) => {
            eprintln!("asp: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let now = now.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    });
    let outcomes: Vec<_> = vectors.iter().map(|v| v.run(now)).collect();
    let matched = outcomes.iter().filter(|o| o.matches()).count();
    if as_json {
        let cases: Vec<Value> = outcomes
            .iter()
            .map(|o| json!({ "id": o.id, "expect": o.expect, "got": o.got, "match": o.matches(), "reason": o.reason }))
            .collect();
        println!(
            "{}",
            json!({ "ok": matched == outcomes.len(), "matched": matched, "total": outcomes.len(), "vectors": cases })
        );
    } else {
        for o in &outcomes {
            let mark = if o.matches() { "ok  " } else { "FAIL" };
            let why = o.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            println!("{mark} {:<40} expect {}, got {}{why}", o.id, o.expect, o.got);
        }
        println!("pka-check: {matched} of {} vectors match", outcomes.len());
    }
    if matched == outcomes.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `asp discover`: a readable report, or one JSON object; exit 0 or 1.
/// What `asp discover` asks.
pub(crate) struct Query {
    pub(crate) domain: String,
    pub(crate) protocol: Option<String>,
    pub(crate) nameserver: Option<std::net::SocketAddr>,
    pub(crate) well_known: bool,
    pub(crate) timeout: std::time::Duration,
    pub(crate) security: Option<asp_proto::aid::policy::SecurityMode>,
}

pub(crate) async fn discover(query: Query, as_json: bool) -> ExitCode {
    let timeout = query.timeout;
    let mut builder =
        asp_tokio::Discovery::builder().well_known(query.well_known).timeout(timeout).well_known_timeout(timeout);
    if let Some(ns) = query.nameserver {
        builder = builder.nameservers([ns]);
    }
    if let Some(mode) = query.security {
        builder = builder.security(mode);
    }
    let result = match builder.build() {
        Ok(discovery) => discovery.discover(&query.domain, query.protocol.as_deref()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(found) => {
            if as_json {
                let fields: Map<String, Value> =
                    found.record.fields().into_iter().map(|(k, v)| (k.to_owned(), json!(v))).collect();
                let s = &found.security;
                let codes: Vec<&str> = s.warnings.iter().map(|w| w.code).collect();
                let security = json!({ "dnssec_validated": s.dnssec_validated, "pka_present": s.pka_present, "warning_codes": codes });
                println!(
                    "{}",
                    json!({ "ok": true, "name": found.name, "ttl": found.ttl, "source": found.source.to_string(), "record": fields, "warnings": found.warnings, "security": security })
                );
            } else {
                println!("{} (TTL {} s, from {})", found.name, found.ttl, found.source);
                for (key, value) in found.record.fields() {
                    println!("{key:>5}  {value}");
                }
                for w in &found.warnings {
                    println!("warning: {w}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if as_json {
                println!(
                    "{}",
                    json!({ "ok": false, "error": e.code.name(), "code": e.code.code(), "message": e.message })
                );
            } else {
                eprintln!("asp: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
