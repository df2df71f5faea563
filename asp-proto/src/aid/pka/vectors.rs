//! Running PKA test vectors in the AID project's format
//! (`protocol/pka_vectors.json` and the single fixed-time vector), so that
//! every binding of this crate checks the same cases the same way; `asp aid
//! pka-check FILE` is the command-line runner.
//!
//! A vector is either **recorded** (it carries the endpoint's
//! `response.signature_input` and `signature`: replayed against the
//! request's nonce, target and domain at its `created` or `now_unix`), or
//! **generated** (aid1 vectors with a `seed_b64` and no response: the
//! endpoint is played by a [`Signer`] of that seed, as the reference
//! harness does: a `pass` vector is signed now, a `fail` vector with its
//! `created`, `httpDate`, `overrideAlg` and `overrideKeyId`).

use std::collections::BTreeMap;

use base64ct::Encoding as _;
use serde::Deserialize;

use super::{http_date, security, Aid1Params, Challenge, EndpointKey, ProofRequest, Signer, Target};
use crate::aid::{AidError, AidRecord, AidVersion};

/// A file of vectors: `{"vectors": [...]}` or one vector.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum VectorFile {
    /// `{"version": 1, "vectors": [...]}`.
    List {
        /// The vectors.
        vectors: Vec<Vector>,
    },
    /// A single vector object.
    One(Box<Vector>),
}

impl VectorFile {
    /// The vectors, in file order.
    pub fn into_vectors(self) -> Vec<Vector> {
        match self {
            VectorFile::List { vectors } => vectors,
            VectorFile::One(vector) => vec![*vector],
        }
    }
}

/// One PKA vector. Fields not used by a case are absent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vector {
    /// Its name.
    pub id: String,
    /// What it checks.
    #[serde(default)]
    pub desc: Option<String>,
    /// The record: an object of short keys, or the TXT text.
    pub record: RecordSpec,
    /// The key material (`seed_b64`, and what the record should say).
    #[serde(default)]
    pub key: Option<KeySpec>,
    /// A top-level seed (the fixed-time vector's form).
    #[serde(default, rename = "seed_b64")]
    pub seed_b64: Option<String>,
    /// `created` (seconds).
    #[serde(default)]
    pub created: Option<u64>,
    /// The response `Date` a generated fail vector uses.
    #[serde(default)]
    pub http_date: Option<String>,
    /// The `alg` a generated vector signs with instead of `ed25519`.
    #[serde(default)]
    pub override_alg: Option<String>,
    /// The `keyid` a generated vector signs with instead of the kid.
    #[serde(default)]
    pub override_key_id: Option<String>,
    /// The client's request.
    #[serde(default)]
    pub request: Option<RequestSpec>,
    /// The endpoint's recorded response.
    #[serde(default)]
    pub response: Option<ResponseSpec>,
    /// The verifier's clock (seconds); default `created`.
    #[serde(default, rename = "now_unix")]
    pub now_unix: Option<u64>,
    /// The nonce of a recorded aid2 exchange.
    #[serde(default)]
    pub nonce: Option<String>,
    /// `pass` or `fail`.
    pub expect: String,
}

/// A record, as fields or as TXT.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RecordSpec {
    /// `{"v": "aid1", "u": ..., ...}`.
    Fields(BTreeMap<String, String>),
    /// `"v=aid1;u=...;..."`.
    Txt(String),
}

/// A vector's key material.
#[derive(Debug, Default, Deserialize)]
pub struct KeySpec {
    /// The Ed25519 seed, standard base64.
    #[serde(default)]
    pub seed_b64: Option<String>,
}

/// A vector's request.
#[derive(Debug, Default, Deserialize)]
pub struct RequestSpec {
    /// `GET`.
    #[serde(default)]
    pub method: Option<String>,
    /// The URI the client asked.
    #[serde(default)]
    pub target_uri: Option<String>,
    /// The `AID-Domain` it sent.
    #[serde(default)]
    pub aid_domain: Option<String>,
    /// Its headers (the fixed-time vector's form).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A vector's recorded response.
#[derive(Debug, Default, Deserialize)]
pub struct ResponseSpec {
    /// The status code.
    #[serde(default)]
    pub status: Option<u16>,
    /// `Cache-Control`.
    #[serde(default)]
    pub cache_control: Option<String>,
    /// `Signature-Input`.
    #[serde(default)]
    pub signature_input: Option<String>,
    /// `Signature`.
    #[serde(default)]
    pub signature: Option<String>,
    /// Other headers (the fixed-time vector's form).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// What running a vector gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The vector's `id`.
    pub id: String,
    /// What it expects: `pass` or `fail`.
    pub expect: String,
    /// The verdict: `pass` or `fail`.
    pub got: &'static str,
    /// Why a proof failed (or why the vector could not run).
    pub reason: Option<String>,
}

impl Outcome {
    /// The verdict is the expected one.
    pub fn matches(&self) -> bool {
        self.got == self.expect
    }
}

impl Vector {
    /// Runs the vector; `now_unix` is the clock for generated vectors (the
    /// reference harness signs its `pass` vectors at the current time).
    pub fn run(&self, now_unix: u64) -> Outcome {
        let verdict = self.verdict(now_unix);
        Outcome {
            id: self.id.clone(),
            expect: self.expect.clone(),
            got: if verdict.is_ok() { "pass" } else { "fail" },
            reason: verdict.err().map(|e| e.message),
        }
    }

    fn record(&self) -> Result<AidRecord, AidError> {
        let fields = match &self.record {
            RecordSpec::Txt(txt) => return AidRecord::parse(txt),
            RecordSpec::Fields(fields) => fields,
        };
        let mut txt: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        // A generated aid1 vector names the key by its seed; the record's
        // pka is that key's.
        if let (Some(seed), None) = (self.seed()?, fields.get("k")) {
            txt.push(format!("k={}", Signer::from_seed(&seed).aid1_pka()));
        }
        AidRecord::parse(&txt.join(";"))
    }

    fn seed(&self) -> Result<Option<[u8; 32]>, AidError> {
        let b64 = self.seed_b64.as_deref().or(self.key.as_ref().and_then(|k| k.seed_b64.as_deref()));
        let Some(b64) = b64 else { return Ok(None) };
        let bytes =
            base64ct::Base64::decode_vec(b64).map_err(|_| security(format!("{}: seed_b64 is not base64", self.id)))?;
        bytes.try_into().map(Some).map_err(|_| security(format!("{}: the seed is not 32 bytes", self.id)))
    }

    fn verdict(&self, now: u64) -> Result<(), AidError> {
        let record = self.record()?;
        let key = EndpointKey::from_record(&record)?.ok_or_else(|| security("the record publishes no key"))?;
        match &self.response {
            Some(response) if response.signature_input.is_some() || !response.headers.is_empty() => {
                self.replay(key, &record, response)
            }
            _ => self.generate(key, &record, now),
        }
    }

    /// A recorded exchange, verified at `now_unix` or `created`.
    fn replay(&self, key: EndpointKey, record: &AidRecord, response: &ResponseSpec) -> Result<(), AidError> {
        let request = self.request.as_ref();
        let uri = request.and_then(|r| r.target_uri.as_deref()).unwrap_or(&record.uri);
        let request_header = |name: &str| {
            request.and_then(|r| r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()))
        };
        let nonce = match key.version() {
            AidVersion::Aid1 => request_header("AID-Challenge"),
            AidVersion::Aid2 => self.nonce.as_deref(),
        }
        .ok_or_else(|| security("the vector has no nonce"))?;
        let date = request_header("Date").unwrap_or_default();
        let mut challenge = Challenge::from_parts(key, uri, nonce, date)?;
        if let Some(domain) = request.and_then(|r| r.aid_domain.as_deref()) {
            challenge = challenge.with_domain(domain)?;
        }
        let mut headers: Vec<(&str, &str)> = response.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let named = [
            ("Signature-Input", &response.signature_input),
            ("Signature", &response.signature),
            ("Cache-Control", &response.cache_control),
        ];
        headers.extend(named.iter().filter_map(|(n, v)| v.as_deref().map(|v| (*n, v))));
        let now = self.now_unix.or(self.created).ok_or_else(|| security("the vector has no time"))?;
        challenge.verify(response.status.unwrap_or(200), &headers, now).map(drop)
    }

    /// A generated aid1 exchange: a signer of the seed answers a challenge.
    fn generate(&self, key: EndpointKey, record: &AidRecord, now: u64) -> Result<(), AidError> {
        let seed = self.seed()?.ok_or_else(|| security("a vector without a response needs a seed"))?;
        let kid = record.kid.clone().unwrap_or_default();
        let signer = Signer::from_seed(&seed);
        let challenge = Challenge::new(key, &record.uri, [7; 32], now)?;
        let pass = self.expect == "pass";
        let created = if pass { now } else { self.created.unwrap_or(now) };
        let date = match (&self.http_date, pass) {
            (Some(date), false) => date.clone(),
            _ => http_date(now),
        };
        let params = Aid1Params {
            created,
            date: &date,
            keyid: self.override_key_id.as_deref().unwrap_or(&kid),
            alg: self.override_alg.as_deref().unwrap_or("ed25519"),
        };
        let sent: Vec<(&str, String)> = challenge.request_headers();
        let sent: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let target = Target::from_uri(&record.uri)?;
        let request = ProofRequest { method: "GET", target: &target, headers: &sent };
        let answer = signer.sign_aid1(&request, &params)?;
        let answer: Vec<(&str, &str)> = answer.iter().map(|(k, v)| (*k, v.as_str())).collect();
        challenge.verify(200, &answer, now).map(drop)
    }
}
