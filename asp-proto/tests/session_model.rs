//! Random operation sequences over a client–server pair, checked against a
//! reference model (see `asp_testkit::model` for the invariants):
//! invocations end exactly once on both sides, output arrives complete and
//! in order across transport drops and resumes, no legal sequence closes a
//! session, buffers stay bounded, timeouts are never in the past.

use asp_testkit::model::{run, Op};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_every_invariant(
        knob in any::<u8>(),
        seed in any::<u64>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..240),
    ) {
        run(knob, seed, &Op::decode_all(&bytes));
    }
}

#[test]
fn drops_in_the_middle_of_heavy_streaming_lose_nothing() {
    // Many chunks on several invocations, with transport drops between
    // them and little credit: the hardest case for replay.
    let mut bytes = Vec::new();
    for round in 0..20u8 {
        bytes.extend_from_slice(&[0, round % 2, 0]); // invoke
        bytes.extend_from_slice(&[3, 0xFF, round]); // big chunk on client-handled
        bytes.extend_from_slice(&[4, 0xFE, round]); // big chunk on server-handled
        bytes.extend_from_slice(&[14, 0, round * 12]); // drop transport mid-flight
        bytes.extend_from_slice(&[10, round % 2, 0]); // grant
    }
    let ops = Op::decode_all(&bytes);
    assert!(ops.iter().filter(|o| matches!(o, Op::DropTransport { .. })).count() == 20);
    run(3, 42, &ops);
}
