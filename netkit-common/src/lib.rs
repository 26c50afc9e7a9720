//! Types and constants shared by the eBPF programs (netkit-ebpf) and the
//! user-space tool (netkit-cli). Everything here is `repr(C)` so both sides
//! agree on the layout of map keys, values and read-only globals.
#![no_std]

/// Verdicts a program on a tcx or netkit hook returns (the kernel's
/// `TCX_*`/`NETKIT_*` values; both hooks share them).
pub mod verdict {
    /// Run the next program in the chain; after the last one the hook's
    /// default applies (tcx: pass; netkit: pass).
    pub const NEXT: i32 = -1;
    /// Stop the chain and let the packet through.
    pub const PASS: i32 = 0;
    /// Stop the chain and drop the packet.
    pub const DROP: i32 = 2;
    /// Stop the chain; the packet goes where a `bpf_redirect*` helper sent it.
    pub const REDIRECT: i32 = 7;
}
