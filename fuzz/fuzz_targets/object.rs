#![no_main]

// See netkit::fuzzing::object for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| netkit::fuzzing::object(data));
