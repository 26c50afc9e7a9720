//! `netkit export`: the node as a spec. Every netkit pair whose primary is
//! in this namespace is written with the attributes it has, whoever made
//! it (a veth pair when apply made it); every chain with programs is written in order: programs apply owns by
//! name and source, bundled programs on links pinned under this tool's
//! layout (`netkit attach --pin NAME`) by their pin's name, program and
//! settings read back from the running program, programs on such links
//! that a function of an object named with `--object PATH` still gives,
//! unchanged, as `file:PATH`, and the others as `ref` entries apply leaves
//! alone. Applied with `--adopt`, it takes the node
//! over without touching it; what apply already owns applies as a no-op.

use std::collections::BTreeMap;

use super::{
    ApplyError, Engine,
    node::Node,
    spec::{ChainDoc, EndDoc, EntryDoc, PairDoc, SpecDoc, unplaced},
    state::LinkKey,
};
use crate::{
    mprog::{Hook, HookRef},
    netlink::{
        device::Ends,
        links::{Link, Mode, PairKind, Role, Scrub},
    },
    os::netns,
    pins::{self, Layout},
};

pub(super) async fn export(
    engine: &Engine<'_>,
    devices: &[String],
    objects: &[std::path::PathBuf],
) -> Result<SpecDoc, ApplyError> {
    let owned = engine.record.load()?;
    let layout = Layout::unchecked(&engine.bpffs);
    let here = netns::current_name();
    let mut doc = SpecDoc::default();

    let links: Vec<Link> = if devices.is_empty() {
        engine.nl.links()?
    } else {
        let mut out = Vec::new();
        for d in devices {
            match engine.nl.link_by_name(d)? {
                Some(l) => out.push(l),
                None => {
                    return Err(ApplyError::Blocked(vec![format!("no device {d} in network namespace {here}")]));
                }
            }
        }
        out
    };
    // Pairs, but the CNI plugin's: its pods' pairs are its own. Both ends
    // of a veth pair are alike, and any veth may be another tool's: one is
    // written when apply made it.
    let node = super::node::Kernel::new(engine.nl);
    let cni = node.cni_links(&layout);
    for link in &links {
        let pair = match PairKind::of(link) {
            Some(PairKind::Netkit) => matches!(link.role(), Some(Role::Primary | Role::Single)),
            Some(PairKind::Veth) => owned.pairs.get(&link.name).is_some_and(|p| p.ifindex == Some(link.index)),
            None => false,
        };
        if pair
            && super::node::cni_link_on(&node, &cni, link).is_none()
            && let Some(ends) = node.ends(&link.name).await?
        {
            doc.pairs.push(pair_doc(&ends));
        }
    }
    // Managed links by id: the links pinned at apply's paths for the names
    // it records (as the planner has it), and how they were made. One off
    // its hook is on no chain, so no entry names it.
    let mut managed: BTreeMap<u32, (&LinkKey, &super::state::OwnedLink)> = BTreeMap::new();
    for (key, rec) in &owned.links {
        let Ok(hook) = key.hook.parse::<Hook>() else { continue };
        let path = layout.link_path(&here, &key.device, hook, &key.name);
        if let Ok((_, info)) = pins::open_link(&path)
            && info.ifindex != 0
        {
            managed.insert(info.id, (key, rec));
        }
    }
    // Fingerprints by program and settings, computed once each.
    let mut known = std::collections::HashMap::new();
    for link in &links {
        for &hook in super::node::hooks_of(link) {
            let Ok(chain) = HookRef::new(link.index, hook).query() else { continue };
            if chain.slots.is_empty() {
                continue;
            }
            let mut programs = Vec::new();
            // The names of the links pinned for this hook, by link id.
            let pinned: BTreeMap<u32, String> = layout
                .links_on(&here, &link.name, hook)
                .into_iter()
                .filter_map(|p| Some((pins::open_link(&p.path).ok()?.1.id, p.name)))
                .collect();
            for slot in &chain.slots {
                let named = match slot.link_id.and_then(|id| managed.get(&id)) {
                    Some((key, rec))
                        if key.device == link.name
                            && key.hook == hook.name()
                            && still_made_from(rec, slot.prog_id, &mut known) =>
                    {
                        Some((key.name.clone(), rec.program.clone(), rec.set.clone()))
                    }
                    Some(_) => None,
                    None => match slot.link_id.and_then(|id| pinned.get(&id)) {
                        Some(name) => match crate::programs::identify(slot.prog_id).ok().flatten() {
                            Some(i) => Some((name.clone(), i.name.to_string(), i.set)),
                            None => objects
                                .iter()
                                .find_map(|o| {
                                    crate::programs::file_match(slot.prog_id, o, &layout.maps_dir()).ok().flatten()
                                })
                                .map(|spec| (name.clone(), spec.to_string(), Vec::new())),
                        },
                        None => None,
                    },
                };
                let entry = match named {
                    Some((name, program, set)) => EntryDoc {
                        rules: (program == "firewall")
                            .then(|| node.rules(slot.prog_id).into_iter().map(unplaced).collect()),
                        entries: (program == "redirect-peer").then(|| entries_of(engine, &node, slot.prog_id)),
                        name: Some(unplaced(name)),
                        program: Some(unplaced(program)),
                        set: set.into_iter().map(unplaced).collect(),
                        reference: None,
                    },
                    None => EntryDoc {
                        name: None,
                        program: None,
                        set: Vec::new(),
                        rules: None,
                        entries: None,
                        reference: Some(unplaced(match slot.link_id {
                            Some(id) => format!("link:{id}"),
                            None => format!("prog:{}", slot.prog_id),
                        })),
                    },
                };
                programs.push(entry);
            }
            doc.chains.push(ChainDoc {
                device: unplaced(link.name.clone()),
                hook: unplaced(hook.name().to_string()),
                programs,
            });
        }
    }
    Ok(doc)
}

/// A redirect program's entries, by the name of the pair each leads to.
fn entries_of(engine: &Engine<'_>, node: &impl Node, prog_id: u32) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (ip, ifindex) in node.entries(prog_id) {
        if let Ok(Some(l)) = engine.nl.link_by_index(ifindex) {
            out.insert(ip.to_string(), l.name);
        }
    }
    out
}

fn pair_doc(ends: &Ends) -> PairDoc {
    let nk = ends.primary.netkit.clone().unwrap_or_default().settings;
    let kind = PairKind::of(&ends.primary).filter(|k| *k != PairKind::Netkit);
    let l2 = kind.is_some() || nk.mode == Some(Mode::L2);
    let end = |l: &Link| EndDoc { address: if l2 { l.mac() } else { None }, ..Default::default() };
    let mut primary = end(&ends.primary);
    primary.policy = nk.policy;
    primary.scrub = nk.scrub.filter(|s| *s != Scrub::Default);
    let mut peer = ends.peer.as_ref().map(end).unwrap_or_default();
    peer.name = ends.peer.as_ref().map(|p| p.name.clone());
    peer.policy = nk.peer_policy;
    peer.scrub = nk.peer_scrub.filter(|s| *s != Scrub::Default);
    peer.netns =
        ends.peer_netns.as_ref().map(|n| if n.is_init() { n.path.display().to_string() } else { n.name.clone() });
    PairDoc {
        name: unplaced(ends.primary.name.clone()),
        kind,
        mode: nk.mode,
        pairing: nk.pairing.filter(|p| *p != crate::netlink::links::Pairing::Pair),
        headroom: nk.headroom.filter(|h| *h != 0),
        tailroom: nk.tailroom.filter(|t| *t != 0),
        mtu: ends.primary.mtu,
        up: Some(ends.primary.up),
        primary,
        peer,
    }
}

/// Whether the link's program is still what its record names: the same
/// program apply set, from a source that still gives the same fingerprint
/// (a file that changed or went away does not).
fn still_made_from(
    rec: &super::state::OwnedLink,
    prog_id: u32,
    known: &mut std::collections::HashMap<(String, Vec<String>), Option<String>>,
) -> bool {
    if rec.prog_id != Some(prog_id) {
        return false;
    }
    let key = (rec.program.clone(), rec.set.clone());
    if let Some(fp) = known.get(&key) {
        return fp.is_some() && *fp == rec.fingerprint;
    }
    let fp = fingerprint_of(rec);
    let same = fp.is_some() && fp == rec.fingerprint;
    known.insert(key, fp);
    same
}

/// What the record's program and settings give now.
fn fingerprint_of(rec: &super::state::OwnedLink) -> Option<String> {
    let prog = rec.program.parse::<crate::programs::ProgSpec>().ok()?;
    let globals = crate::programs::globals(&prog, &rec.set).ok()?;
    super::plan::fingerprint(&prog, &globals, super::node::pinned_now).ok()
}
