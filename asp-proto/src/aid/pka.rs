//! AID PKA: proof that an endpoint holds the key its AID record publishes
//! (`k`, with `i` in `aid1`). Sans-IO: pure functions over header lists,
//! with the time and the nonce passed in.
//!
//! Two profiles, chosen by the record's version:
//!
//! - **aid1**: the client sends `AID-Challenge` (a nonce) and `Date`; the
//!   endpoint answers with `Signature-Input: sig=("AID-Challenge" "@method"
//!   "@target-uri" "host" "date");created=…;keyid=<kid>;alg="ed25519"` and an
//!   Ed25519 `Signature`. `created` and the response `Date` must be within
//!   [`V1_WINDOW_SECS`] of the verifier's clock.
//! - **aid2**: RFC 9421 response signatures. The client sends
//!   `Accept-Signature` naming the covered components, its nonce, the keyid
//!   (the RFC 7638 thumbprint of `k`) and `tag="aid-pka-v2"`, plus
//!   `Cache-Control: no-store` and, for domain binding, `AID-Domain`. The
//!   endpoint signs `@method`, `@target-uri`, `@authority` (each `;req`),
//!   optionally `aid-domain;req`, and `@status`, with `created`/`expires` at
//!   most [`V2_MAX_VALIDITY_SECS`] apart, and marks the answer `no-store`.
//!
//! A client makes a [`Challenge`], sends [`Challenge::request_headers`],
//! and checks the answer with [`Challenge::verify`]. An endpoint holds a
//! [`Signer`] and answers a request with [`Signer::sign`]. Every failure is
//! [`AidErrorCode::Security`] (`ERR_SECURITY`, 1003) with the reason.
//! SPEC.md §16.1 binds both to the WebSocket upgrade.

mod fields;

use base64ct::{Base64UrlUnpadded, Encoding as _};
use ed25519_dalek::{Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AidError, AidErrorCode, AidRecord, AidVersion};

/// The `tag` of an aid2 proof.
pub const TAG_V2: &str = "aid-pka-v2";
/// How far (seconds) an aid1 proof's `created` and `Date` may be from now.
pub const V1_WINDOW_SECS: u64 = 300;
/// The longest `expires - created` an aid2 proof may have.
pub const V2_MAX_VALIDITY_SECS: u64 = 300;
/// Clock skew tolerated around an aid2 proof's `created`..`expires`.
pub const V2_SKEW_SECS: u64 = 30;
/// How long a proof made by [`Signer`] is valid (aid2 `expires - created`).
pub const V2_VALIDITY_SECS: u64 = 60;
/// The header that carries the queried domain for aid2 domain binding.
pub const AID_DOMAIN_HEADER: &str = "AID-Domain";

/// The aid1 covered components, in the order the profile signs them.
const V1_COVERED: [&str; 5] = ["AID-Challenge", "@method", "@target-uri", "host", "date"];
/// The aid2 covered components without and with domain binding.
const V2_COVERED: [&str; 4] = ["\"@method\";req", "\"@target-uri\";req", "\"@authority\";req", "\"@status\""];
const V2_DOMAIN: &str = "\"aid-domain\";req";

/// An `ERR_SECURITY` error with `message`.
pub fn security(message: impl Into<String>) -> AidError {
    AidError::new(AidErrorCode::Security, message)
}

/// Constant-time string equality (keyids, nonces: values an attacker
/// chooses and may probe).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Unpadded base64url.
pub fn base64url(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// An aid1 `pka` value: multibase base58btc (`z…`) of the raw public key.
pub fn multibase_ed25519(public: &[u8; 32]) -> String {
    format!("z{}", bs58::encode(public).into_string())
}

/// The RFC 7638 JWK thumbprint (SHA-256, base64url) of the Ed25519 key
/// whose `x` is `k`, an aid2 record's base64url key: the aid2 keyid.
pub fn jwk_thumbprint(k: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{k}"}}"#);
    base64url(&Sha256::digest(canonical.as_bytes()))
}

/// The `AID-Domain` form of a domain: trimmed, ASCII-lowercase, without the
/// trailing dot, and only the characters a host may have.
pub fn canonical_domain(domain: &str) -> Result<String, AidError> {
    let value = domain.trim().to_ascii_lowercase();
    let value = value.strip_suffix('.').unwrap_or(&value);
    if value.is_empty() || !value.bytes().all(|c| c.is_ascii_alphanumeric() || b".:[]_-".contains(&c)) {
        return Err(security(format!("`{domain}` is not a valid AID-Domain value")));
    }
    Ok(value.to_owned())
}

/// An endpoint's public key, as its AID record publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointKey {
    version: AidVersion,
    public: [u8; 32],
    keyid: String,
}

impl EndpointKey {
    /// The key a record publishes: `None` when it has none; an error when
    /// the key is not a valid Ed25519 key in the record version's encoding.
    pub fn from_record(record: &AidRecord) -> Result<Option<EndpointKey>, AidError> {
        let Some(pka) = record.pka.as_deref() else { return Ok(None) };
        match record.version {
            AidVersion::Aid1 => {
                let kid = record.kid.as_deref().ok_or_else(|| security("an aid1 pka needs a kid (i)"))?;
                Self::aid1(pka, kid).map(Some)
            }
            AidVersion::Aid2 => Self::aid2(pka).map(Some),
        }
    }

    /// An aid1 key: `pka` in multibase base58btc (`z…`), with its `kid`.
    pub fn aid1(pka: &str, kid: &str) -> Result<EndpointKey, AidError> {
        let encoded = pka.strip_prefix('z').ok_or_else(|| security("an aid1 pka must be multibase base58btc (z…)"))?;
        let bytes = bs58::decode(encoded).into_vec().map_err(|e| security(format!("pka is not base58btc: {e}")))?;
        let public = public_key(&bytes)?;
        Ok(EndpointKey { version: AidVersion::Aid1, public, keyid: kid.to_owned() })
    }

    /// An aid2 key: `k`, the unpadded base64url of the raw public key; its
    /// keyid is the RFC 7638 thumbprint.
    pub fn aid2(k: &str) -> Result<EndpointKey, AidError> {
        let bytes = Base64UrlUnpadded::decode_vec(k).map_err(|_| security("k is not unpadded base64url"))?;
        let public = public_key(&bytes)?;
        Ok(EndpointKey { version: AidVersion::Aid2, public, keyid: jwk_thumbprint(k) })
    }

    /// Which profile proves this key.
    pub fn version(&self) -> AidVersion {
        self.version
    }

    /// The keyid a proof must name: the record's `kid` (aid1) or the
    /// thumbprint of `k` (aid2).
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    fn verifying_key(&self) -> Result<VerifyingKey, AidError> {
        VerifyingKey::from_bytes(&self.public).map_err(|_| security("the published key is not an Ed25519 point"))
    }
}

fn public_key(bytes: &[u8]) -> Result<[u8; 32], AidError> {
    let public: [u8; 32] =
        bytes.try_into().map_err(|_| security(format!("an Ed25519 key is 32 bytes, this one {}", bytes.len())))?;
    VerifyingKey::from_bytes(&public).map_err(|_| security("the key is not an Ed25519 point"))?;
    Ok(public)
}

/// Where a proof is asked: the target URI (fragment removed, default port
/// dropped) and the authority (`host[:port]`, lowercase, port only when not
/// the scheme's default), as both sides must compute them alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `@target-uri`.
    pub target_uri: String,
    /// `@authority` (aid2), `host` (aid1).
    pub authority: String,
}

impl Target {
    /// The target of `uri` (`wss://host/path?query`, or any absolute URI).
    pub fn from_uri(uri: &str) -> Result<Target, AidError> {
        let mut url = url::Url::parse(uri).map_err(|e| security(format!("`{uri}`: {e}")))?;
        url.set_fragment(None);
        let host = url.host_str().ok_or_else(|| security(format!("`{uri}` has no host")))?.to_ascii_lowercase();
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        Ok(Target { target_uri: url.to_string(), authority })
    }

    /// The target of a request as a server sees it: `scheme` (`wss` when it
    /// terminates TLS), the `Host` header, and the request-target
    /// (`/path?query`).
    pub fn from_request(scheme: &str, host: &str, path_and_query: &str) -> Result<Target, AidError> {
        Self::from_uri(&format!("{scheme}://{host}{path_and_query}"))
    }
}

/// The one value of header `name` (case-insensitive); a repeated header is
/// refused, since which copy was signed would be ambiguous.
pub fn header<'a>(headers: &[(&'a str, &'a str)], name: &str) -> Result<Option<&'a str>, AidError> {
    let mut values = headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
    let first = values.next();
    if values.next().is_some() {
        return Err(security(format!("more than one {name} header")));
    }
    Ok(first.map(str::trim))
}

/// What a verified proof established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The profile (aid1 or aid2).
    pub version: AidVersion,
    /// The keyid the endpoint signed with.
    pub keyid: String,
    /// The proof covered the queried domain (`aid-domain`, aid2 only).
    pub domain_bound: bool,
    /// When the endpoint made it (seconds since the epoch).
    pub created: u64,
}

/// A client's request for a proof: the key it expects, the target, and a
/// fresh nonce.
#[derive(Clone, Debug)]
pub struct Challenge {
    key: EndpointKey,
    target: Target,
    nonce: String,
    date: String,
    domain: Option<String>,
}

impl Challenge {
    /// A challenge for the endpoint at `uri`, which must prove `key`;
    /// `nonce` must be fresh random bytes, `now_unix` the current time.
    pub fn new(key: EndpointKey, uri: &str, nonce: [u8; 32], now_unix: u64) -> Result<Challenge, AidError> {
        let target = Target::from_uri(uri)?;
        Ok(Challenge { key, target, nonce: base64url(&nonce), date: http_date(now_unix), domain: None })
    }

    /// A challenge with a given nonce (base64url) and request `Date`: for
    /// replaying a recorded exchange ([`vectors`]); live clients use
    /// [`Challenge::new`].
    pub fn from_parts(key: EndpointKey, uri: &str, nonce: &str, date: &str) -> Result<Challenge, AidError> {
        let target = Target::from_uri(uri)?;
        Ok(Challenge { key, target, nonce: nonce.to_owned(), date: date.to_owned(), domain: None })
    }

    /// Ask an aid2 endpoint to also sign `domain`, the name that was
    /// queried (`AID-Domain`); aid1 has no domain binding and ignores it.
    pub fn with_domain(mut self, domain: &str) -> Result<Challenge, AidError> {
        if self.key.version == AidVersion::Aid2 {
            self.domain = Some(canonical_domain(domain)?);
        }
        Ok(self)
    }

    /// The key this challenge expects.
    pub fn key(&self) -> &EndpointKey {
        &self.key
    }

    /// The target the proof must cover.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The headers to add to the request (the upgrade request, for ASP).
    pub fn request_headers(&self) -> Vec<(&'static str, String)> {
        match self.key.version {
            AidVersion::Aid1 => vec![("AID-Challenge", self.nonce.clone()), ("Date", self.date.clone())],
            AidVersion::Aid2 => {
                let mut covered = V2_COVERED.to_vec();
                if self.domain.is_some() {
                    covered.insert(3, V2_DOMAIN);
                }
                let accept = format!(
                    r#"aid-pka=({});created;expires;keyid="{}";alg="ed25519";nonce="{}";tag="{TAG_V2}""#,
                    covered.join(" "),
                    self.key.keyid,
                    self.nonce
                );
                let mut headers = vec![("Accept-Signature", accept), ("Cache-Control", "no-store".to_owned())];
                if let Some(domain) = &self.domain {
                    headers.push((AID_DOMAIN_HEADER, domain.clone()));
                }
                headers
            }
        }
    }

    /// Checks the response (`status`, `headers`) at `now_unix`: the proof
    /// must be present, fresh, for this nonce and key, and verify.
    pub fn verify(&self, status: u16, headers: &[(&str, &str)], now_unix: u64) -> Result<Proof, AidError> {
        if (300..400).contains(&status) {
            return Err(security(format!("a proof may not come with a redirect (status {status})")));
        }
        match self.key.version {
            AidVersion::Aid1 => self.verify_v1(headers, now_unix),
            AidVersion::Aid2 => self.verify_v2(status, headers, now_unix),
        }
    }

    fn verify_v1(&self, headers: &[(&str, &str)], now: u64) -> Result<Proof, AidError> {
        let input = header(headers, "Signature-Input")?
            .ok_or_else(|| security("the endpoint sent no proof (no Signature-Input header)"))?;
        let signature = header(headers, "Signature")?.ok_or_else(|| security("no Signature header"))?;
        let inner = fields::member(input, "sig")?;
        let (covered, raw_params) = split_inner_list(inner)?;
        let covered: Vec<String> = fields::inner_list(covered)
            .into_iter()
            .map(|item| {
                item.strip_prefix('"')
                    .and_then(|i| i.strip_suffix('"'))
                    .map(str::to_owned)
                    .ok_or_else(|| security(format!("covered item {item} is not a quoted name")))
            })
            .collect::<Result<_, _>>()?;
        let mut lower: Vec<String> = covered.iter().map(|c| c.to_ascii_lowercase()).collect();
        lower.sort();
        let mut required: Vec<String> = V1_COVERED.iter().map(|c| c.to_ascii_lowercase()).collect();
        required.sort();
        if lower != required {
            return Err(security("Signature-Input must cover AID-Challenge, @method, @target-uri, host and date"));
        }
        let params = fields::params(raw_params)?;
        let created = integer(fields::get(&params, "created"), "created")?;
        let keyid = params
            .iter()
            .find(|p| p.name == "keyid")
            .and_then(|p| p.value.clone())
            .ok_or_else(|| security("Signature-Input has no keyid"))?;
        let alg = fields::get(&params, "alg").ok_or_else(|| security("Signature-Input has no alg"))?;
        // Key and algorithm first: a proof by another key is refused as
        // that, whatever its age.
        if !same(&keyid, &self.key.keyid) {
            return Err(security(format!("the proof's keyid `{keyid}` is not the record's kid")));
        }
        if !alg.eq_ignore_ascii_case("ed25519") {
            return Err(security(format!("unsupported signature algorithm `{alg}`")));
        }
        if now.abs_diff(created) > V1_WINDOW_SECS {
            return Err(security(format!("created {created} is more than {V1_WINDOW_SECS} s from now ({now})")));
        }
        let response_date = header(headers, "Date")?;
        if let Some(date) = response_date {
            let at = parse_http_date(date)?;
            if now.abs_diff(at) > V1_WINDOW_SECS {
                return Err(security(format!("the response Date `{date}` is more than {V1_WINDOW_SECS} s from now")));
            }
        }
        let keyid_raw = raw_keyid(raw_params);
        let v1 = V1Base {
            covered: &covered,
            challenge: &self.nonce,
            method: "GET",
            target: &self.target,
            date: response_date.unwrap_or(&self.date),
        };
        let base = v1.base(created, keyid_raw, &alg.to_ascii_lowercase())?;
        let bytes = fields::binary(fields::member(signature, "sig")?)?;
        verify_ed25519(&self.key, &base, &bytes)?;
        Ok(Proof { version: AidVersion::Aid1, keyid, domain_bound: false, created })
    }

    fn verify_v2(&self, status: u16, headers: &[(&str, &str)], now: u64) -> Result<Proof, AidError> {
        if header(headers, "Signature-Input")?.is_none() {
            return Err(security("the endpoint sent no proof (no Signature-Input header)"));
        }
        let cache = header(headers, "Cache-Control")?.unwrap_or_default();
        let no_store =
            cache.split(',').any(|d| d.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("no-store"));
        if !no_store {
            return Err(security("a proof must be sent with Cache-Control: no-store"));
        }
        let input = header(headers, "Signature-Input")?
            .ok_or_else(|| security("the endpoint sent no proof (no Signature-Input header)"))?;
        let signature = header(headers, "Signature")?.ok_or_else(|| security("no Signature header"))?;
        let signature_params = fields::member(input, "aid-pka")?;
        let (covered, raw_params) = split_inner_list(signature_params)?;
        let domain_bound = v2_shape(&fields::inner_list(covered))?;
        let params = fields::params(raw_params)?;
        let need =
            |name: &str| fields::get(&params, name).ok_or_else(|| security(format!("Signature-Input has no {name}")));
        let created = integer(Some(need("created")?), "created")?;
        let expires = integer(Some(need("expires")?), "expires")?;
        let (keyid, alg, nonce, tag) = (need("keyid")?, need("alg")?, need("nonce")?, need("tag")?);
        if expires <= created || expires - created > V2_MAX_VALIDITY_SECS {
            return Err(security(format!(
                "created..expires ({created}..{expires}) must be a window of 1 to {V2_MAX_VALIDITY_SECS} s"
            )));
        }
        if created > now + V2_SKEW_SECS || now > expires + V2_SKEW_SECS {
            return Err(security(format!("the proof ({created}..{expires}) is not valid now ({now})")));
        }
        if !same(keyid, &self.key.keyid) {
            return Err(security(format!("the proof's keyid `{keyid}` is not the thumbprint of the record's k")));
        }
        if !alg.eq_ignore_ascii_case("ed25519") {
            return Err(security(format!("unsupported signature algorithm `{alg}`")));
        }
        if !same(nonce, &self.nonce) {
            return Err(security("the proof is for another nonce"));
        }
        if tag != TAG_V2 {
            return Err(security(format!("the proof's tag is `{tag}`, not {TAG_V2}")));
        }
        let domain = match (domain_bound, &self.domain) {
            (true, None) => return Err(security("the proof covers aid-domain, but no AID-Domain was sent")),
            (true, Some(domain)) => Some(domain.as_str()),
            (false, _) => None,
        };
        let base = v2_base(domain, &self.target, "GET", status, signature_params);
        let bytes = fields::binary(fields::member(signature, "aid-pka")?)?;
        verify_ed25519(&self.key, &base, &bytes)?;
        Ok(Proof { version: AidVersion::Aid2, keyid: keyid.to_owned(), domain_bound, created })
    }
}

/// `("a" "b");params` → (`"a" "b"`, `;params`).
fn split_inner_list(value: &str) -> Result<(&str, &str), AidError> {
    let rest = value.strip_prefix('(').ok_or_else(|| security("Signature-Input does not start with a list"))?;
    let close = rest.find(')').ok_or_else(|| security("Signature-Input has an unclosed list"))?;
    Ok((rest[..close].trim(), &rest[close + 1..]))
}

/// The aid1 keyid exactly as the endpoint wrote it (quoted or not): the
/// signature base repeats it verbatim.
fn raw_keyid(raw_params: &str) -> &str {
    raw_params.split(';').find_map(|p| p.trim().strip_prefix("keyid=")).map(str::trim).unwrap_or_default()
}

/// Validates the aid2 covered list against the two allowed shapes; `true`
/// when it is the domain-bound one.
fn v2_shape(items: &[&str]) -> Result<bool, AidError> {
    let mut bound = V2_COVERED.to_vec();
    bound.insert(3, V2_DOMAIN);
    if items == V2_COVERED {
        Ok(false)
    } else if items == bound.as_slice() {
        Ok(true)
    } else {
        Err(security(format!(
            "Signature-Input must cover {} (optionally with {V2_DOMAIN} before \"@status\"), not {}",
            V2_COVERED.join(" "),
            items.join(" ")
        )))
    }
}

fn v2_base(domain: Option<&str>, target: &Target, method: &str, status: u16, signature_params: &str) -> Vec<u8> {
    let mut lines = vec![
        format!("\"@method\";req: {method}"),
        format!("\"@target-uri\";req: {}", target.target_uri),
        format!("\"@authority\";req: {}", target.authority),
    ];
    if let Some(domain) = domain {
        lines.push(format!("\"aid-domain\";req: {domain}"));
    }
    lines.push(format!("\"@status\": {status}"));
    lines.push(format!("\"@signature-params\": {signature_params}"));
    lines.join("\n").into_bytes()
}

/// The inputs of an aid1 signature base.
struct V1Base<'a> {
    covered: &'a [String],
    challenge: &'a str,
    method: &'a str,
    target: &'a Target,
    date: &'a str,
}

impl V1Base<'_> {
    fn base(&self, created: u64, keyid_raw: &str, alg: &str) -> Result<Vec<u8>, AidError> {
        let mut lines = Vec::with_capacity(self.covered.len() + 1);
        for item in self.covered {
            let value = match item.to_ascii_lowercase().as_str() {
                "aid-challenge" => self.challenge,
                "@method" => self.method,
                "@target-uri" => &self.target.target_uri,
                "host" => &self.target.authority,
                "date" => self.date,
                _ => return Err(security(format!("unsupported covered field `{item}`"))),
            };
            lines.push(format!("\"{item}\": {value}"));
        }
        let quoted: Vec<String> = self.covered.iter().map(|c| format!("\"{c}\"")).collect();
        lines.push(format!(
            "\"@signature-params\": ({});created={created};keyid={keyid_raw};alg=\"{alg}\"",
            quoted.join(" ")
        ));
        Ok(lines.join("\n").into_bytes())
    }
}

fn verify_ed25519(key: &EndpointKey, base: &[u8], signature: &[u8]) -> Result<(), AidError> {
    let signature = ed25519_dalek::Signature::from_slice(signature)
        .map_err(|_| security(format!("an Ed25519 signature is 64 bytes, this one {}", signature.len())))?;
    key.verifying_key()?
        .verify(base, &signature)
        .map_err(|_| security("the signature does not verify with the record's key"))
}

fn integer(value: Option<&str>, name: &str) -> Result<u64, AidError> {
    let value = value.ok_or_else(|| security(format!("Signature-Input has no {name}")))?;
    if value.is_empty() || !value.bytes().all(|c| c.is_ascii_digit()) {
        return Err(security(format!("{name} `{value}` is not a number of seconds")));
    }
    value.parse().map_err(|_| security(format!("{name} `{value}` is out of range")))
}

/// The IMF-fixdate of `unix` (`Thu, 01 Jan 2026 00:00:00 GMT`).
pub fn http_date(unix: u64) -> String {
    httpdate::HttpDate::from(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix)).to_string()
}

fn parse_http_date(date: &str) -> Result<u64, AidError> {
    let at = httpdate::parse_http_date(date).map_err(|_| security(format!("`{date}` is not an HTTP date")))?;
    Ok(at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
}

mod signer;
pub mod vectors;
pub use signer::{Aid1Params, ProofRequest, Signer};

#[cfg(test)]
mod tests;
