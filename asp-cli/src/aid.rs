//! `asp aid parse` and `asp aid generate`.

use std::process::ExitCode;

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
}

/// Prints the canonical record, warnings on stderr; exit 1 if invalid.
pub(crate) fn generate_record(args: GenerateArgs) -> ExitCode {
    let record = AidRecord {
        version: AidVersion::Aid1,
        uri: args.uri,
        proto: args.proto,
        auth: args.auth,
        desc: args.desc,
        docs: args.docs,
        dep: args.dep,
        pka: args.pka,
        kid: args.kid,
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

/// `asp discover`: a readable report, or one JSON object; exit 0 or 1.
pub(crate) async fn discover(
    domain: &str,
    protocol: Option<&str>,
    nameserver: Option<std::net::SocketAddr>,
    well_known: bool,
    timeout: std::time::Duration,
    as_json: bool,
) -> ExitCode {
    let mut builder =
        asp_tokio::Discovery::builder().well_known(well_known).timeout(timeout).well_known_timeout(timeout);
    if let Some(ns) = nameserver {
        builder = builder.nameservers([ns]);
    }
    let result = match builder.build() {
        Ok(discovery) => discovery.discover(domain, protocol).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(found) => {
            if as_json {
                let fields: Map<String, Value> =
                    found.record.fields().into_iter().map(|(k, v)| (k.to_owned(), json!(v))).collect();
                println!(
                    "{}",
                    json!({ "ok": true, "name": found.name, "ttl": found.ttl, "source": found.source.to_string(), "record": fields, "warnings": found.warnings })
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
