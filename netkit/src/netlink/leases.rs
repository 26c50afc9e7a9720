//! Queue leasing (Linux 7.1): a netkit device takes a receive queue of a
//! physical device, through the `netdev` generic netlink family
//! (`queue-create` with a nested lease), and `queue-get` reports a device's
//! queues and their leases. genetlink resolves the family; the family's own
//! messages are encoded here, from the kernel's uapi `linux/netdev.h`.

use futures::StreamExt as _;
use genetlink::{GenetlinkError, GenetlinkHandle};
use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLA_F_NESTED, NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, Nla, NlaBuffer, NlasIterator, ParseableParametrized,
};
use netlink_packet_generic::{
    GenlFamily, GenlHeader, GenlMessage,
    ctrl::{
        GenlCtrl, GenlCtrlCmd,
        nlas::{GenlCtrlAttrs, OpAttrs},
    },
};
use serde::Serialize;

use super::links::Link;
use crate::os::{errno::errno_name, probe::Support};

// linux/netdev.h (NETDEV_FAMILY_VERSION 1).
const CMD_QUEUE_GET: u8 = 10;
const CMD_QUEUE_CREATE: u8 = 16;
const A_QUEUE_ID: u16 = 1;
const A_QUEUE_IFINDEX: u16 = 2;
const A_QUEUE_TYPE: u16 = 3;
const A_QUEUE_NAPI_ID: u16 = 4;
const A_QUEUE_LEASE: u16 = 8;
const A_LEASE_IFINDEX: u16 = 1;
const A_LEASE_QUEUE: u16 = 2;
const A_LEASE_NETNS_ID: u16 = 3;
const QUEUE_TYPE_RX: u32 = 0;
const QUEUE_TYPE_TX: u32 = 1;

/// Why a queue could not be leased or listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// Called outside a Tokio runtime (see the crate docs: concurrency).
    #[error(transparent)]
    NoRuntime(#[from] super::NetlinkError),
    /// The kernel has no queue leasing.
    #[error("this kernel has no queue leasing (the netdev family's queue-create came with Linux 7.1)")]
    Unsupported,
    /// The kernel refused the request.
    #[error("{op} failed: {} ({})", std::io::Error::from_raw_os_error(*errno), errno_name(*errno))]
    Kernel {
        /// The request, for messages.
        op: String,
        /// The errno the kernel returned.
        errno: i32,
    },
    /// The kernel reports queues only of devices that are up.
    #[error("the device is down: the kernel reports the queues of devices that are up")]
    Down,
    /// The kernel refused a lease, explained.
    #[error("{why} ({}); nothing was leased", errno_name(*errno))]
    Refused {
        /// Why, in words.
        why: String,
        /// The errno the kernel returned.
        errno: i32,
    },
    /// Talking to the netdev family failed otherwise.
    #[error("{op}")]
    Netlink {
        /// The request, for messages.
        op: String,
        /// What genetlink answered.
        #[source]
        cause: GenetlinkError,
    },
}

/// A queue of a device, as `queue-get` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueView {
    /// The queue's id on its device.
    pub id: u32,
    /// `rx` or `tx`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The NAPI instance serving it, if any.
    pub napi_id: Option<u32>,
    /// The physical queue it is leased from (or to), if any.
    pub lease: Option<LeaseView>,
}

/// The other side of a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseView {
    /// The device's ifindex (in the namespace `netns_id` names, else here).
    pub ifindex: u32,
    /// Its queue id.
    pub queue: u32,
    /// The peer namespace id of that device's namespace, when it is not this one.
    pub netns_id: Option<i32>,
}

/// One attribute of the netdev family: a u32, an i32 or a nest.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attr {
    U32(u16, u32),
    Nested(u16, Vec<Attr>),
    Other(DefaultNla),
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self {
            Self::U32(..) => 4,
            Self::Nested(_, inner) => inner.as_slice().buffer_len(),
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::U32(k, _) => *k,
            // Families with strict validation want nests flagged.
            Self::Nested(k, _) => *k | NLA_F_NESTED,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::U32(_, v) => buffer[..4].copy_from_slice(&v.to_ne_bytes()),
            Self::Nested(_, inner) => inner.as_slice().emit(buffer),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

fn parse_attrs(buf: &[u8]) -> Result<Vec<Attr>, DecodeError> {
    NlasIterator::new(buf)
        .map(|nla| {
            let nla: NlaBuffer<&[u8]> = nla?;
            let value = nla.value();
            Ok(if nla.nested_flag() {
                Attr::Nested(nla.kind(), parse_attrs(value)?)
            } else if value.len() == 4 {
                Attr::U32(nla.kind(), u32::from_ne_bytes(value.try_into().expect("four bytes")))
            } else {
                Attr::Other(DefaultNla::new(nla.kind(), value.to_vec()))
            })
        })
        .collect()
}

fn u32_of(attrs: &[Attr], kind: u16) -> Option<u32> {
    attrs.iter().find_map(|a| match a {
        Attr::U32(k, v) if *k == kind => Some(*v),
        _ => None,
    })
}

fn nest_of(attrs: &[Attr], kind: u16) -> Option<&[Attr]> {
    attrs.iter().find_map(|a| match a {
        Attr::Nested(k, inner) if *k == kind => Some(inner.as_slice()),
        _ => None,
    })
}

/// A message of the netdev family.
#[derive(Debug, Clone)]
struct Netdev {
    cmd: u8,
    attrs: Vec<Attr>,
}

impl GenlFamily for Netdev {
    fn family_name() -> &'static str {
        "netdev"
    }

    fn command(&self) -> u8 {
        self.cmd
    }

    fn version(&self) -> u8 {
        1
    }
}

impl Emitable for Netdev {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for Netdev {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(Self { cmd: header.cmd, attrs: parse_attrs(buf)? })
    }
}

fn connect(op: &str) -> Result<GenetlinkHandle, LeaseError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| super::NetlinkError::NoRuntime)?;
    let (conn, handle, _) = genetlink::new_connection()
        .map_err(|e| LeaseError::Netlink { op: op.into(), cause: GenetlinkError::NetlinkError(e) })?;
    runtime.spawn(conn);
    Ok(handle)
}

/// Sends `msg` and collects the replies; a kernel error becomes
/// [`LeaseError::Kernel`].
async fn request(op: &str, msg: Netdev, flags: u16) -> Result<Vec<Netdev>, LeaseError> {
    let mut handle = connect(op)?;
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let nl = NetlinkMessage::new(header, GenlMessage::from_payload(msg).into());
    let mut replies = match handle.request(nl).await {
        Ok(r) => r,
        Err(GenetlinkError::NetlinkError(e)) if e.raw_os_error() == Some(libc::ENOENT) => {
            // The controller knows no netdev family at all.
            return Err(LeaseError::Unsupported);
        }
        Err(cause) => return Err(LeaseError::Netlink { op: op.into(), cause }),
    };
    let mut out = Vec::new();
    while let Some(reply) = replies.next().await {
        let reply = reply.map_err(|e| LeaseError::Netlink { op: op.into(), cause: e.into() })?;
        match reply.payload {
            NetlinkPayload::InnerMessage(m) => out.push(m.payload),
            NetlinkPayload::Error(e) if e.code.is_some() => {
                let errno = e.code.map_or(libc::EIO, |c| -c.get());
                return Err(LeaseError::Kernel { op: op.into(), errno });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Drivers whose devices can lend receive queues (they implement the
/// kernel's queue management operations), for messages and the README.
pub const LENDING_DRIVERS: &str = "bnxt_en, gve, fbnic, mlx5 and netdevsim among them";

/// Turns a refusal of leasing queue `queue` of `from` to `dev` into words,
/// with what the kernel checks (netdev_can_create_queue,
/// netdev_can_lease_queue) read off the two devices.
pub fn explain(e: LeaseError, dev: &Link, from: &Link, queue: u32) -> LeaseError {
    let LeaseError::Kernel { errno, .. } = e else { return e };
    let (d, f) = (&dev.name, &from.name);
    let why = match errno {
        libc::EINVAL if from.parent.is_none() => format!(
            "{f} is a virtual device: only a physical device lends receive queues, and its driver must have queue management operations (drivers with them: {LENDING_DRIVERS})"
        ),
        libc::EINVAL if dev.parent.is_some() => {
            format!("{d} is a physical device: a queue is leased to a virtual one (a netkit peer or single device)")
        }
        libc::EINVAL if !dev.is_netkit() => format!("{d} cannot create queues: lease to a netkit device"),
        libc::EINVAL => format!(
            "the kernel refused to lease queue {queue} of {f} to {d} (does {f}'s driver have queue management operations? drivers with them: {LENDING_DRIVERS})"
        ),
        libc::ERANGE => format!("{f} has no receive queue {queue}"),
        libc::EBUSY => format!("receive queue {queue} of {f} is in use (leased already, AF_XDP or a memory provider)"),
        libc::EOPNOTSUPP => {
            format!("{d} already leases a queue from another device: all of a device's leases come from one device")
        }
        libc::EPERM => "leasing needs CAP_NET_ADMIN".into(),
        _ => return e,
    };
    LeaseError::Refused { why, errno }
}

/// Whether the running kernel's netdev family has `queue-create`.
pub async fn supported() -> Support {
    let op = "asking the generic netlink controller about the netdev family";
    let Ok(mut handle) = connect(op) else { return Support::Unknown("no generic netlink socket".into()) };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let msg = GenlCtrl { cmd: GenlCtrlCmd::GetFamily, nlas: vec![GenlCtrlAttrs::FamilyName("netdev".into())] };
    let nl = NetlinkMessage::new(header, GenlMessage::from_payload(msg).into());
    let Ok(mut replies) = handle.request(nl).await else { return Support::Unsupported };
    while let Some(Ok(reply)) = replies.next().await {
        if let NetlinkPayload::InnerMessage(m) = reply.payload {
            let has = m.payload.nlas.iter().any(|a| match a {
                GenlCtrlAttrs::Ops(ops) => {
                    ops.iter().flatten().any(|o| matches!(o, OpAttrs::Id(id) if *id == u32::from(CMD_QUEUE_CREATE)))
                }
                _ => false,
            });
            return if has { Support::Supported } else { Support::Unsupported };
        }
    }
    Support::Unsupported
}

/// Leases receive queue `queue` of the device with ifindex `from` (in the
/// namespace with peer id `netns_id`, else this one) to the device with
/// ifindex `ifindex` here; returns the new queue's id on that device.
pub async fn lease(ifindex: u32, from: u32, queue: u32, netns_id: Option<i32>) -> Result<u32, LeaseError> {
    if supported().await != Support::Supported {
        return Err(LeaseError::Unsupported);
    }
    let mut lease = vec![
        Attr::U32(A_LEASE_IFINDEX, from),
        Attr::Nested(A_LEASE_QUEUE, vec![Attr::U32(A_QUEUE_ID, queue), Attr::U32(A_QUEUE_TYPE, QUEUE_TYPE_RX)]),
    ];
    if let Some(id) = netns_id {
        lease.push(Attr::U32(A_LEASE_NETNS_ID, id as u32));
    }
    let msg = Netdev {
        cmd: CMD_QUEUE_CREATE,
        attrs: vec![
            Attr::U32(A_QUEUE_IFINDEX, ifindex),
            Attr::U32(A_QUEUE_TYPE, QUEUE_TYPE_RX),
            Attr::Nested(A_QUEUE_LEASE, lease),
        ],
    };
    let op = format!("leasing receive queue {queue} of ifindex {from} to ifindex {ifindex}");
    let replies = request(&op, msg, NLM_F_REQUEST | NLM_F_ACK).await?;
    replies
        .iter()
        .find_map(|m| u32_of(&m.attrs, A_QUEUE_ID))
        .ok_or_else(|| LeaseError::Netlink { op, cause: GenetlinkError::AttributeNotFound("queue id".into()) })
}

/// The queues of `dev` (a device here), with their leases.
///
/// One `queue-get` per queue: the family's dump replies carry no
/// NLM_F_MULTI, which netlink-proto takes for the end of the answer. Queue
/// ids run from 0 per type; the first id the kernel refuses ends a type.
pub async fn list(dev: &Link) -> Result<Vec<QueueView>, LeaseError> {
    if !dev.up {
        return Err(LeaseError::Down);
    }
    let ifindex = dev.index;
    let mut out = Vec::new();
    for (kind, name) in [(QUEUE_TYPE_RX, "rx"), (QUEUE_TYPE_TX, "tx")] {
        for id in 0..super::attrs::MAX_QUEUES {
            let msg = Netdev {
                cmd: CMD_QUEUE_GET,
                attrs: vec![
                    Attr::U32(A_QUEUE_IFINDEX, ifindex),
                    Attr::U32(A_QUEUE_TYPE, kind),
                    Attr::U32(A_QUEUE_ID, id),
                ],
            };
            let op = format!("reading {name} queue {id} of ifindex {ifindex}");
            let reply = match request(&op, msg, NLM_F_REQUEST).await {
                Ok(r) => r,
                Err(LeaseError::Kernel { .. }) => break,
                Err(e) => return Err(e),
            };
            let Some(m) = reply.first() else { break };
            let lease = nest_of(&m.attrs, A_QUEUE_LEASE).and_then(|l| {
                Some(LeaseView {
                    ifindex: u32_of(l, A_LEASE_IFINDEX)?,
                    queue: nest_of(l, A_LEASE_QUEUE).and_then(|q| u32_of(q, A_QUEUE_ID))?,
                    netns_id: u32_of(l, A_LEASE_NETNS_ID).map(|v| v as i32),
                })
            });
            out.push(QueueView { id, kind: name, napi_id: u32_of(&m.attrs, A_QUEUE_NAPI_ID), lease });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_request_encodes_nested_and_flagged_and_parses_back() {
        let msg = Netdev {
            cmd: CMD_QUEUE_CREATE,
            attrs: vec![
                Attr::U32(A_QUEUE_IFINDEX, 7),
                Attr::U32(A_QUEUE_TYPE, QUEUE_TYPE_RX),
                Attr::Nested(
                    A_QUEUE_LEASE,
                    vec![
                        Attr::U32(A_LEASE_IFINDEX, 2),
                        Attr::Nested(A_LEASE_QUEUE, vec![Attr::U32(A_QUEUE_ID, 3), Attr::U32(A_QUEUE_TYPE, 0)]),
                    ],
                ),
            ],
        };
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        // ifindex (8) + type (8) + lease header (4) + lease ifindex (8) + queue header (4) + id (8) + type (8)
        assert_eq!(buf.len(), 48);
        // The lease nest's kind carries NLA_F_NESTED, as strict families want.
        assert_eq!(u16::from_ne_bytes([buf[18], buf[19]]), A_QUEUE_LEASE | NLA_F_NESTED);
        let back = parse_attrs(&buf).unwrap();
        assert_eq!(back, msg.attrs);
    }
}
