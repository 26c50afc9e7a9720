//! `netkit attach` (and the attach half of `netkit run`): a link, pinned, or
//! a plain attachment, at a position resolved against a fresh revision.

use super::*;

/// Where and how a program goes on a chain.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Where in the chain.
    pub position: Position,
    /// Fail unless the hook's chain is still at this revision (none: read it and retry on races).
    pub expected_revision: Option<u64>,
    /// Plain attachment (BPF_PROG_ATTACH) instead of a link.
    pub plain: bool,
    /// Plain only: replace this program's slot.
    pub replace: Option<RefSpec>,
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
    /// Where and how it goes on the chain.
    pub placement: Placement,
    /// Pin name (links only); default `<program>-<link id>`.
    pub pin: Option<String>,
    /// How to load it, when it is not in the kernel yet.
    pub load: LoadOptions,
}

impl Hooks<'_> {
    /// Everything about an attach that can be checked before the kernel is
    /// asked for anything.
    pub(super) fn check_request(&self, req: &AttachRequest) -> Result<(), AttachError> {
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
        let info = bpf::link_info(link.as_fd())?;
        let name = req.pin.clone().unwrap_or_else(|| format!("{}-{}", loaded.info.name(), info.id));
        let path = match layout.check_free(&dev.netns, &dev.name, hook, &name) {
            Ok(p) => p,
            // Taken since the early check: the link is released when dropped.
            Err(e) => return Err(e.into()),
        };
        // On failure the link is released when dropped.
        layout.pin(&link, &path).map_err(AttachError::PinFailed)?;
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
                if resolved.is_link() {
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
            with_revision(
                || href.query(),
                req.expected_revision,
                anchor_ref.as_ref().map(OnChain::of),
                |rev, _| href.attach_plain(prog, &anchor, rev),
            )
            .map(|()| None)
        } else {
            with_revision(
                || href.query(),
                req.expected_revision,
                anchor_ref.as_ref().map(OnChain::of),
                |rev, _| href.attach_link(prog, &anchor, rev),
            )
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
}
