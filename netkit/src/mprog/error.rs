//! mprog failures: the command and errno (`MprogError`), and `explain`, which
//! words them in the hook's terms for people (KERNEL-SEMANTICS: attach checks,
//! detach rules, link update and netkit targeting).

use super::{Chain, Hook, MAX_PROGRAMS};
use crate::{
    bpf::SyscallError,
    os::{caps::Capabilities, errno::errno_name},
};

/// The bpf() command that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    LinkCreate,
    ProgAttach,
    ProgDetach,
    Query,
    LinkUpdate,
    LinkDetach,
}

impl Op {
    /// The `netkit` subcommand that makes this call.
    pub(crate) fn subcommand(self) -> &'static str {
        match self {
            Self::LinkCreate | Self::ProgAttach => "attach",
            Self::ProgDetach | Self::LinkDetach => "detach",
            Self::Query => "query",
            Self::LinkUpdate => "update",
        }
    }

    pub(crate) fn call(self) -> &'static str {
        match self {
            Self::LinkCreate => "BPF_LINK_CREATE",
            Self::ProgAttach => "BPF_PROG_ATTACH",
            Self::ProgDetach => "BPF_PROG_DETACH",
            Self::Query => "BPF_PROG_QUERY",
            Self::LinkUpdate => "BPF_LINK_UPDATE",
            Self::LinkDetach => "BPF_LINK_DETACH",
        }
    }
}

/// What stopped an mprog command: the kernel's errno, or what this tool saw
/// on the chain before it asked (so the command was not made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The kernel returned this errno.
    Errno(i32),
    /// The anchor left the chain while the request was retried.
    AnchorGone,
    /// A detach by position found no program there.
    NothingThere,
    /// A plain detach by position found the program there owned by this link.
    OwnedBy(u32),
    /// The chain is no longer at the revision the request expects.
    Moved,
    /// A link was asked to replace a program (links never do; the kernel
    /// refuses BPF_F_REPLACE on link create).
    ReplaceOnLink,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Errno(e) => write!(f, "{} ({})", std::io::Error::from_raw_os_error(e), errno_name(e)),
            Self::AnchorGone => f.write_str("the anchor left the chain"),
            Self::NothingThere => f.write_str("no program at that position"),
            Self::OwnedBy(l) => write!(f, "the program there is owned by link {l}"),
            Self::Moved => f.write_str("the chain is at another revision"),
            Self::ReplaceOnLink => f.write_str("a link cannot replace a program"),
        }
    }
}

/// A failed or refused mprog command.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} failed: {refusal}", op.call())]
pub struct MprogError {
    pub(crate) op: Op,
    pub(crate) refusal: Refusal,
}

impl MprogError {
    /// The kernel answered `op` with `errno`.
    pub(crate) fn new(op: Op, errno: i32) -> Self {
        Self { op, refusal: Refusal::Errno(errno) }
    }

    /// This tool did not make `op`, for `refusal`.
    pub(crate) fn found(op: Op, refusal: Refusal) -> Self {
        Self { op, refusal }
    }

    pub(crate) fn from_sys(op: Op, e: SyscallError) -> Self {
        Self::new(op, e.errno().unwrap_or(libc::EIO))
    }

    /// The kernel's errno, when the kernel answered.
    pub(crate) fn errno(&self) -> Option<i32> {
        match self.refusal {
            Refusal::Errno(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the kernel answered with `errno`.
    pub(crate) fn is(&self, errno: i32) -> bool {
        self.refusal == Refusal::Errno(errno)
    }
}

/// What the caller knows about the failed request, for the explanation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    /// The device as the user named it.
    pub(crate) device: String,
    pub(crate) hook: Option<Hook>,
    /// The program being attached/detached, e.g. "program 42 (pass)".
    pub(crate) prog: Option<String>,
    /// That program's id, when known.
    pub(crate) prog_id: Option<u32>,
    /// The position asked for, e.g. "before link 7".
    pub(crate) anchor: Option<String>,
    /// The link operated on, e.g. "link 7".
    pub(crate) link: Option<String>,
    pub(crate) expected_revision: Option<u64>,
    /// The chain as queried right after the failure.
    pub(crate) now: Option<Chain>,
    /// For a netkit hook named through a peer: the pair's primary, when it
    /// can be found, in words and as the command that reaches it.
    pub(crate) primary: Option<PrimaryHint>,
    /// The object `anchor` names is not on the chain.
    pub(crate) anchor_missing: bool,
    /// The request replaces a program (BPF_F_REPLACE).
    pub(crate) replacing: bool,
}

/// How to name the primary of a pair instead of its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrimaryHint {
    /// "h0", "h0 in network namespace pod", ...
    pub(crate) described: String,
    /// A command line doing the same on the primary.
    pub(crate) command: String,
}

impl Context {
    fn on(&self) -> String {
        match self.hook {
            Some(h) => format!("{} {h}", self.device),
            None => self.device.clone(),
        }
    }

    fn prog(&self) -> &str {
        self.prog.as_deref().unwrap_or("the program")
    }

    fn chain_text(&self) -> String {
        match &self.now {
            Some(c) if c.slots.is_empty() => format!(" (revision {}, no programs)", c.revision),
            Some(c) => {
                let slots: Vec<String> = c
                    .slots
                    .iter()
                    .map(|s| match s.link_id {
                        Some(l) => format!("prog {} (link {l})", s.prog_id),
                        None => format!("prog {} (plain)", s.prog_id),
                    })
                    .collect();
                format!(" (revision {}: {})", c.revision, slots.join(", "))
            }
            None => String::new(),
        }
    }
}

fn missing_caps() -> String {
    let missing = Capabilities::effective().missing_for_attach();
    if missing.is_empty() {
        "CAP_BPF and CAP_NET_ADMIN (in the device's namespace)".into()
    } else {
        missing.join(" and ")
    }
}

const REPLACE_ON_LINK: &str = "a link cannot be created in replace mode: replace a link's program with `netkit update`, or use --plain --replace for plain attachments";

/// Explains `err` in the terms of the hook it happened on.
pub(crate) fn explain(err: &MprogError, ctx: &Context) -> String {
    use Refusal::*;
    use libc::{EACCES, EBUSY, EEXIST, EINVAL, ENODEV, ENOENT, ENOLINK, ENXIO, EOPNOTSUPP, EPERM, ERANGE, ESTALE};
    let on = ctx.on();
    let netkit_hook = ctx.hook.is_some_and(Hook::is_netkit);
    match (err.op, err.refusal) {
        (_, Errno(ESTALE) | Moved) => {
            let now = ctx.now.as_ref().map(|c| c.revision.to_string()).unwrap_or_else(|| "different".into());
            let mut m = format!(
                "the chain on {on} changed: expected revision {}, it is now {now}{}",
                ctx.expected_revision.map_or_else(|| "?".into(), |r| r.to_string()),
                ctx.chain_text()
            );
            if netkit_hook && ctx.now.as_ref().is_some_and(|c| c.slots.is_empty()) {
                m += "; an emptied netkit hook keeps counting revisions although queries report 1, so attach to an empty netkit hook without --expected-revision";
            } else {
                m += "; query again and retry with the new revision, or leave out --expected-revision to let netkit retry";
            }
            m
        }
        (Op::LinkCreate | Op::ProgAttach, Errno(EEXIST)) => format!(
            "{} is already on {on}: a program can sit on a hook only once (attaching a bundled name or a file loads a fresh instance)",
            ctx.prog()
        ),
        (Op::LinkUpdate, Errno(EEXIST)) => {
            format!("{} is already elsewhere on {on}: a program can sit on a hook only once", ctx.prog())
        }
        (_, Errno(ERANGE)) => {
            let full = ctx.now.as_ref().is_some_and(|c| c.slots.len() >= MAX_PROGRAMS);
            if full {
                format!("{on} is full: the kernel allows at most {MAX_PROGRAMS} programs per hook")
            } else {
                format!(
                    "the position {} conflicts with the chain on {on}: the anchors point at different slots{}",
                    ctx.anchor.as_deref().unwrap_or("asked for"),
                    ctx.chain_text()
                )
            }
        }
        (Op::LinkCreate | Op::ProgAttach, Errno(ENOENT) | AnchorGone) => match &ctx.anchor {
            Some(_) if ctx.replacing => format!("the program to replace is not on {on}{}", ctx.chain_text()),
            Some(a) => format!("the anchor ({a}) is not attached to {on}{}", ctx.chain_text()),
            None => format!("something the request names does not exist on {on}"),
        },
        (Op::ProgDetach, Errno(ENOENT) | NothingThere | AnchorGone) => match (&ctx.prog, &ctx.anchor) {
            (Some(p), _) => format!("{p} is not attached to {on}{}", ctx.chain_text()),
            // A positional detach found nothing to remove.
            _ if ctx.now.as_ref().is_some_and(|c| c.slots.is_empty()) => {
                format!("nothing to detach: {on} has no programs")
            }
            (None, Some(a)) if ctx.anchor_missing => {
                format!("nothing to detach: the anchor of `{a}` is not on {on}{}", ctx.chain_text())
            }
            (None, Some(a)) => format!("nothing to detach: no program sits {a} on {on}{}", ctx.chain_text()),
            (None, None) => format!("{} is not attached to {on}{}", ctx.prog(), ctx.chain_text()),
        },
        (Op::ProgDetach | Op::ProgAttach, Errno(EBUSY) | OwnedBy(_)) => {
            let owner = match err.refusal {
                OwnedBy(l) => Some(l),
                _ => ctx.now.as_ref().and_then(|c| c.slots.iter().find(|s| Some(s.prog_id) == ctx.prog_id)?.link_id),
            };
            match owner {
                Some(l) => format!(
                    "{} on {on} is owned by link {l}: detach or update the link instead (netkit detach {} {} link:{l})",
                    ctx.prog(),
                    ctx.device,
                    ctx.hook.map(Hook::name).unwrap_or("HOOK")
                ),
                None => format!("that slot on {on} is owned by a link: detach or update the link instead"),
            }
        }
        (_, Errno(EACCES)) if netkit_hook => match &ctx.primary {
            Some(p) => format!(
                "{} is the peer of a netkit pair; the kernel manages both hooks through the primary: use {} (e.g. `{}`)",
                ctx.device, p.described, p.command
            ),
            None => format!(
                "{} is the peer of a netkit pair; the kernel manages both hooks through the primary: name the primary instead",
                ctx.device
            ),
        },
        (_, Errno(ENXIO)) if netkit_hook => format!(
            "{} is not a netkit device: the primary and peer hooks exist only on netkit pairs (tcx hooks ingress and egress work on any device)",
            ctx.device
        ),
        (_, Errno(ENODEV)) => format!("no device `{}` in this network namespace (it may have just gone)", ctx.device),
        (_, Errno(EOPNOTSUPP)) if netkit_hook => {
            format!("{} is a single-device netkit: it has no BPF hooks of its own", ctx.device)
        }
        (Op::LinkUpdate, Errno(EPERM)) if Capabilities::effective().can_bpf() => format!(
            "{} no longer runs {}: someone replaced its program; see `netkit query`",
            ctx.link.as_deref().unwrap_or("the link"),
            ctx.prog.as_deref().unwrap_or("the expected program")
        ),
        (_, Errno(EPERM)) => format!("permission denied on {on}: needs {}", missing_caps()),
        (_, Errno(ENOLINK)) => format!(
            "{} is defunct (its device is gone or it was detached): remove its pin with `netkit link prune`",
            ctx.link.as_deref().unwrap_or("the link")
        ),
        (Op::LinkCreate, ReplaceOnLink) => REPLACE_ON_LINK.into(),
        (Op::LinkCreate, Errno(EINVAL)) if ctx.replacing => REPLACE_ON_LINK.into(),
        (Op::LinkUpdate, Errno(EINVAL)) => {
            format!("the kernel refused {} for this link (a different program type?)", ctx.prog())
        }
        (_, Errno(EINVAL)) => format!(
            "the kernel rejected the request on {on} as invalid (EINVAL){}",
            match &ctx.anchor {
                Some(a) => format!(
                    "; check that the anchor ({a}) is of the right kind (link:ID must name a link, prog:ID a program of the same type)"
                ),
                None => String::new(),
            }
        ),
        _ => format!("{on}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mprog::Slot;

    fn ctx() -> Context {
        Context {
            device: "eth0".into(),
            hook: Some(Hook::Ingress),
            prog: Some("program 5 (pass)".into()),
            prog_id: Some(5),
            ..Default::default()
        }
    }

    #[test]
    fn stale_revision_names_both_revisions_and_the_chain() {
        let c = Context {
            expected_revision: Some(3),
            now: Some(Chain { revision: 5, slots: vec![Slot { prog_id: 9, link_id: Some(2) }] }),
            ..ctx()
        };
        let m = explain(&MprogError::new(Op::LinkCreate, libc::ESTALE), &c);
        assert!(m.contains("expected revision 3, it is now 5") && m.contains("prog 9 (link 2)"), "{m}");
    }

    #[test]
    fn erange_tells_a_full_hook_from_a_conflicting_position() {
        let full =
            Context { now: Some(Chain { revision: 64, slots: vec![Slot { prog_id: 1, link_id: None }; 63] }), ..ctx() };
        assert!(explain(&MprogError::new(Op::LinkCreate, libc::ERANGE), &full).contains("at most 63"));
        let conflict = Context { anchor: Some("before prog 1".into()), now: Some(Chain::default()), ..ctx() };
        assert!(explain(&MprogError::new(Op::LinkCreate, libc::ERANGE), &conflict).contains("conflicts"));
    }

    #[test]
    fn peer_and_non_netkit_devices_are_named() {
        let c = Context {
            device: "eth0".into(),
            hook: Some(Hook::Peer),
            primary: Some(PrimaryHint {
                described: "nk0 in the initial network namespace".into(),
                command: "netkit attach nk0 peer ...".into(),
            }),
            ..Default::default()
        };
        let m = explain(&MprogError::new(Op::LinkCreate, libc::EACCES), &c);
        assert!(m.contains("peer of a netkit pair") && m.contains("use nk0 in the initial network namespace"), "{m}");
        assert!(m.contains("`netkit attach nk0 peer ...`"), "{m}");
        let m = explain(&MprogError::new(Op::LinkCreate, libc::ENXIO), &c);
        assert!(m.contains("not a netkit device"), "{m}");
    }

    #[test]
    fn a_replacement_is_told_by_its_flag_not_by_its_words() {
        let c = Context { anchor: Some("replacing prog 4".into()), replacing: true, ..ctx() };
        let m = explain(&MprogError::new(Op::ProgAttach, libc::ENOENT), &c);
        assert!(m.contains("the program to replace is not on"), "{m}");
        let m = explain(&MprogError::new(Op::LinkCreate, libc::EINVAL), &c);
        assert!(m.contains("cannot be created in replace mode"), "{m}");
        let m = explain(&MprogError::found(Op::LinkCreate, Refusal::ReplaceOnLink), &c);
        assert!(m.contains("cannot be created in replace mode"), "{m}");
        // The same words without the flag are an ordinary anchor.
        let c = Context { replacing: false, ..c };
        let m = explain(&MprogError::new(Op::ProgAttach, libc::ENOENT), &c);
        assert!(m.contains("the anchor (replacing prog 4) is not attached"), "{m}");
    }

    #[test]
    fn link_owned_slots_point_at_the_link() {
        let c =
            Context { now: Some(Chain { revision: 2, slots: vec![Slot { prog_id: 5, link_id: Some(11) }] }), ..ctx() };
        let m = explain(&MprogError::new(Op::ProgDetach, libc::EBUSY), &c);
        assert!(m.contains("owned by link 11") && m.contains("link:11"), "{m}");
        // Found before asking the kernel: the same words, from the slot itself.
        let c = Context { now: None, ..ctx() };
        let m = explain(&MprogError::found(Op::ProgDetach, Refusal::OwnedBy(11)), &c);
        assert!(m.contains("owned by link 11") && m.contains("link:11"), "{m}");
    }

    #[test]
    fn refusals_found_on_the_chain_read_like_the_kernel_s() {
        let c = Context { anchor: Some("after prog 9".into()), anchor_missing: true, prog: None, ..ctx() };
        let found = explain(&MprogError::found(Op::ProgDetach, Refusal::AnchorGone), &c);
        assert_eq!(found, explain(&MprogError::new(Op::ProgDetach, libc::ENOENT), &c));
        let c = Context { expected_revision: Some(3), ..ctx() };
        let found = explain(&MprogError::found(Op::LinkDetach, Refusal::Moved), &c);
        assert_eq!(found, explain(&MprogError::new(Op::LinkDetach, libc::ESTALE), &c));
        assert!(found.contains("expected revision 3"), "{found}");
    }

    #[test]
    fn a_positional_detach_that_finds_nothing_says_why() {
        let chain = Some(Chain { revision: 2, slots: vec![Slot { prog_id: 5, link_id: None }] });
        let at = |anchor_missing| Context {
            prog: None,
            anchor: Some("before prog 5".into()),
            now: chain.clone(),
            anchor_missing,
            ..ctx()
        };
        let enoent = MprogError::new(Op::ProgDetach, libc::ENOENT);
        assert!(explain(&enoent, &at(false)).contains("no program sits before prog 5 on eth0 ingress"));
        assert!(explain(&enoent, &at(true)).contains("the anchor of `before prog 5` is not on eth0 ingress"));
        let empty = Context { now: Some(Chain::default()), ..at(false) };
        assert_eq!(explain(&enoent, &empty), "nothing to detach: eth0 ingress has no programs");
        assert!(explain(&enoent, &ctx()).contains("program 5 (pass) is not attached"));
    }
}
