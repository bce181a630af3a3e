//! Fuzz target: see hutch::image::fuzzing::manifest.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hutch::image::fuzzing::manifest(data);
});
