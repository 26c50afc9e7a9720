//! Helpers shared by the bundled programs in `src/bin/`. This library is also
//! compiled for the host (netkit-cli depends on it so cargo rebuilds the
//! programs when they change), so it holds no panic handler and no maps.
#![no_std]

/// The license section every program carries. "Dual MIT/GPL" is GPL-compatible
/// for the kernel, which the aya-log output helper requires.
#[macro_export]
macro_rules! license {
    () => {
        #[unsafe(link_section = "license")]
        #[unsafe(no_mangle)]
        static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

        #[cfg(not(test))]
        #[panic_handler]
        fn panic(_info: &core::panic::PanicInfo) -> ! {
            loop {}
        }
    };
}
