#![no_main]
//! See `asp_testkit::fuzz::pka` for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| asp_testkit::fuzz::pka(data));
