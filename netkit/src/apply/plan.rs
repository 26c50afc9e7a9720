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

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::{
    ApplyError,
    node::{Node, PinState},
    spec::{Chain, Entry, Managed, Place, Spec},
    state::{LinkKey, OwnedLink, Ownership},
};
use crate::{
    mprog::{self, Hook},
    netlink::{
        attrs::{EndAttrs, Mac, Offload},
        device::{Ends, PairChange, PairSpec},
        links::{Link, PairSettings, Role},
    },
    os::netns,
    pins::Layout,
    programs::{self, ProgSpec},
};

/// What the planner may do.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Remove managed objects the spec no longer has.
    pub prune: bool,
    /// Replace pairs whose fixed attributes differ from the spec.
    pub recreate: bool,
}

/// The kind of a step, as `diff` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A pair is created.
    Create,
    /// A pair's live attributes change.
    Change,
    /// A pair is deleted and created again (`--recreate`).
    Recreate,
    /// A program is attached (a new link).
    Attach,
    /// A link's program is replaced in place.
    Update,
    /// A program moves to another place in its chain (a new link).
    Move,
    /// A firewall's rules or a redirect table change live.
    Edit,
    /// A link is detached and unpinned.
    Detach,
    /// A pair is deleted (`--prune`).
    Delete,
}

impl Action {
    /// The action's word, as `diff` shows it and the JSON says it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Change => "change",
            Self::Recreate => "recreate",
            Self::Attach => "attach",
            Self::Update => "update",
            Self::Move => "move",
            Self::Edit => "edit",
            Self::Detach => "detach",
            Self::Delete => "delete",
        }
    }
}

/// One step of a plan, for people and for JSON.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// What happens.
    pub action: Action,
    /// To what: `pair nk0`, `nk0 peer fw`.
    pub object: String,
    /// Why, or what changes.
    pub detail: String,
}

/// A program on a hook apply does not own, shown so that the user knows it
/// stays.
#[derive(Debug, Clone, Serialize)]
pub struct ForeignView {
    /// The device.
    pub device: String,
    /// The hook.
    pub hook: Hook,
    /// Its 1-based position now.
    pub position: usize,
    /// The program.
    pub prog_id: u32,
    /// The owning link; None for a plain attachment.
    pub link_id: Option<u32>,
}

/// A plan: the steps in the order they run, and what stays untouched.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<StepView>,
    /// Programs apply leaves alone.
    pub foreign: Vec<ForeignView>,
    /// Things worth knowing that change nothing.
    pub notes: Vec<String>,
    #[serde(skip)]
    pub(crate) work: Work,
}

impl Plan {
    /// Whether applying would change nothing on the node.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether applying would change nothing, the record included (it
    /// forgets objects that are gone and confirms pairs a killed run made).
    pub(crate) fn is_noop(&self) -> bool {
        let w = &self.work;
        self.is_empty() && w.forget_links.is_empty() && w.forget_pairs.is_empty() && w.confirm_pairs.is_empty()
    }
}

/// What the executor runs, phase by phase.
#[derive(Debug, Clone, Default)]
pub(crate) struct Work {
    /// The ownership record as read.
    pub(crate) owned: Ownership,
    /// Phase 1, concurrently: pairs.
    pub(crate) pairs: Vec<PairWork>,
    /// Phase 2, one job per hook: chains.
    pub(crate) chains: Vec<ChainWork>,
    /// Phase 3: managed pairs the spec no longer has (`--prune`).
    pub(crate) deletions: Vec<PairDeletion>,
    /// Managed links off their hooks (defunct, or attached elsewhere) whose
    /// pins go, before the chains are worked on.
    pub(crate) unpins: Vec<Unpin>,
    /// Records of objects that are gone, dropped when the record is next written.
    pub(crate) forget_links: Vec<LinkKey>,
    pub(crate) forget_pairs: Vec<String>,
    /// Pairs apply was creating when a run died, found made: their
    /// ifindexes, recorded when the record is next written.
    pub(crate) confirm_pairs: Vec<(String, u32)>,
}

/// A peer to move back into the namespace the spec gives it.
#[derive(Debug, Clone)]
pub(crate) struct PeerMove {
    pub(crate) to: netns::NetnsRef,
    /// Where it is now (for the undo).
    pub(crate) from: netns::NetnsRef,
    /// Whether it is up there (a move brings it down; the undo brings it up).
    pub(crate) was_up: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum PairWork {
    Create(PairSpec),
    Change { name: String, change: PairChange, mtu: Option<u32>, up: bool, peer_move: Option<PeerMove> },
    Recreate { spec: Box<PairSpec>, old: Box<PairSpec> },
}

#[derive(Debug, Clone)]
pub(crate) struct PairDeletion {
    pub(crate) name: String,
    /// How to create it again if a later step fails.
    pub(crate) restore: PairSpec,
    /// Its managed links, to re-attach on restore.
    pub(crate) links: Vec<(Hook, LinkKey, u32)>,
}

/// The work on one hook.
#[derive(Debug, Clone)]
pub(crate) struct ChainWork {
    pub(crate) device: String,
    pub(crate) hook: Hook,
    /// Managed links to detach (gone from the chain, or pruned).
    pub(crate) removals: Vec<Removal>,
    /// The managed programs in spec order.
    pub(crate) wants: Vec<Want>,
}

/// A managed link's pin that goes because its link is off its hook.
#[derive(Debug, Clone)]
pub(crate) struct Unpin {
    pub(crate) key: LinkKey,
    pub(crate) hook: Hook,
    /// The link the pin holds (checked again before it goes).
    pub(crate) link_id: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Removal {
    pub(crate) key: LinkKey,
    pub(crate) link_id: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Want {
    pub(crate) key: LinkKey,
    /// What happened to the link this one replaces (drift), for the log.
    pub(crate) repair: Option<String>,
    pub(crate) entry: Managed,
    pub(crate) fingerprint: String,
    pub(crate) how: How,
}

#[derive(Debug, Clone)]
pub(crate) enum How {
    /// A new link; `stale` is the link off its hook whose pin holds the
    /// name now (unpinned first), and `reuse` that link's program when it
    /// is still the one apply set (its maps, counts and rules kept).
    New { stale: Option<u32>, reuse: Option<Current> },
    /// The link stays where it is.
    Keep(Current),
    /// The link is replaced by one at the right place, with the same program
    /// unless `replace`.
    Move(Current),
}

#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub(crate) link_id: u32,
    pub(crate) prog_id: u32,
    /// The program must be replaced (object or settings changed).
    pub(crate) replace: bool,
    /// Rules to write (None: they are as the spec says).
    pub(crate) rules: Option<Vec<crate::maps::firewall::Rule>>,
    /// Redirect entries to write (None: as the spec says).
    pub(crate) entries: Option<BTreeMap<IpAddr, String>>,
}

impl Want {
    pub(crate) fn needs_work(&self) -> bool {
        match &self.how {
            How::New { .. } | How::Move(_) => true,
            How::Keep(c) => c.replace || c.rules.is_some() || c.entries.is_some(),
        }
    }
}

/// What a managed program is made from: the object's bytes, the function,
/// the settings (or, for a pinned program, the program it names now).
/// `pinned_program` gives the id of the program a `pinned:PATH` names now.
pub(crate) fn fingerprint(
    prog: &ProgSpec,
    globals: &[(String, Vec<u8>)],
    pinned_program: impl FnOnce(&ProgSpec) -> Result<u32, ApplyError>,
) -> Result<String, ApplyError> {
    let mut h = Sha256::new();
    match programs::prepare(prog)? {
        Some(p) => {
            h.update(&p.object);
            h.update([0]);
            h.update(p.function.as_bytes());
        }
        None => {
            // pinned:PATH: the program pinned there now.
            h.update(format!("{prog}#{}", pinned_program(prog)?).as_bytes());
        }
    }
    let mut globals = globals.to_vec();
    globals.sort();
    for (k, v) in globals {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([b'=']);
        h.update(&v);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The longest subsequence of `seq` that is increasing: the indexes into
/// `seq` of the programs that can stay while the others move around them.
fn longest_increasing(seq: &[usize]) -> BTreeSet<usize> {
    // O(n^2) is plenty for chains of at most 64 programs.
    let n = seq.len();
    let mut len = vec![1usize; n];
    let mut prev = vec![usize::MAX; n];
    for i in 0..n {
        for j in 0..i {
            if seq[j] < seq[i] && len[j] + 1 > len[i] {
                len[i] = len[j] + 1;
                prev[i] = j;
            }
        }
    }
    let mut out = BTreeSet::new();
    let Some(mut i) = (0..n).max_by_key(|&i| (len[i], std::cmp::Reverse(i))) else { return out };
    loop {
        out.insert(i);
        if prev[i] == usize::MAX {
            break;
        }
        i = prev[i];
    }
    out
}

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
}

impl<'a, N: Node> Planner<'a, N> {
    pub(crate) fn new(node: &'a N, layout: Layout, netns: String, opts: PlanOptions, owned: Ownership) -> Self {
        let mut by_hook: BTreeMap<(String, String), Vec<LinkKey>> = BTreeMap::new();
        for key in owned.links.keys() {
            by_hook.entry((key.device.clone(), key.hook.clone())).or_default().push(key.clone());
        }
        Self { node, layout, netns, opts, owned, by_hook, fingerprints: Default::default() }
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

struct Mistakes(Vec<(Place, String)>);

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
        let mut plan = Plan { steps: vec![], foreign: vec![], notes: vec![], work: Work::default() };
        plan.work.owned = self.owned.clone();
        let mut blocked = Mistakes(Vec::new());
        let mut recreated: BTreeSet<String> = BTreeSet::new();
        let mut created: BTreeSet<String> = BTreeSet::new();

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
                    let ours = owned.is_some_and(|o| o.ifindex.is_none_or(|i| i == ends.primary.index));
                    if !ours {
                        blocked.0.push((
                            p.place,
                            format!(
                                "pair {name}: a device named {name} exists and apply did not create it: delete it, or give the spec's pair another name (apply manages only what it created)"
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
                        plan.steps.push(step(Action::Recreate, format!("pair {name}"), fixed.join(", ")));
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
                        plan.steps.push(step(Action::Change, format!("pair {name}"), what.join(", ")));
                        plan.work.pairs.push(PairWork::Change { name: name.clone(), change, mtu, up, peer_move });
                    }
                }
            }
        }

        // Chains.
        let declared: BTreeSet<(String, Hook)> = spec.chains.iter().map(|c| (c.device.clone(), c.hook)).collect();
        for chain in &spec.chains {
            let fresh = created.contains(&chain.device) || recreated.contains(&chain.device);
            match self.chain(spec, chain, fresh, &mut plan).await {
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
        let pruned_pairs: Vec<String> = self.owned.pairs.keys().filter(|n| spec.pair(n).is_none()).cloned().collect();
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
                    plan.steps.push(step(Action::Detach, key.to_string(), "not in the spec (--prune)".into()));
                    removals.push(Removal { key, link_id });
                } else {
                    plan.notes.push(format!(
                        "{key} (link {link_id}) is managed but not in the spec: kept (--prune removes it)"
                    ));
                }
            }
            if !removals.is_empty() {
                plan.work.chains.push(ChainWork { device, hook, removals, wants: Vec::new() });
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
            plan.steps.push(step(Action::Delete, format!("pair {name}"), "not in the spec (--prune)".into()));
            plan.work.deletions.push(PairDeletion { name, restore: spec_of(&ends), links });
        }

        if !blocked.0.is_empty() {
            blocked.0.sort_by_key(|(p, _)| (p.line, p.column));
            return Err(ApplyError::Blocked(
                blocked
                    .0
                    .into_iter()
                    .map(|(p, m)| if p.line > 0 { format!("{}:{p}: {m}", spec.file) } else { m })
                    .collect(),
            ));
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
        plan.steps.push(step(Action::Detach, key.to_string(), format!("{why}; {state}: unpinned")));
        plan.work.unpins.push(Unpin { key, hook, link_id });
    }

    /// Programs on a pair's hooks that apply does not own, as words; None
    /// when the hooks cannot be read.
    async fn foreign_on(&self, ends: &Ends) -> Option<Vec<String>> {
        let owned: BTreeSet<u32> = self
            .owned
            .links
            .iter()
            .filter(|(k, _)| k.device == ends.primary.name)
            .filter_map(|(k, _)| self.live_link(k, k.hook.parse().ok()?))
            .collect();
        let mut out = Vec::new();
        let hooks: &[Hook] = if ends.primary.role() == Some(Role::Primary) {
            &[Hook::Ingress, Hook::Egress, Hook::Primary, Hook::Peer]
        } else {
            &[Hook::Ingress, Hook::Egress]
        };
        for &hook in hooks {
            let chain = self.node.chain(ends.primary.index, hook).ok()?;
            for s in chain.slots {
                if !s.link_id.is_some_and(|l| owned.contains(&l)) {
                    out.push(format!("program {} on {hook}", s.prog_id));
                }
            }
        }
        Some(out)
    }

    /// Plans one chain; None when it is as the spec says.
    async fn chain(
        &self,
        spec: &Spec,
        chain: &Chain,
        fresh: bool,
        plan: &mut Plan,
    ) -> Result<Option<ChainWork>, Mistakes> {
        let wrong = |m: String| Mistakes(vec![(chain.place, m)]);
        let (device, hook) = (&chain.device, chain.hook);
        let declared = spec.pair(device);
        let link = if declared.is_some() && fresh {
            None
        } else {
            match self.node.link(device).await {
                Ok(Some(l)) => Some(l),
                Ok(None) if declared.is_some() => None,
                Ok(None) => {
                    return Err(wrong(format!(
                        "chain {device} {hook}: no device {device} in network namespace {} and the spec declares no pair of that name",
                        self.netns
                    )));
                }
                Err(e) => return Err(wrong(format!("chain {device} {hook}: {e}"))),
            }
        };
        if hook.is_netkit() {
            let role = match (&link, declared) {
                (Some(l), _) => l.role(),
                (None, Some(p)) => Some(if p.spec.settings.pairing == Some(crate::netlink::links::Pairing::Single) {
                    Role::Single
                } else {
                    Role::Primary
                }),
                (None, None) => None,
            };
            match role {
                Some(Role::Primary) => {}
                Some(Role::Peer) => {
                    return Err(wrong(format!(
                        "chain {device} {hook}: {device} is the peer end of a netkit pair; netkit hooks are reached through the primary"
                    )));
                }
                _ => {
                    return Err(wrong(format!(
                        "chain {device} {hook}: {device} is not a netkit primary; its hooks are ingress and egress"
                    )));
                }
            }
        }
        // Redirect entries must name pairs that exist or are declared.
        for e in &chain.entries {
            if let Entry::Managed(m) = e
                && let Some(entries) = &m.entries
            {
                for (ip, pair) in entries {
                    if spec.pair(pair).is_none() && !matches!(self.node.link(pair).await, Ok(Some(_))) {
                        return Err(Mistakes(vec![(
                            m.place,
                            format!(
                                "{device} {hook} {}: entry {ip} names {pair}, which neither exists nor is declared",
                                m.name
                            ),
                        )]));
                    }
                }
            }
        }

        let now = match &link {
            Some(l) => self
                .node
                .chain(l.index, hook)
                .map_err(|e| wrong(format!("chain {device} {hook}: reading the chain: {}", e)))?,
            None => Default::default(),
        };
        // Managed links on this hook now: name -> (link, prog, position).
        let mut current: BTreeMap<String, (u32, u32, usize)> = BTreeMap::new();
        // Managed links pinned here but off the hook: name -> (link, its
        // program, defunct).
        let mut stale: BTreeMap<String, (u32, u32, bool)> = BTreeMap::new();
        // Managed names with nothing pinned.
        let mut gone: BTreeSet<String> = BTreeSet::new();
        let mut removals = Vec::new();
        let mut owned_links: BTreeSet<u32> = BTreeSet::new();
        // A device about to be created (again) starts empty: its old pins
        // hold links that will be defunct by then.
        let none = Vec::new();
        let records = self.by_hook.get(&(device.clone(), hook.name().to_string())).unwrap_or(&none);
        for key in records {
            match self.held(key, hook, &now) {
                Held::Live { id, prog_id, pos } => {
                    owned_links.insert(id);
                    current.insert(key.name.clone(), (id, prog_id, pos));
                }
                Held::Off { id, prog_id, defunct } => {
                    stale.insert(key.name.clone(), (id, prog_id, defunct));
                }
                Held::Gone => {
                    gone.insert(key.name.clone());
                }
                Held::NotALink => {
                    let path = self.layout.link_path(&self.netns, device, hook, &key.name);
                    return Err(wrong(format!(
                        "{key}: {} holds something that is not a link: remove it (apply pins that link there)",
                        path.display()
                    )));
                }
            }
        }
        for (i, s) in now.slots.iter().enumerate() {
            if !s.link_id.is_some_and(|l| owned_links.contains(&l)) {
                plan.foreign.push(ForeignView {
                    device: device.clone(),
                    hook,
                    position: i + 1,
                    prog_id: s.prog_id,
                    link_id: s.link_id,
                });
            }
        }
        for e in &chain.entries {
            if let Entry::Foreign { reference, .. } = e {
                let there = now.slots.iter().any(|s| match reference {
                    crate::hooks::refs::RefSpec::Link(id) => s.link_id == Some(*id),
                    crate::hooks::refs::RefSpec::Prog(id) => s.prog_id == *id,
                    _ => false,
                });
                if !there {
                    plan.notes.push(format!("{device} {hook}: {reference} is not on the hook; nothing to leave alone"));
                }
            }
        }

        let managed: Vec<&Managed> = chain
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Managed(m) => Some(m),
                Entry::Foreign { .. } => None,
            })
            .collect();
        let wanted: BTreeSet<&str> = managed.iter().map(|m| m.name.as_str()).collect();
        // A `ref` may name a link apply made (export writes one for a program
        // whose source it can no longer name): that link is left alone too.
        let referenced: BTreeSet<u32> = chain
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Foreign { reference: crate::hooks::refs::RefSpec::Link(id), .. } => Some(*id),
                _ => None,
            })
            .collect();
        let key_of = |name: &str| LinkKey { device: device.clone(), hook: hook.name().into(), name: name.into() };
        for (name, (link_id, _, _)) in &current {
            if !wanted.contains(name.as_str()) && !referenced.contains(link_id) {
                let key = key_of(name);
                plan.steps.push(step(Action::Detach, key.to_string(), "no longer in the chain".into()));
                removals.push(Removal { key, link_id: *link_id });
            }
        }
        for (name, &(link_id, _, defunct)) in &stale {
            if !wanted.contains(name.as_str()) {
                self.unpin(plan, key_of(name), hook, link_id, defunct, "no longer in the chain");
            }
        }
        plan.work.forget_links.extend(gone.iter().filter(|n| !wanted.contains(n.as_str())).map(|n| key_of(n)));
        // Which of the programs already there can stay in place.
        let present: Vec<(usize, usize)> =
            managed.iter().enumerate().filter_map(|(i, m)| current.get(&m.name).map(|c| (i, c.2))).collect();
        let stay: BTreeSet<usize> = longest_increasing(&present.iter().map(|p| p.1).collect::<Vec<_>>())
            .into_iter()
            .map(|k| present[k].0)
            .collect();

        let mut wants = Vec::new();
        for (i, m) in managed.iter().enumerate() {
            let key = LinkKey { device: device.clone(), hook: hook.name().into(), name: m.name.clone() };
            let object = key.to_string();
            let fp = self.fingerprint(m).map_err(|e| Mistakes(vec![(m.place, format!("{object}: {e}"))]))?;
            let mut repaired = None;
            let how = match current.get(&m.name) {
                None => {
                    let path = self.layout.link_path(&self.netns, device, hook, &m.name);
                    let refuse = |why: String| Mistakes(vec![(m.place, format!("{object}: {why}"))]);
                    // Apply's own name: whatever happened to its link, the
                    // name is attached again (a repair when it was there).
                    let mut reuse = None;
                    let (stale, repair) = if let Some(&(id, prog_id, defunct)) = stale.get(&m.name) {
                        let mut why = if defunct { off_hook(id) } else { format!("link {id} is on another hook") };
                        // The program apply set is still there, held by the
                        // link: it goes back on the hook with its state.
                        let rec = self.owned.links.get(&key);
                        if rec.is_some_and(|r| {
                            r.link_id == Some(id) && r.prog_id == Some(prog_id) && r.fingerprint.as_deref() == Some(&fp)
                        }) {
                            why += &format!("; its program {prog_id} goes back");
                            let (rules, entries) =
                                (self.rules_to_write(m, prog_id), self.entries_to_write(m, prog_id).await);
                            if rules.is_some() || entries.is_some() {
                                let what = if rules.is_some() { "rules" } else { "redirect entries" };
                                plan.steps.push(step(
                                    Action::Edit,
                                    object.clone(),
                                    format!("{what} as the spec lists them"),
                                ));
                            }
                            reuse = Some(Current { link_id: id, prog_id, replace: false, rules, entries });
                        }
                        // A device made now: its old links being off their
                        // hooks is what recreating it means, not drift.
                        (Some(id), Some(why).filter(|_| !fresh))
                    } else if gone.contains(&m.name) {
                        let was = self.owned.links.get(&key).and_then(|r| r.link_id).filter(|_| !fresh);
                        (None, was.map(|id| format!("link {id} and its pin are gone")))
                    } else {
                        match self.node.pin(&path) {
                            PinState::Empty => (None, None),
                            // A device apply creates now: what an older
                            // device of that name left pinned does nothing.
                            PinState::Link { id, defunct: true, .. } if fresh => (Some(id), None),
                            PinState::Link { id, defunct: true, .. } => {
                                return Err(refuse(format!(
                                    "{} is pinned at {} and apply did not pin it: `netkit link prune` unpins defunct links, or give the entry another name",
                                    off_hook(id),
                                    path.display()
                                )));
                            }
                            PinState::Link { .. } | PinState::Other => {
                                return Err(refuse(format!(
                                    "a link is pinned at {} and apply did not attach it: give the entry another name, or detach that link (`netkit detach {device} {hook} {}`)",
                                    path.display(),
                                    m.name
                                )));
                            }
                        }
                    };
                    let detail = attach_detail(m, &managed, i);
                    let detail = match &repair {
                        Some(r) => format!("repair: {r}; {detail}"),
                        None => detail,
                    };
                    plan.steps.push(step(Action::Attach, object.clone(), detail));
                    repaired = repair;
                    How::New { stale, reuse }
                }
                Some(&(link_id, prog_id, _)) => {
                    let rec = self.owned.links.get(&key);
                    let same = rec.is_some_and(|r| {
                        r.link_id == Some(link_id)
                            && r.prog_id == Some(prog_id)
                            && r.fingerprint.as_deref() == Some(&fp)
                    });
                    let replace = !same;
                    let (rules, entries) = if replace {
                        (None, None)
                    } else {
                        (self.rules_to_write(m, prog_id), self.entries_to_write(m, prog_id).await)
                    };
                    let cur = Current { link_id, prog_id, replace, rules, entries };
                    if replace {
                        plan.steps.push(step(Action::Update, object.clone(), update_detail(m, rec)));
                    }
                    if cur.rules.is_some() || cur.entries.is_some() {
                        let what = if cur.rules.is_some() { "rules" } else { "redirect entries" };
                        plan.steps.push(step(Action::Edit, object.clone(), format!("{what} as the spec lists them")));
                    }
                    if stay.contains(&i) {
                        How::Keep(cur)
                    } else {
                        plan.steps.push(step(Action::Move, object.clone(), attach_detail(m, &managed, i)));
                        How::Move(cur)
                    }
                }
            };
            wants.push(Want { key, repair: repaired, entry: (*m).clone(), fingerprint: fp, how });
        }
        let work = ChainWork { device: device.clone(), hook, removals, wants };
        Ok((!work.removals.is_empty() || work.wants.iter().any(Want::needs_work)).then_some(work))
    }

    /// The spec's rules when the firewall `prog_id` holds others.
    fn rules_to_write(&self, m: &Managed, prog_id: u32) -> Option<Vec<crate::maps::firewall::Rule>> {
        let want = m.rules.as_ref()?;
        let now = self.node.rules(prog_id);
        let want_text: Vec<String> = want.iter().map(ToString::to_string).collect();
        (now != want_text).then(|| want.clone())
    }

    /// The spec's redirect entries when the program `prog_id` holds others.
    async fn entries_to_write(&self, m: &Managed, prog_id: u32) -> Option<BTreeMap<IpAddr, String>> {
        let want = m.entries.as_ref()?;
        let now = self.node.entries(prog_id);
        let mut want_idx = BTreeMap::new();
        for (ip, pair) in want {
            match self.node.link(pair).await {
                Ok(Some(l)) => {
                    want_idx.insert(*ip, l.index);
                }
                _ => return Some(want.clone()),
            }
        }
        (now != want_idx).then(|| want.clone())
    }
}

fn step(action: Action, object: String, detail: String) -> StepView {
    StepView { action, object, detail }
}

fn attach_detail(m: &Managed, managed: &[&Managed], i: usize) -> String {
    let place = if i == 0 { String::new() } else { format!(", after {}", managed[i - 1].name) };
    let set = if m.set.is_empty() { String::new() } else { format!(" ({})", m.set.join(" ")) };
    format!("{}{set}{place}", m.prog)
}

fn update_detail(m: &Managed, rec: Option<&OwnedLink>) -> String {
    let set = if m.set.is_empty() { String::new() } else { format!(" ({})", m.set.join(" ")) };
    match rec {
        Some(r) if r.fingerprint.is_some() && (r.program != m.prog.to_string() || r.set != m.set) => {
            let was = if r.set.is_empty() { String::new() } else { format!(" ({})", r.set.join(" ")) };
            format!("{}{set}, was {}{was}", m.prog, r.program)
        }
        Some(r) if r.fingerprint.is_some() => format!("{}{set}: the object changed", m.prog),
        _ => format!("{}{set}: the program it runs is not the one apply last set", m.prog),
    }
}

fn describe_pair(p: &PairSpec) -> String {
    let mut parts = Vec::new();
    if let Some(peer) = &p.peer {
        parts.push(format!("peer {peer}"));
    }
    if let Some(ns) = &p.peer_netns {
        parts.push(format!("in {ns}"));
    }
    if let Some(m) = p.settings.mode {
        parts.push(format!("mode {m}"));
    }
    parts.join(", ")
}

/// The spec's fixed attributes that differ from the live pair, in words.
fn fixed_differences(want: &PairSpec, ends: &Ends) -> Vec<String> {
    let mut out = Vec::new();
    let nk = ends.primary.netkit.clone().unwrap_or_default().settings;
    let mut differs = |what: &str, want: Option<String>, have: Option<String>| {
        if let Some(w) = want
            && Some(&w) != have.as_ref()
        {
            out.push(format!("{what} is {} (the spec says {w})", have.unwrap_or_else(|| "unknown".into())));
        }
    };
    if !ends.primary.is_netkit() {
        out.push(format!("{} is not a netkit device", ends.primary.name));
        return out;
    }
    differs("mode", want.settings.mode.map(|m| m.to_string()), nk.mode.map(|m| m.to_string()));
    differs(
        "pairing",
        want.settings.pairing.map(|p| p.to_string()),
        Some(nk.pairing.unwrap_or(crate::netlink::links::Pairing::Pair).to_string()),
    );
    differs("scrub", want.settings.scrub.map(|s| s.to_string()), nk.scrub.map(|s| s.to_string()));
    differs("peer.scrub", want.settings.peer_scrub.map(|s| s.to_string()), nk.peer_scrub.map(|s| s.to_string()));
    differs("headroom", want.settings.headroom.map(|v| v.to_string()), nk.headroom.map(|v| v.to_string()));
    differs("tailroom", want.settings.tailroom.map(|v| v.to_string()), nk.tailroom.map(|v| v.to_string()));
    let q = |v: Option<u32>| v.map(|v| v.to_string());
    differs("primary.numrxqueues", q(want.attrs.queues.num_rx_queues), q(ends.primary.queues.num_rx_queues));
    differs("primary.numtxqueues", q(want.attrs.queues.num_tx_queues), q(ends.primary.queues.num_tx_queues));
    if let Some(peer) = &ends.peer {
        differs("peer.name", want.peer.clone(), Some(peer.name.clone()));
        differs("peer.numrxqueues", q(want.peer_attrs.queues.num_rx_queues), q(peer.queues.num_rx_queues));
        differs("peer.numtxqueues", q(want.peer_attrs.queues.num_tx_queues), q(peer.queues.num_tx_queues));
    }
    // The peer's namespace is not fixed: a peer elsewhere is moved back.
    out
}

/// The calling thread's own namespace, as a path that names it.
const HERE: &str = "/proc/thread-self/ns/net";

fn namespace_words(ns: &Option<netns::NetnsRef>) -> String {
    ns.as_ref().map(|n| n.to_string()).unwrap_or_else(|| "this namespace".into())
}

/// When the peer is in another namespace than the spec gives it (another
/// tool moved it): where it is, in words, and the move back. Namespaces are
/// compared by identity, not by name.
fn peer_elsewhere(want: &PairSpec, ends: &Ends) -> Option<(String, PeerMove)> {
    if ends.peer_unreachable || ends.peer.is_none() {
        return None;
    }
    let here = ends.peer_netns.as_ref().map(|n| netns::identity(&n.path));
    let want_ns = want.peer_netns.as_ref().map(|n| netns::identity(&n.path()));
    let same = match (here, want_ns) {
        (None, None) => true,
        (Some(a), Some(b)) => a == b,
        (None, Some(b)) => netns::identity(std::path::Path::new(HERE)) == b,
        (Some(_), None) => false,
    };
    if same {
        return None;
    }
    let now = ends.peer_netns.as_ref().map(|n| n.name.clone()).unwrap_or_else(|| "this namespace".into());
    let path = |p: &std::path::Path| netns::NetnsRef::Path(p.to_path_buf());
    let to = want.peer_netns.clone().unwrap_or_else(|| path(std::path::Path::new(HERE)));
    let from = ends.peer_netns.as_ref().map_or_else(|| path(std::path::Path::new(HERE)), |n| path(&n.path));
    let was_up = ends.peer.as_ref().is_some_and(|p| p.up);
    Some((now, PeerMove { to, from, was_up }))
}

/// The spec's live attributes that differ: the change to make, the MTU, up.
fn live_differences(want: &PairSpec, ends: &Ends) -> (PairChange, Option<u32>, bool, Vec<String>) {
    let nk = ends.primary.netkit.clone().unwrap_or_default().settings;
    let mut what = Vec::new();
    let mut change = PairChange::default();
    if let Some(p) = want.settings.policy
        && nk.policy != Some(p)
    {
        change.policy = Some(p);
        what.push(format!("primary.policy {p}"));
    }
    if let Some(p) = want.settings.peer_policy
        && nk.peer_policy != Some(p)
    {
        change.peer_policy = Some(p);
        what.push(format!("peer.policy {p}"));
    }
    change.this = end_change(&want.attrs, &ends.primary, "primary", &mut what);
    if let Some(peer) = &ends.peer {
        change.peer = end_change(&want.peer_attrs, peer, "peer", &mut what);
    }
    let mtu =
        want.mtu.filter(|m| Some(*m) != ends.primary.mtu || ends.peer.as_ref().is_some_and(|p| p.mtu != Some(*m)));
    if let Some(m) = mtu {
        what.push(format!("mtu {m}"));
    }
    let up = want.up && (!ends.primary.up || ends.peer.as_ref().is_some_and(|p| !p.up));
    if up {
        what.push("up".into());
    }
    (change, mtu, up, what)
}

fn end_change(want: &EndAttrs, have: &Link, end: &str, what: &mut Vec<String>) -> EndAttrs {
    let mut out = EndAttrs::default();
    if let Some(mac) = want.address
        && have.mac().as_deref() != Some(mac.to_string().as_str())
    {
        out.address = Some(mac);
        what.push(format!("{end}.address {mac}"));
    }
    let (w, h) = (&want.offload, &have.offload);
    let mut o = Offload::default();
    for (name, want, have, slot) in [
        ("gso_max_size", w.gso_max_size, h.gso_max_size, &mut o.gso_max_size),
        ("gso_ipv4_max_size", w.gso_ipv4_max_size, h.gso_ipv4_max_size, &mut o.gso_ipv4_max_size),
        ("gro_max_size", w.gro_max_size, h.gro_max_size, &mut o.gro_max_size),
        ("gro_ipv4_max_size", w.gro_ipv4_max_size, h.gro_ipv4_max_size, &mut o.gro_ipv4_max_size),
        ("gso_max_segs", w.gso_max_segs, h.gso_max_segs, &mut o.gso_max_segs),
    ] {
        if let Some(v) = want
            && have != Some(v)
        {
            *slot = Some(v);
            what.push(format!("{end}.{name} {v}"));
        }
    }
    out.offload = o;
    out
}

/// A spec that recreates the pair as it is now (to undo its deletion).
pub(crate) fn spec_of(ends: &Ends) -> PairSpec {
    let nk = ends.primary.netkit.clone().unwrap_or_default().settings;
    let end = |l: &Link| EndAttrs {
        address: l.address.as_deref().and_then(|a| <[u8; 6]>::try_from(a).ok()).map(Mac),
        offload: Offload::default(),
        queues: Default::default(),
    };
    PairSpec {
        name: ends.primary.name.clone(),
        peer: ends.peer.as_ref().map(|p| p.name.clone()),
        settings: PairSettings { pairing: None, ..nk },
        mtu: ends.primary.mtu,
        peer_netns: ends.peer_netns.as_ref().map(|n| netns::NetnsRef::Path(n.path.clone())),
        up: ends.primary.up,
        attrs: if nk.mode == Some(crate::netlink::links::Mode::L2) { end(&ends.primary) } else { EndAttrs::default() },
        peer_attrs: match (&ends.peer, nk.mode) {
            (Some(p), Some(crate::netlink::links::Mode::L2)) => end(p),
            _ => EndAttrs::default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
