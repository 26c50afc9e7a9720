#![no_main]

// See netkit::fuzzing::reference for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| netkit::fuzzing::reference(data));
