//! Helpers shared by the bundled programs in `src/bin/`: the license and
//! panic handler every program needs, and packet parsing with direct packet
//! access (bounds-checked against data_end, as the verifier requires). This
//! library is also compiled for the host (the netkit library depends on it so cargo
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

/// An IP packet whose headers were checked: family, protocol and where the
/// transport header starts. Addresses and ports are read on demand, so a
/// program pays only for the fields it looks at. Addresses come as u32 words
/// holding the bytes in packet (network) order; an IPv4 address is word 0.
#[derive(Clone, Copy)]
pub struct Ip {
    /// 4 or 6.
    pub family: u8,
    pub proto: u8,
    /// Offset of the TCP/UDP header, or 0 when there are no ports to read
    /// (other protocols, IPv4 fragments after the first).
    l4: usize,
}

/// Offsets of the addresses in an IPv4 / IPv6 header behind Ethernet.
const V4_SRC: usize = ETH_HLEN + 12;
const V4_DST: usize = ETH_HLEN + 16;
const V6_SRC: usize = ETH_HLEN + 8;
const V6_DST: usize = ETH_HLEN + 24;

#[inline(always)]
fn read<T: Copy>(ctx: &TcContext, offset: usize) -> Option<T> {
    // SAFETY: bounds-checked by ptr_at; unaligned reads are fine for packets.
    unsafe { Some(core::ptr::read_unaligned(ptr_at::<T>(ctx, offset)?)) }
}

impl Ip {
    #[inline(always)]
    fn addr(&self, ctx: &TcContext, v4: usize, v6: usize) -> Option<[u32; 4]> {
        if self.family == 4 { Some([read::<u32>(ctx, v4)?, 0, 0, 0]) } else { read::<[u32; 4]>(ctx, v6) }
    }

    #[inline(always)]
    pub fn src(&self, ctx: &TcContext) -> Option<[u32; 4]> {
        self.addr(ctx, V4_SRC, V6_SRC)
    }

    #[inline(always)]
    pub fn dst(&self, ctx: &TcContext) -> Option<[u32; 4]> {
        self.addr(ctx, V4_DST, V6_DST)
    }

    /// The IPv4 destination as a word (IPv4 packets only).
    #[inline(always)]
    pub fn dst4(&self, ctx: &TcContext) -> Option<u32> {
        read::<u32>(ctx, V4_DST)
    }

    /// (source, destination) port for TCP and UDP, else (0, 0).
    #[inline(always)]
    pub fn ports(&self, ctx: &TcContext) -> (u16, u16) {
        if self.l4 == 0 {
            return (0, 0);
        }
        match read::<[u16; 2]>(ctx, self.l4) {
            Some(p) => (u16::from_be(p[0]), u16::from_be(p[1])),
            None => (0, 0),
        }
    }
}

/// Checks the Ethernet and IP headers; None for anything that is not IPv4 or
/// IPv6, or too short.
#[inline(always)]
pub fn ip(ctx: &TcContext) -> Option<Ip> {
    let eth_proto = u16::from_be(read::<u16>(ctx, 12)?);
    match eth_proto {
        ETH_P_IP => {
            let vihl = read::<u8>(ctx, ETH_HLEN)?;
            let ihl = ((vihl & 0x0f) as usize) * 4;
            if ihl < 20 {
                return None;
            }
            // The whole fixed header (to the destination address) is there.
            read::<u32>(ctx, V4_DST)?;
            let frag = u16::from_be(read::<u16>(ctx, ETH_HLEN + 6)?);
            let proto = read::<u8>(ctx, ETH_HLEN + 9)?;
            let ported = (proto == IPPROTO_TCP || proto == IPPROTO_UDP) && frag & 0x1fff == 0;
            Some(Ip { family: 4, proto, l4: if ported { ETH_HLEN + ihl } else { 0 } })
        }
        ETH_P_IPV6 => {
            read::<[u32; 4]>(ctx, V6_DST)?;
            let proto = read::<u8>(ctx, ETH_HLEN + 6)?;
            let ported = proto == IPPROTO_TCP || proto == IPPROTO_UDP;
            Some(Ip { family: 6, proto, l4: if ported { ETH_HLEN + 40 } else { 0 } })
        }
        _ => None,
    }
}
