//! Fuzz hutch's TOML profile parser, merge and seccomp compiler.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = hutch::policy::fuzzing::profile(data);
});
