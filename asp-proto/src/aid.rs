//! AID (Agent Identity & Discovery) TXT records: parsing, selection among
//! several answers, and canonical generation (SPEC.md §16). No I/O: the
//! adapters query DNS and hand the answers here.
//!
//! Rules follow AID v1.2 (`v=aid1`) and v2 (`v=aid2`) as the reference
//! parsers implement them, checked in their order so that a record with
//! several faults gets the same error everywhere: required keys, version,
//! protocol, auth, desc, docs, dep, key material, then the URI scheme. One
//! deliberate difference: `p=websocket` with a `ws://` URI is
//! [`AidErrorCode::Security`] (1003), as the AID WebSocket proposal demands,
//! where the reference SDKs say `ERR_INVALID_TXT`.

use std::fmt;

#[cfg(feature = "pka")]
pub mod pka;
#[cfg(feature = "pka")]
pub mod policy;

/// The AID error codes (1000–1005) with their symbolic names.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum AidErrorCode {
    /// 1000: no `_agent` TXT record.
    NoRecord,
    /// 1001: a record was found but is malformed, incomplete or ambiguous.
    InvalidTxt,
    /// 1002: the record is valid but its protocol is not supported.
    UnsupportedProto,
    /// 1003: a security policy failed (here: `ws://` for `p=websocket`).
    Security,
    /// 1004: DNS failed for a network reason.
    DnsLookupFailed,
    /// 1005: the `.well-known` fallback failed.
    FallbackFailed,
}

impl AidErrorCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            AidErrorCode::NoRecord => 1000,
            AidErrorCode::InvalidTxt => 1001,
            AidErrorCode::UnsupportedProto => 1002,
            AidErrorCode::Security => 1003,
            AidErrorCode::DnsLookupFailed => 1004,
            AidErrorCode::FallbackFailed => 1005,
        }
    }

    /// The symbolic name (`"ERR_INVALID_TXT"`).
    pub fn name(self) -> &'static str {
        match self {
            AidErrorCode::NoRecord => "ERR_NO_RECORD",
            AidErrorCode::InvalidTxt => "ERR_INVALID_TXT",
            AidErrorCode::UnsupportedProto => "ERR_UNSUPPORTED_PROTO",
            AidErrorCode::Security => "ERR_SECURITY",
            AidErrorCode::DnsLookupFailed => "ERR_DNS_LOOKUP_FAILED",
            AidErrorCode::FallbackFailed => "ERR_FALLBACK_FAILED",
        }
    }
}

/// Why discovery failed: a code and an explanation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}): {message}", .code.name(), .code.code())]
pub struct AidError {
    /// The AID error code.
    pub code: AidErrorCode,
    /// What was wrong.
    pub message: String,
}

impl AidError {
    /// An error with a code and message.
    pub fn new(code: AidErrorCode, message: impl Into<String>) -> Self {
        AidError { code, message: message.into() }
    }
}

fn invalid(message: impl Into<String>) -> AidError {
    AidError::new(AidErrorCode::InvalidTxt, message)
}

/// The record's major version.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AidVersion {
    /// `v=aid1` (AID v1.x).
    Aid1,
    /// `v=aid2` (AID v2.x).
    Aid2,
}

impl AidVersion {
    /// The `v` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AidVersion::Aid1 => "aid1",
            AidVersion::Aid2 => "aid2",
        }
    }
}

/// Protocol tokens of the AID registry (`constants.yml`).
pub const PROTOCOLS: &[&str] = &["mcp", "a2a", "openapi", "grpc", "graphql", "websocket", "local", "zeroconf", "ucp"];

/// Auth hint tokens of the AID registry.
pub const AUTH_TOKENS: &[&str] = &["none", "pat", "apikey", "basic", "oauth2_device", "oauth2_code", "mtls", "custom"];

/// URI schemes a `local` agent may use.
pub const LOCAL_SCHEMES: &[&str] = &["docker", "npx", "pip"];

/// Longest `desc`, in UTF-8 bytes.
pub const MAX_DESC_BYTES: usize = 60;

/// A parsed, valid AID record, with canonical (long) field names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AidRecord {
    /// `v`.
    pub version: AidVersion,
    /// `uri` / `u`.
    pub uri: String,
    /// `proto` / `p`.
    pub proto: String,
    /// `auth` / `a`.
    pub auth: Option<String>,
    /// `desc` / `s`.
    pub desc: Option<String>,
    /// `docs` / `d`.
    pub docs: Option<String>,
    /// `dep` / `e`, as `YYYY-MM-DDTHH:MM:SSZ`.
    pub dep: Option<String>,
    /// `pka` / `k`.
    pub pka: Option<String>,
    /// `kid` / `i` (aid1 only).
    pub kid: Option<String>,
}

/// The keys a record may carry, with their one-letter aliases, in canonical
/// emission order.
const KEYS: [(&str, &str); 9] = [
    ("v", "v"),
    ("uri", "u"),
    ("proto", "p"),
    ("auth", "a"),
    ("desc", "s"),
    ("docs", "d"),
    ("dep", "e"),
    ("pka", "k"),
    ("kid", "i"),
];

/// Which canonical key a (lowercased) key or alias stands for. `version`
/// is not one: no reference parser accepts it, so it is an unknown key.
fn canonical(key: &str) -> Option<usize> {
    KEYS.iter().position(|(long, short)| key == *long || key == *short)
}

impl AidRecord {
    /// Checks `dep` against the time `now_unix_secs` (seconds since the
    /// epoch): a record deprecated in the past is an error at discovery
    /// time; one deprecated in the future is usable, with the warning
    /// returned.
    pub fn check_deprecation(&self, now_unix_secs: u64) -> Result<Option<String>, AidError> {
        let Some(dep) = &self.dep else { return Ok(None) };
        match unix_seconds(dep) {
            Some(at) if at <= now_unix_secs => {
                Err(AidError::new(AidErrorCode::InvalidTxt, format!("the record was deprecated at {dep}")))
            }
            _ => Ok(Some(format!("the record is deprecated from {dep}"))),
        }
    }

    /// Parses one TXT record (its strings already joined), `aid1` or `aid2`.
    pub fn parse(raw: &str) -> Result<AidRecord, AidError> {
        AidRecord::parse_versions(raw, true)
    }

    /// Parses a record as an AID v1 client does: `v=aid2` is an
    /// unsupported version (`ERR_INVALID_TXT`). The v1 conformance vectors
    /// test this.
    pub fn parse_v1(raw: &str) -> Result<AidRecord, AidError> {
        AidRecord::parse_versions(raw, false)
    }

    fn parse_versions(raw: &str, accept_aid2: bool) -> Result<AidRecord, AidError> {
        let mut values: [Option<String>; 9] = Default::default();
        for segment in raw.split(';') {
            let segment = segment.trim();
            if segment.is_empty() {
                continue;
            }
            let Some((key, value)) = segment.split_once('=') else {
                return Err(invalid(format!("invalid key-value pair `{segment}`")));
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            if key.is_empty() || value.is_empty() {
                return Err(invalid(format!("empty key or value in `{segment}`")));
            }
            let Some(index) = canonical(&key) else { continue };
            if values[index].is_some() {
                return Err(invalid(format!("duplicate key `{}` (a key and its alias count as one)", KEYS[index].0)));
            }
            values[index] = Some(value.to_owned());
        }
        let [v, uri, proto, auth, desc, docs, dep, pka, kid] = values;
        let v = v.ok_or_else(|| invalid("missing required field: v"))?;
        let uri = uri.ok_or_else(|| invalid("missing required field: uri"))?;
        let proto = proto.ok_or_else(|| invalid("missing required field: proto"))?;
        let version = match v.as_str() {
            "aid1" => AidVersion::Aid1,
            "aid2" if accept_aid2 => AidVersion::Aid2,
            other => return Err(invalid(format!("unsupported version `{other}`"))),
        };
        if !PROTOCOLS.contains(&proto.as_str()) {
            return Err(AidError::new(AidErrorCode::UnsupportedProto, format!("unsupported protocol `{proto}`")));
        }
        if let Some(a) = &auth {
            if !AUTH_TOKENS.contains(&a.as_str()) {
                return Err(invalid(format!("invalid auth token `{a}`")));
            }
        }
        if let Some(d) = &desc {
            if d.len() > MAX_DESC_BYTES {
                return Err(invalid(format!("desc is {} bytes; at most {MAX_DESC_BYTES}", d.len())));
            }
        }
        if let Some(d) = &docs {
            if !is_https_with_host(d) {
                return Err(invalid(format!("docs must be an https:// URL, got `{d}`")));
            }
        }
        if let Some(e) = &dep {
            if !is_utc_timestamp(e) {
                return Err(invalid(format!("dep must be YYYY-MM-DDTHH:MM:SSZ, got `{e}`")));
            }
        }
        match version {
            AidVersion::Aid1 if pka.is_some() && kid.is_none() => {
                return Err(invalid("pka requires kid"));
            }
            AidVersion::Aid2 if kid.is_some() => return Err(invalid("kid is not allowed in aid2 records")),
            AidVersion::Aid2 if pka.as_deref().is_some_and(|k| !is_base64url_32(k)) => {
                return Err(invalid("pka must be an unpadded base64url Ed25519 key (32 bytes) in aid2"));
            }
            _ => {}
        }
        check_uri(&proto, &uri)?;
        Ok(AidRecord { version, uri, proto, auth, desc, docs, dep, pka, kid })
    }

    /// The record in canonical form: short keys, in order, only those set.
    pub fn to_txt(&self) -> String {
        let fields = [
            Some(self.version.as_str()),
            Some(self.uri.as_str()),
            Some(self.proto.as_str()),
            self.auth.as_deref(),
            self.desc.as_deref(),
            self.docs.as_deref(),
            self.dep.as_deref(),
            self.pka.as_deref(),
            self.kid.as_deref(),
        ];
        let parts: Vec<String> =
            KEYS.iter().zip(fields).filter_map(|((_, short), value)| value.map(|v| format!("{short}={v}"))).collect();
        parts.join(";")
    }

    /// The set fields by their canonical long names, in order.
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        let values = [
            Some(self.version.as_str()),
            Some(self.uri.as_str()),
            Some(self.proto.as_str()),
            self.auth.as_deref(),
            self.desc.as_deref(),
            self.docs.as_deref(),
            self.dep.as_deref(),
            self.pka.as_deref(),
            self.kid.as_deref(),
        ];
        KEYS.iter().zip(values).filter_map(|((long, _), v)| v.map(|v| (*long, v))).collect()
    }
}

impl fmt::Display for AidRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_txt())
    }
}

/// Reads a record from the key/value pairs of a `.well-known/agent` JSON
/// object (its string values): keys are case-insensitive and may be full
/// keys or aliases; when both are present the full key wins (unlike TXT,
/// where that is an error). The record is then validated as a TXT record.
pub fn from_well_known_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<AidRecord, AidError> {
    let mut values: [Option<(bool, &str)>; 9] = Default::default();
    for (key, value) in pairs {
        let key = key.trim().to_ascii_lowercase();
        let Some(index) = canonical(&key) else { continue };
        let is_full = key == KEYS[index].0;
        if values[index].is_none_or(|(was_full, _)| is_full && !was_full) {
            values[index] = Some((is_full, value));
        }
    }
    let mut raw = Vec::new();
    for ((_, short), value) in KEYS.iter().zip(values) {
        if let Some((_, value)) = value {
            if value.contains(';') {
                return Err(invalid(format!("`{short}` contains ';'")));
            }
            raw.push(format!("{short}={value}"));
        }
    }
    AidRecord::parse(&raw.join(";"))
}

/// Builds and validates a record, returning it in canonical form with any
/// warnings (a record over 255 bytes needs several TXT strings).
pub fn generate(record: &AidRecord) -> Result<(String, Vec<String>), AidError> {
    let txt = record.to_txt();
    let parsed = AidRecord::parse(&txt)?;
    debug_assert_eq!(&parsed, record);
    let mut warnings = Vec::new();
    if txt.len() > 255 {
        warnings.push(format!(
            "the record is {} bytes: over 255, DNS splits it into several strings (clients join them)",
            txt.len()
        ));
    }
    Ok((txt, warnings))
}

/// Chooses the record among the TXT answers at one name. Each answer is
/// the list of its character-strings, joined here without separator.
/// Non-AID TXT records (SPF…) are ignored; `aid2` records are preferred
/// over `aid1`; two valid records of the chosen version are ambiguous.
pub fn select(answers: &[Vec<String>]) -> Result<AidRecord, AidError> {
    let joined: Vec<String> = answers.iter().map(|strings| strings.concat()).collect();
    let aid_like: Vec<(Option<AidVersion>, &str)> =
        joined.iter().filter_map(|raw| aid_version(raw).map(|v| (v, raw.as_str()))).collect();
    if aid_like.is_empty() {
        return Err(AidError::new(AidErrorCode::NoRecord, "no AID record among the TXT answers"));
    }
    let mut last_error = None;
    for version in [AidVersion::Aid2, AidVersion::Aid1] {
        let mut valid = Vec::new();
        for (_, raw) in aid_like.iter().filter(|(v, _)| *v == Some(version)) {
            match AidRecord::parse(raw) {
                Ok(record) => valid.push(record),
                Err(e) => last_error = last_error.or(Some(e)),
            }
        }
        match valid.len() {
            0 => continue,
            1 => return Ok(valid.pop().expect("one")),
            n => return Err(invalid(format!("{n} valid {} records at the same name: ambiguous", version.as_str()))),
        }
    }
    // AID-like, but nothing valid: the first error (an unknown version
    // such as aid3 included).
    Err(last_error.unwrap_or_else(|| {
        let raw = aid_like[0].1;
        AidRecord::parse(raw).err().unwrap_or_else(|| invalid("unsupported AID version"))
    }))
}

/// `Some(version)` when the record looks like AID (`v=aidN`); the version
/// is `None` for an N this module does not know.
fn aid_version(raw: &str) -> Option<Option<AidVersion>> {
    raw.split(';').find_map(|segment| {
        let (key, value) = segment.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        if key != "v" && key != "version" {
            return None;
        }
        let value = value.trim().to_ascii_lowercase();
        let digits = value.strip_prefix("aid")?;
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some(match value.as_str() {
            "aid1" => Some(AidVersion::Aid1),
            "aid2" => Some(AidVersion::Aid2),
            _ => None,
        })
    })
}

fn check_uri(proto: &str, uri: &str) -> Result<(), AidError> {
    match proto {
        "websocket" => {
            if uri.starts_with("ws://") {
                return Err(AidError::new(
                    AidErrorCode::Security,
                    "p=websocket must use wss://; an unencrypted ws:// URI is refused",
                ));
            }
            if !uri.starts_with("wss://") || !has_host(uri) {
                return Err(invalid(format!("invalid URI scheme for 'websocket': must be wss://, got `{uri}`")));
            }
        }
        "local" => {
            let scheme = uri.split_once(':').map(|(s, _)| s);
            if !scheme.is_some_and(|s| LOCAL_SCHEMES.contains(&s)) {
                return Err(invalid(format!(
                    "invalid URI scheme for 'local': must be docker:, npx: or pip:, got `{uri}`"
                )));
            }
        }
        "zeroconf" => {
            if !uri.starts_with("zeroconf:") {
                return Err(invalid(format!("invalid URI scheme for 'zeroconf': got `{uri}`")));
            }
        }
        _ => {
            if !is_https_with_host(uri) {
                return Err(invalid(format!("invalid URI scheme for '{proto}': must be https://, got `{uri}`")));
            }
        }
    }
    Ok(())
}

fn is_https_with_host(uri: &str) -> bool {
    uri.starts_with("https://") && has_host(uri)
}

fn has_host(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty()))
}

/// `YYYY-MM-DDTHH:MM:SSZ`, with plausible ranges.
fn is_utc_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok()).flatten()
    };
    matches!(
        (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19)),
        (Some(_), Some(1..=12), Some(1..=31), Some(0..=23), Some(0..=59), Some(0..=60))
    )
}

/// Unpadded base64url that decodes to exactly 32 bytes (43 characters).
fn is_base64url_32(s: &str) -> bool {
    s.len() == 43
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        // 43 characters carry 258 bits: the last character's low 2 bits must be zero.
        && b"AEIMQUYcgkosw048".contains(&s.as_bytes()[42])
}

/// Seconds since the epoch of a `YYYY-MM-DDTHH:MM:SSZ` timestamp (already
/// validated by the parser).
fn unix_seconds(ts: &str) -> Option<u64> {
    let n = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_convert() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(unix_seconds("2026-11-21T12:30:15Z"), Some(1_795_264_215));
    }

    #[test]
    fn canonical_output_uses_short_keys_in_order() {
        let r = AidRecord::parse("uri=wss://a.example/x;desc=Feed;p=websocket;v=aid1;auth=pat").unwrap();
        assert_eq!(r.to_txt(), "v=aid1;u=wss://a.example/x;p=websocket;a=pat;s=Feed");
        assert_eq!(AidRecord::parse(&r.to_txt()).unwrap(), r);
    }

    #[test]
    fn well_known_pairs_prefer_full_keys_and_ignore_unknown_ones() {
        let pairs = [
            ("V", "aid1"),
            ("u", "https://alias.example/m"),
            ("uri", "https://full.example/m"),
            ("p", "mcp"),
            ("x", "y"),
        ];
        let r = from_well_known_pairs(pairs).unwrap();
        assert_eq!(r.uri, "https://full.example/m");
        assert!(from_well_known_pairs([("v", "aid1"), ("u", "https://a.example/m;x"), ("p", "mcp")]).is_err());
    }

    #[test]
    fn timestamps_are_strict() {
        assert!(is_utc_timestamp("2026-01-01T00:00:00Z"));
        for bad in ["2026-01-01T00:00:00", "2026-1-01T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01 00:00:00Z"] {
            assert!(!is_utc_timestamp(bad), "{bad}");
        }
    }

    #[test]
    fn aid2_key_material() {
        let key = "A".repeat(43);
        let ok = format!("v=aid2;u=https://a.example/m;p=mcp;k={key}");
        assert!(AidRecord::parse(&ok).is_ok());
        let with_kid = format!("{ok};i=g1");
        assert_eq!(AidRecord::parse(&with_kid).unwrap_err().code, AidErrorCode::InvalidTxt);
        let multibase = "v=aid2;u=https://a.example/m;p=mcp;k=z7rW8rTq8o4mM6vVf7w1k3m4uQn9p2YxCAbcDeFgHiJ";
        assert_eq!(AidRecord::parse(multibase).unwrap_err().code, AidErrorCode::InvalidTxt);
    }
}
