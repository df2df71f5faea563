//! AID PKA on the WebSocket upgrade (SPEC.md §16.1): the client's challenge
//! goes in the upgrade request, the server signs its `101 Switching
//! Protocols`, and the client checks the proof before it sends HELLO. The
//! proofs themselves are `asp_proto::aid::pka`; this module moves headers
//! between them and the upgrade.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use asp_proto::aid::pka::{Challenge, EndpointKey, Proof, ProofRequest, Signer, Target};
use asp_proto::aid::AidError;
use tungstenite::handshake::client::Request as ClientRequest;
use tungstenite::handshake::server::{Request, Response};
use tungstenite::http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::ConnectError;
use crate::net::{dial_websocket, Network};

/// Reads an AID PKA key file (Ed25519 PKCS#8 PEM, as `asp aid generate
/// --pka-key` or `openssl genpkey -algorithm ed25519` writes it) with its
/// aid1 `kid`; errors name the file.
pub fn read_pka_key(path: &std::path::Path, kid: &str) -> Result<Signer, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Signer::from_pem(&pem).and_then(|s| s.with_kid(kid)).map_err(|e| format!("{}: {}", path.display(), e.message))
}

/// Seconds since the epoch, for proof windows.
fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What a client requires of an endpoint: the key its record publishes and,
/// for aid2 domain binding, the domain that was queried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkaRequirement {
    pub(crate) key: EndpointKey,
    pub(crate) domain: Option<String>,
}

impl PkaRequirement {
    /// The endpoint must prove `key`.
    pub fn new(key: EndpointKey) -> Self {
        PkaRequirement { key, domain: None }
    }

    /// And (aid2) sign `domain`, the name the record was found under.
    pub fn bound_to(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The key to prove.
    pub fn key(&self) -> &EndpointKey {
        &self.key
    }

    /// A fresh challenge for `url`, its headers added to `request`.
    pub(crate) fn challenge(&self, url: &str, request: &mut ClientRequest) -> Result<Challenge, ConnectError> {
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce).expect("the operating system's random number generator failed");
        // The signed target is always wss:// (SPEC §16.1), also for a
        // plaintext hop behind a TLS-terminating proxy.
        let target = match url.strip_prefix("ws://") {
            Some(rest) => format!("wss://{rest}"),
            None => url.to_owned(),
        };
        let mut challenge = Challenge::new(self.key.clone(), &target, nonce, now_unix()).map_err(ConnectError::Pka)?;
        if let Some(domain) = &self.domain {
            challenge = challenge.with_domain(domain).map_err(ConnectError::Pka)?;
        }
        for (name, value) in challenge.request_headers() {
            request.headers_mut().insert(header(name)?, header_value(&value)?);
        }
        Ok(challenge)
    }
}

/// An `http` header pair from the proof's (name, value); `from_bytes`
/// lowercases the name.
fn header(name: &str) -> Result<HeaderName, ConnectError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|e| ConnectError::Url(e.to_string()))
}

fn header_value(value: &str) -> Result<HeaderValue, ConnectError> {
    HeaderValue::from_str(value).map_err(|e| ConnectError::Url(e.to_string()))
}

/// Checks the upgrade response's proof; the connection is dropped unused
/// when it fails.
pub(crate) fn verify_upgrade<B>(
    challenge: &Challenge,
    response: &tungstenite::http::Response<B>,
) -> Result<Proof, AidError> {
    let headers: Vec<(&str, &str)> =
        response.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))).collect();
    let proof = challenge.verify(response.status().as_u16(), &headers, now_unix())?;
    tracing::debug!(keyid = %proof.keyid, domain_bound = proof.domain_bound, "endpoint proved its AID key");
    Ok(proof)
}

/// Upgrades to `url` with a challenge for `requirement`, checks the proof
/// and hangs up, starting no session: a health check (`asp discover
/// --check`). The error names the stage that failed.
pub async fn prove_endpoint<N: Network>(
    net: &N,
    url: &str,
    requirement: &PkaRequirement,
    tls: Arc<rustls::ClientConfig>,
    limit: std::time::Duration,
) -> Result<Proof, ConnectError> {
    let config = tungstenite::protocol::WebSocketConfig::default();
    let (transport, proof) = dial_websocket(net, url, None, tls, config, limit, Some(requirement)).await?;
    drop(transport);
    proof.ok_or_else(|| ConnectError::Pka(asp_proto::aid::pka::security("no proof was asked")))
}

/// The proof headers for an upgrade request (`GET path_and_query` with
/// `headers`) answered with `101`: none when it asks no proof. A malformed
/// ask is upgraded unsigned: the client is the one that decides, and says
/// why. The target is always `wss://` + Host + request-target (SPEC §16.1):
/// AID allows only wss:// for websocket, and a server behind a
/// TLS-terminating proxy sees a plaintext hop.
pub(crate) fn proof_headers(
    signer: &Signer,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Vec<(HeaderName, HeaderValue)> {
    let list: Vec<(&str, &str)> =
        headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))).collect();
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
    let signed = Target::from_request("wss", host, path_and_query).and_then(|target| {
        let request = ProofRequest { method: "GET", target: &target, headers: &list };
        signer.sign(&request, 101, now_unix())
    });
    match signed {
        Ok(proof) => proof
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, value)| Some((header(name).ok()?, header_value(&value).ok()?)))
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "upgrade asked a PKA proof this key cannot give");
            Vec::new()
        }
    }
}

/// Signs a `101` response of the driver's own upgrade.
pub(crate) fn sign_upgrade(signer: &Signer, request: &Request, response: &mut Response) {
    let path = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    for (name, value) in proof_headers(signer, path, request.headers()) {
        response.headers_mut().insert(name, value);
    }
}
