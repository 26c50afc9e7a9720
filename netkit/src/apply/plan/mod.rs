//! Planning: the spec compared with the node as it is now and with what
//! apply owns, giving the fewest steps that bring one to the other.
//!
//! Pairs: created when missing; live attributes (policies, MAC, GSO/GRO
//! limits, MTU, up) changed in place; attributes the kernel fixes at
//! creation refused, or the pair replaced with `recreate`. Chains: a
//! managed program whose object and settings are unchanged keeps its link;
//! one whose program changed is updated in place (BPF_LINK_UPDATE); rules
//! and redirect entries are edited live; for a new order, the longest run
//! of programs already in spec order stays and only the others move.
//! Programs apply does not own are never touched.

mod chain;
mod pair;
mod work;

use pair::*;
pub use work::*;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::{
    ApplyError,
    node::{Node, PinState},
    spec::{Chain, Entry, Managed, PairEntry, Place, Spec},
    state::{HookProof, LinkKey, OwnedLink, Ownership, hook_key},
};
use crate::{
    mprog::{self, Hook},
    netlink::{
        attrs::{EndAttrs, Mac, Offload},
        device::{Ends, PairChange, PairSpec},
        links::{Link, PairKind, PairSettings, Role},
    },
    os::netns,
    pins::Layout,
    programs::{self, ProgSpec},
};

/// Everything the planner needs to know about the node.
pub(crate) struct Planner<'a, N: Node> {
    pub(crate) node: &'a N,
    pub(crate) layout: Layout,
    pub(crate) netns: String,
    pub(crate) opts: PlanOptions,
    pub(crate) owned: Ownership,
    /// The records of managed links, by (device, hook name).
    pub(crate) by_hook: BTreeMap<(String, String), Vec<LinkKey>>,
    /// Fingerprints computed so far, by program and settings: a node runs
    /// the same few programs on many hooks.
    pub(crate) fingerprints: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Programs checked against a hook so far (see `programs::check_hook`),
    /// by program and hook: the refusal, if any.
    pub(crate) fits: std::sync::Mutex<std::collections::HashMap<(String, crate::mprog::Hook), Option<String>>>,
    /// The primaries of the spec's pairs as this plan read them, by name:
    /// a chain on a pair, or a redirect entry naming one, asks no more.
    pub(crate) primaries: std::sync::Mutex<std::collections::HashMap<String, Link>>,
}

impl<'a, N: Node> Planner<'a, N> {
    pub(crate) fn new(node: &'a N, layout: Layout, netns: String, opts: PlanOptions, owned: Ownership) -> Self {
        let mut by_hook: BTreeMap<(String, String), Vec<LinkKey>> = BTreeMap::new();
        for key in owned.links.keys() {
            by_hook.entry((key.device.clone(), key.hook.clone())).or_default().push(key.clone());
        }
        Self {
            node,
            layout,
            netns,
            opts,
            owned,
            by_hook,
            fingerprints: Default::default(),
            fits: Default::default(),
            primaries: Default::default(),
        }
    }

    /// Why `m`'s program cannot work on `hook`, if it cannot.
    fn misfit(&self, m: &Managed, hook: crate::mprog::Hook) -> Option<String> {
        let key = (m.prog.to_string(), hook);
        if let Some(why) = self.fits.lock().unwrap().get(&key) {
            return why.clone();
        }
        let why = programs::check_hook(&m.prog, hook).err().map(|e| e.to_string());
        self.fits.lock().unwrap().insert(key, why.clone());
        why
    }

    /// A device by name: a pair's primary as this plan read it, else asked.
    async fn device(&self, name: &str) -> Result<Option<Link>, crate::netlink::NetlinkError> {
        if let Some(l) = self.primaries.lock().unwrap().get(name) {
            return Ok(Some(l.clone()));
        }
        self.node.link(name).await
    }

    fn fingerprint(&self, m: &Managed) -> Result<String, ApplyError> {
        let key = format!("{}\0{:?}", m.prog, m.globals);
        if let Some(fp) = self.fingerprints.lock().unwrap().get(&key) {
            return Ok(fp.clone());
        }
        let fp = fingerprint(&m.prog, &m.globals, |p| self.node.pinned_program(p))?;
        self.fingerprints.lock().unwrap().insert(key, fp.clone());
        Ok(fp)
    }
}

/// What the chains are planned against: the spec's pairs, by name, and
/// those this plan creates or recreates.
struct At<'s> {
    pairs: std::collections::HashMap<&'s str, &'s PairEntry>,
    new: BTreeSet<String>,
}

struct Mistakes(Vec<(Place, String)>);

impl Mistakes {
    /// The refusal, in the order of the spec's lines.
    fn blocked(mut self, file: &str) -> ApplyError {
        self.0.sort_by_key(|(p, _)| (p.line, p.column));
        ApplyError::Blocked(
            self.0.into_iter().map(|(p, m)| if p.line > 0 { format!("{file}:{p}: {m}") } else { m }).collect(),
        )
    }
}

/// A managed link against its hook's chain.
enum Held {
    /// On the hook, at `pos`.
    Live { id: u32, prog_id: u32, pos: usize },
    /// Pinned, but not on this hook: defunct, or on another.
    Off { id: u32, prog_id: u32, defunct: bool },
    /// Nothing is pinned at its path.
    Gone,
    /// Something that is not a link is pinned there.
    NotALink,
}

/// A defunct link, in words.
fn off_hook(link_id: u32) -> String {
    format!("link {link_id} is on no hook (another tool detached it, or its device was deleted)")
}

impl<N: Node> Planner<'_, N> {
    /// Plans `spec` against the node.
    pub(crate) async fn plan(&self, spec: &Spec) -> Result<Plan, ApplyError> {
        let on_tcx = self.on_tcx(spec).await.map_err(|m| m.blocked(&spec.file))?;
        let spec = on_tcx.as_ref().unwrap_or(spec);
        let mut plan = Plan { steps: vec![], foreign: vec![], notes: vec![], work: Work::default() };
        plan.work.owned = self.owned.clone();
        let mut blocked = Mistakes(Vec::new());
        let mut recreated: BTreeSet<String> = BTreeSet::new();
        let mut created: BTreeSet<String> = BTreeSet::new();
        // The CNI plugin's links, read once: its pairs are never adopted.
        let cni = if self.opts.adopt { self.node.cni_links(&self.layout) } else { BTreeSet::new() };

        // Pairs.
        for p in &spec.pairs {
            let name = &p.spec.name;
            let owned = self.owned.pairs.get(name);
            match self.node.ends(name).await? {
                None => {
                    if let Err(e) = self.node.check_pair(&p.spec).await {
                        blocked.0.push((p.place, format!("pair {name}: {e}")));
                        continue;
                    }
                    plan.steps.push(step(Action::Create, format!("pair {name}"), describe_pair(&p.spec)));
                    plan.work.pairs.push(PairWork::Create(p.spec.clone()));
                    created.insert(name.clone());
                }
                Some(ends) => {
                    self.primaries.lock().unwrap().insert(name.clone(), ends.primary.clone());
                    let ours = owned.is_some_and(|o| o.ifindex.is_none_or(|i| i == ends.primary.index));
                    if !ours && self.opts.adopt {
                        // Taken over only as it is: any difference is named
                        // and nothing is adopted.
                        if let Some(link) = super::node::cni_link_on(self.node, &cni, &ends.primary) {
                            blocked.0.push((
                                p.place,
                                format!("pair {name}: not adopted: it is the CNI plugin's (link {link} on its hooks is pinned under its directory)"),
                            ));
                            continue;
                        }
                        let mut differs = fixed_differences(&p.spec, &ends);
                        differs.extend(live_differences(&p.spec, &ends).3);
                        if let Some((now, _)) = peer_elsewhere(&p.spec, &ends) {
                            differs.insert(
                                0,
                                format!("peer in {now}, the spec puts it in {}", namespace_words(&p.spec.peer_netns)),
                            );
                        }
                        if !differs.is_empty() {
                            blocked.0.push((
                                p.place,
                                format!("pair {name}: not adopted, it differs from the spec: {}", differs.join(", ")),
                            ));
                            continue;
                        }
                        plan.steps.push(
                            step(Action::Adopt, format!("pair {name}"), "as it is".into()).ifindex(ends.primary.index),
                        );
                        plan.work.confirm_pairs.push((name.clone(), ends.primary.index));
                        continue;
                    }
                    if !ours {
                        blocked.0.push((
                            p.place,
                            format!(
                                "pair {name}: a device named {name} exists and apply did not create it: apply --adopt takes it over if it is as the spec says; or delete it, or give the spec's pair another name"
                            ),
                        ));
                        continue;
                    }
                    if owned.is_some_and(|o| o.ifindex.is_none()) {
                        plan.work.confirm_pairs.push((name.clone(), ends.primary.index));
                    }
                    let fixed = fixed_differences(&p.spec, &ends);
                    if !fixed.is_empty() {
                        if !self.opts.recreate {
                            blocked.0.push((
                                p.place,
                                format!(
                                    "pair {name}: {}; the kernel fixes these at creation: apply --recreate replaces the pair (its managed programs are attached again)",
                                    fixed.join(", ")
                                ),
                            ));
                            continue;
                        }
                        if let Some(f) = self.foreign_on(&ends).await
                            && !f.is_empty()
                        {
                            blocked.0.push((p.place, format!("pair {name}: recreating it would destroy programs apply does not own ({}); detach them first", f.join(", "))));
                            continue;
                        }
                        plan.steps.push(
                            step(Action::Recreate, format!("pair {name}"), fixed.join(", "))
                                .ifindex(ends.primary.index),
                        );
                        plan.work
                            .pairs
                            .push(PairWork::Recreate { spec: Box::new(p.spec.clone()), old: Box::new(spec_of(&ends)) });
                        recreated.insert(name.clone());
                        continue;
                    }
                    let (change, mtu, mut up, mut what) = live_differences(&p.spec, &ends);
                    // A peer another tool moved elsewhere goes back (and up:
                    // a move brings a device down).
                    let peer_move = peer_elsewhere(&p.spec, &ends).map(|(now, m)| {
                        what.insert(0, format!("peer back into {} from {now}", namespace_words(&p.spec.peer_netns)));
                        up = p.spec.up;
                        m
                    });
                    if !what.is_empty() {
                        plan.steps.push(
                            step(Action::Change, format!("pair {name}"), what.join(", ")).ifindex(ends.primary.index),
                        );
                        plan.work.pairs.push(PairWork::Change { name: name.clone(), change, mtu, up, peer_move });
                    }
                }
            }
        }

        // Chains.
        let declared: BTreeSet<(String, Hook)> = spec.chains.iter().map(|c| (c.device.clone(), c.hook)).collect();
        let at = At { pairs: super::spec::by_name(&spec.pairs), new: created.union(&recreated).cloned().collect() };
        for chain in &spec.chains {
            match self.chain(&at, chain, &mut plan).await {
                Ok(Some(work)) => plan.work.chains.push(work),
                Ok(None) => {}
                Err(m) => blocked.0.extend(m.0),
            }
        }

        // Managed links on hooks the spec has no chain for.
        let mut by_hook: BTreeMap<(String, Hook), Vec<(LinkKey, OwnedLink)>> = BTreeMap::new();
        for (key, link) in &self.owned.links {
            let Ok(hook) = key.hook.parse::<Hook>() else { continue };
            if !declared.contains(&(key.device.clone(), hook)) {
                by_hook.entry((key.device.clone(), hook)).or_default().push((key.clone(), link.clone()));
            }
        }
        let pruned_pairs: Vec<String> =
            self.owned.pairs.keys().filter(|n| !at.pairs.contains_key(n.as_str())).cloned().collect();
        for ((device, hook), links) in by_hook {
            let mut removals = Vec::new();
            let now = match self.node.link(&device).await {
                Ok(Some(l)) => self.node.chain(l.index, hook).unwrap_or_default(),
                _ => Default::default(),
            };
            for (key, _) in links {
                let link_id = match self.held(&key, hook, &now) {
                    Held::Live { id, .. } => id,
                    Held::Gone | Held::NotALink => {
                        plan.work.forget_links.push(key);
                        continue;
                    }
                    // A defunct link does nothing but hold its name: its pin
                    // goes, --prune or not.
                    Held::Off { id, defunct, .. } if defunct || self.opts.prune => {
                        self.unpin(&mut plan, key, hook, id, defunct, "not in the spec");
                        continue;
                    }
                    Held::Off { id, .. } => {
                        plan.notes.push(format!(
                            "{key} (link {id}, now on another hook) is managed but not in the spec: kept (--prune removes it)"
                        ));
                        continue;
                    }
                };
                if pruned_pairs.contains(&device) {
                    // Goes with its pair.
                    continue;
                }
                if self.opts.prune {
                    plan.steps.push(
                        step(Action::Detach, key.to_string(), "not in the spec (--prune)".into()).with_link(link_id),
                    );
                    removals.push(Removal { key, link_id });
                } else {
                    plan.notes.push(format!(
                        "{key} (link {link_id}) is managed but not in the spec: kept (--prune removes it)"
                    ));
                }
            }
            if !removals.is_empty() {
                plan.work.chains.push(ChainWork { device, hook, removals, wants: Vec::new(), digest: None });
            }
        }

        // Managed pairs the spec no longer has.
        for name in pruned_pairs {
            let Some(ends) = self.node.ends(&name).await? else {
                plan.work.forget_pairs.push(name);
                continue;
            };
            if self.owned.pairs[&name].ifindex.is_some_and(|i| i != ends.primary.index) {
                plan.work.forget_pairs.push(name);
                continue;
            }
            if !self.opts.prune {
                plan.notes.push(format!("pair {name} is managed but not in the spec: kept (--prune removes it)"));
                continue;
            }
            if let Some(f) = self.foreign_on(&ends).await
                && !f.is_empty()
            {
                blocked.0.push((Place::default(), format!("pair {name}: --prune would delete it with programs apply does not own on its hooks ({}); detach them first", f.join(", "))));
                continue;
            }
            let links: Vec<(Hook, LinkKey, u32)> = self
                .owned
                .links
                .keys()
                .filter(|k| k.device == name)
                .filter_map(|k| {
                    let hook = k.hook.parse::<Hook>().ok()?;
                    Some((hook, k.clone(), self.live_link(k, hook)?))
                })
                .collect();
            plan.steps.push(
                step(Action::Delete, format!("pair {name}"), "not in the spec (--prune)".into())
                    .ifindex(ends.primary.index),
            );
            plan.work.deletions.push(PairDeletion { name, restore: spec_of(&ends), links });
        }

        if !blocked.0.is_empty() {
            return Err(blocked.blocked(&spec.file));
        }
        Ok(plan)
    }

    /// The link id pinned at `key` when it is on a hook.
    fn live_link(&self, key: &LinkKey, hook: Hook) -> Option<u32> {
        match self.node.pin(&self.layout.link_path(&self.netns, &key.device, hook, &key.name)) {
            PinState::Link { id, defunct: false, .. } => Some(id),
            _ => None,
        }
    }

    /// Where the managed link `key` stands against `now`, its hook's chain.
    /// The pin at apply's path is what makes a link apply's, whatever the
    /// record's cached ids say: the link may be where the spec put it, off
    /// the hook (another tool detached it, the device was deleted or the
    /// namespace made again) or on another hook.
    fn held(&self, key: &LinkKey, hook: Hook, now: &mprog::Chain) -> Held {
        match self.node.pin(&self.layout.link_path(&self.netns, &key.device, hook, &key.name)) {
            PinState::Empty => Held::Gone,
            PinState::Other => Held::NotALink,
            PinState::Link { id, prog_id, defunct } => match now.slots.iter().position(|s| s.link_id == Some(id)) {
                Some(pos) if !defunct => Held::Live { id, prog_id: now.slots[pos].prog_id, pos },
                _ => Held::Off { id, prog_id, defunct },
            },
        }
    }

    /// Plans the removal of the pin of `key`, whose link `link_id` is off
    /// its hook.
    fn unpin(&self, plan: &mut Plan, key: LinkKey, hook: Hook, link_id: u32, defunct: bool, why: &str) {
        let state = if defunct { off_hook(link_id) } else { format!("link {link_id} is on another hook") };
        plan.steps.push(step(Action::Detach, key.to_string(), format!("{why}; {state}: unpinned")).with_link(link_id));
        plan.work.unpins.push(Unpin { key, hook, link_id });
    }

    /// Programs on a pair's hooks that apply does not own, as words; None
    /// when the hooks cannot be read.
    /// `spec` with each chain on a veth device given by its tcx hook (`peer`
    /// is a veth's ingress, `primary` its egress: [`Hook::on_veth`]), when
    /// any is named by a pair's word; a declared pair's kind tells, else the
    /// device on the node. Two chains that name one hook are refused.
    async fn on_tcx(&self, spec: &Spec) -> Result<Option<Spec>, Mistakes> {
        let mut out: Option<Spec> = None;
        let pairs = super::spec::by_name(&spec.pairs);
        for (i, c) in spec.chains.iter().enumerate() {
            if !c.hook.is_netkit() {
                continue;
            }
            let veth = match pairs.get(c.device.as_str()) {
                Some(p) => p.spec.kind == PairKind::Veth,
                None => {
                    matches!(self.node.link(&c.device).await, Ok(Some(l)) if l.is_veth())
                }
            };
            if veth {
                out.get_or_insert_with(|| spec.clone()).chains[i].hook = c.hook.on_veth();
            }
        }
        let Some(s) = &out else { return Ok(None) };
        let mut twice = Vec::new();
        let mut seen: std::collections::HashMap<(&str, Hook), &Chain> = std::collections::HashMap::new();
        for c in &s.chains {
            if let Some(first) = seen.get(&(c.device.as_str(), c.hook)) {
                twice.push((
                    c.place,
                    format!(
                        "a second chain for {} {} (the first is at {}): on a veth device, peer is its ingress and primary its egress",
                        c.device, c.hook, first.place
                    ),
                ));
            } else {
                seen.insert((&c.device, c.hook), c);
            }
        }
        if twice.is_empty() { Ok(out) } else { Err(Mistakes(twice)) }
    }

    async fn foreign_on(&self, ends: &Ends) -> Option<Vec<String>> {
        let owned: BTreeSet<u32> = self
            .owned
            .links
            .iter()
            .filter(|(k, _)| k.device == ends.primary.name)
            .filter_map(|(k, _)| self.live_link(k, k.hook.parse().ok()?))
            .collect();
        let mut out = Vec::new();
        for &hook in super::node::hooks_of(&ends.primary) {
            let chain = self.node.chain(ends.primary.index, hook).ok()?;
            for s in chain.slots {
                if !s.link_id.is_some_and(|l| owned.contains(&l)) {
                    out.push(format!("program {} on {hook}", s.prog_id));
                }
            }
        }
        Some(out)
    }
}

fn step(action: Action, object: String, detail: String) -> StepView {
    StepView::new(action, object, detail)
}

#[cfg(test)]
mod tests {
    use super::{chain::longest_increasing, *};

    #[test]
    fn the_longest_run_in_order_stays() {
        assert_eq!(longest_increasing(&[0, 1, 2]), BTreeSet::from([0, 1, 2]));
        // c moved to the front: a and b stay, c moves.
        assert_eq!(longest_increasing(&[2, 0, 1]), BTreeSet::from([1, 2]));
        // Reversed: one stays.
        assert_eq!(longest_increasing(&[2, 1, 0]).len(), 1);
        assert!(longest_increasing(&[]).is_empty());
        assert_eq!(longest_increasing(&[0, 3, 1, 2]), BTreeSet::from([0, 2, 3]));
    }

    #[test]
    fn fingerprints_follow_the_object_and_settings() {
        let m = |set: &[&str]| Managed {
            place: Place::default(),
            name: "a".into(),
            prog: ProgSpec::Bundled("firewall".into()),
            set: set.iter().map(|s| s.to_string()).collect(),
            globals: programs::globals(
                &ProgSpec::Bundled("firewall".into()),
                &set.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .unwrap(),
            rules: None,
            entries: None,
        };
        if programs::prepare(&ProgSpec::Bundled("firewall".into())).is_err() {
            return; // a build without the bundled programs
        }
        let fp = |m: Managed| fingerprint(&m.prog, &m.globals, super::super::node::pinned_now).unwrap();
        let a = fp(m(&[]));
        assert_eq!(a, fp(m(&[])));
        assert_ne!(a, fp(m(&["default=deny"])));
    }
}
