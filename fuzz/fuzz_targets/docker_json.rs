//! Fuzz the Docker/OCI seccomp JSON reader and the seccomp compiler.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = hutch::policy::fuzzing::docker_json(data);
});
