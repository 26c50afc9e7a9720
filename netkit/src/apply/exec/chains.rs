//! The chain steps, one job per hook: links taken off, moved, attached and
//! pinned, programs updated, rules and redirect entries written.

use super::*;

/// The link pinned at `path`, which the plan found there.
pub(super) fn open_on(path: &std::path::Path, key: &LinkKey, link_id: u32) -> Result<Pinned, ApplyError> {
    Pinned::open(path, link_id).map_err(|e| match e {
        // Another writer pinned another link there since the plan.
        LinkError::Replaced { .. } => changed(format!("opening {key}"), e.to_string()),
        e => step_err(format!("opening {key}"), e),
    })
}

/// The program in front of `link_id` on the chain (None: it is first).
pub(super) fn program_before(dev: &Device, hook: Hook, link_id: u32) -> Option<u32> {
    let chain = HookRef::new(dev.ifindex, hook).query().ok()?;
    let i = chain.slots.iter().position(|s| s.link_id == Some(link_id))?;
    (i > 0).then(|| chain.slots[i - 1].prog_id)
}

/// Detaches and unpins a managed link, keeping its program to put back.
pub(super) fn take_off(
    sh: &Shared<'_>,
    dev: &Device,
    hook: Hook,
    key: &LinkKey,
    link_id: u32,
    undo: &mut Vec<Undo>,
) -> Result<OwnedFd, ApplyError> {
    let pinned = open_on(&sh.path(key, hook), key, link_id)?;
    let after = program_before(dev, hook, link_id);
    let off = pinned.take_off(&sh.layout, after).map_err(|e| step_err(format!("detaching {key}"), e))?;
    let keep = off.prog.try_clone().map_err(|e| step_err("keeping a program", e))?;
    undo.push(Undo::Reattach { device: dev.name.clone(), hook, off });
    Ok(keep)
}

/// Removes the pin at `path` when it holds a link on no hook, or the link
/// `stale` the plan found there; keeps the link to pin it again on undo.
pub(super) fn clear_pin(
    sh: &Shared<'_>,
    path: &std::path::Path,
    key: &LinkKey,
    stale: Option<u32>,
    undo: &mut Vec<Undo>,
) -> Result<(), ApplyError> {
    let at = AtPin::open(path).map_err(|e| step_err(format!("opening {key}"), e))?;
    let link = at.clear(&sh.layout, stale).map_err(|e| match e {
        LinkError::OnHook { .. } => changed(
            format!("attaching {key}"),
            format!("{e}: another writer made it after this plan; run apply again, or detach that link"),
        ),
        e => step_err(format!("unpinning {key}"), e),
    })?;
    undo.push(Undo::Repin { path: path.to_path_buf(), link });
    Ok(())
}

/// Removes the pins of managed links that are off their hooks.
pub(super) fn unpin_job(sh: &Shared<'_>, unpins: &[Unpin], undo: &mut Vec<Undo>) -> Result<(), ApplyError> {
    for u in unpins {
        check(Action::Detach.name())?;
        let path = sh.path(&u.key, u.hook);
        clear_pin(sh, &path, &u.key, Some(u.link_id), undo)?;
        after(Action::Detach.name());
        sh.did(Did::Detached { key: &u.key, link_id: u.link_id, unpinned: true });
    }
    Ok(())
}

pub(super) async fn chain_job(
    nl: &Netlink,
    sh: &Shared<'_>,
    c: &ChainWork,
    undo: &mut Vec<Undo>,
) -> Result<(), ApplyError> {
    let hooks = Hooks { nl, bpffs: sh.opts.bpffs.clone() };
    let hook = c.hook;
    let dev = hooks.device(&c.device).await.map_err(|e| step_err(format!("chain {} {hook}", c.device), e))?;

    for r in &c.removals {
        check(Action::Detach.name())?;
        take_off(sh, &dev, hook, &r.key, r.link_id, undo)?;
        after(Action::Detach.name());
        sh.did(Did::Detached { key: &r.key, link_id: r.link_id, unpinned: false });
    }
    // Moving programs leave first: the kernel keeps one instance of a
    // program per chain, and has no call that moves a link.
    let mut moving: HashMap<String, OwnedFd> = HashMap::new();
    for w in &c.wants {
        if let How::Move(cur) = &w.how {
            if sh.failed.load(Ordering::SeqCst) {
                return Ok(());
            }
            check(Action::Move.name())?;
            let prog = take_off(sh, &dev, hook, &w.key, cur.link_id, undo)?;
            // The worst moment of a move: the program is off the chain.
            after(Action::Move.name());
            moving.insert(w.key.name.clone(), prog);
        }
    }

    let mut prev: Option<u32> = None;
    for (i, w) in c.wants.iter().enumerate() {
        if sh.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        match &w.how {
            How::Keep(cur) => {
                let path = sh.path(&w.key, hook);
                if cur.replace {
                    check(Action::Update.name())?;
                    let link = open_on(&path, &w.key, cur.link_id)?;
                    let old =
                        bpf::prog_fd_by_id(cur.prog_id).map_err(|e| step_err(format!("updating {}", w.key), e))?;
                    let new = sh.program(nl, w, HookRef::new(dev.ifindex, hook)).await?;
                    link.link()
                        .update(new.fd.as_fd(), Some(old.as_fd()))
                        .map_err(|e| step_err(format!("updating {}", w.key), e))?;
                    let keep = new.fd.try_clone().map_err(|e| step_err("keeping a program", e))?;
                    undo.push(Undo::Reprogram { link, old, new: keep });
                    after(Action::Update.name());
                    sh.did(Did::Runs {
                        action: Some(Action::Update),
                        want: w,
                        link_id: cur.link_id,
                        prog_id: new.id(),
                    });
                } else {
                    edit(nl, sh, w, cur.prog_id, cur.rules.as_deref(), cur.entries.as_ref(), undo).await?;
                    sh.did(Did::Runs { action: None, want: w, link_id: cur.link_id, prog_id: cur.prog_id });
                }
                prev = Some(cur.link_id);
            }
            How::New { .. } | How::Move(_) => {
                let action = if matches!(w.how, How::New { .. }) { Action::Attach } else { Action::Move };
                if action == Action::Attach {
                    check(Action::Attach.name())?;
                }
                let (loaded, reused) = match (&w.how, moving.remove(&w.key.name)) {
                    (How::Move(cur), Some(fd)) if !cur.replace => {
                        let (info, _) =
                            bpf::prog_info(fd.as_fd()).map_err(|e| step_err(format!("moving {}", w.key), e))?;
                        (Loaded { fd, info, ebpf: None }, Some(cur))
                    }
                    // The program of the link off its hook, which still
                    // holds it.
                    (How::New { reuse: Some(cur), .. }, _) => {
                        let what = || format!("attaching {} again", w.key);
                        let fd = bpf::prog_fd_by_id(cur.prog_id).map_err(|e| step_err(what(), e))?;
                        let (info, _) = bpf::prog_info(fd.as_fd()).map_err(|e| step_err(what(), e))?;
                        (Loaded { fd, info, ebpf: None }, Some(cur))
                    }
                    _ => (sh.program(nl, w, HookRef::new(dev.ifindex, hook)).await?, None),
                };
                let position = match prev {
                    Some(id) => Position::After(RefSpec::Link(id)),
                    None => match c.wants[i + 1..].iter().find_map(|o| match &o.how {
                        How::Keep(k) => Some(k.link_id),
                        _ => None,
                    }) {
                        Some(id) => Position::Before(RefSpec::Link(id)),
                        None => Position::Last,
                    },
                };
                let path = sh.path(&w.key, hook);
                // A pin left by a link off its hook (detached by another
                // tool, its device deleted, an apply killed) does not hold
                // the name; one planned as stale goes even when its link is
                // on another hook.
                let stale = match &w.how {
                    How::New { stale, .. } => *stale,
                    _ => None,
                };
                if std::fs::symlink_metadata(&path).is_ok() {
                    clear_pin(sh, &path, &w.key, stale, undo)?;
                }
                let (link, _) = hooks
                    .attach_link(&dev, hook, &loaded, &position, None)
                    .await
                    .map_err(|e| step_err(format!("attaching {}", w.key), e))?;
                let link_id = link.id();
                if action == Action::Attach {
                    // Attached, not pinned: the link lives as long as this process.
                    after(Action::Attach.name());
                }
                check("pin").inspect_err(|_| {
                    let _ = link.detach();
                })?;
                // A link that cannot be pinned is detached again.
                let pinned = link.pin(&sh.layout, path).map_err(|(e, _)| step_err(format!("pinning {}", w.key), e))?;
                undo.push(Undo::Detach(pinned));
                after("pin");
                if let Some(cur) = reused {
                    edit(nl, sh, w, cur.prog_id, cur.rules.as_deref(), cur.entries.as_ref(), undo).await?;
                }
                sh.did(Did::Runs { action: Some(action), want: w, link_id, prog_id: loaded.id() });
                prev = Some(link_id);
            }
        }
    }
    if let Some(digest) = &c.digest {
        sh.prove(dev.ifindex, c, digest);
    }
    Ok(())
}

/// Rewrites a live program's rules or entries.
pub(super) async fn edit(
    nl: &Netlink,
    sh: &Shared<'_>,
    w: &Want,
    prog_id: u32,
    rules: Option<&[Rule]>,
    entries: Option<&BTreeMap<IpAddr, String>>,
    undo: &mut Vec<Undo>,
) -> Result<(), ApplyError> {
    if let Some(rules) = rules {
        check(Action::Edit.name())?;
        let was = write_rules(prog_id, rules)?;
        undo.push(Undo::Rules { prog_id, rules: was });
        after(Action::Edit.name());
        sh.did(Did::Edited { key: &w.key, prog_id, what: "rules", count: rules.len() });
    }
    if let Some(entries) = entries {
        check(Action::Edit.name())?;
        let was = write_entries(nl, prog_id, entries).await?;
        undo.push(Undo::Entries { prog_id, entries: was });
        after(Action::Edit.name());
        sh.did(Did::Edited { key: &w.key, prog_id, what: "redirect entries", count: entries.len() });
    }
    Ok(())
}

pub(super) fn write_rules(prog_id: u32, rules: &[Rule]) -> Result<Vec<Rule>, ApplyError> {
    let fw = Firewall::open(prog_id).map_err(|e| step_err(format!("opening firewall program {prog_id}"), e))?;
    let old = fw.list().map_err(|e| step_err("reading the rules", e))?;
    let mut was = Vec::new();
    for r in old.into_iter().filter(|r| r.id != 0) {
        if let Ok(rule) = fw.delete(r.id) {
            was.push(rule);
        }
    }
    for r in rules {
        fw.add(r).map_err(|e| step_err(format!("adding rule `{r}`"), e))?;
    }
    Ok(was)
}

pub(super) async fn write_entries(
    nl: &Netlink,
    prog_id: u32,
    entries: &BTreeMap<IpAddr, String>,
) -> Result<Vec<(IpAddr, u32)>, ApplyError> {
    let mut want = Vec::new();
    for (ip, pair) in entries {
        let l = nl
            .link_by_name(pair)?
            .ok_or_else(|| changed(format!("redirect entry {ip}"), format!("no device {pair}")))?;
        want.push((*ip, l.index));
    }
    set_entries(prog_id, &want)
}

pub(super) fn set_entries(prog_id: u32, want: &[(IpAddr, u32)]) -> Result<Vec<(IpAddr, u32)>, ApplyError> {
    let r = Redirect::open(prog_id).map_err(|e| step_err(format!("opening redirect program {prog_id}"), e))?;
    let was: Vec<(IpAddr, u32)> =
        r.list().map_err(|e| step_err("reading the entries", e))?.into_iter().map(|e| (e.ip, e.ifindex)).collect();
    for (ip, _) in &was {
        if !want.iter().any(|(w, _)| w == ip) {
            r.delete(*ip).map_err(|e| step_err(format!("removing entry {ip}"), e))?;
        }
    }
    for (ip, ifindex) in want {
        r.add(*ip, *ifindex).map_err(|e| step_err(format!("adding entry {ip}"), e))?;
    }
    Ok(was)
}
