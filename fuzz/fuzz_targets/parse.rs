//! Any bytes through the frame parser and the header rewrites.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tessera_dataplane::fuzzing::parse(data);
});
