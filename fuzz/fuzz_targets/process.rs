//! Sequences of frames through a switch built from a small topology.
#![no_main]

use std::sync::Mutex;

static SWITCH: Mutex<Option<tessera_dataplane::Switch>> = Mutex::new(None);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut guard = SWITCH.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // A fresh switch per input keeps runs reproducible (no state carried between inputs).
    let switch = guard.insert(tessera_dataplane::fuzzing::switch());
    tessera_dataplane::fuzzing::process(switch, data);
});
