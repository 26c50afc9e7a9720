//! The hook operations behind `attach`, `detach`, `update`, `query`, `link`
//! and `run`, on top of `mprog`, `netlink`, `pins` and `programs`: everything
//! is checked before the first kernel call, positions are resolved against a
//! fresh revision and retried on ESTALE (`retry`), kernel errors are
//! explained in the hook's terms (`explain` here), a link is touched only
//! when it is on the hook and ours (`guard`), and a failed call leaves the
//! chain as it was. `read` is the query side, `inventory` the pinned links.

mod attach;
mod detach;
mod guard;
mod inventory;
pub mod link;
mod read;
pub mod refs;
mod retry;
mod system;
mod update;

pub use attach::AttachRequest;

pub use attach::{Attachment, PlainRef};
pub use detach::{DetachRequest, DetachTarget};
pub use inventory::LinkState;
pub use inventory::LinkView;
pub use read::HookView;
use retry::{OnChain, anchor_for, anchor_index, anchor_present, position_text, slot_at, with_revision};
pub use system::{PruneAll, SystemLinkView};
pub use update::UpdateRequest;

use std::{collections::HashMap, os::fd::AsFd as _, path::PathBuf};

use serde::Serialize;

use self::refs::{RefError, RefSpec, Resolved, Scope};
use crate::{
    bpf,
    mprog::{
        Anchor, Chain, Hook, HookRef, MprogError, Slot,
        error::{Context, Op, PrimaryHint, Refusal, explain},
    },
    netlink::{
        Netlink, NetlinkError,
        device::{DeviceError, DeviceView, HookCounts, PrimaryAt},
        links::Role,
    },
    os::netns,
    pins::{self, Layout, PinError, owners},
    programs::{self, LoadOptions, Loaded, ProgSpec, ProgramError},
};

/// Why a hook operation (attach, detach, update, query, reading a program's maps or log) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// The request itself is wrong (the message says what to change).
    #[error("{0}")]
    Invalid(String),
    /// The program could not be found, checked or loaded.
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// A REF names nothing usable.
    #[error(transparent)]
    Ref(#[from] RefError),
    /// A pin could not be made, found or removed.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The device is missing or is not what the hook needs.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// A refusal on the hook, explained: the kernel's, or this tool's from
    /// what it saw on the chain before asking.
    #[error("{message}")]
    Kernel {
        /// The explained message.
        message: String,
        /// The errno the kernel returned; none when the kernel was not asked.
        errno: Option<i32>,
    },
    /// Refused by this tool before asking the kernel (the ownership guard, a link on another hook).
    #[error("{0}")]
    Refused(String),
    /// Pinning a new link failed; the link was released, nothing stays
    /// attached.
    #[error("pinning the link failed, so it was released again and nothing stays attached")]
    PinFailed(#[source] PinError),
    /// An operation on a link (its pin, its fd) failed.
    #[error(transparent)]
    Link(#[from] link::LinkError),
    /// A bpf(2) call that has no refusal to explain failed (reading a new
    /// link's info).
    #[error(transparent)]
    Syscall(#[from] bpf::SyscallError),
    /// Writing the command's output failed (a closed pipe is the reader's
    /// choice, and the binary treats it so).
    #[error("writing the output")]
    Output(#[source] std::io::Error),
    /// Reading a program's aya-log ring buffer failed.
    #[error("reading the log of program {prog_id}")]
    Log {
        /// The program whose log was being read.
        prog_id: u32,
        /// What reading answered.
        #[source]
        source: std::io::Error,
    },
    /// The program has no aya-log buffer to follow.
    #[error(
        "program {prog_id} has no aya-log buffer: only programs built with aya-log (such as the bundled log) can be followed"
    )]
    NoLogBuffer {
        /// The program asked for.
        prog_id: u32,
        /// What aya-log answered.
        #[source]
        source: aya_log::Error,
    },
}

/// Counts the programs on a pair's netkit hooks into `view`, querying
/// through the primary in the primary's namespace (the only way the kernel
/// answers for either hook); unknown counts stay None.
pub fn count_programs(view: &mut DeviceView) {
    let counts = |ifindex| HookCounts {
        primary: crate::mprog::count(ifindex, Hook::Primary).ok(),
        peer: crate::mprog::count(ifindex, Hook::Peer).ok(),
    };
    view.programs = match &view.primary_at {
        None => None,
        Some(PrimaryAt::Here(ifindex)) => Some(counts(*ifindex)),
        Some(PrimaryAt::There { ifindex, netns: ns }) => match ns.open().and_then(|fd| netns::Visit::fd(&fd)) {
            Ok(_visit) => Some(counts(*ifindex)),
            Err(_) => Some(HookCounts::default()),
        },
        Some(PrimaryAt::Unreachable) => Some(HookCounts::default()),
    };
}

/// Where in a chain to attach, as the user said it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Position {
    /// In front of every program.
    First,
    /// Behind every program (the default).
    #[default]
    Last,
    /// Right in front of the program or link REF names.
    Before(RefSpec),
    /// Right behind the program or link REF names.
    After(RefSpec),
}

/// A device in the current namespace.
#[derive(Debug, Clone)]
pub struct Device {
    /// The device's name.
    pub name: String,
    /// The device's ifindex in the current namespace.
    pub ifindex: u32,
    /// The namespace's name in the pin layout.
    pub(crate) netns: String,
    /// A veth device: `primary` and `peer` name its tcx hooks.
    pub(crate) veth: bool,
}

impl Device {
    /// `link`, in the namespace the layout names `netns`.
    pub(crate) fn of(link: &crate::netlink::links::Link, netns: String) -> Self {
        Self { name: link.name.clone(), ifindex: link.index, netns, veth: link.is_veth() }
    }

    /// The hook the kernel has for `hook` on this device (see [`Hook::on_veth`]).
    pub fn hook(&self, hook: Hook) -> Hook {
        if self.veth { hook.on_veth() } else { hook }
    }
}

/// The context every hook operation works in.
pub struct Hooks<'a> {
    /// The rtnetlink connection of the current namespace.
    pub nl: &'a Netlink,
    /// The bpffs the links are pinned under (`netkit/` below it).
    pub bpffs: PathBuf,
}

/// What an attach, update or detach left behind.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The device's name.
    pub ifname: String,
    pub(crate) ifindex: u32,
    /// The hook.
    pub hook: Hook,
    /// The program attached, updated to or detached.
    pub prog_id: Option<u32>,
    /// That program's name.
    pub prog_name: Option<String>,
    /// The link involved, if any (none for plain attachments).
    pub link_id: Option<u32>,
    /// The pin's name, if a link was pinned or unpinned.
    pub pin: Option<String>,
    /// The hook's revision after the operation.
    pub revision: u64,
    /// 1-based position of the program in the chain (None once detached).
    pub position: Option<usize>,
    /// What happened, in words.
    pub action: String,
}

pub(super) fn prog_label(id: u32) -> String {
    match bpf::prog_info_by_id(id) {
        Some(info) => format!("program {id} ({})", info.name()),
        None => format!("program {id}"),
    }
}

pub(super) fn prog_name(id: u32) -> String {
    bpf::prog_info_by_id(id).map(|i| i.name()).unwrap_or_default()
}

impl Hooks<'_> {
    /// The device named `name` in the current namespace.
    pub async fn device(&self, name: &str) -> Result<Device, AttachError> {
        Ok(self.device_and_link(name).await?.0)
    }

    /// [`Self::device`], with what rtnetlink said of it.
    pub(crate) async fn device_and_link(
        &self,
        name: &str,
    ) -> Result<(Device, crate::netlink::links::Link), AttachError> {
        crate::netlink::ifname::check(name).map_err(AttachError::Invalid)?;
        let link = self
            .nl
            .link_by_name(name)?
            .ok_or_else(|| DeviceError::NotFound { name: name.into(), netns: netns::current_name() })?;
        Ok((Device::of(&link, netns::current_name()), link))
    }

    pub(super) fn layout(&self) -> Result<Layout, AttachError> {
        Ok(Layout::new(&self.bpffs)?)
    }

    /// Turns a kernel refusal into an explained error: queries the chain as it
    /// is now and, for netkit hooks on a peer, finds the primary.
    pub(super) async fn explain(&self, err: MprogError, dev: &Device, hook: Hook, mut ctx: Context) -> AttachError {
        ctx.device = dev.name.clone();
        ctx.hook = Some(hook);
        if ctx.now.is_none() {
            ctx.now = HookRef::new(dev.ifindex, hook).query().ok();
        }
        if err.is(libc::EACCES) && hook.is_netkit() {
            ctx.primary = match self.nl.link_by_name(&dev.name) {
                Ok(Some(l)) if l.role() == Some(Role::Peer) => self.nl.primary_of(&l).await.map(|p| PrimaryHint {
                    described: p.describe(),
                    command: p.command(err.op.subcommand(), &format!("{hook} ...")),
                }),
                _ => None,
            };
        }
        if err.is(libc::EINVAL)
            && hook.is_netkit()
            && !crate::os::probe::probe(crate::os::probe::Feature::Netkit).is_supported()
        {
            return AttachError::Kernel {
                message: format!(
                    "this kernel has no netkit hooks (needs {})",
                    crate::os::probe::Feature::Netkit.requirement()
                ),
                errno: err.errno(),
            };
        }
        AttachError::Kernel { message: explain(&err, &ctx), errno: err.errno() }
    }

    pub(super) fn outcome(
        dev: &Device,
        hook: Hook,
        prog_id: Option<u32>,
        link_id: Option<u32>,
        pin: Option<String>,
        action: String,
    ) -> Outcome {
        let chain = HookRef::new(dev.ifindex, hook).query().unwrap_or_default();
        let position = prog_id.and_then(|id| chain.slots.iter().position(|s| s.prog_id == id).map(|i| i + 1));
        Outcome {
            ifname: dev.name.clone(),
            ifindex: dev.ifindex,
            hook,
            prog_id,
            prog_name: prog_id.map(prog_name),
            link_id,
            pin,
            revision: chain.revision,
            position,
            action,
        }
    }
}
