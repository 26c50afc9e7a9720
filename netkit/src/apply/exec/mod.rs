//! Carrying a plan out: pairs first (concurrently), then one job per hook
//! (on a bounded set of threads, so that the kernel's waits on chain changes
//! overlap), then deletions. Every step that succeeds leaves how to undo
//! it; when any step fails, the jobs still running stop at their next step
//! and everything done is undone in reverse, so the node is as it was.

mod chains;
mod pairs;
#[cfg(test)]
mod tests;
mod undo;

use chains::*;
use pairs::*;
use undo::*;

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
    state::{HookProof, LinkKey, OwnedLink, OwnedPair, Ownership, Record, hook_key},
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

/// What the jobs share.
struct Shared<'a> {
    opts: &'a ExecOptions,
    layout: Layout,
    netns: String,
    failed: AtomicBool,
    /// Stateless programs (no rules or entries, and no map the program
    /// writes: see [`writes_no_map`]) loaded once per apply, by fingerprint.
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

/// One step that took effect, as a job tells the executor ([`Shared::did`]).
pub(super) enum Did<'w> {
    /// A pair was created or recreated (`action`) and has `ifindex`.
    Made { action: Action, name: &'w str, ifindex: u32 },
    /// A pair's live attributes were set.
    Changed { name: &'w str },
    /// A pair was deleted, and its managed links with it.
    Deleted { deletion: &'w PairDeletion },
    /// A managed link runs `prog_id`: attached, moved or updated
    /// (`action`), or found as the plan wants it (None, no step).
    Runs { action: Option<Action>, want: &'w Want, link_id: u32, prog_id: u32 },
    /// A managed link was detached (`unpinned`: it was already off its hook
    /// and only its pin went).
    Detached { key: &'w LinkKey, link_id: u32, unpinned: bool },
    /// `count` rules or redirect entries (`what`) were written to `prog_id`.
    Edited { key: &'w LinkKey, prog_id: u32, what: &'static str, count: usize },
}

impl Shared<'_> {
    /// What a job tells the executor after each step that took effect: the
    /// record and the report follow it here, not in the jobs.
    fn did(&self, d: Did<'_>) {
        let mut o = self.owned.lock().unwrap();
        let view = match d {
            Did::Made { action, name, ifindex } => {
                o.pairs.insert(name.into(), OwnedPair { ifindex: Some(ifindex) });
                StepView::new(action, format!("pair {name}"), format!("ifindex {ifindex}")).ifindex(ifindex)
            }
            Did::Changed { name } => {
                StepView::new(Action::Change, format!("pair {name}"), "live attributes set".into())
            }
            Did::Deleted { deletion } => {
                for (_, key, _) in &deletion.links {
                    o.links.remove(key);
                }
                o.pairs.remove(&deletion.name);
                StepView::new(Action::Delete, format!("pair {}", deletion.name), String::new())
            }
            Did::Runs { action, want, link_id, prog_id } => {
                o.links.insert(
                    want.key.clone(),
                    OwnedLink {
                        link_id: Some(link_id),
                        prog_id: Some(prog_id),
                        fingerprint: Some(want.fingerprint.clone()),
                        program: want.entry.prog.to_string(),
                        set: want.entry.set.clone(),
                    },
                );
                let Some(action) = action else { return };
                let detail = if action == Action::Update {
                    format!("link {link_id} now runs program {prog_id}")
                } else {
                    let repair = want.repair.as_ref().map(|r| format!(" (repair: {r})")).unwrap_or_default();
                    format!("link {link_id} runs program {prog_id}{repair}")
                };
                StepView::new(action, want.key.to_string(), detail).with_link(link_id).with_prog(prog_id)
            }
            Did::Detached { key, link_id, unpinned } => {
                o.links.remove(key);
                let detail = if unpinned { format!("link {link_id} unpinned") } else { format!("link {link_id}") };
                StepView::new(Action::Detach, key.to_string(), detail).with_link(link_id)
            }
            Did::Edited { key, prog_id, what, count } => {
                StepView::new(Action::Edit, key.to_string(), format!("{count} {what}")).with_prog(prog_id)
            }
        };
        drop(o);
        self.done.lock().unwrap().push(view);
    }

    /// Records the proof of the hook a chain job made (see
    /// [`crate::apply::state`]): the hook as queried now, when every link
    /// the spec wants there is on it running the program the record says.
    /// Anything else (another writer between the job and this query) leaves
    /// no proof, and the next run reads the hook in full.
    fn prove(&self, ifindex: u32, c: &ChainWork, digest: &str) {
        let Ok(now) = HookRef::new(ifindex, c.hook).query() else { return };
        let proof = HookProof::of(ifindex, &now, digest.into());
        let mut o = self.owned.lock().unwrap();
        if c.wants.iter().all(|w| o.links.get(&w.key).is_some_and(|r| r.on(&proof))) {
            o.hooks.insert(hook_key(&c.device, c.hook.name()), proof);
        }
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
        if stateless && writes_no_map(&loaded) && !self.cache.lock().unwrap().contains_key(&want.fingerprint) {
            let fd = loaded.fd.try_clone().map_err(|e| step_err("sharing a loaded program", e))?;
            self.cache.lock().unwrap().insert(want.fingerprint.clone(), (fd, loaded.info));
        }
        Ok(loaded)
    }
}

/// Runs `plan`. On failure everything done is undone; the error names the
/// step and what was rolled back. Its netlink work runs on runtimes of its
/// own, outside the caller's (it may be called from inside one).
pub(crate) fn run(plan: &Plan, record: &Record, opts: &ExecOptions, netns: String) -> Result<Report, ApplyError> {
    if plan.is_noop() {
        return Ok(Report { steps: Vec::new() });
    }
    let layout = Layout::new(&opts.bpffs)?;
    let kernel = Kernel { record };
    runtime::own(|rt| execute(&kernel, rt, plan, opts, layout, netns))
        .map_err(|e| step_err("starting the runtime", e))?
}

/// What the executor does to the node, one job at a time, and how it takes
/// each step back: the kernel's ([`Kernel`]), or a test's. The order of the
/// phases, which jobs run after a failure, the rollback newest first and
/// the record written before, after and on the way back are the
/// executor's own ([`execute`]).
trait Effects: Sync {
    /// How one step is taken back.
    type Undo: Send;
    /// A connection, one per thread.
    type Conn;

    /// A connection of this thread (inside its runtime).
    fn connect(&self) -> Result<Self::Conn, ApplyError>;
    /// One pair's creation, change or replacement.
    async fn pair(
        &self,
        c: &Self::Conn,
        sh: &Shared<'_>,
        p: &PairWork,
        undo: &mut Vec<Self::Undo>,
    ) -> Result<(), ApplyError>;
    /// The pins of managed links off their hooks.
    fn unpin(&self, sh: &Shared<'_>, unpins: &[Unpin], undo: &mut Vec<Self::Undo>) -> Result<(), ApplyError>;
    /// One hook's chain.
    async fn chain(
        &self,
        c: &Self::Conn,
        sh: &Shared<'_>,
        w: &ChainWork,
        undo: &mut Vec<Self::Undo>,
    ) -> Result<(), ApplyError>;
    /// One pair the spec no longer has.
    async fn delete(
        &self,
        c: &Self::Conn,
        sh: &Shared<'_>,
        d: &PairDeletion,
        undo: &mut Vec<Self::Undo>,
    ) -> Result<(), ApplyError>;
    /// The pair `u` creates again, if it does.
    fn recreates(u: &Self::Undo) -> Option<String>;
    /// Takes one step back.
    async fn undo(&self, c: &Self::Conn, sh: &Shared<'_>, u: Self::Undo) -> Result<(), ApplyError>;
    /// After a rollback: the record follows what was made again on the way
    /// back (pairs under new ifindexes, links under new ids).
    fn follow(&self, c: &Self::Conn, sh: &Shared<'_>, restored: &mut Ownership, recreated: &[String]);
    /// Writes the record (`seam`: through the fault seam).
    fn save(&self, owned: &Ownership, seam: bool) -> Result<(), ApplyError>;
}

/// The kernel's effects, writing `record`.
struct Kernel<'r> {
    record: &'r Record,
}

impl Effects for Kernel<'_> {
    type Undo = Undo;
    type Conn = Netlink;

    fn connect(&self) -> Result<Netlink, ApplyError> {
        Ok(Netlink::connect()?)
    }

    async fn pair(&self, nl: &Netlink, sh: &Shared<'_>, p: &PairWork, undo: &mut Vec<Undo>) -> Result<(), ApplyError> {
        pair_steps(nl, sh, p, undo).await
    }

    fn unpin(&self, sh: &Shared<'_>, unpins: &[Unpin], undo: &mut Vec<Undo>) -> Result<(), ApplyError> {
        unpin_job(sh, unpins, undo)
    }

    async fn chain(
        &self,
        nl: &Netlink,
        sh: &Shared<'_>,
        w: &ChainWork,
        undo: &mut Vec<Undo>,
    ) -> Result<(), ApplyError> {
        chain_job(nl, sh, w, undo).await
    }

    async fn delete(
        &self,
        nl: &Netlink,
        sh: &Shared<'_>,
        d: &PairDeletion,
        undo: &mut Vec<Undo>,
    ) -> Result<(), ApplyError> {
        delete_steps(nl, sh, d, undo).await
    }

    fn recreates(u: &Undo) -> Option<String> {
        match u {
            Undo::Restore { old, .. } => Some(old.name.clone()),
            _ => None,
        }
    }

    async fn undo(&self, nl: &Netlink, sh: &Shared<'_>, u: Undo) -> Result<(), ApplyError> {
        undo_one(nl, sh, u).await
    }

    fn follow(&self, nl: &Netlink, sh: &Shared<'_>, restored: &mut Ownership, recreated: &[String]) {
        for name in recreated {
            if let (Some(rec), Ok(Some(l))) = (restored.pairs.get_mut(name), nl.link_by_name(name)) {
                rec.ifindex = Some(l.index);
            }
        }
        for (key, rec) in restored.links.iter_mut() {
            let Ok(hook) = key.hook.parse::<Hook>() else { continue };
            if let Ok((_, info)) = pins::open_link(&sh.path(key, hook))
                && Some(info.prog_id) == rec.prog_id
                && info.ifindex != 0
            {
                rec.link_id = Some(info.id);
            }
        }
    }

    fn save(&self, owned: &Ownership, seam: bool) -> Result<(), ApplyError> {
        if seam { save(self.record, owned) } else { Ok(self.record.save(owned)?) }
    }
}

fn execute<E: Effects>(
    fx: &E,
    rt: &tokio::runtime::Runtime,
    plan: &Plan,
    opts: &ExecOptions,
    layout: Layout,
    netns: String,
) -> Result<Report, ApplyError> {
    let work = &plan.work;
    let before = work.owned.clone();
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
        // Only the proofs of hooks this run leaves alone, checked by its
        // plan: a crash from here on leaves none that could be wrong.
        o.hooks = work.proofs.clone();
        for n in &work.forget_pairs {
            o.pairs.remove(n);
        }
        for (n, ifindex) in &work.confirm_pairs {
            o.pairs.insert(n.clone(), OwnedPair { ifindex: Some(*ifindex) });
        }
        // Adopted links exist as recorded: nothing is done to them.
        for (k, rec) in &work.adopt_links {
            o.links.insert(k.clone(), rec.clone());
        }
        shared.done.lock().unwrap().extend(plan.steps.iter().filter(|s| s.action == Action::Adopt).cloned());
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
        fx.save(&o, true)?;
    }

    // This runtime's own connection: one made on another runtime would not
    // be driven while this one blocks.
    let conn = &rt.block_on(async { fx.connect() })?;
    let mut undo: Vec<Vec<E::Undo>> = Vec::new();
    let mut failure: Option<ApplyError> = None;

    // Phase 1: pairs, concurrently on one connection.
    let jobs = opts.jobs.max(1);
    let results = rt.block_on(
        futures::stream::iter(&work.pairs)
            .map(|p| async {
                let mut u = Vec::new();
                (fx.pair(conn, &shared, p, &mut u).await, u)
            })
            .buffer_unordered(jobs)
            .collect(),
    );
    collect(results, &mut undo, &mut failure);

    // Phase 2: the pins of managed links off their hooks go, then the
    // chains, one job per hook, on threads.
    if failure.is_none() && !work.unpins.is_empty() {
        let mut u = Vec::new();
        let r = fx.unpin(&shared, &work.unpins, &mut u);
        collect(vec![(r, u)], &mut undo, &mut failure);
    }
    if failure.is_none() && !work.chains.is_empty() {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<JobResult<E::Undo>>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..jobs.min(work.chains.len()) {
                // Threads of their own, outside any runtime: each starts one.
                s.spawn(|| {
                    let connected = runtime::new().map_err(|e| step_err("starting the runtime", e)).and_then(|rt| {
                        let conn = rt.block_on(async { fx.connect() })?;
                        Ok((rt, conn))
                    });
                    let (rt, conn) = match connected {
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
                        let r = rt.block_on(fx.chain(&conn, &shared, c, &mut u));
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
            futures::stream::iter(&work.deletions)
                .map(|d| async {
                    let mut u = Vec::new();
                    (fx.delete(conn, &shared, d, &mut u).await, u)
                })
                .buffer_unordered(jobs)
                .collect(),
        );
        collect(results, &mut undo, &mut failure);
    }

    let Some(failure) = failure else {
        let o = shared.owned.lock().unwrap().clone();
        fx.save(&o, true)?;
        return Ok(Report { steps: shared.done.into_inner().unwrap() });
    };
    // Roll back, newest first.
    let mut problems = Vec::new();
    let mut undone = 0;
    let mut recreated: Vec<String> = Vec::new();
    for log in undo.into_iter().rev() {
        for u in log.into_iter().rev() {
            undone += 1;
            recreated.extend(E::recreates(&u));
            if let Err(e) = rt.block_on(fx.undo(conn, &shared, u)) {
                problems.push(crate::os::errno::error_chain(&e));
            }
        }
    }
    let mut restored = before;
    for k in &work.forget_links {
        restored.links.remove(k);
    }
    restored.hooks = work.proofs.clone();
    // A pair created again on the way back is the same pair under a new
    // ifindex, and links attached again run the same programs under new
    // link ids: the record follows them.
    fx.follow(conn, &shared, &mut restored, &recreated);
    let saved = fx.save(&restored, false);
    Err(ApplyError::RolledBack {
        cause: Box::new(failure),
        undone,
        problems: problems.into_iter().chain(saved.err().map(|e| crate::os::errno::error_chain(&e))).collect(),
    })
}

/// A job's outcome and how to undo what it did.
type JobResult<U> = (Result<(), ApplyError>, Vec<U>);

fn collect<U>(results: Vec<JobResult<U>>, undo: &mut Vec<Vec<U>>, failure: &mut Option<ApplyError>) {
    for (r, u) in results {
        undo.push(u);
        if let Err(e) = r
            && failure.is_none()
        {
            *failure = Some(e);
        }
    }
}

/// Whether every map `loaded` uses is read-only to it (frozen read-only
/// data): then one program can serve several hooks. A counter's counts, a
/// firewall's hits and rules, a log's buffer are each hook's own, and a
/// program shared by two hooks would mix them (and a rule added on one hook
/// would hold on the other).
fn writes_no_map(loaded: &Loaded) -> bool {
    const BPF_F_RDONLY_PROG: u32 = 1 << 7;
    let Ok((_, maps)) = crate::bpf::prog_info(loaded.fd.as_fd()) else { return false };
    maps.into_iter().all(|id| {
        crate::bpf::map_fd_by_id(id)
            .and_then(|fd| crate::bpf::map_info(fd.as_fd()))
            .is_ok_and(|info| info.map_flags & BPF_F_RDONLY_PROG != 0)
    })
}
