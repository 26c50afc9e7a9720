//! `netkit detach`: a link (detached and unpinned) or a plain program, named
//! or chosen by position.

use super::*;

/// A detach request: what leaves DEV HOOK.
#[derive(Debug, Clone)]
pub struct DetachRequest {
    /// The device, by name in the current namespace.
    pub device: String,
    /// The hook on that device.
    pub hook: Hook,
    /// What to remove.
    pub target: DetachTarget,
    /// Fail unless the hook's chain is still at this revision.
    pub expected_revision: Option<u64>,
    /// Detach a link another tool owns.
    pub force: bool,
}

/// What a detach removes.
#[derive(Debug, Clone)]
pub enum DetachTarget {
    /// A link (detached, and unpinned when this tool pinned it) or a plain
    /// program (`prog:ID`).
    Ref(RefSpec),
    /// The plain program at this position.
    At(Position),
    /// The plain program REF names, once the kernel has checked that it sits
    /// at this position.
    RefAt(RefSpec, Position),
}

/// The plain program a detach removes.
#[derive(Clone, Copy)]
enum Victim<'a> {
    /// This one, optionally checked against a position.
    Prog(&'a Resolved, Option<&'a Position>),
    /// Whichever sits at this position.
    At(&'a Position),
}

impl Hooks<'_> {
    /// Detaches a plain program: the one named, the one at a position, or the
    /// named one once the kernel has checked that it sits at the position.
    async fn detach_plain(
        &self,
        dev: &Device,
        hook: Hook,
        what: Victim<'_>,
        expected_revision: Option<u64>,
        scope: &Scope<'_>,
    ) -> Result<Outcome, AttachError> {
        let (prog, position) = match what {
            Victim::Prog(r, p) => (Some(r), p),
            Victim::At(p) => (None, Some(p)),
        };
        let anchor_ref = match position {
            Some(Position::Before(r) | Position::After(r)) => Some(refs::resolve(r, scope)?),
            _ => None,
        };
        let anchor = position.map(|p| anchor_for(p, anchor_ref.as_ref()));
        let where_ = position.map(|p| position_text(p, anchor_ref.as_ref()));
        let href = HookRef::new(dev.ifindex, hook);
        // The program removed: named, or read off the chain the revision belongs to.
        let mut victim: Option<Slot> = prog.map(|p| Slot { prog_id: p.id, link_id: None });
        let result = with_revision(
            || href.query(),
            expected_revision,
            anchor_ref.as_ref().map(OnChain::of),
            |rev, chain| {
                let (fd, slot) = match what {
                    Victim::Prog(p, _) => (Some(p.fd.as_fd()), Slot { prog_id: p.id, link_id: None }),
                    Victim::At(pos) => {
                        let read;
                        let chain = match chain {
                            Some(c) => c,
                            None => {
                                read = href.query()?;
                                &read
                            }
                        };
                        victim = slot_at(chain, pos, anchor_ref.as_ref().map(OnChain::of)).copied();
                        match victim {
                            None => return Err(MprogError::found(Op::ProgDetach, Refusal::NothingThere)),
                            Some(Slot { link_id: Some(link), .. }) => {
                                return Err(MprogError::found(Op::ProgDetach, Refusal::OwnedBy(link)));
                            }
                            Some(slot) => (None, slot),
                        }
                    }
                };
                href.detach_plain(fd, anchor.as_ref(), rev)?;
                Ok(slot)
            },
        );
        let label = victim.as_ref().map(|s| prog_label(s.prog_id));
        match result {
            Ok(removed) => {
                let label = prog_label(removed.prog_id);
                let action = match (&where_, prog) {
                    (Some(w), None) => format!("detached {label} (plain), which was {w}"),
                    _ => format!("detached {label} (plain)"),
                };
                Ok(Self::outcome(dev, hook, None, None, None, action))
            }
            Err((err, expected, now)) => {
                let err = MprogError { op: Op::ProgDetach, ..err };
                let now = now.or_else(|| href.query().ok());
                let anchor_missing = victim.is_none()
                    && anchor_ref.as_ref().is_some_and(|a| !now.as_ref().is_some_and(|c| anchor_present(c, a)));
                let ctx = Context {
                    prog: label,
                    prog_id: victim.as_ref().map(|s| s.prog_id),
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

    /// `detach DEV HOOK NAME` where DEV is gone: removes the pin of NAME when
    /// the link it holds is defunct; otherwise `gone`, the lookup's error.
    fn unpin_defunct_of_gone(&self, req: &DetachRequest, gone: AttachError) -> Result<Outcome, AttachError> {
        let DetachTarget::Ref(RefSpec::Name(name)) = &req.target else { return Err(gone) };
        let layout = Layout::unchecked(&self.bpffs);
        let dev = Device { name: req.device.clone(), ifindex: 0, netns: crate::os::netns::current_name(), veth: false };
        // A gone device's kind is unknown: on a veth, peer and primary were
        // pinned under its tcx hooks.
        let hook = [req.hook, req.hook.on_veth()]
            .into_iter()
            .find(|h| layout.link_path(&dev.netns, &dev.name, *h, name).exists())
            .unwrap_or(req.hook);
        let path = layout.link_path(&dev.netns, &dev.name, hook, name);
        match link::AtPin::open(&path) {
            Ok(link::AtPin::Defunct(defunct)) => {
                let (id, prog_id) = (defunct.link().id(), defunct.link().prog_id());
                defunct.unpin(&layout)?;
                let action = format!(
                    "link {id} ({}) was already defunct (its device is gone); removed its pin {}",
                    prog_label(prog_id),
                    path.display()
                );
                Ok(Self::outcome(&dev, hook, None, Some(id), Some(path.display().to_string()), action))
            }
            _ => Err(gone),
        }
    }

    /// `netkit detach`: a link (detached and unpinned) or a plain program.
    pub async fn detach(&self, req: &DetachRequest) -> Result<Outcome, AttachError> {
        let DetachRequest { hook, expected_revision, force, .. } = *req;
        let dev = match self.device(&req.device).await {
            Ok(dev) => dev,
            // The device is gone and its link with it (defunct, on no hook):
            // the pin is all that is left to remove.
            Err(e) => return self.unpin_defunct_of_gone(req, e),
        };
        let hook = dev.hook(hook);
        let layout = Layout::unchecked(&self.bpffs);
        let scope = Scope { layout: &layout, netns: &dev.netns, device: &dev.name, hook };
        let (target, position) = match &req.target {
            DetachTarget::At(p) => {
                return self.detach_plain(&dev, hook, Victim::At(p), expected_revision, &scope).await;
            }
            DetachTarget::Ref(r) => (r, None),
            DetachTarget::RefAt(r, p) => (r, Some(p)),
        };
        let resolved = refs::resolve(target, &scope)?;
        let Some(info) = resolved.link_info else {
            let victim = Victim::Prog(&resolved, position);
            return self.detach_plain(&dev, hook, victim, expected_revision, &scope).await;
        };
        if position.is_some() {
            return Err(AttachError::Invalid(format!(
                "{}: a link is detached by naming it alone; --first, --last, --before and --after select plain programs",
                resolved.describe()
            )));
        }
        let href = HookRef::new(dev.ifindex, hook);
        self.check_link_on(&resolved, &info, &dev, hook, Op::LinkDetach).await?;
        let ours = self.guard(&resolved, force)?;
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
                let err = MprogError::found(Op::LinkDetach, Refusal::Moved);
                let ctx = Context { expected_revision: Some(rev), now: Some(chain), ..Default::default() };
                return Err(self.explain(err, &dev, hook, ctx).await);
            }
        }
        let label = format!("link {} ({})", info.id, prog_label(info.prog_id));
        let action = if info.ifindex == 0 {
            format!("{label} was already defunct")
        } else {
            if let Err(err) = link::Link::from_parts(resolved.fd, info).detach() {
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
}
