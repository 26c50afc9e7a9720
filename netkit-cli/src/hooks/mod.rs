//! The hook operations behind `attach`, `detach`, `update`, `query`, `link`
//! and `run`, on top of `mprog`, `netlink`, `pins` and `programs`: everything is checked before the first kernel call, positions
//! are resolved against a fresh revision and retried on ESTALE, kernel errors
//! are explained in the hook's terms, and a failed call leaves the chain as
//! it was.

pub mod refs;

use std::{
    collections::HashMap,
    os::fd::{AsFd as _, OwnedFd},
    path::PathBuf,
};

use serde::Serialize;

use self::refs::{RefError, RefSpec, Resolved, Scope};
use crate::{
    bpf,
    mprog::{
        Anchor, Chain, Hook, HookRef, MprogError, Slot,
        error::{Context, Op, PrimaryHint, explain},
    },
    netlink::{
        Netlink, NetlinkError,
        device::{DeviceError, DeviceView, HookCounts, PrimaryAt},
        links::Role,
    },
    os::netns,
    pins::{self, Layout, PinError, owners},
    programs::{self, LoadOptions, Loaded, ObjKind, ProgSpec, ProgramError},
};

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Program(#[from] ProgramError),
    #[error(transparent)]
    Ref(#[from] RefError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// A kernel refusal, explained; `errno` is the kernel's answer.
    #[error("{message}")]
    Kernel { message: String, errno: i32 },
    #[error("{0}")]
    Refused(String),
}

impl AttachError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
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

/// How many times a position is re-resolved after ESTALE before giving up.
pub const RETRIES: usize = 8;

/// Where in a chain to attach, as the user said it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Position {
    First,
    #[default]
    Last,
    Before(RefSpec),
    After(RefSpec),
}

/// A device in the current namespace.
#[derive(Debug, Clone)]
pub struct Device {
    pub name: String,
    pub ifindex: u32,
    /// The namespace's name in the pin layout.
    pub netns: String,
}

/// The context every hook operation works in.
pub struct Hooks<'a> {
    pub nl: &'a Netlink,
    pub bpffs: PathBuf,
}

/// What an attach, update or detach left behind.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub ifname: String,
    pub ifindex: u32,
    pub hook: Hook,
    pub prog_id: Option<u32>,
    pub prog_name: Option<String>,
    pub link_id: Option<u32>,
    pub pin: Option<String>,
    /// The hook's revision after the operation.
    pub revision: u64,
    /// 1-based position of the program in the chain (None once detached).
    pub position: Option<usize>,
    /// What happened, in words.
    pub action: String,
}

/// One slot in `query` output.
#[derive(Debug, Clone, Serialize)]
pub struct SlotView {
    pub position: usize,
    pub prog_id: u32,
    pub name: String,
    pub tag: String,
    pub link_id: Option<u32>,
    pub pin: Option<String>,
}

/// One hook in `query` output.
#[derive(Debug, Clone, Serialize)]
pub struct HookView {
    pub ifname: String,
    pub ifindex: u32,
    pub hook: Hook,
    pub revision: u64,
    pub programs: Vec<SlotView>,
}

/// Where a pinned link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// On its hook.
    Attached,
    /// Its device is gone or it was detached; only the pin holds it.
    Defunct,
    /// The pin could not be opened or read.
    Unreadable,
}

/// A link this tool pinned, as `link list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    pub name: String,
    pub netns: String,
    pub device: String,
    pub hook: Hook,
    pub pin: String,
    pub link_id: Option<u32>,
    pub prog_id: Option<u32>,
    pub prog_name: Option<String>,
    /// The ifindex of the device the kernel keeps in the link, 0 once
    /// defunct. For a link on a netkit peer hook that is the peer's ifindex,
    /// counted in the peer's namespace; `device` and `hook` name the pair's
    /// primary and the hook, as the link was attached.
    pub ifindex: Option<u32>,
    pub state: LinkState,
    /// Why the pin could not be read (state `unreadable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An update request: the link (REF) on DEV HOOK gets PROG.
#[derive(Debug, Clone)]
pub struct UpdateRequest {
    pub device: String,
    pub hook: Hook,
    pub target: RefSpec,
    pub prog: ProgSpec,
    /// Fail unless the link still runs this program.
    pub expected_old: Option<RefSpec>,
    pub load: LoadOptions,
    /// Update a link another tool owns.
    pub force: bool,
}

/// Where and how a program goes on a chain.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub position: Position,
    pub expected_revision: Option<u64>,
    /// Plain attachment (BPF_PROG_ATTACH) instead of a link.
    pub plain: bool,
    /// Plain only: replace this program's slot.
    pub replace: Option<RefSpec>,
}

/// An attach request, fully described before anything is loaded.
#[derive(Debug, Clone)]
pub struct AttachRequest {
    pub device: String,
    pub hook: Hook,
    pub prog: ProgSpec,
    pub placement: Placement,
    /// Pin name (links only); default `<program>-<link id>`.
    pub pin: Option<String>,
    pub load: LoadOptions,
}

fn prog_label(id: u32) -> String {
    match bpf::prog_info_by_id(id) {
        Some(info) => format!("program {id} ({})", info.name()),
        None => format!("program {id}"),
    }
}

fn prog_name(id: u32) -> String {
    bpf::prog_info_by_id(id).map(|i| i.name()).unwrap_or_default()
}

fn position_text(p: &Position, anchor: Option<&Resolved>) -> String {
    match (p, anchor) {
        (Position::First, _) => "first".into(),
        (Position::Last, _) => "last".into(),
        (Position::Before(_), Some(a)) => format!("before {}", a.describe()),
        (Position::After(_), Some(a)) => format!("after {}", a.describe()),
        (Position::Before(r), None) => format!("before {r}"),
        (Position::After(r), None) => format!("after {r}"),
    }
}

/// Where the object an anchor names sits on the chain, if it is there.
fn anchor_index(chain: &Chain, anchor: &Resolved) -> Option<usize> {
    if anchor.is_link() {
        chain.slots.iter().position(|s| s.link_id == Some(anchor.id))
    } else {
        chain.slots.iter().position(|s| s.prog_id == anchor.id)
    }
}

fn anchor_present(chain: &Chain, anchor: &Resolved) -> bool {
    anchor_index(chain, anchor).is_some()
}

/// The kernel's anchor for a position; `anchor_ref` is the resolved REF of
/// --before/--after.
fn anchor_for<'a>(position: &Position, anchor_ref: Option<&'a Resolved>) -> Anchor<'a> {
    match (position, anchor_ref) {
        (Position::First, _) => Anchor::First,
        (Position::Last, _) => Anchor::Last,
        (Position::Before(_), Some(a)) => Anchor::Before(a.target()),
        (Position::After(_), Some(a)) => Anchor::After(a.target()),
        _ => unreachable!("--before/--after REFs are resolved first"),
    }
}

/// Which slot a positional detach removes. The kernel clamps a position past
/// either end to the end slot (so "before the first" would remove the first),
/// hence the tool picks the slot itself and refuses when there is none.
fn slot_at<'c>(chain: &'c Chain, position: &Position, anchor_ref: Option<&Resolved>) -> Option<&'c Slot> {
    let at = |i: Option<usize>| i.and_then(|i| chain.slots.get(i));
    match position {
        Position::First => chain.slots.first(),
        Position::Last => chain.slots.last(),
        Position::Before(_) => at(anchor_ref.and_then(|a| anchor_index(chain, a)).and_then(|i| i.checked_sub(1))),
        Position::After(_) => at(anchor_ref.and_then(|a| anchor_index(chain, a)).map(|i| i + 1)),
    }
}

impl Hooks<'_> {
    /// The device named `name` in the current namespace.
    pub async fn device(&self, name: &str) -> Result<Device, AttachError> {
        crate::netlink::ifname::check(name).map_err(AttachError::Invalid)?;
        let link = self
            .nl
            .link_by_name(name)
            .await?
            .ok_or_else(|| DeviceError::NotFound { name: name.into(), netns: netns::current_name() })?;
        Ok(Device { name: link.name, ifindex: link.index, netns: netns::current_name() })
    }

    fn layout(&self) -> Result<Layout, AttachError> {
        Ok(Layout::new(&self.bpffs)?)
    }

    /// Turns a kernel refusal into an explained error: queries the chain as it
    /// is now and, for netkit hooks on a peer, finds the primary.
    async fn explain(&self, err: MprogError, dev: &Device, hook: Hook, mut ctx: Context) -> AttachError {
        ctx.device = dev.name.clone();
        ctx.hook = Some(hook);
        if ctx.now.is_none() {
            ctx.now = HookRef::new(dev.ifindex, hook).query().ok();
        }
        if err.errno == libc::EACCES && hook.is_netkit() {
            ctx.primary = match self.nl.link_by_name(&dev.name).await {
                Ok(Some(l)) if l.role() == Some(Role::Peer) => self.nl.primary_of(&l).await.map(|p| PrimaryHint {
                    described: p.describe(),
                    command: p.command(err.op.subcommand(), &format!("{hook} ...")),
                }),
                _ => None,
            };
        }
        if err.errno == libc::EINVAL
            && hook.is_netkit()
            && !crate::os::probe::probe(crate::os::probe::Feature::Netkit).is_supported()
        {
            return AttachError::Kernel {
                message: format!(
                    "this kernel has no netkit hooks (needs {})",
                    crate::os::probe::Feature::Netkit.requirement()
                ),
                errno: err.errno,
            };
        }
        AttachError::Kernel { message: explain(&err, &ctx), errno: err.errno }
    }

    /// Runs `op` against a fresh revision (and the chain read with it),
    /// re-resolving and retrying on ESTALE while the anchor is still on the
    /// chain. With an explicit revision the kernel's answer is final, and no
    /// chain is read for `op`.
    fn with_revision<T>(
        href: HookRef,
        explicit: Option<u64>,
        anchor: Option<&Resolved>,
        mut op: impl FnMut(Option<u64>, Option<&Chain>) -> Result<T, MprogError>,
    ) -> Result<T, (MprogError, Option<u64>, Option<Chain>)> {
        if explicit.is_some() {
            return op(explicit, None).map_err(|e| (e, explicit, None));
        }
        let mut last = None;
        for attempt in 0..RETRIES {
            let chain = href.query().map_err(|e| (e, None, None))?;
            if attempt > 0
                && let Some(a) = anchor
                && !anchor_present(&chain, a)
            {
                // The anchor went away while we retried: report that, not ESTALE.
                return Err((MprogError::new(Op::LinkCreate, libc::ENOENT), None, Some(chain)));
            }
            // An empty hook needs no revision check, and an emptied netkit hook
            // reports revision 1 while counting on internally.
            let expected = (!chain.slots.is_empty()).then_some(chain.revision);
            match op(expected, Some(&chain)) {
                Err(e) if e.errno == libc::ESTALE => last = Some((e, expected, None)),
                Err(e) => return Err((e, expected, None)),
                Ok(v) => return Ok(v),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn outcome(
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

    /// Everything about an attach that can be checked before the kernel is
    /// asked for anything.
    fn check_request(&self, req: &AttachRequest) -> Result<(), AttachError> {
        let Placement { position, plain, replace, .. } = &req.placement;
        if replace.is_some() && !*plain {
            return Err(AttachError::Invalid(
                "--replace works only with --plain: a link's program is replaced with `netkit update DEV HOOK REF PROG`".into(),
            ));
        }
        if replace.is_some() && *position != Position::Last {
            return Err(AttachError::Invalid("--replace takes the replaced program's slot; it cannot be combined with --first, --last, --before or --after".into()));
        }
        if *plain && req.pin.is_some() {
            return Err(AttachError::Invalid(
                "--pin names a link; a --plain attachment has none (it stays until detached)".into(),
            ));
        }
        if let Some(RefSpec::Link(_) | RefSpec::Name(_)) = &replace {
            return Err(AttachError::Invalid("--replace takes prog:ID or pin:PATH of a plain program".into()));
        }
        if let Some(name) = &req.pin {
            pins::check_name(name)?;
        }
        programs::prepare(&req.prog)?;
        Ok(())
    }

    /// `netkit attach`: a pinned link (or a plain attachment with `plain`).
    pub async fn attach(&self, req: &AttachRequest) -> Result<Outcome, AttachError> {
        self.check_request(req)?;
        let hook = req.hook;
        let dev = self.device(&req.device).await?;
        let layout = if req.placement.plain { None } else { Some(self.layout()?) };
        if let (Some(layout), Some(name)) = (&layout, &req.pin) {
            layout.check_free(&dev.netns, &dev.name, hook, name)?;
        }
        let loaded = programs::load(&req.prog, &req.load)?;
        let (link, outcome_action) = self.attach_loaded(&dev, hook, &loaded, &req.placement).await?;
        let Some(link) = link else {
            return Ok(Self::outcome(&dev, hook, Some(loaded.id()), None, None, outcome_action));
        };
        let layout = layout.expect("links are pinned");
        let info = bpf::link_info(link.as_fd()).map_err(|e| AttachError::Invalid(e.to_string()))?;
        let name = req.pin.clone().unwrap_or_else(|| format!("{}-{}", loaded.info.name(), info.id));
        let path = match layout.check_free(&dev.netns, &dev.name, hook, &name) {
            Ok(p) => p,
            // Taken since the early check: the link is released when dropped.
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = layout.pin(&link, &path) {
            return Err(AttachError::Refused(format!("{e}; the link was released again, nothing stays attached")));
        }
        Ok(Self::outcome(
            &dev,
            hook,
            Some(loaded.id()),
            Some(info.id),
            Some(path.display().to_string()),
            outcome_action,
        ))
    }

    /// Attaches an already loaded program as a link (returned, unpinned) or
    /// plainly, resolving the position against a fresh revision.
    pub async fn attach_loaded(
        &self,
        dev: &Device,
        hook: Hook,
        loaded: &Loaded,
        req: &Placement,
    ) -> Result<(Option<OwnedFd>, String), AttachError> {
        let layout = Layout::unchecked(&self.bpffs);
        let scope = Scope { layout: &layout, netns: &dev.netns, device: &dev.name, hook };
        let anchor_ref = match &req.position {
            Position::Before(r) | Position::After(r) => Some(refs::resolve(r, &scope)?),
            _ => None,
        };
        let replace_ref = match &req.replace {
            Some(r) => {
                let resolved = refs::resolve(r, &scope)?;
                if resolved.kind != ObjKind::Prog {
                    return Err(AttachError::Invalid(format!("--replace {r}: that is a link, not a plain program")));
                }
                Some(resolved)
            }
            None => None,
        };
        let anchor = match &replace_ref {
            Some(r) => Anchor::Replace(r.fd.as_fd()),
            None => anchor_for(&req.position, anchor_ref.as_ref()),
        };
        let where_ = match &replace_ref {
            Some(r) => format!("replacing {}", r.describe()),
            None => position_text(&req.position, anchor_ref.as_ref()),
        };
        let href = HookRef::new(dev.ifindex, hook);
        let prog = loaded.fd.as_fd();
        let result = if req.plain {
            Self::with_revision(href, req.expected_revision, anchor_ref.as_ref(), |rev, _| {
                href.attach_plain(prog, &anchor, rev)
            })
            .map(|()| None)
        } else {
            Self::with_revision(href, req.expected_revision, anchor_ref.as_ref(), |rev, _| {
                href.attach_link(prog, &anchor, rev)
            })
            .map(Some)
        };
        match result {
            Ok(link) => {
                let what = if req.plain { "attached (plain)" } else { "attached (link)" };
                Ok((link, format!("{what} {} {where_}", loaded.describe())))
            }
            Err((mut err, expected, now)) => {
                err.op = if req.plain { Op::ProgAttach } else { Op::LinkCreate };
                let ctx = Context {
                    prog: Some(loaded.describe()),
                    anchor: Some(where_),
                    replacing: replace_ref.is_some(),
                    expected_revision: expected,
                    now,
                    ..Default::default()
                };
                Err(self.explain(err, dev, hook, ctx).await)
            }
        }
    }

    /// Detaches a plain program: the one `prog` names, the one at `position`,
    /// or (both given) the named one once the kernel has checked that it sits
    /// at that position.
    async fn detach_plain(
        &self,
        dev: &Device,
        hook: Hook,
        prog: Option<&Resolved>,
        position: Option<&Position>,
        expected_revision: Option<u64>,
        scope: &Scope<'_>,
    ) -> Result<Outcome, AttachError> {
        let anchor_ref = match position {
            Some(Position::Before(r) | Position::After(r)) => Some(refs::resolve(r, scope)?),
            _ => None,
        };
        let anchor = position.map(|p| anchor_for(p, anchor_ref.as_ref()));
        let where_ = position.map(|p| position_text(p, anchor_ref.as_ref()));
        let href = HookRef::new(dev.ifindex, hook);
        // The program removed: named, or read off the chain the revision belongs to.
        let mut victim: Option<Slot> = prog.map(|p| Slot { prog_id: p.id, link_id: None });
        let result = Self::with_revision(href, expected_revision, anchor_ref.as_ref(), |rev, chain| {
            let fd = match (prog, position) {
                (Some(p), _) => Some(p.fd.as_fd()),
                (None, Some(pos)) => {
                    let read;
                    let chain = match chain {
                        Some(c) => c,
                        None => {
                            read = href.query()?;
                            &read
                        }
                    };
                    victim = slot_at(chain, pos, anchor_ref.as_ref()).copied();
                    match victim {
                        None => return Err(MprogError::new(Op::ProgDetach, libc::ENOENT)),
                        Some(Slot { link_id: Some(_), .. }) => {
                            return Err(MprogError::new(Op::ProgDetach, libc::EBUSY));
                        }
                        Some(_) => None,
                    }
                }
                (None, None) => unreachable!("detach checks for REF or a position"),
            };
            href.detach_plain(fd, anchor.as_ref(), rev)
        });
        let label = victim.as_ref().map(|s| prog_label(s.prog_id));
        match result {
            Ok(()) => {
                let label = label.expect("a detached program is known");
                let action = match (&where_, prog) {
                    (Some(w), None) => format!("detached {label} (plain), which was {w}"),
                    _ => format!("detached {label} (plain)"),
                };
                Ok(Self::outcome(dev, hook, None, None, None, action))
            }
            Err((err, expected, now)) => {
                let err = MprogError::new(Op::ProgDetach, err.errno);
                let now = now.or_else(|| href.query().ok());
                let anchor_missing = victim.is_none()
                    && anchor_ref.as_ref().is_some_and(|a| !now.as_ref().is_some_and(|c| anchor_present(c, a)));
                let ctx = Context {
                    prog: label,
                    anchor: where_,
                    expected_revision: expected,
                    now,
                    anchor_missing,
                    ..Default::default()
                };
                Err(self.explain(err, dev, hook, ctx).await)
            }
        }
    }

    /// Refuses to touch a link this tool did not pin, unless forced, saying
    /// what holds it.
    fn guard(&self, link: &Resolved, force: bool) -> Result<Option<pins::PinnedLink>, AttachError> {
        let layout = Layout::unchecked(&self.bpffs);
        let ours = match link.pin.as_deref().and_then(|p| layout.parse_path(p)) {
            Some(pinned) => Some(pinned),
            None => layout.find_by_id(link.id),
        };
        if ours.is_some() || force {
            return Ok(ours);
        }
        let holders = owners::holders(link.id);
        let held = if holders.is_empty() {
            "no holder could be found".to_string()
        } else {
            format!("held by {}", holders.join(", "))
        };
        Err(AttachError::Refused(format!(
            "link {} was not pinned by netkit ({held}); another tool owns it: pass --force to change it anyway",
            link.id
        )))
    }

    /// Checks that `link` sits on DEV HOOK (or is defunct, which update and
    /// detach report in their own words).
    ///
    /// A link's info cannot say this by ifindex. It names the device the
    /// kernel keeps in the link: for tcx and netkit primary links that is the
    /// device named at attach time, but for a netkit *peer* link it is the
    /// peer, because `netkit_dev_fetch()` swaps the primary for `nk->peer`
    /// when the attach type is BPF_NETKIT_PEER and `netkit_link_init()` keeps
    /// that device (every kernel from 6.7 to 7.x; 6.16 moved the attach type
    /// from `nkl->location` to `link->attach_type` without changing what is
    /// reported). That ifindex is counted in the peer's namespace, which is
    /// usually not ours, and an ifindex is only unique within one namespace
    /// anyway (every pod's eth0 tends to be 2). The exact test is the hook's
    /// own chain: BPF_PROG_QUERY on the primary names the owning link of
    /// every slot, for all four hooks alike.
    /// `op` is what the user asked for, for the explanation of a refusal.
    async fn check_link_on(&self, link: &Resolved, dev: &Device, hook: Hook, op: Op) -> Result<(), AttachError> {
        let info = link.link_info.as_ref().expect("links have info");
        if info.ifindex == 0 {
            return Ok(());
        }
        if info.attach_type != hook.attach_type() {
            let on = Hook::from_attach_type(info.attach_type)
                .map_or("another kind of hook".into(), |h| format!("a {h} hook"));
            return Err(AttachError::Invalid(format!(
                "{} is attached to {on}, not to {} {hook} (see `netkit link show link:{}`)",
                link.describe(),
                dev.name,
                info.id
            )));
        }
        let chain = match HookRef::new(dev.ifindex, hook).query() {
            Ok(c) => c,
            Err(err) => return Err(self.explain(MprogError { op, ..err }, dev, hook, Context::default()).await),
        };
        if chain.slots.iter().any(|s| s.link_id == Some(info.id)) {
            return Ok(());
        }
        Err(AttachError::Invalid(format!(
            "{} is attached to the {hook} hook of another device, not to {} {hook}; see `netkit query {} {hook}` for the links there",
            link.describe(),
            dev.name,
            dev.name
        )))
    }

    /// `netkit detach`: a link (detached and unpinned) or a plain program.
    pub async fn detach(
        &self,
        device: &str,
        hook: Hook,
        target: Option<&RefSpec>,
        position: Option<&Position>,
        expected_revision: Option<u64>,
        force: bool,
    ) -> Result<Outcome, AttachError> {
        let dev = self.device(device).await?;
        let layout = Layout::unchecked(&self.bpffs);
        let scope = Scope { layout: &layout, netns: &dev.netns, device: &dev.name, hook };
        let Some(target) = target else {
            let Some(position) = position else {
                return Err(AttachError::Invalid(
                    "detach needs REF (a link or prog:ID), or a position (--first, --last, --before REF, --after REF) naming the plain program to remove".into(),
                ));
            };
            return self.detach_plain(&dev, hook, None, Some(position), expected_revision, &scope).await;
        };
        let resolved = refs::resolve(target, &scope)?;
        if !resolved.is_link() {
            return self.detach_plain(&dev, hook, Some(&resolved), position, expected_revision, &scope).await;
        }
        if position.is_some() {
            return Err(AttachError::Invalid(format!(
                "{}: a link is detached by naming it alone; --first, --last, --before and --after select plain programs",
                resolved.describe()
            )));
        }
        let href = HookRef::new(dev.ifindex, hook);
        self.check_link_on(&resolved, &dev, hook, Op::LinkDetach).await?;
        let ours = self.guard(&resolved, force)?;
        let info = resolved.link_info.expect("links have info");
        if let Some(rev) = expected_revision {
            // BPF_LINK_DETACH takes no revision; check it just before.
            let chain = match href.query() {
                Ok(c) => c,
                Err(err) => {
                    return Err(self
                        .explain(MprogError { op: Op::LinkDetach, ..err }, &dev, hook, Context::default())
                        .await);
                }
            };
            if chain.revision != rev {
                let err = MprogError::new(Op::LinkDetach, libc::ESTALE);
                let ctx = Context { expected_revision: Some(rev), now: Some(chain), ..Default::default() };
                return Err(self.explain(err, &dev, hook, ctx).await);
            }
        }
        let label = format!("link {} ({})", info.id, prog_label(info.prog_id));
        let action = if info.ifindex == 0 {
            format!("{label} was already defunct")
        } else {
            if let Err(err) = crate::mprog::detach_link(resolved.fd.as_fd()) {
                let ctx = Context { link: Some(label), ..Default::default() };
                return Err(self.explain(err, &dev, hook, ctx).await);
            }
            format!("detached {label}")
        };
        let mut pin = None;
        if let Some(p) = ours {
            layout.unpin(&p.path)?;
            pin = Some(p.path.display().to_string());
        }
        let action = match &pin {
            Some(p) => format!("{action}; removed its pin {p}"),
            None => action,
        };
        Ok(Self::outcome(&dev, hook, None, Some(info.id), pin, action))
    }

    /// `netkit update`: replaces a link's program in place, keeping its slot.
    pub async fn update(&self, req: &UpdateRequest) -> Result<Outcome, AttachError> {
        let UpdateRequest { device, hook, target, prog, expected_old, load, force } = req;
        let (hook, force, expected_old) = (*hook, *force, expected_old.as_ref());
        if let RefSpec::Prog(id) = target {
            return Err(AttachError::Invalid(format!(
                "prog:{id} names a program; update replaces the program of a link: name the link (link:ID, pin:PATH or NAME), or use `attach --plain --replace prog:{id}` for a plain one"
            )));
        }
        if let Some(RefSpec::Link(_) | RefSpec::Name(_)) = expected_old {
            return Err(AttachError::Invalid("--expected-old takes the program the link runs now: prog:ID".into()));
        }
        programs::prepare(prog)?;
        let dev = self.device(device).await?;
        let layout = Layout::unchecked(&self.bpffs);
        let scope = Scope { layout: &layout, netns: &dev.netns, device: &dev.name, hook };
        let link = refs::resolve(target, &scope)?;
        if !link.is_link() {
            return Err(AttachError::Invalid(format!("{target} is a program; update needs a link")));
        }
        self.check_link_on(&link, &dev, hook, Op::LinkUpdate).await?;
        let ours = self.guard(&link, force)?;
        let old = expected_old.map(|r| refs::resolve(r, &scope)).transpose()?;
        let loaded = programs::load(prog, load)?;
        let info = link.link_info.expect("links have info");
        if let Err(err) =
            crate::mprog::update_link(link.fd.as_fd(), loaded.fd.as_fd(), old.as_ref().map(|o| o.fd.as_fd()))
        {
            let ctx = Context {
                link: Some(format!("link {}", info.id)),
                prog: Some(match &old {
                    Some(o) if err.errno == libc::EPERM => prog_label(o.id),
                    _ => loaded.describe(),
                }),
                ..Default::default()
            };
            return Err(self.explain(err, &dev, hook, ctx).await);
        }
        let action = format!("link {} now runs {} (was {})", info.id, loaded.describe(), prog_label(info.prog_id));
        Ok(Self::outcome(
            &dev,
            hook,
            Some(loaded.id()),
            Some(info.id),
            ours.map(|p| p.path.display().to_string()),
            action,
        ))
    }

    /// Link id -> pin path, for the links pinned under the layout: those of
    /// one device (cheap) or all of them.
    fn pins_by_link(&self, device: Option<&Device>) -> HashMap<u32, String> {
        let layout = Layout::unchecked(&self.bpffs);
        let pinned = match device {
            Some(d) => Hook::ALL.into_iter().flat_map(|h| layout.links_on(&d.netns, &d.name, h)).collect(),
            None => layout.links(),
        };
        pinned
            .into_iter()
            .filter_map(|l| pins::open_link(&l.path).ok().map(|(_, info)| (info.id, l.path.display().to_string())))
            .collect()
    }

    fn hook_view(dev: &Device, hook: Hook, chain: &Chain, pins: &HashMap<u32, String>) -> HookView {
        let programs = chain
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let info = bpf::prog_info_by_id(s.prog_id);
                SlotView {
                    position: i + 1,
                    prog_id: s.prog_id,
                    name: info.as_ref().map(|i| i.name()).unwrap_or_else(|| "?".into()),
                    tag: info.as_ref().map(|i| i.tag_hex()).unwrap_or_default(),
                    link_id: s.link_id,
                    pin: s.link_id.and_then(|l| pins.get(&l).cloned()),
                }
            })
            .collect();
        HookView { ifname: dev.name.clone(), ifindex: dev.ifindex, hook, revision: chain.revision, programs }
    }

    /// `netkit query`: the chains of one hook, of one device's hooks, or of
    /// every hook in the namespace that has programs.
    pub async fn query(&self, device: Option<&str>, hook: Option<Hook>) -> Result<Vec<HookView>, AttachError> {
        let mut out = Vec::new();
        let devices: Vec<(Device, bool)> = match device {
            Some(name) => {
                let dev = self.device(name).await?;
                let primary =
                    self.nl.link_by_index(dev.ifindex).await?.is_some_and(|l| l.role() == Some(Role::Primary));
                vec![(dev, primary)]
            }
            None => self
                .nl
                .links()
                .await?
                .into_iter()
                .map(|l| {
                    let primary = l.role() == Some(Role::Primary);
                    (Device { name: l.name, ifindex: l.index, netns: netns::current_name() }, primary)
                })
                .collect(),
        };
        let all = device.is_none();
        let pins = self.pins_by_link(if all { None } else { devices.first().map(|(d, _)| d) });
        for (dev, primary) in devices {
            let hooks: Vec<Hook> = match hook {
                Some(h) => vec![h],
                None if primary => Hook::ALL.to_vec(),
                None => vec![Hook::Ingress, Hook::Egress],
            };
            for h in hooks {
                match HookRef::new(dev.ifindex, h).query() {
                    Ok(chain) if all && chain.slots.is_empty() => {}
                    Ok(chain) => out.push(Self::hook_view(&dev, h, &chain, &pins)),
                    // Devices without a tcx hook cannot be skipped silently
                    // when named; in a full listing, move on.
                    Err(_) if all => {}
                    Err(err) => return Err(self.explain(err, &dev, h, Context::default()).await),
                }
            }
        }
        Ok(out)
    }

    /// The program on DEV HOOK that `target` names (a program, or the program
    /// of a link) or, without `target`, the one program on the chain that
    /// `fits`; `kind` names what is looked for in messages.
    pub async fn program_on(
        &self,
        device: &str,
        hook: Hook,
        target: Option<&RefSpec>,
        kind: &str,
        fits: impl Fn(u32, &str) -> bool,
    ) -> Result<(Device, SlotView), AttachError> {
        let dev = self.device(device).await?;
        let chain = match HookRef::new(dev.ifindex, hook).query() {
            Ok(c) => c,
            Err(err) => return Err(self.explain(err, &dev, hook, Context::default()).await),
        };
        let view = Self::hook_view(&dev, hook, &chain, &self.pins_by_link(Some(&dev)));
        let found: Vec<SlotView> = match target {
            Some(r) => {
                let layout = Layout::unchecked(&self.bpffs);
                let scope = Scope { layout: &layout, netns: &dev.netns, device: &dev.name, hook };
                let resolved = refs::resolve(r, &scope)?;
                // A link is found by its own id on the chain (the kernel names
                // each slot's owner), never by the ifindex in its info: for a
                // peer link that is the peer's (see check_link_on).
                let slot = anchor_index(&chain, &resolved).map(|i| view.programs[i].clone()).ok_or_else(|| {
                    AttachError::Invalid(format!(
                        "{} is not on {} {hook} (see `netkit query {} {hook}`)",
                        resolved.describe(),
                        dev.name,
                        dev.name
                    ))
                })?;
                if !fits(slot.prog_id, &slot.name) {
                    return Err(AttachError::Invalid(format!(
                        "{r} on {} {hook} is program {} ({}), not a {kind}",
                        dev.name, slot.prog_id, slot.name
                    )));
                }
                vec![slot]
            }
            None => view.programs.iter().filter(|s| fits(s.prog_id, &s.name)).cloned().collect(),
        };
        match found.len() {
            1 => Ok((dev, found.into_iter().next().expect("one"))),
            0 => Err(AttachError::Invalid(format!(
                "no {kind} on {} {hook} (see `netkit query {} {hook}`)",
                dev.name, dev.name
            ))),
            _ => Err(AttachError::Invalid(format!(
                "several {kind}s on {} {hook} ({}); name one with REF (prog:ID or link:ID)",
                dev.name,
                found.iter().map(|s| format!("prog {}", s.prog_id)).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// `netkit link list`: every link this tool pinned, and whether it is defunct.
    pub fn links(&self) -> Vec<LinkView> {
        Layout::unchecked(&self.bpffs)
            .links()
            .into_iter()
            .map(|l| {
                let opened = pins::open_link(&l.path);
                let (link_id, prog_id, ifindex, state, error) = match &opened {
                    // A released link keeps no device: ifindex 0, whatever
                    // its hook (see check_link_on for what a live one reports).
                    Ok((_, info)) => (
                        Some(info.id),
                        Some(info.prog_id),
                        Some(info.ifindex),
                        if info.ifindex == 0 { LinkState::Defunct } else { LinkState::Attached },
                        None,
                    ),
                    Err(e) => (None, None, None, LinkState::Unreadable, Some(e.io_error.to_string())),
                };
                LinkView {
                    name: l.name,
                    netns: l.netns,
                    device: l.device,
                    hook: l.hook,
                    pin: l.path.display().to_string(),
                    link_id,
                    prog_id,
                    prog_name: prog_id.map(prog_name),
                    ifindex,
                    state,
                    error,
                }
            })
            .collect()
    }

    /// `netkit link show REF`: one pinned link (link:ID, pin:PATH or a pin name).
    pub fn link(&self, target: &RefSpec) -> Result<LinkView, AttachError> {
        let all = self.links();
        let matches: Vec<LinkView> = match target {
            RefSpec::Link(id) => all.into_iter().filter(|l| l.link_id == Some(*id)).collect(),
            RefSpec::Pin(p) => all.into_iter().filter(|l| std::path::Path::new(&l.pin) == p).collect(),
            RefSpec::Name(n) => all.into_iter().filter(|l| &l.name == n).collect(),
            RefSpec::Prog(_) => {
                return Err(AttachError::Invalid(
                    "link show takes link:ID, pin:PATH or the name of a pinned link".into(),
                ));
            }
        };
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one")),
            0 => {
                Err(AttachError::Invalid(format!("no link pinned by netkit matches {target} (see `netkit link list`)")))
            }
            _ => Err(AttachError::Invalid(format!(
                "{target} matches several pinned links ({}); use pin:PATH or link:ID",
                matches.iter().map(|l| l.pin.clone()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// `netkit link prune`: unpins the links whose device is gone or that were
    /// detached; returns what was removed.
    pub fn prune(&self) -> Result<Vec<LinkView>, AttachError> {
        let layout = Layout::unchecked(&self.bpffs);
        let mut pruned = Vec::new();
        for l in self.links() {
            if l.state == LinkState::Defunct {
                layout.unpin(&PathBuf::from(&l.pin))?;
                pruned.push(l);
            }
        }
        Ok(pruned)
    }
}
