#![no_main]
//! See `asp_proto::fuzzing::relay_ops` for what this target checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| asp_proto::fuzzing::relay_ops(data));
