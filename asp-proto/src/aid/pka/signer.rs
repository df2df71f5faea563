//! The endpoint's side of PKA: answering a request's challenge with a
//! signature made by the key its record publishes.

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;

use super::{
    base64url, fields, header, http_date, jwk_thumbprint, multibase_ed25519, security, split_inner_list, v2_base,
    v2_shape, EndpointKey, Target, V1Base, AID_DOMAIN_HEADER, TAG_V2, V1_COVERED, V2_VALIDITY_SECS,
};
use crate::aid::{AidError, AidVersion};

/// The longest nonce or challenge a signer repeats (a 32-byte nonce is 43
/// characters).
const MAX_NONCE_CHARS: usize = 256;

/// The request a proof answers, as the endpoint received it.
#[derive(Clone, Copy, Debug)]
pub struct ProofRequest<'a> {
    /// `GET` for a WebSocket upgrade.
    pub method: &'a str,
    /// The target, from the endpoint's scheme, `Host` and request-target
    /// ([`Target::from_request`]).
    pub target: &'a Target,
    /// The request's headers.
    pub headers: &'a [(&'a str, &'a str)],
}

/// Explicit aid1 signature parameters, for test vectors and interop tests
/// ([`Signer::sign_aid1`]); [`Signer::sign`] picks them itself.
#[derive(Clone, Copy, Debug)]
pub struct Aid1Params<'a> {
    /// `created`.
    pub created: u64,
    /// The response `Date` (and the signed `date`).
    pub date: &'a str,
    /// `keyid`, written as is.
    pub keyid: &'a str,
    /// `alg`.
    pub alg: &'a str,
}

/// An endpoint's PKA key: an Ed25519 signing key and, for aid1 records,
/// its `kid`.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
    kid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret half.
        f.debug_struct("Signer").field("k", &self.aid2_k()).field("kid", &self.kid).finish()
    }
}

impl Signer {
    /// The key of a 32-byte Ed25519 seed, with kid `g1`.
    pub fn from_seed(seed: &[u8; 32]) -> Signer {
        Signer { key: SigningKey::from_bytes(seed), kid: "g1".to_owned() }
    }

    /// A key from a PKCS#8 PEM file's text (`-----BEGIN PRIVATE KEY-----`,
    /// as `openssl genpkey -algorithm ed25519` or [`Signer::to_pem`] write).
    pub fn from_pem(pem: &str) -> Result<Signer, AidError> {
        let key = SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| security(format!("not an Ed25519 PKCS#8 PEM private key: {e}")))?;
        Ok(Signer { key, kid: "g1".to_owned() })
    }

    /// The key as PKCS#8 PEM, for a key file.
    pub fn to_pem(&self) -> Result<String, AidError> {
        let pem = self
            .key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| security(format!("encoding the key: {e}")))?;
        Ok(pem.to_string())
    }

    /// The aid1 `kid` (`i`) this key signs as: 1 to 6 lowercase letters or
    /// digits.
    pub fn with_kid(mut self, kid: &str) -> Result<Signer, AidError> {
        if kid.is_empty() || kid.len() > 6 || !kid.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
            return Err(security(format!("kid `{kid}` must be 1 to 6 lowercase letters or digits")));
        }
        self.kid = kid.to_owned();
        Ok(self)
    }

    /// The aid1 `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The raw public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The aid1 record's `pka` (`k`): multibase base58btc.
    pub fn aid1_pka(&self) -> String {
        multibase_ed25519(&self.public_key())
    }

    /// The aid2 record's `k`: unpadded base64url.
    pub fn aid2_k(&self) -> String {
        base64url(&self.public_key())
    }

    /// The key a client learns from a record of `version` naming this key.
    pub fn endpoint_key(&self, version: AidVersion) -> EndpointKey {
        match version {
            AidVersion::Aid1 => EndpointKey::aid1(&self.aid1_pka(), &self.kid),
            AidVersion::Aid2 => EndpointKey::aid2(&self.aid2_k()),
        }
        .expect("a signing key's own public key is valid")
    }

    /// The headers proving this key for `request`, answered with `status`
    /// at `now_unix`: `None` when the request asks no proof (neither
    /// `Accept-Signature` for `aid-pka` nor `AID-Challenge`); an error when
    /// the ask is malformed or for another algorithm or tag. A request for
    /// another keyid is answered with this key's proof, which that client
    /// refuses, naming the keyid.
    pub fn sign(
        &self,
        request: &ProofRequest<'_>,
        status: u16,
        now_unix: u64,
    ) -> Result<Option<Vec<(&'static str, String)>>, AidError> {
        if let Some(accept) = header(request.headers, "Accept-Signature")? {
            if fields::member(accept, "aid-pka").is_ok() {
                return self.sign_aid2(request, accept, status, now_unix).map(Some);
            }
        }
        if header(request.headers, "AID-Challenge")?.is_some() {
            let date = http_date(now_unix);
            let params = Aid1Params { created: now_unix, date: &date, keyid: &self.kid, alg: "ed25519" };
            return self.sign_aid1(request, &params).map(Some);
        }
        Ok(None)
    }

    /// An aid1 proof with explicit parameters: `Signature-Input`,
    /// `Signature` and `Date`.
    pub fn sign_aid1(
        &self,
        request: &ProofRequest<'_>,
        params: &Aid1Params<'_>,
    ) -> Result<Vec<(&'static str, String)>, AidError> {
        let challenge = header(request.headers, "AID-Challenge")?.ok_or_else(|| security("no AID-Challenge"))?;
        token(challenge, "AID-Challenge")?;
        let covered: Vec<String> = V1_COVERED.iter().map(|c| c.to_string()).collect();
        let v1 =
            V1Base { covered: &covered, challenge, method: request.method, target: request.target, date: params.date };
        let base = v1.base(params.created, params.keyid, params.alg)?;
        let signature = self.sign_bytes(&base);
        let quoted: Vec<String> = covered.iter().map(|c| format!("\"{c}\"")).collect();
        let input = format!(
            "sig=({});created={};keyid={};alg=\"{}\"",
            quoted.join(" "),
            params.created,
            params.keyid,
            params.alg
        );
        Ok(vec![
            ("Signature-Input", input),
            ("Signature", format!("sig=:{signature}:")),
            ("Date", params.date.to_owned()),
        ])
    }

    fn sign_aid2(
        &self,
        request: &ProofRequest<'_>,
        accept: &str,
        status: u16,
        now: u64,
    ) -> Result<Vec<(&'static str, String)>, AidError> {
        let (covered, raw_params) = split_inner_list(fields::member(accept, "aid-pka")?)?;
        let items = fields::inner_list(covered);
        let domain_bound = v2_shape(&items)?;
        let params = fields::params(raw_params)?;
        let want =
            |name: &str| fields::get(&params, name).ok_or_else(|| security(format!("Accept-Signature has no {name}")));
        let (keyid, alg, nonce, tag) = (want("keyid")?, want("alg")?, want("nonce")?, want("tag")?);
        // A request for another keyid still gets this key's proof: the
        // client then says which key the endpoint holds instead of only
        // that a proof is missing.
        let own = jwk_thumbprint(&self.aid2_k());
        let _ = keyid;
        if !alg.eq_ignore_ascii_case("ed25519") || tag != TAG_V2 {
            return Err(security(format!("asked alg `{alg}` and tag `{tag}`; this endpoint signs ed25519 {TAG_V2}")));
        }
        token(nonce, "nonce")?;
        let domain = if domain_bound {
            let raw = header(request.headers, AID_DOMAIN_HEADER)?
                .ok_or_else(|| security("aid-domain was asked without an AID-Domain header"))?;
            Some(super::canonical_domain(raw)?)
        } else {
            None
        };
        let signature_params = format!(
            r#"({});created={now};expires={};keyid="{own}";alg="ed25519";nonce="{nonce}";tag="{TAG_V2}""#,
            items.join(" "),
            now + V2_VALIDITY_SECS
        );
        let base = v2_base(domain.as_deref(), request.target, request.method, status, &signature_params);
        let signature = self.sign_bytes(&base);
        Ok(vec![
            ("Signature-Input", format!("aid-pka={signature_params}")),
            ("Signature", format!("aid-pka=:{signature}:")),
            ("Cache-Control", "no-store".to_owned()),
        ])
    }

    fn sign_bytes(&self, base: &[u8]) -> String {
        use base64ct::Encoding as _;
        use ed25519_dalek::Signer as _;
        base64ct::Base64::encode_string(&self.key.sign(base).to_bytes())
    }
}

/// A nonce or challenge a signer repeats inside a quoted string: base64url
/// characters only, bounded.
fn token(value: &str, what: &str) -> Result<(), AidError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NONCE_CHARS
        && value.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(security(format!("the {what} must be 1 to {MAX_NONCE_CHARS} base64url characters")))
    }
}
