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
use tungstenite::http::{HeaderName, HeaderValue};

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
        let mut challenge = Challenge::new(self.key.clone(), url, nonce, now_unix()).map_err(ConnectError::Pka)?;
        if let Some(domain) = &self.domain {
            challenge = challenge.with_domain(domain).map_err(ConnectError::Pka)?;
        }
        for (name, value) in challenge.request_headers() {
            let value = HeaderValue::from_str(&value).map_err(|e| ConnectError::Url(e.to_string()))?;
            request.headers_mut().insert(HeaderName::from_static(lowercase(name)), value);
        }
        Ok(challenge)
    }
}

/// `http` header names are lowercase statics.
fn lowercase(name: &'static str) -> &'static str {
    match name {
        "AID-Challenge" => "aid-challenge",
        "Date" => "date",
        "Accept-Signature" => "accept-signature",
        "Cache-Control" => "cache-control",
        "AID-Domain" => "aid-domain",
        "Signature-Input" => "signature-input",
        "Signature" => "signature",
        other => other,
    }
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

/// Signs the `101` response when the request asks for a proof. A request the
/// key cannot answer (another keyid) is upgraded unsigned: the client is
/// the one that decides, and says why.
pub(crate) fn sign_upgrade(signer: &Arc<Signer>, secure: bool, request: &Request, response: &mut Response) {
    let headers: Vec<(&str, &str)> =
        request.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))).collect();
    let host = request.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
    let path = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let signed = Target::from_request(if secure { "wss" } else { "ws" }, host, path).and_then(|target| {
        let request = ProofRequest { method: request.method().as_str(), target: &target, headers: &headers };
        signer.sign(&request, response.status().as_u16(), now_unix())
    });
    match signed {
        Ok(Some(proof)) => {
            for (name, value) in proof {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(HeaderName::from_static(lowercase(name)), value);
                }
            }
        }
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "upgrade asked a PKA proof this key cannot give"),
    }
}
