#![no_main]

// See netkit_fuzz_checks::cni for what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| netkit_fuzz_checks::cni(data));
