//! `netkit diff`, `apply` (once, or `--watch` under an orchestrator) and
//! `export`: the binary's edge of the library's apply engine.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool, atomic::Ordering},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};

use netkit::{
    apply::{Engine, Plan, PlanOptions, Report, StepView, spec, state::Wait},
    netlink::Netlink,
    os::rcu::{self, Recovery},
};

use crate::{
    cli::{ApplyArgs, Cli, SpecArgs},
    render,
};

fn runtime() -> Result<tokio::runtime::Runtime> {
    crate::runtime().context("starting the async runtime")
}

fn options(a: &SpecArgs) -> PlanOptions {
    PlanOptions { prune: a.prune, recreate: a.recreate, adopt: a.adopt, full: a.full }
}

/// Reads the spec and plans it.
fn plan(cli: &Cli, a: &SpecArgs, rt: &tokio::runtime::Runtime) -> Result<(Plan, Netlink)> {
    let spec = spec::read(&a.file)?;
    let nl = rt.block_on(async { Netlink::connect() })?;
    let engine = Engine::new(&nl, cli.bpffs.clone(), a.state.clone());
    let plan = rt.block_on(engine.plan(&spec, options(a)))?;
    Ok((plan, nl))
}

/// `netkit diff -f FILE`: 0 nothing to do, 2 something to do.
pub fn diff(cli: &Cli, a: &SpecArgs, out: &mut impl Write) -> Result<ExitCode> {
    let rt = runtime()?;
    let (plan, _nl) = plan(cli, a, &rt)?;
    render::print(cli.json, out, &plan, render::plan)?;
    Ok(if plan.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// `netkit apply -f FILE`.
pub fn apply(cli: &Cli, a: &ApplyArgs, out: &mut impl Write, err: &mut impl Write) -> Result<ExitCode> {
    if a.watch {
        return watch(cli, a, out, err);
    }
    let report = apply_once(cli, &a.spec, a, a.spec.full, Wait::For(Duration::from_secs(a.wait)), err)?;
    render::print(cli.json, out, &report, render::report)?;
    Ok(ExitCode::SUCCESS)
}

/// Plans and applies under the record's lock (in `full`, see `--full`):
/// waiting for another writer as `wait` says, saying once whom it waits for.
fn apply_once(
    cli: &Cli,
    a: &SpecArgs,
    how: &ApplyArgs,
    full: bool,
    wait: Wait<'_>,
    err: &mut impl Write,
) -> Result<Report> {
    // A run killed while it expedited grace periods left the knob set.
    let rcu_dir = Path::new(rcu::DEFAULT_DIR);
    if let Recovery::Restored(v) = rcu::recover(rcu_dir)? {
        let _ = writeln!(
            err,
            "apply: a run that ended while it expedited RCU grace periods left {} at 1; put back to {v}",
            rcu::KNOB
        );
    }
    let rt = runtime()?;
    let spec = spec::read(&a.file)?;
    let nl = rt.block_on(async { Netlink::connect() })?;
    let engine = Engine::new(&nl, cli.bpffs.clone(), a.state.clone());
    let writer = engine.lock(wait, |holder| {
        let _ = writeln!(err, "apply: waiting for the other writer of {}: {holder}", engine.record.path.display());
    })?;
    let plan = rt.block_on(engine.plan(&spec, PlanOptions { full, ..options(a) }))?;
    // Expedited only while there are chain changes to make.
    let expedited = if how.expedite && !plan.is_empty() { Some(rcu::Expedited::start(rcu_dir)?) } else { None };
    // Also when the plan has no step: the record may still learn what a
    // killed run left (apply returns at once when there is nothing at all).
    let report = engine.apply(&plan, usize::from(how.jobs), &writer);
    // Put back in any case; a failed apply's error comes first.
    let restored = expedited.map(rcu::Expedited::finish);
    let report = report?;
    restored.transpose()?;
    Ok(report)
}

/// What the file holds now (a ConfigMap update replaces it, often by
/// swapping a symlink, so its content is what counts).
fn content(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

fn log_step(cli: &Cli, out: &mut impl Write, s: &StepView) -> Result<()> {
    let ts = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    if cli.json {
        let mut line = serde_json::to_value(s)?;
        line["ts"] = ts.into();
        writeln!(out, "{line}")?;
    } else {
        writeln!(out, "{ts:.3} {} {}: {}", s.action.name(), s.object, s.detail)?;
    }
    Ok(out.flush()?)
}

fn log_error(cli: &Cli, out: &mut impl Write, e: &anyhow::Error) -> Result<()> {
    let ts = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    if cli.json {
        writeln!(out, "{}", serde_json::json!({ "ts": ts, "error": format!("{e:#}") }))?;
    } else {
        writeln!(out, "{ts:.3} error: {e:#}")?;
    }
    Ok(out.flush()?)
}

/// `apply --watch`: applies, then again whenever the file's content changes
/// and every --interval (repairing drift), until SIGTERM or SIGINT.
fn watch(cli: &Cli, a: &ApplyArgs, out: &mut impl Write, err: &mut impl Write) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing the signal handler")?;
    }
    let interval = Duration::from_secs(a.interval.max(1));
    let mut seen = None;
    let mut last = Instant::now() - interval;
    while !stop.load(Ordering::SeqCst) {
        let now = content(&a.spec.file);
        // The interval's drift check reads every hook in full; a changed
        // file is planned from the last run's proofs, as a one-off apply is.
        let due = last.elapsed() >= interval;
        if now != seen || due {
            last = Instant::now();
            // An agent waits for another writer (an operator's apply, the
            // agent it replaces) for as long as it takes, or until SIGTERM.
            match apply_once(cli, &a.spec, a, due || a.spec.full, Wait::UntilStopped(&stop), err) {
                Ok(report) => {
                    for s in &report.steps {
                        log_step(cli, out, s)?;
                    }
                    seen = now;
                }
                // Keep running: the node is as it was, the next change or
                // interval tries again.
                Err(_) if stop.load(Ordering::SeqCst) => break,
                Err(e) => {
                    log_error(cli, out, &e)?;
                    seen = now;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(ExitCode::SUCCESS)
}

/// `netkit export [DEV...]`.
pub fn export(
    cli: &Cli,
    devices: &[String],
    state: Option<&Path>,
    objects: &[PathBuf],
    out: &mut impl Write,
) -> Result<ExitCode> {
    // Absolute, so the spec names the same files wherever it is applied from.
    let objects = objects
        .iter()
        .map(|o| std::fs::canonicalize(o).with_context(|| format!("--object {}: cannot read it", o.display())))
        .collect::<Result<Vec<_>>>()?;
    let rt = runtime()?;
    let nl = rt.block_on(async { Netlink::connect() })?;
    let engine = Engine::new(&nl, cli.bpffs.clone(), state.map(Path::to_path_buf));
    let doc = rt.block_on(engine.export(devices, &objects))?;
    if cli.json {
        render::json(out, &doc)?;
    } else {
        write!(out, "{}", spec::to_yaml(&doc))?;
    }
    Ok(ExitCode::SUCCESS)
}
