#![no_main]
// See fuzz/src/lib.rs for what this target feeds its bytes to.
libfuzzer_sys::fuzz_target!(|data: &[u8]| scratchgpt_fuzz::trainer_state(data));
