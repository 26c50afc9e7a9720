//! The pair steps: create, change, recreate and delete, each with its undo.

use super::*;

pub(super) async fn pair_steps(
    nl: &Netlink,
    sh: &Shared<'_>,
    p: &PairWork,
    undo: &mut Vec<Undo>,
) -> Result<(), ApplyError> {
    match p {
        PairWork::Create(spec) => {
            check(Action::Create.name())?;
            let view = nl.add_pair(spec).await.map_err(|e| step_err(format!("creating pair {}", spec.name), e))?;
            undo.push(Undo::DeletePair(spec.name.clone()));
            after(Action::Create.name());
            sh.did(Did::Made { action: Action::Create, name: &spec.name, ifindex: view.ifindex });
        }
        PairWork::Change { name, change, mtu, up, peer_move } => {
            check(Action::Change.name())?;
            let what = format!("changing pair {name}");
            if let Some(m) = peer_move {
                nl.move_peer(name, &m.to).await.map_err(|e| step_err(&what, e))?;
                undo.push(Undo::MovePeer { name: name.clone(), to: m.from.clone(), up: m.was_up });
            }
            let ends = nl.ends(name, nl.walks()).await?.ok_or_else(|| changed(&what, "the pair is gone"))?;
            let nk = ends.primary.netkit.clone().unwrap_or_default().settings;
            if !change.is_empty() {
                nl.set(name, change).await.map_err(|e| step_err(&what, e))?;
            }
            let back = PairChange {
                policy: change.policy.and(nk.policy),
                peer_policy: change.peer_policy.and(nk.peer_policy),
                this: crate::netlink::device::current_of(&ends.primary, &change.this),
                peer: ends
                    .peer
                    .as_ref()
                    .map(|p| crate::netlink::device::current_of(p, &change.peer))
                    .unwrap_or_default(),
            };
            let old_primary = (mtu.and(ends.primary.mtu), up.then_some(ends.primary.up).filter(|u| !u));
            let old_peer = match &ends.peer {
                Some(p) => (mtu.and(p.mtu), up.then_some(p.up).filter(|u| !u)),
                None => (None, None),
            };
            undo.push(Undo::ChangeBack { name: name.clone(), change: back, primary: old_primary, peer: old_peer });
            if mtu.is_some() || *up {
                let want = (*mtu, up.then_some(true));
                let peer = if ends.peer.is_some() { want } else { (None, None) };
                nl.set_mtu_state(name, want, peer).await.map_err(|e| step_err(&what, e))?;
            }
            after(Action::Change.name());
            sh.did(Did::Changed { name });
        }
        PairWork::Recreate { spec, old } => {
            let (spec, old) = (spec.as_ref(), old.as_ref());
            check(Action::Recreate.name())?;
            let what = format!("recreating pair {}", spec.name);
            let programs = capture(nl, sh, &spec.name).await?;
            nl.delete_pair(&spec.name).await.map_err(|e| step_err(&what, e))?;
            let created = nl.add_pair(spec).await;
            // Undone either way: the old pair comes back, replacing the new
            // one if it was made.
            let new = created.as_ref().ok().map(|_| spec.name.clone());
            undo.push(Undo::Restore { new, old: old.clone(), programs });
            let view = created.map_err(|e| step_err(&what, e))?;
            after(Action::Recreate.name());
            sh.did(Did::Made { action: Action::Recreate, name: &spec.name, ifindex: view.ifindex });
        }
    }
    Ok(())
}

/// The programs on a pair's hooks, in order, with the pins of managed links.
pub(super) async fn capture(nl: &Netlink, sh: &Shared<'_>, name: &str) -> Result<Vec<Captured>, ApplyError> {
    let Some(link) = nl.link_by_name(name)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    // Pins as they were before this apply (the live record already holds
    // its intentions).
    let owned = &sh.before;
    for hook in [Hook::Ingress, Hook::Egress, Hook::Primary, Hook::Peer] {
        let Ok(chain) = HookRef::new(link.index, hook).query() else { continue };
        for slot in chain.slots {
            let prog = bpf::prog_fd_by_id(slot.prog_id)
                .map_err(|e| step_err(format!("keeping program {}", slot.prog_id), e))?;
            // The pins are the truth: the record's cached link id may be
            // one a killed run never confirmed.
            let pin = slot
                .link_id
                .and_then(|id| {
                    owned
                        .links
                        .keys()
                        .filter(|k| k.device == name && k.hook == hook.name())
                        .find(|k| pins::open_link(&sh.path(k, hook)).is_ok_and(|(_, info)| info.id == id))
                })
                .map(|k| sh.path(k, hook));
            out.push(Captured { hook, prog, pin });
        }
    }
    Ok(out)
}

pub(super) async fn delete_steps(
    nl: &Netlink,
    sh: &Shared<'_>,
    d: &PairDeletion,
    undo: &mut Vec<Undo>,
) -> Result<(), ApplyError> {
    check(Action::Delete.name())?;
    let programs = capture(nl, sh, &d.name).await?;
    nl.delete_pair(&d.name).await.map_err(|e| step_err(format!("deleting pair {}", d.name), e))?;
    after(Action::Delete.name());
    for (hook, key, _) in &d.links {
        let _ = sh.layout.unpin(&sh.path(key, *hook));
    }
    undo.push(Undo::Restore { new: None, old: d.restore.clone(), programs });
    sh.did(Did::Deleted { deletion: d });
    Ok(())
}
