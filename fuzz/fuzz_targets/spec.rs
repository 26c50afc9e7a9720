#![no_main]

// See netkit::fuzzing::spec for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| netkit::fuzzing::spec(data));
