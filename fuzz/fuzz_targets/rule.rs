#![no_main]

// See netkit::fuzzing::rule for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| netkit::fuzzing::rule(data));
