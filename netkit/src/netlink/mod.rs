//! Device operations over rtnetlink: one connection type, link dumps decoded
//! into plain structs (`links`), netkit pair management (`device`) and the
//! interface-name rules the kernel enforces (`ifname`).

pub mod addr;
pub mod attrs;
pub mod device;
pub mod ifname;
pub mod leases;
pub mod links;
pub(crate) mod read;

use std::{io, os::fd::OwnedFd, sync::Arc};

use crate::os::{errno::errno_text, netns};

/// Why an rtnetlink request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetlinkError {
    /// No netlink socket could be opened.
    #[error("cannot open a netlink socket: {0}")]
    Socket(io::Error),
    /// [`Netlink::connect`] was called outside a Tokio runtime.
    #[error(
        "a netlink connection is driven by a Tokio runtime: connect inside one (Runtime::block_on, #[tokio::main])"
    )]
    NoRuntime,
    /// A namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    /// The kernel refused.
    #[error("{op} failed: {}", errno_text(*errno))]
    Kernel {
        /// The operation, for messages.
        op: String,
        /// The errno the kernel returned.
        errno: i32,
    },
    /// The request failed otherwise.
    /// The kernel's reply could not be read (it is cut or malformed).
    #[error("{op} failed: a malformed reply: {detail}")]
    Malformed {
        /// The operation, for messages.
        op: String,
        /// What the decoder found wrong.
        detail: String,
    },
    /// The request cannot be made as asked (the message says why).
    #[error("{op}: {why}")]
    Invalid {
        /// The operation, for messages.
        op: String,
        /// What is wrong with it.
        why: String,
    },
    /// The kernel acknowledged a request where it should have answered.
    #[error("{op} failed: an ACK where an error was expected")]
    UnexpectedAck {
        /// The operation, for messages.
        op: String,
    },
    /// The rtnetlink connection failed (closed, or its messages unreadable).
    #[error("{op} failed on the rtnetlink connection")]
    Connection {
        /// The operation, for messages.
        op: String,
        /// What rtnetlink answered.
        #[source]
        cause: rtnetlink::Error,
    },
}

impl NetlinkError {
    pub(crate) fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    pub(crate) fn from_rtnetlink(op: impl Into<String>, e: rtnetlink::Error) -> Self {
        match e {
            rtnetlink::Error::NetlinkError(msg) => match msg.code {
                Some(code) => Self::Kernel { op: op.into(), errno: -code.get() },
                None => Self::UnexpectedAck { op: op.into() },
            },
            cause => Self::Connection { op: op.into(), cause },
        }
    }
}

/// A route netlink connection bound to one network namespace (the one the
/// calling thread was in when it was opened). Opened inside a Tokio runtime
/// (either flavour, with I/O enabled): the connection's task is spawned on
/// it, and its requests are answered while that runtime runs. Outside one,
/// [`Netlink::connect`] fails with [`NetlinkError::NoRuntime`].
#[derive(Clone)]
pub struct Netlink {
    pub(crate) handle: rtnetlink::Handle,
    /// Link reads, on a socket of their own in the same namespace.
    links: Arc<read::LinkSocket>,
    /// Other namespaces by the nsids this one gives them, as far as known.
    nsids: Arc<std::sync::Mutex<device::Nsids>>,
}

impl Netlink {
    /// A connection in the calling thread's namespace.
    pub fn connect() -> Result<Self, NetlinkError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NetlinkError::NoRuntime)?;
        let links = Arc::new(read::LinkSocket::open().map_err(NetlinkError::Socket)?);
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        runtime.spawn(conn);
        Ok(Self { handle, links, nsids: Arc::default() })
    }

    /// A connection inside another namespace; the calling thread stays where it is.
    pub(crate) fn connect_in(ns: &OwnedFd) -> Result<Self, NetlinkError> {
        let _visit = netns::Visit::fd(ns).map_err(NetlinkError::Socket)?;
        Self::connect()
    }

    /// The rtnetlink handle, for requests this module does not wrap (the
    /// benchmarks' raw floor uses it).
    pub fn handle(&self) -> rtnetlink::Handle {
        self.handle.clone()
    }

    /// A connection inside the namespace `ns` refers to.
    pub fn connect_to(ns: &netns::NetnsRef) -> Result<Self, NetlinkError> {
        Self::connect_in(&ns.open()?)
    }
}
