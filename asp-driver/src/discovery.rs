//! AID discovery over DNS (SPEC.md §16): from a domain to an agent's
//! `wss://` endpoint. Parsing and selection are `asp_proto::aid`; this module
//! asks DNS (hickory-resolver, on the adapter's runtime through
//! [`DnsRuntime::dns`]) and keeps a cache bounded by the record's TTL.
//!
//! The `.well-known/agent` fallback is one HTTPS GET. It is sent as
//! HTTP/1.0 with `Connection: close`, so the answer can only be delimited by
//! `Content-Length` or the end of the stream (never chunked), and parsed with
//! `httparse`: that keeps this crate free of hyper, whose Tokio dependency
//! the async-std/smol adapter must not have.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use asp_proto::aid::policy::{PreviousSecurity, SecurityPolicy, SecurityReport, TrustSource};
use asp_proto::aid::{from_well_known_pairs, select, AidError, AidErrorCode, AidRecord};
use futures::future::{select as race, Either};
use futures::{AsyncReadExt, AsyncWriteExt, FutureExt};
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::Resolver;

use crate::net::Network;

/// Where a record came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DiscoverySource {
    /// A TXT record in DNS.
    Dns,
    /// `https://<host>/.well-known/agent`, after DNS had nothing.
    WellKnown,
}

impl From<DiscoverySource> for TrustSource {
    fn from(source: DiscoverySource) -> Self {
        match source {
            DiscoverySource::Dns => TrustSource::Dns,
            DiscoverySource::WellKnown => TrustSource::WellKnown,
        }
    }
}

impl std::fmt::Display for DiscoverySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DiscoverySource::Dns => "DNS",
            DiscoverySource::WellKnown => "/.well-known/agent",
        })
    }
}

/// Largest `.well-known/agent` body accepted.
pub const WELL_KNOWN_MAX_BYTES: usize = 64 * 1024;

/// How long a `.well-known/agent` result is cached.
const WELL_KNOWN_TTL: u32 = 300;

/// A discovered agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovered {
    /// The record.
    pub record: AidRecord,
    /// The DNS name that answered (`_agent.example.com`).
    pub name: String,
    /// Its TTL in seconds; the result is cached no longer.
    pub ttl: u32,
    /// Where it came from.
    pub source: DiscoverySource,
    /// Things a user should know: a scheduled deprecation, the security
    /// policy's warnings.
    pub warnings: Vec<String>,
    /// What the security policy established (DNSSEC, PKA, downgrade), with
    /// its warnings by code.
    pub security: SecurityReport,
}

impl Discovered {
    /// What to keep for the next discovery of this domain, so that a
    /// weaker answer then is detected ([`Discovery::discover_since`]).
    pub fn seen(&self) -> PreviousSecurity {
        SecurityReport::seen(&self.record, self.source.into())
    }
}

/// Configures a [`Discovery`] on the network (runtime) `N`.
#[derive(Clone, Debug)]
pub struct DiscoveryBuilder<N> {
    net: std::marker::PhantomData<fn() -> N>,
    nameservers: Option<Vec<SocketAddr>>,
    timeout: Duration,
    well_known: bool,
    well_known_timeout: Duration,
    well_known_port: u16,
    well_known_tls: Option<Arc<rustls::ClientConfig>>,
    policy: SecurityPolicy,
}

impl<N> Default for DiscoveryBuilder<N> {
    fn default() -> Self {
        DiscoveryBuilder {
            net: std::marker::PhantomData,
            nameservers: None,
            timeout: Duration::from_secs(5),
            well_known: true,
            well_known_timeout: Duration::from_secs(2),
            well_known_port: 443,
            well_known_tls: None,
            policy: SecurityPolicy::default(),
        }
    }
}

impl<N: DnsRuntime> DiscoveryBuilder<N> {
    /// Ask these name servers (UDP) instead of the system's: private
    /// deployments and tests.
    pub fn nameservers(mut self, servers: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.nameservers = Some(servers.into_iter().collect());
        self
    }

    /// How long one DNS query may take (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether to try `https://<host>/.well-known/agent` when DNS has no
    /// record or fails (default: yes).
    pub fn well_known(mut self, enabled: bool) -> Self {
        self.well_known = enabled;
        self
    }

    /// The fallback's time limit, connection to last byte (default 2 s).
    pub fn well_known_timeout(mut self, timeout: Duration) -> Self {
        self.well_known_timeout = timeout;
        self
    }

    /// The fallback's HTTPS port (default 443): tests and private deployments.
    pub fn well_known_port(mut self, port: u16) -> Self {
        self.well_known_port = port;
        self
    }

    /// The TLS configuration for the fallback (default: webpki roots).
    pub fn well_known_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.well_known_tls = Some(config);
        self
    }

    /// The security policies (default: none beyond the record's own rules):
    /// a [`SecurityMode`](asp_proto::aid::policy::SecurityMode) preset or a
    /// [`SecurityPolicy`] with each policy chosen. DNSSEC is judged by the
    /// resolver's AD bit: use a validating resolver you trust (a local one,
    /// or over an encrypted path); hickory does not set the DO bit, so a
    /// resolver that sets AD only for DO queries reports "not validated".
    pub fn security(mut self, policy: impl Into<SecurityPolicy>) -> Self {
        self.policy = policy.into();
        self
    }

    /// Builds the resolver, on the network (runtime) `N`.
    pub fn build(self) -> Result<Discovery<N>, AidError> {
        let net = N::default();
        let lookup_failed = |e: NetError| AidError::new(AidErrorCode::DnsLookupFailed, e.to_string());
        let mut builder = match &self.nameservers {
            Some(servers) => {
                let configs = servers
                    .iter()
                    .map(|addr| {
                        let mut config = NameServerConfig::udp(addr.ip());
                        for connection in &mut config.connections {
                            connection.port = addr.port();
                        }
                        config
                    })
                    .collect();
                let config = ResolverConfig::from_parts(None, Vec::new(), configs);
                Resolver::builder_with_config(config, net.dns())
            }
            None => Resolver::builder(net.dns()).map_err(lookup_failed)?,
        };
        let options = builder.options_mut();
        options.timeout = self.timeout;
        options.attempts = 1;
        options.use_hosts_file = ResolveHosts::Never;
        let resolver = builder.build().map_err(lookup_failed)?;
        let well_known = if self.well_known {
            let tls = match self.well_known_tls {
                Some(tls) => tls,
                None => crate::tls::client_config(None)
                    .map_err(|e| AidError::new(AidErrorCode::FallbackFailed, e.to_string()))?,
            };
            Some(WellKnown { tls, port: self.well_known_port, timeout: self.well_known_timeout })
        } else {
            None
        };
        Ok(Discovery { net, resolver, cache: Mutex::new(HashMap::new()), well_known, policy: self.policy })
    }
}

/// What discovery needs of a runtime besides its sockets: a runtime
/// provider for hickory's resolver. The adapters implement it with their
/// `discovery` feature (on by default).
pub trait DnsRuntime: Network {
    /// The runtime provider hickory's resolver uses.
    type Dns: hickory_resolver::net::runtime::RuntimeProvider;
    /// A DNS runtime provider for hickory.
    fn dns(&self) -> Self::Dns;
}

/// Finds agents by domain name: `_agent.<domain>` TXT, on the network
/// (runtime) `N`; the adapters name this type for their runtime.
pub struct Discovery<N: DnsRuntime> {
    net: N,
    resolver: Resolver<N::Dns>,
    cache: Mutex<HashMap<String, (Instant, Discovered)>>,
    well_known: Option<WellKnown>,
    policy: SecurityPolicy,
}

/// The `.well-known/agent` fallback's settings.
struct WellKnown {
    tls: Arc<rustls::ClientConfig>,
    port: u16,
    timeout: Duration,
}

impl<N: DnsRuntime> std::fmt::Debug for Discovery<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery").finish_non_exhaustive()
    }
}

impl<N: DnsRuntime> Discovery<N> {
    /// Discovery with the system's resolver configuration.
    pub fn system() -> Result<Discovery<N>, AidError> {
        DiscoveryBuilder::default().build()
    }

    /// Configures a discovery.
    pub fn builder() -> DiscoveryBuilder<N> {
        DiscoveryBuilder::default()
    }

    /// Looks `domain` up: the exact host, never a parent; with `protocol`,
    /// `_agent._<protocol>.<host>` first, then `_agent.<host>`.
    pub async fn discover(&self, domain: &str, protocol: Option<&str>) -> Result<Discovered, AidError> {
        self.discover_since(domain, protocol, None).await
    }

    /// [`discover`](Self::discover), checking the downgrade policy against
    /// what was seen before ([`Discovered::seen`] of an earlier result).
    pub async fn discover_since(
        &self,
        domain: &str,
        protocol: Option<&str>,
        previous: Option<&PreviousSecurity>,
    ) -> Result<Discovered, AidError> {
        let mut found = self.lookup(domain, protocol).await?;
        let validated = found.security.dnssec_validated.unwrap_or(false);
        let report = self.policy.evaluate(&found.name, &found.record, found.source.into(), validated, previous)?;
        found.warnings.extend(report.warnings.iter().map(|w| format!("{}: {}", w.code, w.message)));
        found.security = report;
        Ok(found)
    }

    /// The record for `domain`, from the cache or a query (and fallback),
    /// before the security policy.
    async fn lookup(&self, domain: &str, protocol: Option<&str>) -> Result<Discovered, AidError> {
        let host = normalize(domain)?;
        let key = format!("{host}|{}", protocol.unwrap_or_default());
        if let Some((expires, found)) = self.cache.lock().expect("lock").get(&key) {
            if *expires > Instant::now() {
                return Ok(found.clone());
            }
        }
        let found = match protocol {
            Some(p) => match self.query(&format!("_agent._{p}.{host}.")).await {
                Err(e) if e.code == AidErrorCode::NoRecord => self.query(&format!("_agent.{host}.")).await,
                other => other,
            },
            None => self.query(&format!("_agent.{host}.")).await,
        };
        // Only a missing record or a failed lookup falls back; an invalid or
        // insecure record does not.
        let found = match (found, &self.well_known) {
            (Err(e), Some(wk))
                if matches!(e.code, AidErrorCode::NoRecord | AidErrorCode::DnsLookupFailed)
                    && self.policy.allows_well_known() =>
            {
                self.fetch_well_known(&host, wk).await
            }
            (found, _) => found,
        }?;
        let found = check_deprecation(found, SystemTime::now())?;
        let expires = Instant::now() + Duration::from_secs(found.ttl.into());
        self.cache.lock().expect("lock").insert(key, (expires, found.clone()));
        Ok(found)
    }

    async fn query(&self, name: &str) -> Result<Discovered, AidError> {
        let lookup = match self.resolver.lookup(name, RecordType::TXT).await {
            Ok(lookup) => lookup,
            Err(NetError::Dns(DnsError::NoRecordsFound(_))) => {
                return Err(AidError::new(AidErrorCode::NoRecord, format!("no TXT record at {name}")))
            }
            Err(e) => return Err(AidError::new(AidErrorCode::DnsLookupFailed, format!("{name}: {e}"))),
        };
        let mut answers = Vec::new();
        let mut ttl = u32::MAX;
        for record in lookup.answers() {
            if let RData::TXT(txt) = &record.data {
                answers.push(txt.txt_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect());
                ttl = ttl.min(record.ttl);
            }
        }
        let record = select(&answers)?;
        // The resolver's AD bit: the answer was DNSSEC-validated upstream.
        let validated = lookup.message().metadata.authentic_data;
        Ok(Discovered {
            record,
            name: name.trim_end_matches('.').to_owned(),
            ttl: if ttl == u32::MAX { 0 } else { ttl },
            source: DiscoverySource::Dns,
            warnings: Vec::new(),
            security: SecurityReport { dnssec_validated: Some(validated), ..SecurityReport::default() },
        })
    }
}

impl<N: DnsRuntime> Discovery<N> {
    /// `GET https://<host>/.well-known/agent`: HTTPS only, no redirects, a
    /// JSON object of at most 64 KiB, within the time limit. Any failure is
    /// `ERR_FALLBACK_FAILED`, except a security failure of the record.
    async fn fetch_well_known(&self, host: &str, wk: &WellKnown) -> Result<Discovered, AidError> {
        let fetch = async {
            let ip = self
                .resolver
                .lookup_ip(host)
                .await
                .map_err(|e| fallback(format!("{host}: {e}")))?
                .iter()
                .next()
                .ok_or_else(|| fallback(format!("{host} has no address")))?;
            let tcp = self.net.connect(ip.to_string(), wk.port).await.map_err(|e| fallback(e.to_string()))?;
            let name = rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(|e| fallback(e.to_string()))?;
            let mut tls = futures_rustls::TlsConnector::from(wk.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| fallback(format!("TLS: {e}")))?;
            let request = format!(
                "GET /.well-known/agent HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
            );
            tls.write_all(request.as_bytes()).await.map_err(|e| fallback(e.to_string()))?;
            tls.flush().await.map_err(|e| fallback(e.to_string()))?;
            // Head and body together are bounded: a server that sends more
            // than a maximal head plus a maximal body is refused unread.
            let limit = WELL_KNOWN_MAX_BYTES + HEAD_MAX_BYTES;
            let mut raw = Vec::new();
            match (&mut tls).take(limit as u64 + 1).read_to_end(&mut raw).await {
                // Servers often close TLS without close_notify: what was read
                // stays in `raw`, and Content-Length or the JSON parser
                // catches a body that was really cut short.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
                Err(e) => return Err(fallback(e.to_string())),
                Ok(_) => {}
            }
            let reply = parse_reply(&raw)?;
            let json: serde_json::Value = serde_json::from_slice(reply).map_err(|e| fallback(format!("JSON: {e}")))?;
            let object = json.as_object().ok_or_else(|| fallback("not a JSON object".into()))?;
            let pairs = object.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)));
            let record = from_well_known_pairs(pairs).map_err(|e| match e.code {
                AidErrorCode::Security => e,
                _ => fallback(format!("invalid record: {}", e.message)),
            })?;
            Ok(Discovered {
                record,
                name: format!("https://{host}/.well-known/agent"),
                ttl: WELL_KNOWN_TTL,
                source: DiscoverySource::WellKnown,
                warnings: Vec::new(),
                security: SecurityReport::default(),
            })
        };
        let deadline = self.net.sleep_until(Instant::now() + wk.timeout);
        match race(fetch.boxed(), deadline).await {
            Either::Left((result, _)) => result,
            Either::Right(_) => Err(fallback("timed out".into())),
        }
    }
}

/// Largest response head accepted from the fallback.
const HEAD_MAX_BYTES: usize = 16 * 1024;

/// The body of a complete HTTP/1.x response to the fallback's GET, after
/// checking status (2xx, no redirects), content type and size.
fn parse_reply(raw: &[u8]) -> Result<&[u8], AidError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(fallback("incomplete response head".into())),
        Err(e) => return Err(fallback(format!("malformed response: {e}"))),
    };
    let status = response.code.unwrap_or(0);
    if (300..400).contains(&status) {
        return Err(fallback(format!("status {status}: redirects are not followed")));
    }
    if !(200..300).contains(&status) {
        return Err(fallback(format!("status {status}")));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
    };
    let content_type = header("content-type").unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return Err(fallback(format!("content type `{content_type}`, not application/json")));
    }
    if header("transfer-encoding").is_some() {
        return Err(fallback("a transfer-encoded answer to an HTTP/1.0 request".into()));
    }
    let body = &raw[head_len..];
    if body.len() > WELL_KNOWN_MAX_BYTES {
        return Err(fallback(format!("body over {WELL_KNOWN_MAX_BYTES} bytes")));
    }
    match header("content-length").map(|v| v.parse::<usize>()) {
        Some(Ok(n)) if n > WELL_KNOWN_MAX_BYTES => Err(fallback(format!("body over {WELL_KNOWN_MAX_BYTES} bytes"))),
        Some(Ok(n)) if n != body.len() => Err(fallback(format!("body cut short: {} of {n} bytes", body.len()))),
        Some(Err(_)) => Err(fallback("invalid Content-Length".into())),
        _ => Ok(body),
    }
}

fn fallback(message: String) -> AidError {
    AidError::new(AidErrorCode::FallbackFailed, message)
}

/// The exact host as an ASCII (A-label) name.
pub(crate) fn normalize(domain: &str) -> Result<String, AidError> {
    let trimmed = domain.trim().trim_end_matches('.');
    idna::domain_to_ascii(trimmed)
        .ok()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| AidError::new(AidErrorCode::DnsLookupFailed, format!("`{domain}` is not a valid domain name")))
}

/// A past `dep` is an error at discovery time; a future one is a warning.
fn check_deprecation(mut found: Discovered, now: SystemTime) -> Result<Discovered, AidError> {
    let now_secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    if let Some(warning) = found.record.check_deprecation(now_secs)? {
        found.warnings.push(warning);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(head: &str, body: &str) -> Vec<u8> {
        format!("{head}\r\n\r\n{body}").into_bytes()
    }

    #[test]
    fn fallback_replies_are_checked() {
        let ok = reply("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2", "{}");
        assert_eq!(parse_reply(&ok).unwrap(), b"{}");
        let no_length = reply("HTTP/1.0 200 OK\r\ncontent-type: application/json; charset=utf-8", "{}");
        assert_eq!(parse_reply(&no_length).unwrap(), b"{}");
        let cases = [
            (reply("HTTP/1.1 302 Found\r\nLocation: https://x/", ""), "redirect"),
            (reply("HTTP/1.1 500 Oops\r\nContent-Type: application/json", "{}"), "status 500"),
            (reply("HTTP/1.1 200 OK\r\nContent-Type: text/html", "{}"), "content type"),
            (reply("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10", "{}"), "cut short"),
            (reply("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked", "2"), "encoded"),
            (b"HTTP/1.1 200 OK\r\nContent-Ty".to_vec(), "incomplete"),
            (b"garbage\r\n\r\n".to_vec(), "malformed"),
        ];
        for (raw, why) in cases {
            let err = parse_reply(&raw).unwrap_err();
            assert_eq!(err.code, AidErrorCode::FallbackFailed);
            assert!(err.message.contains(why), "{why}: {}", err.message);
        }
    }

    #[test]
    fn hosts_are_normalized_to_a_labels() {
        assert_eq!(normalize("Bücher.Example.").unwrap(), "xn--bcher-kva.example");
        assert!(normalize("").is_err());
    }
}
