//! How each step is taken back, newest first, when a later one fails.

use super::*;

/// How to take back one step.
pub(super) enum Undo {
    /// A pair was created: delete it.
    DeletePair(String),
    /// A pair's peer was moved: move it back (and up, if it was).
    MovePeer { name: String, to: crate::os::netns::NetnsRef, up: bool },
    /// A pair's live attributes changed: set them back.
    ChangeBack {
        name: String,
        change: PairChange,
        primary: (Option<u32>, Option<bool>),
        peer: (Option<u32>, Option<bool>),
    },
    /// A pair was deleted (or replaced by `new`): create it again with its programs.
    Restore { new: Option<String>, old: PairSpec, programs: Vec<Captured> },
    /// A link was attached and pinned: detach it.
    Detach(Pinned),
    /// The pin of a link off its hook was removed: pin it again.
    Repin { path: PathBuf, link: Link },
    /// A link's program was replaced: put the old one back.
    Reprogram { link: Pinned, old: OwnedFd, new: OwnedFd },
    /// A link was taken off its hook: attach its program again where it
    /// was, pinned where it was.
    Reattach { device: String, hook: Hook, off: TakenOff },
    /// A firewall's rules changed: write these back.
    Rules { prog_id: u32, rules: Vec<Rule> },
    /// A redirect table changed: write this back.
    Entries { prog_id: u32, entries: Vec<(IpAddr, u32)> },
}

/// A program on a pair's hook, captured before the pair goes away.
pub(super) struct Captured {
    pub(super) hook: Hook,
    pub(super) prog: OwnedFd,
    /// Where its link was pinned (managed links).
    pub(super) pin: Option<PathBuf>,
}

/// Attaches a program this run kept (taken off its hook, or captured before
/// its pair went away) again as a link at `position`, pinned at `pin` in
/// place of whatever that pin holds now. Without a pin the link is released
/// when this returns, and the kernel detaches it: a captured program that
/// was on no managed link is not put back to stay (a known gap).
pub(super) async fn attach_again(
    nl: &Netlink,
    sh: &Shared<'_>,
    device: &str,
    hook: Hook,
    prog: OwnedFd,
    position: &Position,
    pin: Option<PathBuf>,
) -> Result<(), AttachError> {
    let hooks = Hooks { nl, bpffs: sh.opts.bpffs.clone() };
    let dev = hooks.device(device).await?;
    let (info, _) = bpf::prog_info(prog.as_fd())?;
    let loaded = Loaded { fd: prog, info, ebpf: None };
    let (link, _) = hooks.attach_link(&dev, hook, &loaded, position, None).await?;
    if let Some(path) = pin {
        let _ = sh.layout.unpin(&path);
        link.pin(&sh.layout, path).map_err(|(e, _)| AttachError::PinFailed(e))?;
    }
    Ok(())
}

pub(super) async fn undo_one(nl: &Netlink, sh: &Shared<'_>, u: Undo) -> Result<(), ApplyError> {
    match u {
        Undo::DeletePair(name) => {
            nl.delete_pair(&name).await.map_err(|e| step_err(format!("removing pair {name} again"), e))?;
        }
        Undo::MovePeer { name, to, up } => {
            let what = format!("moving the peer of {name} back");
            nl.move_peer(&name, &to).await.map_err(|e| step_err(&what, e))?;
            if up {
                nl.set_mtu_state(&name, (None, None), (None, Some(true))).await.map_err(|e| step_err(&what, e))?;
            }
        }
        Undo::ChangeBack { name, change, primary, peer } => {
            let what = format!("restoring pair {name}");
            if !change.is_empty() {
                nl.set(&name, &change).await.map_err(|e| step_err(&what, e))?;
            }
            nl.set_mtu_state(&name, primary, peer).await.map_err(|e| step_err(&what, e))?;
        }
        Undo::Restore { new, old, programs } => {
            let what = format!("restoring pair {}", old.name);
            if let Some(new) = new {
                nl.delete_pair(&new).await.map_err(|e| step_err(&what, e))?;
            }
            nl.add_pair(&old).await.map_err(|e| step_err(&what, e))?;
            for c in programs {
                attach_again(nl, sh, &old.name, c.hook, c.prog, &Position::Last, c.pin)
                    .await
                    .map_err(|e| step_err(&what, e))?;
            }
        }
        Undo::Detach(pinned) => {
            let what = format!("detaching {} again", pinned.path().display());
            pinned.detach(&sh.layout).map_err(|e| step_err(what, e))?;
        }
        Undo::Repin { path, link } => {
            link.repin(&sh.layout, &path).map_err(|e| step_err(format!("pinning {} again", path.display()), e))?;
        }
        Undo::Reprogram { link, old, new } => {
            link.link()
                .update(old.as_fd(), Some(new.as_fd()))
                .map_err(|e| step_err("putting a link's program back", e))?;
        }
        Undo::Reattach { device, hook, off } => {
            let what = format!("attaching {device} {hook} {} again", off.path.display());
            let position = match off.after {
                Some(id) => Position::After(RefSpec::Prog(id)),
                None => Position::First,
            };
            attach_again(nl, sh, &device, hook, off.prog, &position, Some(off.path))
                .await
                .map_err(|e| step_err(&what, e))?;
        }
        Undo::Rules { prog_id, rules } => {
            write_rules(prog_id, &rules)?;
        }
        Undo::Entries { prog_id, entries } => {
            set_entries(prog_id, &entries)?;
        }
    }
    Ok(())
}
