//! `netkit detach`: a link (detached and unpinned) or a plain program, named
//! or chosen by position.

use super::*;

impl Hooks<'_> {
    /// Detaches a plain program: the one `prog` names, the one at `position`,
    /// or (both given) the named one once the kernel has checked that it sits
    /// at that position.
    pub(super) async fn detach_plain(
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
        let result = with_revision(
            || href.query(),
            expected_revision,
            anchor_ref.as_ref().map(OnChain::of),
            |rev, chain| {
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
                        victim = slot_at(chain, pos, anchor_ref.as_ref().map(OnChain::of)).copied();
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
            },
        );
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
}
