#![no_main]

// See netkit::fuzzing::link for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| netkit::fuzzing::link(data));
