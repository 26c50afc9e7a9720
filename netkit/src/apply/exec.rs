//! Carrying a plan out: pairs first (concurrently), then one job per hook
//! (on a bounded set of threads, so that the kernel's waits on chain changes
//! overlap), then deletions. Every step that succeeds leaves how to undo
//! it; when any step fails, the jobs still running stop at their next step
//! and everything done is undone in reverse, so the node is as it was.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    os::fd::{AsFd as _, OwnedFd},
    path::PathBuf,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use futures::StreamExt as _;

use super::{
    ApplyError, StepCause,
    plan::{Action, ChainWork, How, PairDeletion, PairWork, Plan, StepView, Unpin, Want},
    state::{LinkKey, OwnedLink, OwnedPair, Ownership, Record},
};
use crate::{
    bpf,
    fault::{self, Scope},
    hooks::{
        AttachError, Device, Hooks, Position,
        link::{AtPin, Link, LinkError, Pinned, TakenOff},
        refs::RefSpec,
    },
    maps::{
        firewall::{Firewall, Rule},
        redirect::Redirect,
    },
    mprog::{Hook, HookRef},
    netlink::{
        Netlink,
        device::{PairChange, PairSpec},
    },
    pins::{self, Layout},
    programs::{self, LoadOptions, Loaded},
    runtime,
};

/// How apply runs.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The bpffs the links are pinned under.
    pub bpffs: PathBuf,
    /// At most this many jobs at once.
    pub jobs: usize,
}

/// What an apply did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The steps made, in the order they finished.
    pub steps: Vec<StepView>,
}

/// How to take back one step.
enum Undo {
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
struct Captured {
    hook: Hook,
    prog: OwnedFd,
    /// Where its link was pinned (managed links).
    pin: Option<PathBuf>,
}

/// What the jobs share.
struct Shared<'a> {
    opts: &'a ExecOptions,
    layout: Layout,
    netns: String,
    failed: AtomicBool,
    /// Stateless programs loaded once per apply, by fingerprint.
    cache: Mutex<HashMap<String, (OwnedFd, bpf::ProgInfo)>>,
    owned: Mutex<Ownership>,
    /// The record as it was before this apply.
    before: Ownership,
    done: Mutex<Vec<StepView>>,
}

/// Writes the record, through the fault seam.
fn save(record: &Record, owned: &Ownership) -> Result<(), ApplyError> {
    check("record")?;
    record.save(owned)?;
    after("record");
    Ok(())
}

/// Before a step of `kind`, through the fault seam (`crate::fault`).
fn check(kind: &str) -> Result<(), ApplyError> {
    fault::check(Scope::Apply, kind).map_err(|e| step_err(format!("{kind} step"), StepCause::Injected(e.to_string())))
}

/// After a step of `kind` took effect.
fn after(kind: &str) {
    fault::after(Scope::Apply, kind);
}

fn step_err(what: impl Into<String>, e: impl Into<StepCause>) -> ApplyError {
    ApplyError::Step { what: what.into(), cause: Box::new(e.into()) }
}

/// The node is not as the plan found it.
fn changed(what: impl Into<String>, why: impl Into<String>) -> ApplyError {
    step_err(what, StepCause::Changed(why.into()))
}

impl Shared<'_> {
    fn record(&self, action: Action, object: String, detail: String) {
        self.done.lock().unwrap().push(StepView { action, object, detail });
    }

    fn path(&self, key: &LinkKey, hook: Hook) -> PathBuf {
        self.layout.link_path(&self.netns, &key.device, hook, &key.name)
    }

    /// The program of `want`, loaded (once per apply when it keeps no
    /// state of its own) with its rules and entries written.
    /// `on` is the hook the program goes to: the kernel runs a program at
    /// most once per chain, so one already there is not shared again.
    async fn program(&self, nl: &Netlink, want: &Want, on: HookRef) -> Result<Loaded, ApplyError> {
        let m = &want.entry;
        let there: Vec<u32> = on.query().map(|c| c.slots.iter().map(|s| s.prog_id).collect()).unwrap_or_default();
        let stateless = m.rules.is_none() && m.entries.is_none();
        if stateless
            && let Some((fd, info)) = self.cache.lock().unwrap().get(&want.fingerprint)
            && !there.contains(&info.id)
        {
            let fd = fd.try_clone().map_err(|e| step_err("sharing a loaded program", e))?;
            return Ok(Loaded { fd, info: *info, ebpf: None });
        }
        let opts = LoadOptions { globals: m.globals.clone(), map_pin_dir: Some(self.layout.maps_dir()) };
        let loaded = programs::load(&m.prog, &opts)?;
        if let Some(rules) = &m.rules {
            write_rules(loaded.id(), rules)?;
        }
        if let Some(entries) = &m.entries {
            write_entries(nl, loaded.id(), entries).await?;
        }
        if stateless && !self.cache.lock().unwrap().contains_key(&want.fingerprint) {
            let fd = loaded.fd.try_clone().map_err(|e| step_err("sharing a loaded program", e))?;
            self.cache.lock().unwrap().insert(want.fingerprint.clone(), (fd, loaded.info));
        }
        Ok(loaded)
    }

    fn own_link(&self, want: &Want, link_id: Option<u32>, prog_id: Option<u32>) {
        self.owned.lock().unwrap().links.insert(
            want.key.clone(),
            OwnedLink {
                link_id,
                prog_id,
                fingerprint: link_id.map(|_| want.fingerprint.clone()),
                program: want.entry.prog.to_string(),
                set: want.entry.set.clone(),
            },
        );
    }
}

fn write_rules(prog_id: u32, rules: &[Rule]) -> Result<Vec<Rule>, ApplyError> {
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

async fn write_entries(
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

fn set_entries(prog_id: u32, want: &[(IpAddr, u32)]) -> Result<Vec<(IpAddr, u32)>, ApplyError> {
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

/// Runs `plan`. On failure everything done is undone; the error names the
/// step and what was rolled back. Its netlink work runs on runtimes of its
/// own, outside the caller's (it may be called from inside one).
pub(crate) fn run(plan: &Plan, record: &Record, opts: &ExecOptions, netns: String) -> Result<Report, ApplyError> {
    runtime::own(|rt| run_on(rt, plan, record, opts, netns)).map_err(|e| step_err("starting the runtime", e))?
}

fn run_on(
    rt: &tokio::runtime::Runtime,
    plan: &Plan,
    record: &Record,
    opts: &ExecOptions,
    netns: String,
) -> Result<Report, ApplyError> {
    if plan.is_noop() {
        return Ok(Report { steps: Vec::new() });
    }
    let work = &plan.work;
    let before = work.owned.clone();
    let layout = Layout::new(&opts.bpffs)?;
    let shared = Shared {
        opts,
        layout,
        netns,
        failed: AtomicBool::new(false),
        cache: Mutex::new(HashMap::new()),
        owned: Mutex::new(before.clone()),
        before: before.clone(),
        done: Mutex::new(Vec::new()),
    };
    // Intentions first: a crash from here on leaves objects the next apply
    // knows as its own.
    {
        let mut o = shared.owned.lock().unwrap();
        for k in &work.forget_links {
            o.links.remove(k);
        }
        for n in &work.forget_pairs {
            o.pairs.remove(n);
        }
        for (n, ifindex) in &work.confirm_pairs {
            o.pairs.insert(n.clone(), OwnedPair { ifindex: Some(*ifindex) });
        }
        for p in &work.pairs {
            let name = match p {
                PairWork::Create(s) => Some(&s.name),
                PairWork::Recreate { spec, .. } => Some(&spec.name),
                PairWork::Change { .. } => None,
            };
            if let Some(name) = name {
                o.pairs.insert(name.clone(), OwnedPair { ifindex: None });
            }
        }
        for c in &work.chains {
            for w in c.wants.iter().filter(|w| w.needs_work()) {
                let rec = o.links.entry(w.key.clone()).or_default();
                rec.fingerprint = None;
                rec.program = w.entry.prog.to_string();
                rec.set = w.entry.set.clone();
                if matches!(w.how, How::New { .. } | How::Move(_)) {
                    rec.link_id = None;
                }
            }
        }
        save(record, &o)?;
    }

    // This runtime's own connection: one made on another runtime would not
    // be driven while this one blocks.
    let nl = &rt.block_on(async { Netlink::connect() })?;
    let mut undo: Vec<Vec<Undo>> = Vec::new();
    let mut failure: Option<ApplyError> = None;

    // Phase 1: pairs, concurrently on one connection.
    let jobs = opts.jobs.max(1);
    let results = rt.block_on(
        futures::stream::iter(&work.pairs).map(|p| pair_job(nl, &shared, p)).buffer_unordered(jobs).collect(),
    );
    collect(results, &mut undo, &mut failure);

    // Phase 2: the pins of managed links off their hooks go, then the
    // chains, one job per hook, on threads.
    if failure.is_none() && !work.unpins.is_empty() {
        let mut u = Vec::new();
        let r = unpin_job(&shared, &work.unpins, &mut u);
        collect(vec![(r, u)], &mut undo, &mut failure);
    }
    if failure.is_none() && !work.chains.is_empty() {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<JobResult>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..jobs.min(work.chains.len()) {
                // Threads of their own, outside any runtime: each starts one.
                s.spawn(|| {
                    let connected = runtime::new().map_err(|e| step_err("starting the runtime", e)).and_then(|rt| {
                        let nl = rt.block_on(async { Netlink::connect() })?;
                        Ok((rt, nl))
                    });
                    let (rt, nl) = match connected {
                        Ok(c) => c,
                        Err(e) => {
                            results.lock().unwrap().push((Err(e), Vec::new()));
                            return;
                        }
                    };
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(c) = work.chains.get(i) else { break };
                        if shared.failed.load(Ordering::SeqCst) {
                            break;
                        }
                        let mut u = Vec::new();
                        let r = rt.block_on(chain_job(&nl, &shared, c, &mut u));
                        if r.is_err() {
                            shared.failed.store(true, Ordering::SeqCst);
                        }
                        results.lock().unwrap().push((r, u));
                    }
                });
            }
        });
        collect(results.into_inner().unwrap(), &mut undo, &mut failure);
    }

    // Phase 3: pairs the spec no longer has.
    if failure.is_none() {
        let results = rt.block_on(
            futures::stream::iter(&work.deletions).map(|d| delete_job(nl, &shared, d)).buffer_unordered(jobs).collect(),
        );
        collect(results, &mut undo, &mut failure);
    }

    let Some(failure) = failure else {
        let o = shared.owned.lock().unwrap().clone();
        save(record, &o)?;
        return Ok(Report { steps: shared.done.into_inner().unwrap() });
    };
    // Roll back, newest first.
    let mut problems = Vec::new();
    let mut undone = 0;
    let mut recreated: Vec<String> = Vec::new();
    for log in undo.into_iter().rev() {
        for u in log.into_iter().rev() {
            undone += 1;
            if let Undo::Restore { old, .. } = &u {
                recreated.push(old.name.clone());
            }
            if let Err(e) = rt.block_on(undo_one(nl, &shared, u)) {
                problems.push(crate::programs::error_chain(&e));
            }
        }
    }
    let mut restored = before;
    for k in &work.forget_links {
        restored.links.remove(k);
    }
    // A pair created again on the way back is the same pair under a new
    // ifindex, and links attached again run the same programs under new
    // link ids: the record follows them.
    for name in recreated {
        if let (Some(rec), Ok(Some(l))) = (restored.pairs.get_mut(&name), nl.link_by_name(&name)) {
            rec.ifindex = Some(l.index);
        }
    }
    for (key, rec) in restored.links.iter_mut() {
        let Ok(hook) = key.hook.parse::<Hook>() else { continue };
        if let Ok((_, info)) = pins::open_link(&shared.path(key, hook))
            && Some(info.prog_id) == rec.prog_id
            && info.ifindex != 0
        {
            rec.link_id = Some(info.id);
        }
    }
    let saved = record.save(&restored);
    Err(ApplyError::RolledBack {
        cause: Box::new(failure),
        undone,
        problems: problems.into_iter().chain(saved.err().map(|e| e.to_string())).collect(),
    })
}

/// A job's outcome and how to undo what it did.
type JobResult = (Result<(), ApplyError>, Vec<Undo>);

fn collect(
    results: Vec<(Result<(), ApplyError>, Vec<Undo>)>,
    undo: &mut Vec<Vec<Undo>>,
    failure: &mut Option<ApplyError>,
) {
    for (r, u) in results {
        undo.push(u);
        if let Err(e) = r
            && failure.is_none()
        {
            *failure = Some(e);
        }
    }
}

async fn pair_job(nl: &Netlink, sh: &Shared<'_>, p: &PairWork) -> JobResult {
    let mut undo = Vec::new();
    let r = pair_steps(nl, sh, p, &mut undo).await;
    (r, undo)
}

async fn pair_steps(nl: &Netlink, sh: &Shared<'_>, p: &PairWork, undo: &mut Vec<Undo>) -> Result<(), ApplyError> {
    match p {
        PairWork::Create(spec) => {
            check(Action::Create.name())?;
            let view = nl.add_pair(spec).await.map_err(|e| step_err(format!("creating pair {}", spec.name), e))?;
            undo.push(Undo::DeletePair(spec.name.clone()));
            after(Action::Create.name());
            sh.owned.lock().unwrap().pairs.insert(spec.name.clone(), OwnedPair { ifindex: Some(view.ifindex) });
            sh.record(Action::Create, format!("pair {}", spec.name), format!("ifindex {}", view.ifindex));
        }
        PairWork::Change { name, change, mtu, up, peer_move } => {
            check(Action::Change.name())?;
            let what = format!("changing pair {name}");
            if let Some(m) = peer_move {
                nl.move_peer(name, &m.to).await.map_err(|e| step_err(&what, e))?;
                undo.push(Undo::MovePeer { name: name.clone(), to: m.from.clone(), up: m.was_up });
            }
            let ends = nl.ends(name).await?.ok_or_else(|| changed(&what, "the pair is gone"))?;
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
            sh.record(Action::Change, format!("pair {name}"), "live attributes set".into());
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
            sh.owned.lock().unwrap().pairs.insert(spec.name.clone(), OwnedPair { ifindex: Some(view.ifindex) });
            sh.record(Action::Recreate, format!("pair {}", spec.name), format!("ifindex {}", view.ifindex));
        }
    }
    Ok(())
}

/// The programs on a pair's hooks, in order, with the pins of managed links.
async fn capture(nl: &Netlink, sh: &Shared<'_>, name: &str) -> Result<Vec<Captured>, ApplyError> {
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

async fn delete_job(nl: &Netlink, sh: &Shared<'_>, d: &PairDeletion) -> JobResult {
    let mut undo = Vec::new();
    let r = delete_steps(nl, sh, d, &mut undo).await;
    (r, undo)
}

async fn delete_steps(nl: &Netlink, sh: &Shared<'_>, d: &PairDeletion, undo: &mut Vec<Undo>) -> Result<(), ApplyError> {
    check(Action::Delete.name())?;
    let programs = capture(nl, sh, &d.name).await?;
    nl.delete_pair(&d.name).await.map_err(|e| step_err(format!("deleting pair {}", d.name), e))?;
    after(Action::Delete.name());
    for (hook, key, _) in &d.links {
        let _ = sh.layout.unpin(&sh.path(key, *hook));
        sh.owned.lock().unwrap().links.remove(key);
    }
    sh.owned.lock().unwrap().pairs.remove(&d.name);
    undo.push(Undo::Restore { new: None, old: d.restore.clone(), programs });
    sh.record(Action::Delete, format!("pair {}", d.name), String::new());
    Ok(())
}

/// The link pinned at `path`, which the plan found there.
fn open_on(path: &std::path::Path, key: &LinkKey, link_id: u32) -> Result<Pinned, ApplyError> {
    Pinned::open(path, link_id).map_err(|e| step_err(format!("opening {key}"), e))
}

/// The program in front of `link_id` on the chain (None: it is first).
fn program_before(dev: &Device, hook: Hook, link_id: u32) -> Option<u32> {
    let chain = HookRef::new(dev.ifindex, hook).query().ok()?;
    let i = chain.slots.iter().position(|s| s.link_id == Some(link_id))?;
    (i > 0).then(|| chain.slots[i - 1].prog_id)
}

/// Detaches and unpins a managed link, keeping its program to put back.
fn take_off(
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
fn clear_pin(
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
fn unpin_job(sh: &Shared<'_>, unpins: &[Unpin], undo: &mut Vec<Undo>) -> Result<(), ApplyError> {
    for u in unpins {
        check(Action::Detach.name())?;
        let path = sh.path(&u.key, u.hook);
        clear_pin(sh, &path, &u.key, Some(u.link_id), undo)?;
        sh.owned.lock().unwrap().links.remove(&u.key);
        after(Action::Detach.name());
        sh.record(Action::Detach, u.key.to_string(), format!("link {} unpinned", u.link_id));
    }
    Ok(())
}

async fn chain_job(nl: &Netlink, sh: &Shared<'_>, c: &ChainWork, undo: &mut Vec<Undo>) -> Result<(), ApplyError> {
    let hooks = Hooks { nl, bpffs: sh.opts.bpffs.clone() };
    let hook = c.hook;
    let dev = hooks.device(&c.device).await.map_err(|e| step_err(format!("chain {} {hook}", c.device), e))?;

    for r in &c.removals {
        check(Action::Detach.name())?;
        take_off(sh, &dev, hook, &r.key, r.link_id, undo)?;
        after(Action::Detach.name());
        sh.owned.lock().unwrap().links.remove(&r.key);
        sh.record(Action::Detach, r.key.to_string(), format!("link {}", r.link_id));
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
                    sh.own_link(w, Some(cur.link_id), Some(new.id()));
                    sh.record(
                        Action::Update,
                        w.key.to_string(),
                        format!("link {} now runs program {}", cur.link_id, new.id()),
                    );
                } else {
                    edit(nl, sh, w, cur.prog_id, cur.rules.as_deref(), cur.entries.as_ref(), undo).await?;
                    sh.own_link(w, Some(cur.link_id), Some(cur.prog_id));
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
                sh.own_link(w, Some(link_id), Some(loaded.id()));
                let repair = w.repair.as_ref().map(|r| format!(" (repair: {r})")).unwrap_or_default();
                sh.record(action, w.key.to_string(), format!("link {link_id} runs program {}{repair}", loaded.id()));
                prev = Some(link_id);
            }
        }
    }
    Ok(())
}

/// Rewrites a live program's rules or entries.
async fn edit(
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
        sh.record(Action::Edit, w.key.to_string(), format!("{} rules", rules.len()));
    }
    if let Some(entries) = entries {
        check(Action::Edit.name())?;
        let was = write_entries(nl, prog_id, entries).await?;
        undo.push(Undo::Entries { prog_id, entries: was });
        after(Action::Edit.name());
        sh.record(Action::Edit, w.key.to_string(), format!("{} redirect entries", entries.len()));
    }
    Ok(())
}

/// Attaches a program this run kept (taken off its hook, or captured before
/// its pair went away) again as a link at `position`, pinned at `pin` in
/// place of whatever that pin holds now. Without a pin the link lives as
/// long as this process.
async fn attach_again(
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

async fn undo_one(nl: &Netlink, sh: &Shared<'_>, u: Undo) -> Result<(), ApplyError> {
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
            link.pin(&sh.layout, path.clone())
                .map_err(|(e, _)| step_err(format!("pinning {} again", path.display()), e))?;
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
