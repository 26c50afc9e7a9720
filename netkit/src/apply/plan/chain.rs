//! Planning one chain: which managed links stay, move, are updated or
//! edited in place, which are new, and which go; programs apply does not
//! own are never touched.

use super::*;

impl<N: Node> Planner<'_, N> {
    /// Plans one chain; None when it is as the spec says.
    pub(super) async fn chain(
        &self,
        at: &At<'_>,
        chain: &Chain,
        plan: &mut Plan,
    ) -> Result<Option<ChainWork>, Mistakes> {
        let fresh = at.new.contains(&chain.device);
        let wrong = |m: String| Mistakes(vec![(chain.place, m)]);
        let (device, hook) = (&chain.device, chain.hook);
        // A program that cannot work on the hook is refused before the node is read.
        let misfits: Vec<(Place, String)> = chain
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Managed(m) => {
                    self.misfit(m, hook).map(|why| (m.place, format!("{device} {hook} {}: {why}", m.name)))
                }
                Entry::Foreign { .. } => None,
            })
            .collect();
        if !misfits.is_empty() {
            return Err(Mistakes(misfits));
        }
        let declared = at.pairs.get(device.as_str()).copied();
        let link = if declared.is_some() && fresh {
            None
        } else {
            match self.device(device).await {
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
                    if !at.pairs.contains_key(pair.as_str()) && !matches!(self.device(pair).await, Ok(Some(_))) {
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
        let digest = self.digest(chain, &at.new).await;
        let proof = link.as_ref().zip(digest.clone()).map(|(l, d)| HookProof::of(l.index, &now, d));
        if !fresh
            && let Some(proof) = &proof
            && let Some(ours) = self.proven(chain, proof)
        {
            foreign(chain, &now, &ours, plan);
            plan.work.proofs.insert(hook_key(device, hook.name()), proof.clone());
            return Ok(None);
        }
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
        // Links to adopt (`--adopt`): pinned at apply's path for an entry's
        // name and on this hook, running the program the entry names with
        // its settings, rules and entries; a difference is refused. One
        // pinned there but off the hook is refused below as without it.
        let mut adopted: BTreeSet<String> = BTreeSet::new();
        if self.opts.adopt {
            for e in &chain.entries {
                let Entry::Managed(m) = e else { continue };
                if current.contains_key(&m.name) || stale.contains_key(&m.name) || gone.contains(&m.name) {
                    continue;
                }
                let path = self.layout.link_path(&self.netns, device, hook, &m.name);
                let PinState::Link { id, prog_id, defunct: false } = self.node.pin(&path) else { continue };
                let Some(pos) = now.slots.iter().position(|s| s.link_id == Some(id)) else { continue };
                let refuse =
                    |why: String| Mistakes(vec![(m.place, format!("{device} {hook} {}: not adopted: {why}", m.name))]);
                if let Some(why) = self.node.differs(prog_id, &m.prog, &m.set, &self.layout.maps_dir()) {
                    return Err(refuse(why));
                }
                if let Some(want) = &m.rules
                    && self.rules_to_write(m, prog_id).is_some()
                {
                    let words = |r: Vec<String>| if r.is_empty() { "none".to_string() } else { r.join("; ") };
                    return Err(refuse(format!(
                        "its rules are {}; the spec lists {}",
                        words(self.node.rules(prog_id)),
                        words(want.iter().map(ToString::to_string).collect())
                    )));
                }
                if self.entries_to_write(m, prog_id).await.is_some() {
                    return Err(refuse("its redirect entries are not the spec's".into()));
                }
                owned_links.insert(id);
                current.insert(m.name.clone(), (id, prog_id, pos));
                adopted.insert(m.name.clone());
            }
        }
        foreign(chain, &now, &owned_links, plan);

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
                plan.steps
                    .push(step(Action::Detach, key.to_string(), "no longer in the chain".into()).with_link(*link_id));
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
                                    "a link is pinned at {} and apply did not attach it: apply --adopt takes it over if it runs what the entry says, on this hook; or give the entry another name, or detach that link (`netkit detach {device} {hook} {}`)",
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
                Some(&(link_id, prog_id, pos)) if adopted.contains(&m.name) => {
                    if !stay.contains(&i) {
                        let place = if i == 0 { "first".to_string() } else { format!("after {}", managed[i - 1].name) };
                        return Err(Mistakes(vec![(
                            m.place,
                            format!(
                                "{object}: not adopted: link {link_id} is at position {} of the chain; the spec puts it {place}",
                                pos + 1
                            ),
                        )]));
                    }
                    plan.steps.push(
                        step(Action::Adopt, object.clone(), format!("{}, as it is", attach_detail(m, &managed, i)))
                            .with_link(link_id)
                            .with_prog(prog_id),
                    );
                    plan.work.adopt_links.push((
                        key.clone(),
                        OwnedLink {
                            link_id: Some(link_id),
                            prog_id: Some(prog_id),
                            fingerprint: Some(fp.clone()),
                            program: m.prog.to_string(),
                            set: m.set.clone(),
                        },
                    ));
                    How::Keep(Current { link_id, prog_id, replace: false, rules: None, entries: None })
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
                        plan.steps.push(step(Action::Update, object.clone(), update_detail(m, rec)).with_link(link_id));
                    }
                    if cur.rules.is_some() || cur.entries.is_some() {
                        let what = if cur.rules.is_some() { "rules" } else { "redirect entries" };
                        plan.steps.push(step(Action::Edit, object.clone(), format!("{what} as the spec lists them")));
                    }
                    if stay.contains(&i) {
                        How::Keep(cur)
                    } else {
                        plan.steps
                            .push(step(Action::Move, object.clone(), attach_detail(m, &managed, i)).with_link(link_id));
                        How::Move(cur)
                    }
                }
            };
            wants.push(Want { key, repair: repaired, entry: (*m).clone(), fingerprint: fp, how });
        }
        let work = ChainWork { device: device.clone(), hook, removals, wants, digest };
        if !work.removals.is_empty() || work.wants.iter().any(Want::needs_work) {
            return Ok(Some(work));
        }
        // As the spec says, read in full: the proof for the next run.
        if let Some(proof) = proof {
            plan.work.proofs.insert(hook_key(device, hook.name()), proof);
        }
        Ok(None)
    }

    /// What the spec says of `chain`, as a digest for its hook's proof: where
    /// its links are pinned, and each entry's name, program, what it is made
    /// from, settings, rules and redirect entries with their devices'
    /// ifindexes. None when it cannot say yet (a program that cannot be
    /// read, an entry naming a pair this plan makes) or has nothing to prove
    /// (no managed entry).
    async fn digest(&self, chain: &Chain, new: &BTreeSet<String>) -> Option<String> {
        // A chain of references alone has nothing of apply's to prove.
        if !chain.entries.iter().any(|e| matches!(e, Entry::Managed(_))) {
            return None;
        }
        let mut h = Sha256::new();
        // Where its links are pinned: a run with another --bpffs reads in full.
        h.update(self.layout.hook_dir(&self.netns, &chain.device, chain.hook).as_os_str().as_encoded_bytes());
        h.update(b"\n");
        for e in &chain.entries {
            match e {
                Entry::Managed(m) => {
                    let fp = self.fingerprint(m).ok()?;
                    h.update(format!("m\0{}\0{}\0{}\0{fp}\0", m.name, m.prog, m.set.join("\x1f")).as_bytes());
                    match &m.rules {
                        Some(rules) => {
                            for r in rules {
                                h.update(format!("r {r}\0").as_bytes());
                            }
                        }
                        None => h.update(b"-\0"),
                    }
                    for (ip, pair) in m.entries.iter().flatten() {
                        if new.contains(pair) {
                            return None;
                        }
                        let index = self.device(pair).await.ok()??.index;
                        h.update(format!("e {ip} {pair} {index}\0").as_bytes());
                    }
                }
                Entry::Foreign { reference, .. } => h.update(format!("f {reference}\0").as_bytes()),
            }
            h.update(b"\n");
        }
        Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The ids of apply's links on the hook when the last run's proof holds
    /// for `chain`: the hook is as that run left it (same device, revision
    /// and slots), the spec says what it said then, and the record names
    /// each managed entry's link on it, with the program it was made from.
    /// None when anything differs (`--full` and `--adopt` always read in
    /// full).
    fn proven(&self, chain: &Chain, now: &HookProof) -> Option<BTreeSet<u32>> {
        if self.opts.full || self.opts.adopt {
            return None;
        }
        let hook = chain.hook.name();
        if self.owned.hooks.get(&hook_key(&chain.device, hook)) != Some(now) {
            return None;
        }
        let records = self.by_hook.get(&(chain.device.clone(), hook.to_string()))?;
        let managed = chain.entries.iter().filter(|e| matches!(e, Entry::Managed(_))).count();
        if records.len() != managed {
            return None;
        }
        let mut ours = BTreeSet::new();
        for e in &chain.entries {
            let Entry::Managed(m) = e else { continue };
            let key = LinkKey { device: chain.device.clone(), hook: hook.into(), name: m.name.clone() };
            let rec = self.owned.links.get(&key)?;
            let fp = self.fingerprint(m).ok()?;
            if !rec.on(now) || rec.fingerprint.as_deref() != Some(&fp) {
                return None;
            }
            ours.insert(rec.link_id?);
        }
        Some(ours)
    }

    /// The spec's rules when the firewall `prog_id` holds others.
    pub(super) fn rules_to_write(&self, m: &Managed, prog_id: u32) -> Option<Vec<crate::maps::firewall::Rule>> {
        let want = m.rules.as_ref()?;
        let now = self.node.rules(prog_id);
        let want_text: Vec<String> = want.iter().map(ToString::to_string).collect();
        (now != want_text).then(|| want.clone())
    }

    /// The spec's redirect entries when the program `prog_id` holds others.
    pub(super) async fn entries_to_write(&self, m: &Managed, prog_id: u32) -> Option<BTreeMap<IpAddr, String>> {
        let want = m.entries.as_ref()?;
        let now = self.node.entries(prog_id);
        let mut want_idx = BTreeMap::new();
        for (ip, pair) in want {
            match self.device(pair).await {
                Ok(Some(l)) => {
                    want_idx.insert(*ip, l.index);
                }
                _ => return Some(want.clone()),
            }
        }
        (now != want_idx).then(|| want.clone())
    }
}

/// The programs on the hook apply does not own (`ours` are the ids of its
/// links there), shown so the user knows they stay; and a note for each
/// reference of the chain that is not on the hook.
fn foreign(chain: &Chain, now: &mprog::Chain, ours: &BTreeSet<u32>, plan: &mut Plan) {
    let (device, hook) = (&chain.device, chain.hook);
    for (i, s) in now.slots.iter().enumerate() {
        if !s.link_id.is_some_and(|l| ours.contains(&l)) {
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
}

/// The longest subsequence of `seq` that is increasing: the indexes into
/// `seq` of the programs that can stay while the others move around them.
pub(super) fn longest_increasing(seq: &[usize]) -> BTreeSet<usize> {
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

pub(super) fn attach_detail(m: &Managed, managed: &[&Managed], i: usize) -> String {
    let place = if i == 0 { String::new() } else { format!(", after {}", managed[i - 1].name) };
    let set = if m.set.is_empty() { String::new() } else { format!(" ({})", m.set.join(" ")) };
    format!("{}{set}{place}", m.prog)
}

pub(super) fn update_detail(m: &Managed, rec: Option<&OwnedLink>) -> String {
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
