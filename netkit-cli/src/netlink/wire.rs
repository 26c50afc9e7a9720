//! Link reads (RTM_GETLINK) on a plain rtnetlink socket, decoded at the byte
//! level into [`Link`]: only the attributes `Link` keeps are looked at, and
//! nothing is allocated per attribute. Every `device list`, `query` and
//! device lookup reads links, so this is most of what they do in user space.
//!
//! The kernel answers a GETLINK in the requester's own system call: a get
//! is queued during the send, and each part of a dump during the send or
//! during the receive of the part before. The reads here are therefore
//! synchronous and never wait; a reply that is not there is an error, not a
//! wait.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::Mutex,
};

use super::{
    NetlinkError,
    links::{Counters, Link, Mode, NetkitAttrs, Pairing, Policy, Scrub},
};

// include/uapi/linux/if_link.h
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IFLA_STATS64: u16 = 23;
const IFLA_NUM_TX_QUEUES: u16 = 31;
const IFLA_NUM_RX_QUEUES: u16 = 32;
const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_GSO_MAX_SEGS: u16 = 40;
const IFLA_GSO_MAX_SIZE: u16 = 41;
const IFLA_PARENT_DEV_NAME: u16 = 56;
const IFLA_GRO_MAX_SIZE: u16 = 58;
const IFLA_GSO_IPV4_MAX_SIZE: u16 = 63;
const IFLA_GRO_IPV4_MAX_SIZE: u16 = 64;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_NETKIT_PRIMARY: u16 = 2;
const IFLA_NETKIT_POLICY: u16 = 3;
const IFLA_NETKIT_PEER_POLICY: u16 = 4;
const IFLA_NETKIT_MODE: u16 = 5;
const IFLA_NETKIT_SCRUB: u16 = 6;
const IFLA_NETKIT_PEER_SCRUB: u16 = 7;
const IFLA_NETKIT_HEADROOM: u16 = 8;
const IFLA_NETKIT_TAILROOM: u16 = 9;
const IFLA_NETKIT_PAIRING: u16 = super::links::IFLA_NETKIT_PAIRING;
/// The flag bits of nla_type (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;
// include/uapi/linux/netlink.h and rtnetlink.h
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
/// The receive buffer: dump parts are at most 32 KiB unless one device's
/// message is larger (then the read is repeated with room for it).
const RECV_BUF: usize = 64 * 1024;
/// Dumps the kernel marks as interrupted (a device came or went meanwhile)
/// are read again, this many times in all.
const DUMP_TRIES: usize = 5;

/// Which links a GETLINK asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which<'a> {
    /// Every link of the namespace (a dump).
    All,
    /// The link with this ifindex.
    Index(u32),
    /// The link with this name.
    Name(&'a str),
}

/// The netlink attributes of `buf`, as (type without flag bits, value).
/// Stops at the first malformed header, reporting it as the last item.
struct Attrs<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([self.buf[0], self.buf[1]]));
        let kind = u16::from_ne_bytes([self.buf[2], self.buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > self.buf.len() {
            let left = self.buf.len();
            self.buf = &[];
            return Some(Err(format!("attribute {kind} says it is {len} bytes long, with {left} left")));
        }
        let value = &self.buf[4..len];
        self.buf = self.buf.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some(Ok((kind, value)))
    }
}

fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { buf }
}

fn u32_of(kind: u16, v: &[u8]) -> Result<u32, String> {
    v.get(..4)
        .map(|b| u32::from_ne_bytes(b.try_into().expect("four bytes")))
        .ok_or_else(|| format!("attribute {kind} has {} bytes, not 4", v.len()))
}

fn u16_of(kind: u16, v: &[u8]) -> Result<u16, String> {
    v.get(..2)
        .map(|b| u16::from_ne_bytes(b.try_into().expect("two bytes")))
        .ok_or_else(|| format!("attribute {kind} has {} bytes, not 2", v.len()))
}

fn u64_at(v: &[u8], i: usize) -> u64 {
    u64::from_ne_bytes(v[i * 8..i * 8 + 8].try_into().expect("eight bytes"))
}

/// A NUL-terminated string attribute (the NUL may be missing).
fn string_of(v: &[u8]) -> String {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

fn operstate(v: u8) -> String {
    match v {
        0 => "unknown".into(),
        1 => "notpresent".into(),
        2 => "down".into(),
        3 => "lowerlayerdown".into(),
        4 => "testing".into(),
        5 => "dormant".into(),
        6 => "up".into(),
        other => format!("state-{other}"),
    }
}

/// A policy value (NETKIT_PASS is TC_ACT_OK, NETKIT_DROP TC_ACT_SHOT).
fn policy(v: u32) -> Option<Policy> {
    match v {
        0 => Some(Policy::Pass),
        2 => Some(Policy::Drop),
        _ => None,
    }
}

/// IFLA_INFO_DATA of a netkit device.
fn netkit(data: &[u8]) -> Result<NetkitAttrs, String> {
    let mut n = NetkitAttrs::default();
    let s = &mut n.settings;
    for attr in attrs(data) {
        let (kind, v) = attr?;
        let scrub = || u32_of(kind, v).map(|x| Some(if x == 0 { Scrub::None } else { Scrub::Default }));
        match kind {
            IFLA_NETKIT_PRIMARY => n.primary = *v.first().ok_or("netkit's primary flag is empty")? != 0,
            IFLA_NETKIT_MODE => {
                s.mode = match u32_of(kind, v)? {
                    0 => Some(Mode::L2),
                    1 => Some(Mode::L3),
                    _ => None,
                }
            }
            IFLA_NETKIT_POLICY => s.policy = policy(u32_of(kind, v)?),
            IFLA_NETKIT_PEER_POLICY => s.peer_policy = policy(u32_of(kind, v)?),
            IFLA_NETKIT_SCRUB => s.scrub = scrub()?,
            IFLA_NETKIT_PEER_SCRUB => s.peer_scrub = scrub()?,
            IFLA_NETKIT_HEADROOM => s.headroom = Some(u16_of(kind, v)?),
            IFLA_NETKIT_TAILROOM => s.tailroom = Some(u16_of(kind, v)?),
            IFLA_NETKIT_PAIRING if v.len() == 4 => s.pairing = Pairing::from_nl(u32_of(kind, v)?),
            _ => {}
        }
    }
    Ok(n)
}

/// One RTM_NEWLINK message (after its netlink header): struct ifinfomsg,
/// then the attributes.
pub(crate) fn parse_link(msg: &[u8]) -> Result<Link, String> {
    if msg.len() < IFINFOMSG_LEN {
        return Err(format!("a link message of {} bytes, shorter than its header", msg.len()));
    }
    let word = |at: usize| u32::from_ne_bytes(msg[at..at + 4].try_into().expect("four bytes"));
    let mut link = Link {
        index: word(4),
        operstate: "unknown".into(),
        up: word(8) & libc::IFF_UP as u32 != 0,
        ..Default::default()
    };
    let (mut kind, mut data) = (None, None);
    for attr in attrs(&msg[IFINFOMSG_LEN..]) {
        let (k, v) = attr?;
        match k {
            IFLA_IFNAME => link.name = string_of(v),
            IFLA_MTU => link.mtu = Some(u32_of(k, v)?),
            IFLA_OPERSTATE => link.operstate = operstate(*v.first().ok_or("the operstate is empty")?),
            IFLA_ADDRESS => link.address = Some(v.to_vec()),
            IFLA_LINK => link.link = Some(u32_of(k, v)?),
            IFLA_LINK_NETNSID => link.link_netnsid = Some(u32_of(k, v)? as i32),
            IFLA_GSO_MAX_SIZE => link.offload.gso_max_size = Some(u32_of(k, v)?),
            IFLA_GSO_IPV4_MAX_SIZE => link.offload.gso_ipv4_max_size = Some(u32_of(k, v)?),
            IFLA_GRO_MAX_SIZE => link.offload.gro_max_size = Some(u32_of(k, v)?),
            IFLA_GRO_IPV4_MAX_SIZE => link.offload.gro_ipv4_max_size = Some(u32_of(k, v)?),
            IFLA_GSO_MAX_SEGS => link.offload.gso_max_segs = Some(u32_of(k, v)?),
            IFLA_NUM_RX_QUEUES => link.queues.num_rx_queues = Some(u32_of(k, v)?),
            IFLA_NUM_TX_QUEUES => link.queues.num_tx_queues = Some(u32_of(k, v)?),
            IFLA_PARENT_DEV_NAME => link.parent = Some(string_of(v)),
            IFLA_STATS64 => {
                // struct rtnl_link_stats64 begins rx/tx packets, rx/tx bytes,
                // rx/tx errors, rx/tx dropped. It grows at its end; what an
                // older kernel does not send reads as zero.
                let mut head = [0u8; 64];
                let have = v.len().min(64);
                head[..have].copy_from_slice(&v[..have]);
                link.counters = Counters {
                    rx_packets: u64_at(&head, 0),
                    tx_packets: u64_at(&head, 1),
                    rx_bytes: u64_at(&head, 2),
                    tx_bytes: u64_at(&head, 3),
                    rx_dropped: u64_at(&head, 6),
                    tx_dropped: u64_at(&head, 7),
                };
            }
            IFLA_LINKINFO => {
                for info in attrs(v) {
                    match info? {
                        (IFLA_INFO_KIND, k) => kind = Some(string_of(k)),
                        (IFLA_INFO_DATA, d) => data = Some(d),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if kind.as_deref() == Some("netkit") {
        link.netkit = Some(match data {
            Some(d) => netkit(d)?,
            None => NetkitAttrs::default(),
        });
    }
    link.kind = kind;
    Ok(link)
}

/// What a reply said.
pub(crate) enum Reply {
    /// More messages follow.
    More,
    /// The reply is complete; `interrupted` when the kernel marked a dump
    /// part as inconsistent.
    Done { interrupted: bool },
}

/// A plain rtnetlink socket for link reads, in the namespace it was opened in.
pub(crate) struct LinkSocket {
    fd: Mutex<(OwnedFd, u32)>,
}

impl LinkSocket {
    /// A socket in the calling thread's namespace.
    pub(crate) fn open() -> io::Result<Self> {
        // SAFETY: socket(2) with constant arguments; the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nothing else owns.
        Ok(Self { fd: Mutex::new((unsafe { OwnedFd::from_raw_fd(fd) }, 0)) })
    }

    /// The links `which` names; an unknown name or index is the kernel's
    /// ENODEV.
    pub(crate) fn get(&self, which: Which<'_>, op: &dyn Fn() -> String) -> Result<Vec<Link>, NetlinkError> {
        let mut guard = self.fd.lock().unwrap_or_else(|e| e.into_inner());
        let (fd, seq) = &mut *guard;
        let mut buf_len = RECV_BUF;
        let mut interrupted = 0;
        loop {
            *seq = seq.wrapping_add(1);
            let mut buf = vec![0u8; buf_len];
            match read(fd, *seq, which, &mut buf) {
                Ok((_, true)) if interrupted + 1 < DUMP_TRIES => interrupted += 1,
                Ok((links, _)) => return Ok(links),
                Err(Fail::Truncated(need)) => buf_len = need,
                Err(Fail::Errno(errno)) => return Err(NetlinkError::Kernel { op: op(), errno }),
                Err(Fail::Malformed(detail)) => {
                    return Err(NetlinkError::Other { op: op(), detail: format!("a malformed reply: {detail}") });
                }
            }
        }
    }
}

pub(crate) enum Fail {
    /// A datagram did not fit: it needs this many bytes.
    Truncated(usize),
    Errno(i32),
    Malformed(String),
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Self::Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// Sends the request and reads the whole reply: the links, and whether a
/// dump part was marked interrupted.
fn read(fd: &OwnedFd, seq: u32, which: Which<'_>, buf: &mut [u8]) -> Result<(Vec<Link>, bool), Fail> {
    send(fd, seq, which)?;
    let dump = matches!(which, Which::All);
    let mut links = Vec::new();
    let mut interrupted = false;
    loop {
        // SAFETY: recv(2) into a buffer of the given length.
        let n = unsafe {
            libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC | libc::MSG_DONTWAIT)
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if e.kind() == io::ErrorKind::WouldBlock {
                return Err(Fail::Malformed("the kernel's reply ended early".into()));
            }
            return Err(e.into());
        }
        let n = n as usize;
        if n > buf.len() {
            // The datagram was cut and is gone: ask again with room for it.
            drain(fd, buf);
            return Err(Fail::Truncated(n.next_multiple_of(4096)));
        }
        match messages(&buf[..n], seq, dump, &mut links, &mut interrupted)? {
            Reply::More => {}
            Reply::Done { interrupted } => return Ok((links, interrupted)),
        }
    }
}

/// Reads whatever is left of an abandoned reply.
fn drain(fd: &OwnedFd, buf: &mut [u8]) {
    // SAFETY: recv(2) into a buffer of the given length.
    while unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) } > 0 {}
}

/// The netlink messages of one datagram: the links of request `seq` are
/// added to `links`.
pub(crate) fn messages(
    mut data: &[u8],
    seq: u32,
    dump: bool,
    links: &mut Vec<Link>,
    interrupted: &mut bool,
) -> Result<Reply, Fail> {
    while data.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(data[0..4].try_into().expect("four bytes")) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        let flags = u16::from_ne_bytes([data[6], data[7]]);
        let msg_seq = u32::from_ne_bytes(data[8..12].try_into().expect("four bytes"));
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(Fail::Malformed(format!("a message says it is {len} bytes long, with {} left", data.len())));
        }
        let payload = &data[NLMSG_HDRLEN..len];
        data = data.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        if msg_seq != seq {
            // A late part of an abandoned request.
            continue;
        }
        *interrupted |= flags & NLM_F_DUMP_INTR != 0;
        match kind {
            NLMSG_ERROR | NLMSG_DONE => {
                let code = payload.get(..4).map(|b| i32::from_ne_bytes(b.try_into().expect("four bytes")));
                return match code {
                    Some(c) if c < 0 => Err(c
                        .checked_neg()
                        .map_or_else(|| Fail::Malformed(format!("an error code of {c}")), Fail::Errno)),
                    _ => Ok(Reply::Done { interrupted: *interrupted }),
                };
            }
            RTM_NEWLINK => {
                links.push(parse_link(payload).map_err(Fail::Malformed)?);
                if !dump {
                    return Ok(Reply::Done { interrupted: false });
                }
            }
            _ => {}
        }
    }
    Ok(Reply::More)
}

fn send(fd: &OwnedFd, seq: u32, which: Which<'_>) -> Result<(), Fail> {
    let mut req = Vec::with_capacity(64);
    let flags = match which {
        Which::All => NLM_F_REQUEST | NLM_F_DUMP,
        _ => NLM_F_REQUEST,
    };
    req.extend_from_slice(&0u32.to_ne_bytes()); // length, set below
    req.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
    req.extend_from_slice(&flags.to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    // struct ifinfomsg: family, pad, type, index, flags, change.
    let index = if let Which::Index(i) = which { i } else { 0 };
    req.extend_from_slice(&[0u8; 4]);
    req.extend_from_slice(&index.to_ne_bytes());
    req.extend_from_slice(&[0u8; 8]);
    if let Which::Name(name) = which {
        let len = 4 + name.len() + 1;
        req.extend_from_slice(&(len as u16).to_ne_bytes());
        req.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        req.extend_from_slice(name.as_bytes());
        req.push(0);
        req.resize(req.len().next_multiple_of(4), 0);
    }
    let total = req.len() as u32;
    req[0..4].copy_from_slice(&total.to_ne_bytes());
    // SAFETY: an all-zero sockaddr_nl is valid; the kernel is port 0.
    let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    to.nl_family = libc::AF_NETLINK as u16;
    loop {
        // SAFETY: sendto(2) of a buffer and address of the given lengths.
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&raw const to).cast(),
                size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::Emitable as _;
    use netlink_packet_route::link::{
        InfoData, InfoKind, InfoNetkit, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, NetkitMode, NetkitPolicy,
        NetkitScrub, State, Stats64,
    };

    use super::*;
    use crate::netlink::attrs::{Offload, Queues};

    fn bytes(msg: &LinkMessage) -> Vec<u8> {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        buf
    }

    fn message(attributes: Vec<LinkAttribute>) -> LinkMessage {
        let mut msg = LinkMessage::default();
        msg.header.index = 7;
        msg.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        msg.attributes = attributes;
        msg
    }

    #[test]
    fn a_netkit_primary_is_read_whole() {
        let mut stats = Stats64::default();
        (stats.rx_packets, stats.tx_packets, stats.rx_bytes, stats.tx_bytes) = (1, 2, 3, 4);
        (stats.rx_errors, stats.tx_errors, stats.rx_dropped, stats.tx_dropped) = (5, 6, 7, 8);
        let msg = message(vec![
            LinkAttribute::IfName("nk0".into()),
            LinkAttribute::Mtu(1500),
            LinkAttribute::OperState(State::Up),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
            LinkAttribute::Link(8),
            LinkAttribute::LinkNetNsId(3),
            LinkAttribute::GsoMaxSize(65536),
            LinkAttribute::GsoIpv4MaxSize(65000),
            LinkAttribute::GroMaxSize(60000),
            LinkAttribute::GroIpv4MaxSize(50000),
            LinkAttribute::GsoMaxSegs(100),
            LinkAttribute::NumRxQueues(2),
            LinkAttribute::NumTxQueues(3),
            LinkAttribute::Stats64(stats),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Netkit),
                LinkInfo::Data(InfoData::Netkit(vec![
                    InfoNetkit::Primary(true),
                    InfoNetkit::Mode(NetkitMode::L2),
                    InfoNetkit::Policy(NetkitPolicy::Drop),
                    InfoNetkit::PeerPolicy(NetkitPolicy::Pass),
                    InfoNetkit::Scrub(NetkitScrub::None),
                    InfoNetkit::PeerScrub(NetkitScrub::Default),
                    InfoNetkit::Headroom(64),
                    InfoNetkit::Tailroom(32),
                    Pairing::Single.to_nl(),
                ])),
            ]),
        ]);
        let link = parse_link(&bytes(&msg)).unwrap();
        assert_eq!((link.index, link.name.as_str(), link.mtu, link.up), (7, "nk0", Some(1500), true));
        assert_eq!((link.operstate.as_str(), link.mac().as_deref()), ("up", Some("02:00:00:00:00:01")));
        assert_eq!((link.link, link.link_netnsid, link.kind.as_deref()), (Some(8), Some(3), Some("netkit")));
        let offload = Offload {
            gso_max_size: Some(65536),
            gso_ipv4_max_size: Some(65000),
            gro_max_size: Some(60000),
            gro_ipv4_max_size: Some(50000),
            gso_max_segs: Some(100),
        };
        assert_eq!(link.offload, offload);
        assert_eq!(link.queues, Queues { num_rx_queues: Some(2), num_tx_queues: Some(3) });
        let counters =
            Counters { rx_packets: 1, tx_packets: 2, rx_bytes: 3, tx_bytes: 4, rx_dropped: 7, tx_dropped: 8 };
        assert_eq!(link.counters, counters);
        let nk = link.netkit.unwrap();
        assert!(nk.primary);
        let s = nk.settings;
        assert_eq!((s.mode, s.policy, s.peer_policy), (Some(Mode::L2), Some(Policy::Drop), Some(Policy::Pass)));
        assert_eq!((s.scrub, s.peer_scrub), (Some(Scrub::None), Some(Scrub::Default)));
        assert_eq!((s.headroom, s.tailroom, s.pairing), (Some(64), Some(32), Some(Pairing::Single)));
    }

    #[test]
    fn other_kinds_and_missing_attributes() {
        let veth = message(vec![
            LinkAttribute::IfName("v0".into()),
            LinkAttribute::OperState(State::LowerLayerDown),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
            LinkAttribute::ParentDevName("0000:00:03.0".into()),
        ]);
        let link = parse_link(&bytes(&veth)).unwrap();
        assert_eq!((link.kind.as_deref(), link.operstate.as_str()), (Some("veth"), "lowerlayerdown"));
        assert_eq!((link.netkit.is_none(), link.parent.as_deref()), (true, Some("0000:00:03.0")));
        // A netkit device whose dump has no IFLA_INFO_DATA: a peer, no settings.
        let bare = message(vec![LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Netkit)])]);
        let link = parse_link(&bytes(&bare)).unwrap();
        assert_eq!(link.netkit, Some(NetkitAttrs::default()));
        assert_eq!((link.operstate.as_str(), link.mtu, link.address), ("unknown", None, None));
        let odd = message(vec![LinkAttribute::OperState(State::Other(9))]);
        assert_eq!(parse_link(&bytes(&odd)).unwrap().operstate, "state-9");
    }

    #[test]
    fn malformed_messages_are_refused_not_misread() {
        let msg = bytes(&message(vec![LinkAttribute::IfName("nk0".into()), LinkAttribute::Mtu(1500)]));
        assert!(parse_link(&msg[..10]).unwrap_err().contains("shorter than its header"));
        // The MTU attribute cut short: its header claims more than is there.
        let err = parse_link(&msg[..msg.len() - 2]).unwrap_err();
        assert!(err.contains("attribute 4 says it is 8 bytes long"), "{err}");
        // An MTU of two bytes.
        let mut short = msg.clone();
        let at = short.len() - 8;
        short[at..at + 2].copy_from_slice(&6u16.to_ne_bytes());
        let err = parse_link(&short).unwrap_err();
        assert!(err.contains("attribute 4 has 2 bytes, not 4"), "{err}");
    }

    #[test]
    fn a_reply_ends_at_done_or_error_and_skips_other_requests() {
        let link = bytes(&message(vec![LinkAttribute::IfName("nk0".into())]));
        let frame = |kind: u16, flags: u16, seq: u32, payload: &[u8]| {
            let mut m = Vec::new();
            m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
            m.extend_from_slice(&kind.to_ne_bytes());
            m.extend_from_slice(&flags.to_ne_bytes());
            m.extend_from_slice(&seq.to_ne_bytes());
            m.extend_from_slice(&0u32.to_ne_bytes());
            m.extend_from_slice(payload);
            m.resize(m.len().next_multiple_of(4), 0);
            m
        };
        let mut data = frame(RTM_NEWLINK, 2, 4, &link); // an old request's part
        data.extend(frame(RTM_NEWLINK, 2 | NLM_F_DUMP_INTR, 5, &link));
        let (mut links, mut intr) = (Vec::new(), false);
        assert!(matches!(messages(&data, 5, true, &mut links, &mut intr), Ok(Reply::More)));
        assert_eq!((links.len(), intr), (1, true));
        let done = frame(NLMSG_DONE, 2, 5, &0i32.to_ne_bytes());
        assert!(matches!(messages(&done, 5, true, &mut links, &mut intr), Ok(Reply::Done { interrupted: true })));
        let enodev = frame(NLMSG_ERROR, 0, 6, &(-libc::ENODEV).to_ne_bytes());
        assert!(matches!(messages(&enodev, 6, false, &mut links, &mut intr), Err(Fail::Errno(libc::ENODEV))));
        let odd = frame(NLMSG_ERROR, 0, 6, &i32::MIN.to_ne_bytes());
        assert!(matches!(messages(&odd, 6, false, &mut links, &mut intr), Err(Fail::Malformed(_))));
        let cut = &frame(RTM_NEWLINK, 0, 6, &link)[..20];
        assert!(matches!(messages(cut, 6, false, &mut links, &mut intr), Err(Fail::Malformed(_))));
    }
}
