//! `netkit attach` (and the attach half of `netkit run`): a link, pinned, or
//! a plain attachment, at a position resolved against a fresh revision.

use super::*;
use crate::hooks::link::Link;

/// How a program goes on a chain.
#[derive(Debug, Clone)]
pub enum Attachment {
    /// Owned by a link (BPF_LINK_CREATE) at a position. `attach` pins the
    /// link under `pin` (default `<program>-<link id>`) so that it outlives
    /// the command; `attach_link` leaves pinning to the caller.
    Link {
        /// Where in the chain.
        position: Position,
        /// The pin's name on the hook.
        pin: Option<String>,
    },
    /// Plain (BPF_PROG_ATTACH) at a position; it stays until detached.
    Plain(Position),
    /// Plain, in the slot of the plain program named (BPF_F_REPLACE); a
    /// link's program is replaced with an update instead.
    Replace(PlainRef),
}

/// A plain program on a hook, by id or by pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainRef {
    /// `prog:ID`.
    Prog(u32),
    /// `pin:PATH` of a pinned program.
    Pin(PathBuf),
}

impl PlainRef {
    fn spec(&self) -> RefSpec {
        match self {
            Self::Prog(id) => RefSpec::Prog(*id),
            Self::Pin(p) => RefSpec::Pin(p.clone()),
        }
    }
}

/// Where the attach goes, with the REFs it names opened.
enum Spot<'a> {
    /// At a position, with the --before/--after REF resolved.
    At(&'a Position, Option<Resolved>),
    /// In the slot of this plain program.
    Replacing(Resolved),
}

/// An attach request, fully described before anything is loaded.
#[derive(Debug, Clone)]
pub struct AttachRequest {
    /// The device, by name in the current namespace.
    pub device: String,
    /// The hook on that device.
    pub hook: Hook,
    /// The program to attach.
    pub prog: ProgSpec,
    /// How and where it goes on the chain.
    pub attachment: Attachment,
    /// Fail unless the hook's chain is still at this revision (none: read it
    /// and retry on races).
    pub expected_revision: Option<u64>,
    /// How to load it, when it is not in the kernel yet.
    pub load: LoadOptions,
}

impl Hooks<'_> {
    /// Everything about an attach that can be checked before the kernel is
    /// asked for anything.
    pub(super) fn check_request(&self, req: &AttachRequest) -> Result<(), AttachError> {
        if let Attachment::Link { pin: Some(name), .. } = &req.attachment {
            pins::check_name(name)?;
        }
        Ok(())
    }

    /// `netkit attach`: a pinned link (or a plain attachment with `plain`).
    pub async fn attach(&self, req: &AttachRequest) -> Result<Outcome, AttachError> {
        self.check_request(req)?;
        let dev = self.device(&req.device).await?;
        let hook = dev.hook(req.hook);
        programs::check_hook(&req.prog, hook)?;
        let Attachment::Link { position, pin } = &req.attachment else {
            let loaded = programs::load(&req.prog, &req.load)?;
            let action = self.attach_plain(&dev, hook, &loaded, &req.attachment, req.expected_revision).await?;
            return Ok(Self::outcome(&dev, hook, Some(loaded.id()), None, None, action));
        };
        let layout = self.layout()?;
        if let Some(name) = pin {
            layout.check_free(&dev.netns, &dev.name, hook, name)?;
        }
        let loaded = programs::load(&req.prog, &req.load)?;
        let (link, outcome_action) = self.attach_link(&dev, hook, &loaded, position, req.expected_revision).await?;
        let name = pin.clone().unwrap_or_else(|| format!("{}-{}", loaded.info.name(), link.id()));
        // Taken since the early check: the link is released when dropped.
        let (path, defunct) = layout.check_free(&dev.netns, &dev.name, hook, &name)?;
        let mut outcome_action = outcome_action;
        if let Some(old) = defunct {
            layout.unpin_defunct(&path, &name, old)?;
            outcome_action += &format!("; the name held defunct link {old} (on no hook), whose pin was removed");
        }
        // On failure the link is detached again.
        let pinned = link.pin(&layout, path).map_err(|(e, _)| AttachError::PinFailed(e))?;
        Ok(Self::outcome(
            &dev,
            hook,
            Some(loaded.id()),
            Some(pinned.link().id()),
            Some(pinned.path().display().to_string()),
            outcome_action,
        ))
    }

    /// Attaches an already loaded program as a link at `position`, resolved
    /// against a fresh revision; the link comes back unpinned (it lives as
    /// long as its fd unless the caller pins it), with what happened in words.
    pub async fn attach_link(
        &self,
        dev: &Device,
        hook: Hook,
        loaded: &Loaded,
        position: &Position,
        expected_revision: Option<u64>,
    ) -> Result<(Link, String), AttachError> {
        let href = HookRef::new(dev.ifindex, hook);
        let spot = self.spot_at(dev, hook, position)?;
        let prog = loaded.fd.as_fd();
        let (fd, action) = self
            .place(dev, hook, loaded, &spot, expected_revision, Op::LinkCreate, |anchor, rev| {
                href.attach_link(prog, anchor, rev)
            })
            .await?;
        Ok((Link::from_fd(fd)?, action))
    }

    /// Attaches an already loaded program plainly (`attachment` is not a link).
    async fn attach_plain(
        &self,
        dev: &Device,
        hook: Hook,
        loaded: &Loaded,
        attachment: &Attachment,
        expected_revision: Option<u64>,
    ) -> Result<String, AttachError> {
        let href = HookRef::new(dev.ifindex, hook);
        let spot = match attachment {
            Attachment::Link { position, .. } | Attachment::Plain(position) => self.spot_at(dev, hook, position)?,
            Attachment::Replace(r) => self.spot_replacing(dev, hook, r)?,
        };
        let prog = loaded.fd.as_fd();
        let ((), action) = self
            .place(dev, hook, loaded, &spot, expected_revision, Op::ProgAttach, |anchor, rev| {
                href.attach_plain(prog, anchor, rev)
            })
            .await?;
        Ok(action)
    }

    /// A position, with its --before/--after REF opened.
    fn spot_at<'p>(&self, dev: &Device, hook: Hook, position: &'p Position) -> Result<Spot<'p>, AttachError> {
        let anchor_ref = match position {
            Position::Before(r) | Position::After(r) => Some(self.resolve_on(dev, hook, r)?),
            _ => None,
        };
        Ok(Spot::At(position, anchor_ref))
    }

    /// The slot of the plain program `r` names, opened.
    fn spot_replacing(&self, dev: &Device, hook: Hook, r: &PlainRef) -> Result<Spot<'static>, AttachError> {
        let resolved = self.resolve_on(dev, hook, &r.spec())?;
        if resolved.is_link() {
            let what = r.spec();
            return Err(AttachError::Invalid(format!("--replace {what}: that is a link, not a plain program")));
        }
        Ok(Spot::Replacing(resolved))
    }

    /// Opens what `spec` names, with NAME looked up on DEV HOOK.
    fn resolve_on(&self, dev: &Device, hook: Hook, spec: &RefSpec) -> Result<Resolved, RefError> {
        let layout = Layout::unchecked(&self.bpffs);
        refs::resolve(spec, &Scope { layout: &layout, netns: &dev.netns, device: &dev.name, hook })
    }

    /// Makes the attach call `op` at `spot` against a fresh revision,
    /// retrying races, and explains a refusal.
    #[allow(clippy::too_many_arguments)]
    async fn place<T>(
        &self,
        dev: &Device,
        hook: Hook,
        loaded: &Loaded,
        spot: &Spot<'_>,
        expected_revision: Option<u64>,
        call: Op,
        mut op: impl FnMut(&Anchor<'_>, Option<u64>) -> Result<T, MprogError>,
    ) -> Result<(T, String), AttachError> {
        let (anchor, where_, anchor_ref) = match spot {
            Spot::At(p, a) => (anchor_for(p, a.as_ref()), position_text(p, a.as_ref()), a.as_ref()),
            Spot::Replacing(r) => (Anchor::Replace(r.fd.as_fd()), format!("replacing {}", r.describe()), None),
        };
        let href = HookRef::new(dev.ifindex, hook);
        let result =
            with_revision(|| href.query(), expected_revision, anchor_ref.map(OnChain::of), |rev, _| op(&anchor, rev));
        match result {
            Ok(v) => {
                let what = if call == Op::LinkCreate { "attached (link)" } else { "attached (plain)" };
                Ok((v, format!("{what} {} {where_}", loaded.describe())))
            }
            Err((err, expected, now)) => {
                let ctx = Context {
                    prog: Some(loaded.describe()),
                    prog_id: Some(loaded.id()),
                    anchor: Some(where_),
                    replacing: matches!(spot, Spot::Replacing(_)),
                    expected_revision: expected,
                    now,
                    ..Default::default()
                };
                Err(self.explain(MprogError { op: call, ..err }, dev, hook, ctx).await)
            }
        }
    }
}
