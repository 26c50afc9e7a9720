//! Helpers shared by the bundled programs in `src/bin/`: the license and
//! panic handler every program needs, and packet parsing with direct packet
//! access (bounds-checked against data_end, as the verifier requires). This
//! library is also compiled for the host (netkit-cli depends on it so cargo
//! rebuilds the programs when they change), so it holds no maps.
#![no_std]

use aya_ebpf::programs::TcContext;

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

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// A pointer to a `T` at `offset` in the packet, if the packet is that long.
#[inline(always)]
pub fn ptr_at<T>(ctx: &TcContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// What the programs look at in an IP packet.
#[derive(Clone, Copy)]
pub struct Packet {
    /// 4 or 6.
    pub family: u8,
    pub proto: u8,
    /// IPv4 addresses use the first 4 bytes.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Transport ports for TCP and UDP (0 otherwise, and for IPv4 fragments
    /// after the first).
    pub sport: u16,
    pub dport: u16,
}

#[inline(always)]
fn ports(ctx: &TcContext, proto: u8, l4: usize) -> (u16, u16) {
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return (0, 0);
    }
    match ptr_at::<[u16; 2]>(ctx, l4) {
        // SAFETY: bounds-checked by ptr_at.
        Some(p) => {
            let p = unsafe { core::ptr::read_unaligned(p) };
            (u16::from_be(p[0]), u16::from_be(p[1]))
        }
        None => (0, 0),
    }
}

/// Parses the Ethernet and IP headers (and TCP/UDP ports); None for anything
/// that is not IPv4 or IPv6, or too short.
#[inline(always)]
pub fn parse(ctx: &TcContext) -> Option<Packet> {
    // SAFETY: every read goes through ptr_at's bounds check.
    unsafe {
        let eth_proto = u16::from_be(core::ptr::read_unaligned(ptr_at::<u16>(ctx, 12)?));
        let mut pkt = Packet { family: 0, proto: 0, src: [0; 16], dst: [0; 16], sport: 0, dport: 0 };
        match eth_proto {
            ETH_P_IP => {
                let vihl = *ptr_at::<u8>(ctx, ETH_HLEN)?;
                let ihl = ((vihl & 0x0f) as usize) * 4;
                if ihl < 20 {
                    return None;
                }
                let frag = u16::from_be(core::ptr::read_unaligned(ptr_at::<u16>(ctx, ETH_HLEN + 6)?));
                pkt.family = 4;
                pkt.proto = *ptr_at::<u8>(ctx, ETH_HLEN + 9)?;
                let addrs = core::ptr::read_unaligned(ptr_at::<[u8; 8]>(ctx, ETH_HLEN + 12)?);
                pkt.src[..4].copy_from_slice(&addrs[..4]);
                pkt.dst[..4].copy_from_slice(&addrs[4..]);
                if frag & 0x1fff == 0 {
                    (pkt.sport, pkt.dport) = ports(ctx, pkt.proto, ETH_HLEN + ihl);
                }
            }
            ETH_P_IPV6 => {
                pkt.family = 6;
                pkt.proto = *ptr_at::<u8>(ctx, ETH_HLEN + 6)?;
                pkt.src = core::ptr::read_unaligned(ptr_at::<[u8; 16]>(ctx, ETH_HLEN + 8)?);
                pkt.dst = core::ptr::read_unaligned(ptr_at::<[u8; 16]>(ctx, ETH_HLEN + 24)?);
                (pkt.sport, pkt.dport) = ports(ctx, pkt.proto, ETH_HLEN + 40);
            }
            _ => return None,
        }
        Some(pkt)
    }
}
