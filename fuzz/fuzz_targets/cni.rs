#![no_main]

// See netkit::fuzzing::cni for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| netkit::fuzzing::cni(data));
