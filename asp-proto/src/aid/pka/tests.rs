//! Round trips between [`Signer`] and [`Challenge`], and what a verifier
//! must refuse.

use super::*;

const NOW: u64 = 1_767_225_600;
const URI: &str = "wss://agent.example.com/v1/agent-socket";

fn signer() -> Signer {
    Signer::from_seed(&[9; 32])
}

/// The endpoint's view of the request the challenge makes.
fn answer(signer: &Signer, challenge: &Challenge, now: u64) -> Vec<(&'static str, String)> {
    let sent = challenge.request_headers();
    let sent: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let target = Target::from_request("wss", "Agent.Example.com:443", "/v1/agent-socket").unwrap();
    let request = ProofRequest { method: "GET", target: &target, headers: &sent };
    signer.sign(&request, 101, now).unwrap().expect("a proof was asked")
}

fn verify(challenge: &Challenge, headers: &[(&'static str, String)], now: u64) -> Result<Proof, AidError> {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    challenge.verify(101, &headers, now)
}

#[test]
fn both_profiles_round_trip_and_bind_the_target() {
    for version in [AidVersion::Aid1, AidVersion::Aid2] {
        let challenge = Challenge::new(signer().endpoint_key(version), URI, [1; 32], NOW).unwrap();
        let headers = answer(&signer(), &challenge, NOW);
        let proof = verify(&challenge, &headers, NOW + 10).unwrap();
        assert_eq!(proof.version, version);
        assert_eq!(proof.keyid, challenge.key().keyid());
        // Another target (a proof replayed from a different endpoint path).
        let elsewhere = Challenge::new(signer().endpoint_key(version), "wss://agent.example.com/other", [1; 32], NOW);
        assert!(verify(&elsewhere.unwrap(), &headers, NOW).is_err(), "{version:?}");
        // Another nonce.
        let other = Challenge::new(signer().endpoint_key(version), URI, [2; 32], NOW).unwrap();
        assert!(verify(&other, &headers, NOW).is_err(), "{version:?}");
    }
}

#[test]
fn another_key_or_a_stale_proof_is_refused() {
    let stranger = Signer::from_seed(&[8; 32]);
    for version in [AidVersion::Aid1, AidVersion::Aid2] {
        let challenge = Challenge::new(signer().endpoint_key(version), URI, [1; 32], NOW).unwrap();
        let sent = challenge.request_headers();
        let sent: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let target = Target::from_uri(URI).unwrap();
        let request = ProofRequest { method: "GET", target: &target, headers: &sent };
        let headers = stranger.sign(&request, 101, NOW).unwrap().unwrap();
        let e = verify(&challenge, &headers, NOW).unwrap_err();
        // aid2 names the key it wants (the stranger's proof names another);
        // aid1 names only the kid, which the stranger shares.
        let why = if version == AidVersion::Aid2 { "keyid" } else { "does not verify" };
        assert!(e.message.contains(why), "{version:?}: {e}");
        let headers = answer(&signer(), &challenge, NOW);
        let e = verify(&challenge, &headers, NOW + 400).unwrap_err();
        assert_eq!(e.code, AidErrorCode::Security);
    }
}

#[test]
fn aid2_domain_binding_is_signed_and_checked() {
    let key = signer().endpoint_key(AidVersion::Aid2);
    let bound = Challenge::new(key.clone(), URI, [1; 32], NOW).unwrap().with_domain("Example.COM.").unwrap();
    assert!(bound.request_headers().contains(&(AID_DOMAIN_HEADER, "example.com".to_owned())));
    let headers = answer(&signer(), &bound, NOW);
    assert!(verify(&bound, &headers, NOW).unwrap().domain_bound);
    // The same proof for a client that sent no domain is refused.
    let unbound = Challenge::from_parts(key.clone(), URI, &bound.nonce, "").unwrap();
    let e = verify(&unbound, &headers, NOW).unwrap_err();
    assert!(e.message.contains("aid-domain"), "{e}");
    // Nor does it hold for another domain.
    let other = Challenge::from_parts(key, URI, &bound.nonce, "").unwrap().with_domain("evil.example").unwrap();
    assert!(verify(&other, &headers, NOW).is_err());
}

#[test]
fn malformed_answers_are_security_errors() {
    let challenge = Challenge::new(signer().endpoint_key(AidVersion::Aid2), URI, [1; 32], NOW).unwrap();
    let good = answer(&signer(), &challenge, NOW);
    let with = |name: &str, value: Option<&str>| -> Vec<(&'static str, String)> {
        let mut h: Vec<_> = good.iter().filter(|(k, _)| !k.eq_ignore_ascii_case(name)).cloned().collect();
        if let Some(v) = value {
            h.push((Box::leak(name.to_owned().into_boxed_str()), v.to_owned()));
        }
        h
    };
    let cases = [
        with("Signature", None),
        with("Signature-Input", None),
        with("Cache-Control", None),
        with("Cache-Control", Some("max-age=60")),
        with("Signature", Some("aid-pka=:not base64:")),
        with("Signature", Some("aid-pka=:AAAA:")),
        with("Signature-Input", Some("aid-pka=(\"@status\");created=1")),
    ];
    for (i, headers) in cases.iter().enumerate() {
        let e = verify(&challenge, headers, NOW).unwrap_err();
        assert_eq!(e.code, AidErrorCode::Security, "case {i}: {e}");
    }
    let mut twice = good.clone();
    twice.push(("signature", good.iter().find(|(k, _)| *k == "Signature").unwrap().1.clone()));
    assert!(verify(&challenge, &twice, NOW).unwrap_err().message.contains("more than one"));
    let headers: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert!(challenge.verify(302, &headers, NOW).unwrap_err().message.contains("redirect"));
}

#[test]
fn keys_and_files() {
    let s = signer().with_kid("k7").unwrap();
    let pem = s.to_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(Signer::from_pem(&pem).unwrap().public_key(), s.public_key());
    assert!(Signer::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
    for bad in ["", "toolong7", "UPPER", "a-b"] {
        assert!(signer().with_kid(bad).is_err(), "{bad}");
    }
    assert!(format!("{s:?}").contains(&s.aid2_k()));
    assert!(EndpointKey::aid1("zshort", "g1").is_err());
    assert!(EndpointKey::aid1(&s.aid2_k(), "g1").is_err());
    assert!(EndpointKey::aid2("!!").is_err());
    assert_eq!(Target::from_uri("wss://A.example:443/x#f").unwrap().target_uri, "wss://a.example/x");
    assert_eq!(Target::from_uri("wss://a.example:8443/x").unwrap().authority, "a.example:8443");
    assert!(canonical_domain("bad domain").is_err());
}

#[test]
fn a_request_without_a_challenge_gets_no_proof() {
    let target = Target::from_uri(URI).unwrap();
    let request = ProofRequest { method: "GET", target: &target, headers: &[("Host", "agent.example.com")] };
    assert_eq!(signer().sign(&request, 101, NOW).unwrap(), None);
    let bad = [("AID-Challenge", "has \"quotes\"")];
    let request = ProofRequest { method: "GET", target: &target, headers: &bad };
    assert!(signer().sign(&request, 101, NOW).is_err());
}
