//! What AID PKA adds to a connect (SPEC.md §16.1), per profile: the
//! endpoint's `Signer::sign` (parse the ask, build the base, Ed25519 sign)
//! and the client's `Challenge::verify` (parse, checks, Ed25519 verify).

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;

use asp_proto::aid::pka::{Challenge, ProofRequest, Signer, Target};
use asp_proto::aid::AidVersion;
use criterion::{criterion_group, criterion_main, Criterion};

const NOW: u64 = 1_767_225_600;
const URI: &str = "wss://agent.example.com/v1/agent-socket";

fn pka(c: &mut Criterion) {
    let signer = Signer::from_seed(&[1; 32]);
    let target = Target::from_uri(URI).unwrap();
    for (name, version) in [("aid1", AidVersion::Aid1), ("aid2", AidVersion::Aid2)] {
        let challenge = Challenge::new(signer.endpoint_key(version), URI, [2; 32], NOW).unwrap();
        let challenge = challenge.with_domain("example.com").unwrap();
        let asked = challenge.request_headers();
        let asked: Vec<(&str, &str)> = asked.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let request = ProofRequest { method: "GET", target: &target, headers: &asked };
        c.bench_function(&format!("pka/sign/{name}"), |b| b.iter(|| signer.sign(black_box(&request), 101, NOW)));
        let answer = signer.sign(&request, 101, NOW).unwrap().unwrap();
        let answer: Vec<(&str, &str)> = answer.iter().map(|(k, v)| (*k, v.as_str())).collect();
        c.bench_function(&format!("pka/verify/{name}"), |b| {
            b.iter(|| challenge.verify(101, black_box(&answer), NOW).unwrap())
        });
    }
}

criterion_group!(benches, pka);
criterion_main!(benches);
