//! Discovery security policies, as the AID reference SDKs name them: a
//! security mode (`balanced`, `strict`) presetting a DNSSEC policy, a PKA
//! policy, a downgrade policy and a `.well-known` policy, each overridable.
//! Sans-IO: the adapter passes what it saw (the record, where it came from,
//! the resolver's AD bit, what was seen before) and gets warnings or an
//! `ERR_SECURITY`.

use super::pka::{jwk_thumbprint, security};
use super::{AidError, AidRecord, AidVersion};

/// A preset of the four policies.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SecurityMode {
    /// DNSSEC preferred (a warning without it), PKA if present, downgrades
    /// warned, `.well-known` allowed.
    Balanced,
    /// DNSSEC and PKA required, downgrades fail, no `.well-known`.
    Strict,
}

/// Whether the TXT answer must be DNSSEC-validated (the resolver's AD bit).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DnssecPolicy {
    /// Not checked.
    Off,
    /// A warning (`DNSSEC_PREFERRED`) when not validated.
    Prefer,
    /// `ERR_SECURITY` when not validated.
    Require,
}

/// Whether the record must publish a key.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PkaPolicy {
    /// A key is proven when present.
    IfPresent,
    /// `ERR_SECURITY` without one.
    Require,
}

/// What to do when the record is weaker than what was seen before.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DowngradePolicy {
    /// Not checked.
    Off,
    /// A warning (`DOWNGRADE_DETECTED`).
    Warn,
    /// `ERR_SECURITY`.
    Fail,
}

/// Whether the `https://<host>/.well-known/agent` fallback may be used.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WellKnownPolicy {
    /// Used when DNS has no record or fails.
    Auto,
    /// Never: the DNS error stands.
    Disable,
}

/// Where a record came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TrustSource {
    /// DNS TXT.
    Dns,
    /// `.well-known/agent` over HTTPS (trusting the web PKI only).
    WellKnown,
}

/// What a client saw last time for a domain, to detect downgrades. Keep it
/// from [`SecurityReport::seen`] between runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreviousSecurity {
    /// The record version.
    pub version: Option<AidVersion>,
    /// Where the record came from.
    pub trust_source: Option<TrustSource>,
    /// The aid1 `pka`.
    pub pka: Option<String>,
    /// The aid1 `kid`.
    pub kid: Option<String>,
    /// RFC 7638 thumbprints of accepted aid2 keys.
    pub key_thumbprints: Vec<String>,
}

/// A condition a policy reports without failing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityWarning {
    /// `DNSSEC_PREFERRED`, `DOWNGRADE_DETECTED` or `WELL_KNOWN_PREFERRED`.
    pub code: &'static str,
    /// What happened, naming the query.
    pub message: String,
}

/// The policies in force for a discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityPolicy {
    /// DNSSEC.
    pub dnssec: DnssecPolicy,
    /// PKA.
    pub pka: PkaPolicy,
    /// Downgrades.
    pub downgrade: DowngradePolicy,
    /// `.well-known`.
    pub well_known: WellKnownPolicy,
}

impl Default for SecurityPolicy {
    /// No mode: nothing checked beyond the record, `.well-known` allowed.
    fn default() -> Self {
        SecurityPolicy {
            dnssec: DnssecPolicy::Off,
            pka: PkaPolicy::IfPresent,
            downgrade: DowngradePolicy::Off,
            well_known: WellKnownPolicy::Auto,
        }
    }
}

impl From<SecurityMode> for SecurityPolicy {
    fn from(mode: SecurityMode) -> Self {
        match mode {
            SecurityMode::Strict => SecurityPolicy {
                dnssec: DnssecPolicy::Require,
                pka: PkaPolicy::Require,
                downgrade: DowngradePolicy::Fail,
                well_known: WellKnownPolicy::Disable,
            },
            SecurityMode::Balanced => SecurityPolicy {
                dnssec: DnssecPolicy::Prefer,
                pka: PkaPolicy::IfPresent,
                downgrade: DowngradePolicy::Warn,
                well_known: WellKnownPolicy::Auto,
            },
        }
    }
}

/// What a discovery established, policy by policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityReport {
    /// The AD bit of the TXT answer (`None`: not from DNS).
    pub dnssec_validated: Option<bool>,
    /// The record publishes a key (to be proven on connect).
    pub pka_present: bool,
    /// The record came from `.well-known`.
    pub well_known_used: bool,
    /// Why the record is a downgrade, if it is one.
    pub downgrade: Option<String>,
    /// Warnings, in the order the policies ran.
    pub warnings: Vec<SecurityWarning>,
}

impl SecurityPolicy {
    /// Whether a DNS failure may fall back to `.well-known`: not when it is
    /// disabled, nor when DNSSEC is required (`.well-known` cannot satisfy
    /// that).
    pub fn allows_well_known(&self) -> bool {
        self.well_known == WellKnownPolicy::Auto && self.dnssec != DnssecPolicy::Require
    }

    /// Checks a found record: DNSSEC (DNS) or the `.well-known` preference,
    /// then PKA, then downgrade against `previous`. `name` is what was
    /// queried, for messages; `dnssec_validated` the resolver's AD bit.
    pub fn evaluate(
        &self,
        name: &str,
        record: &AidRecord,
        source: TrustSource,
        dnssec_validated: bool,
        previous: Option<&PreviousSecurity>,
    ) -> Result<SecurityReport, AidError> {
        let mut report = SecurityReport {
            dnssec_validated: (source == TrustSource::Dns).then_some(dnssec_validated),
            pka_present: record.pka.is_some(),
            well_known_used: source == TrustSource::WellKnown,
            ..SecurityReport::default()
        };
        match source {
            TrustSource::Dns if !dnssec_validated => {
                let message = format!("the answer for {name} was not DNSSEC-validated (no AD bit from the resolver)");
                match self.dnssec {
                    DnssecPolicy::Require => return Err(security(message)),
                    DnssecPolicy::Prefer => report.warnings.push(SecurityWarning { code: "DNSSEC_PREFERRED", message }),
                    DnssecPolicy::Off => {}
                }
            }
            TrustSource::WellKnown => match self.dnssec {
                DnssecPolicy::Require => {
                    return Err(security(format!("DNSSEC is required for {name}; .well-known cannot satisfy that")))
                }
                DnssecPolicy::Prefer => report.warnings.push(SecurityWarning {
                    code: "WELL_KNOWN_PREFERRED",
                    message: format!("{name} came from .well-known; the DNSSEC preference could not be met"),
                }),
                DnssecPolicy::Off => {}
            },
            TrustSource::Dns => {}
        }
        if self.pka == PkaPolicy::Require && record.pka.is_none() {
            return Err(security(format!("PKA is required for {name}, and its record publishes no key (k)")));
        }
        if let (DowngradePolicy::Warn | DowngradePolicy::Fail, Some(previous)) = (self.downgrade, previous) {
            if let Some(reason) = downgrade(previous, record, source) {
                let message = format!("security downgrade for {name}: {reason}");
                if self.downgrade == DowngradePolicy::Fail {
                    return Err(security(message));
                }
                report.downgrade = Some(reason);
                report.warnings.push(SecurityWarning { code: "DOWNGRADE_DETECTED", message });
            }
        }
        Ok(report)
    }
}

impl SecurityReport {
    /// What to remember for the next discovery of the same domain.
    pub fn seen(record: &AidRecord, source: TrustSource) -> PreviousSecurity {
        let aid2_key = (record.version == AidVersion::Aid2).then_some(()).and(record.pka.as_deref());
        PreviousSecurity {
            version: Some(record.version),
            trust_source: Some(source),
            pka: record.pka.clone().filter(|_| record.version == AidVersion::Aid1),
            kid: record.kid.clone(),
            key_thumbprints: aid2_key.map(jwk_thumbprint).into_iter().collect(),
        }
    }
}

/// Why `record` (from `source`) is weaker than `previous`, if it is.
fn downgrade(previous: &PreviousSecurity, record: &AidRecord, source: TrustSource) -> Option<String> {
    let current_pka = record.pka.as_deref();
    if previous.trust_source == Some(TrustSource::Dns) && source == TrustSource::WellKnown {
        return Some("the record was in DNS before and now comes from .well-known".into());
    }
    if previous.version == Some(AidVersion::Aid2) && record.version == AidVersion::Aid1 {
        return Some("the record went from aid2 back to aid1".into());
    }
    let had_key = previous.pka.is_some() || !previous.key_thumbprints.is_empty();
    if had_key && current_pka.is_none() {
        return Some("a previously published key (pka) was removed".into());
    }
    if let (Some(before), Some(now)) = (previous.pka.as_deref(), current_pka) {
        if record.version == AidVersion::Aid1 && before != now {
            return Some("the pka value changed".into());
        }
    }
    if let (Some(before), Some(now)) = (previous.kid.as_deref(), record.kid.as_deref()) {
        if before != now {
            return Some("the kid value changed".into());
        }
    }
    if !previous.key_thumbprints.is_empty() && record.version == AidVersion::Aid2 {
        let thumbprint = jwk_thumbprint(current_pka.unwrap_or_default());
        if !previous.key_thumbprints.contains(&thumbprint) {
            return Some(format!("the key changed (thumbprint {thumbprint} was not seen before)"));
        }
    }
    None
}
