//! Replays every file of the fuzz corpora (`fuzz/corpus/<target>/`) through
//! the same functions the cargo-fuzz targets call, on stable, as an ordinary
//! test. A crash the fuzzer found and whose input was committed stays fixed.

use std::path::Path;

use asp_proto::fuzzing;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target} panics on {}", path.display());
        count += 1;
    }
    // The seeds generated from the conformance vectors alone are 75.
    assert!(
        count >= 75,
        "{target}: only {count} corpus files in {}",
        dir.display()
    );
}

#[test]
fn frame_decode_corpus() {
    replay("frame_decode", fuzzing::frame_decode);
}

#[test]
fn frame_roundtrip_corpus() {
    replay("frame_roundtrip", fuzzing::frame_roundtrip);
}

#[test]
fn decoder_chunked_corpus() {
    replay("decoder_chunked", fuzzing::decoder_chunked);
}
