//! AID PKA against the shared vectors (`tests/aid-vectors/`): every case of
//! the AID project's `pka-vectors-v2.1.json` and the fixed-time aid1 vector
//! gets its expected verdict, for the reason the case names.

use std::path::Path;

use asp_proto::aid::pka::vectors::{Outcome, VectorFile};

fn run(name: &str, now: u64) -> Vec<Outcome> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aid-vectors").join(name);
    let file: VectorFile = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    file.into_vectors().iter().map(|v| v.run(now)).collect()
}

#[test]
fn every_pka_vector_gets_its_verdict() {
    // Generated aid1 vectors are signed at "now", as the reference harness does.
    let outcomes = run("pka-vectors-v2.1.json", 1_767_225_600);
    assert_eq!(outcomes.len(), 10);
    for o in &outcomes {
        assert!(o.matches(), "{}: expected {}, got {} ({:?})", o.id, o.expect, o.got, o.reason);
    }
    // Each failure fails for its own reason, not an incidental one.
    let reason = |id: &str| outcomes.iter().find(|o| o.id == id).unwrap().reason.clone().unwrap_or_default();
    assert!(reason("alg-mismatch").contains("algorithm `rsa`"), "{}", reason("alg-mismatch"));
    assert!(reason("kid-mismatch").contains("kid"), "{}", reason("kid-mismatch"));
    assert!(reason("date-skew").contains("created"), "{}", reason("date-skew"));
    assert!(reason("v2-keyid-thumbprint-mismatch").contains("thumbprint"));
    assert!(reason("v2-duplicate-signature-input-param").contains("duplicate"));
    assert!(reason("v2-missing-expires").contains("expires"));
    for pass in ["valid-ed25519", "v2-rfc9421-response-signature", "v2-uppercase-alg", "v2-db-rfc9421-domain-bound"] {
        assert_eq!(reason(pass), "", "{pass}");
    }
}

#[test]
fn the_fixed_time_aid1_vector_verifies_at_its_time_only() {
    let outcomes = run("aid1-pka-fixed-time-vector.json", 0);
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].matches(), "{:?}", outcomes[0]);
    // The same proof replayed ten minutes later is stale.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aid-vectors/aid1-pka-fixed-time-vector.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["now_unix"] = (1_767_225_600u64 + 600).into();
    let late: VectorFile = serde_json::from_value(json).unwrap();
    let outcome = late.into_vectors()[0].run(0);
    assert_eq!(outcome.got, "fail");
    assert!(outcome.reason.unwrap().contains("created"));
}
