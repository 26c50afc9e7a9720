//! Runs one parsed command: enters the namespace, validates, calls the
//! operations and writes their output (devices, hooks and links here;
//! programs and their maps in `programs`; `run` and `logs` in `run`).

pub mod apply;
pub mod batch;
pub mod metrics;
pub mod programs;
pub mod run;

use std::{io::Write, process::ExitCode};

use anyhow::{Context as _, Result, bail};

use netkit::{
    hooks::count_programs,
    hooks::refs::RefSpec,
    hooks::{AttachRequest, Attachment, DetachRequest, DetachTarget, Hooks, PlainRef, Position, UpdateRequest},
    netlink::{
        Netlink,
        device::{self, PairChange, PairSpec},
        leases,
        links::PairSettings,
    },
    os::netns,
    os::probe,
    programs::LoadOptions,
};

use crate::{
    cli::{
        AttachArgs, Cli, Command, DetachPositionArgs, DeviceCommand, DeviceSet, HookPlace, LinkCommand, PositionArgs,
        QueueCommand,
    },
    render,
};

/// Runs `cli`, writing results to `out` and hints to `err`.
pub fn run(cli: &Cli, out: &mut impl Write, err: &mut impl Write) -> Result<ExitCode> {
    if cli.batch.is_some() && cli.command.is_some() {
        bail!("--batch runs the commands in its file; give either --batch FILE or one command");
    }
    let Some(command) = &cli.command else {
        return match &cli.batch {
            Some(file) => batch::run(cli, file, out, err),
            None => bail!("no command given: see `netkit --help`"),
        };
    };
    // Back to the caller's namespace when the command is done (a --batch
    // file runs many commands in one process).
    let _visit = cli.netns.as_ref().map(netns::Visit::enter).transpose()?;
    match command {
        Command::Completions { shell } => {
            use clap_complete::env::{Bash, Fish, Zsh};
            let shell: &dyn clap_complete::env::EnvCompleter = match shell.as_str() {
                "bash" => &Bash,
                "zsh" => &Zsh,
                _ => &Fish,
            };
            // The script asks `netkit` (found on PATH) for each completion.
            shell.write_registration("COMPLETE", "netkit", "netkit", "netkit", out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Metrics { listen } => block_on(metrics::serve(cli.bpffs.clone(), *listen, err)),
        Command::Man { dir } => {
            let pages = man_pages(dir)?;
            writeln!(out, "wrote {pages} manual pages into {}", dir.display())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff(a) => apply::diff(cli, a, out),
        Command::Apply(a) => apply::apply(cli, a, out, err),
        Command::Export { devices, state, objects } => apply::export(cli, devices, state.as_deref(), objects, out),
        Command::Probe => {
            let mut report = probe::Report::collect(&cli.bpffs);
            report.queue_leasing = block_on(async { Ok(leases::supported().await) })?;
            render::print(cli.json, out, &report, render::probe)?;
            for hint in &report.hints {
                writeln!(err, "hint: {hint}")?;
            }
            Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Device(cmd) => {
            block_on(device_command(cli, cmd, out))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Queue(cmd) => {
            block_on(queue_command(cli, cmd, out))?;
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            block_on(hook_command(cli, out))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn position_of(first: bool, before: &Option<RefSpec>, after: &Option<RefSpec>) -> Position {
    match (first, before, after) {
        (true, _, _) => Position::First,
        (_, Some(r), _) => Position::Before(r.clone()),
        (_, _, Some(r)) => Position::After(r.clone()),
        _ => Position::Last,
    }
}

impl PositionArgs {
    pub fn position(&self) -> Position {
        position_of(self.first, &self.before, &self.after)
    }
}

impl DetachPositionArgs {
    /// The position given, if any.
    pub fn position(&self) -> Option<Position> {
        let given = self.first || self.last || self.before.is_some() || self.after.is_some();
        given.then(|| position_of(self.first, &self.before, &self.after))
    }
}

/// How `netkit attach` attaches, from its flags; combinations that mean
/// nothing are refused here, before anything is loaded.
fn attachment(a: &AttachArgs) -> Result<Attachment> {
    let position = a.position.position();
    let Some(replace) = &a.replace else {
        if !a.plain {
            return Ok(Attachment::Link { position, pin: a.pin.clone() });
        }
        if a.pin.is_some() {
            bail!("--pin names a link; a --plain attachment has none (it stays until detached)");
        }
        return Ok(Attachment::Plain(position));
    };
    if !a.plain {
        bail!("--replace works only with --plain: a link's program is replaced with `netkit update DEV HOOK REF PROG`");
    }
    if a.pin.is_some() {
        bail!("--pin names a link; a --plain attachment has none (it stays until detached)");
    }
    if position != Position::Last {
        bail!(
            "--replace takes the replaced program's slot; it cannot be combined with --first, --last, --before or --after"
        );
    }
    match replace {
        RefSpec::Prog(id) => Ok(Attachment::Replace(PlainRef::Prog(*id))),
        RefSpec::Pin(p) => Ok(Attachment::Replace(PlainRef::Pin(p.clone()))),
        RefSpec::Link(_) | RefSpec::Name(_) => bail!("--replace takes prog:ID or pin:PATH of a plain program"),
    }
}

/// Load options for `prog` with `--set` values checked, and maps the object
/// declares as pinned going to this tool's layout.
fn load_options(cli: &Cli, prog: &netkit::programs::ProgSpec, sets: &[String]) -> Result<LoadOptions> {
    let globals = netkit::programs::globals(prog, sets)?;
    let maps = netkit::pins::Layout::unchecked(&cli.bpffs).maps_dir();
    Ok(LoadOptions { globals, map_pin_dir: Some(maps) })
}

async fn hook_command(cli: &Cli, out: &mut impl Write) -> Result<()> {
    let nl = Netlink::connect()?;
    let hooks = Hooks { nl: &nl, bpffs: cli.bpffs.clone() };
    match cli.command.as_ref().expect("run() dispatched a command") {
        Command::Attach(a) => {
            let req = AttachRequest {
                device: a.at.dev.clone(),
                hook: a.at.hook,
                prog: a.prog.clone(),
                attachment: attachment(a)?,
                expected_revision: a.expected_revision,
                load: load_options(cli, &a.prog, &a.set)?,
            };
            let o = hooks.attach(&req).await?;
            Ok(render::print(cli.json, out, &o, render::outcome)?)
        }
        Command::Detach(d) => {
            let target = match (d.target.clone(), d.position.position()) {
                (Some(r), None) => DetachTarget::Ref(r),
                (Some(r), Some(p)) => DetachTarget::RefAt(r, p),
                (None, Some(p)) => DetachTarget::At(p),
                (None, None) => bail!(
                    "detach needs REF (a link or prog:ID), or a position (--first, --last, --before REF, --after REF) naming the plain program to remove"
                ),
            };
            let req = DetachRequest {
                device: d.at.dev.clone(),
                hook: d.at.hook,
                target,
                expected_revision: d.expected_revision,
                force: d.force,
            };
            let o = hooks.detach(&req).await?;
            Ok(render::print(cli.json, out, &o, render::outcome)?)
        }
        Command::Update(u) => {
            let load = load_options(cli, &u.prog, &u.set)?;
            let req = UpdateRequest {
                device: u.at.dev.clone(),
                hook: u.at.hook,
                target: u.target.clone(),
                prog: u.prog.clone(),
                expected_old: u.expected_old.clone(),
                load,
                force: u.force,
            };
            let o = hooks.update(&req).await?;
            Ok(render::print(cli.json, out, &o, render::outcome)?)
        }
        Command::Query { dev, hook } => {
            if dev.is_none() && hook.is_some() {
                anyhow::bail!("a HOOK needs a DEV: netkit query DEV HOOK");
            }
            let views = hooks.query(dev.as_deref(), *hook).await?;
            Ok(render::print(cli.json, out, &views, |w, v| render::hooks(w, v))?)
        }
        Command::Link(LinkCommand::List { all: false }) => {
            let views = hooks.links();
            Ok(render::print(cli.json, out, &views, |w, v| render::links(w, v))?)
        }
        Command::Link(LinkCommand::List { all: true }) => {
            let views = hooks.system_links().await;
            Ok(render::print(cli.json, out, &views, |w, v| render::system_links(w, v))?)
        }
        Command::Link(LinkCommand::Show { target }) => {
            let view = hooks.link(target)?;
            Ok(render::print(cli.json, out, &view, |w, v| render::links(w, std::slice::from_ref(v)))?)
        }
        Command::Link(LinkCommand::Prune { all: false, .. }) => {
            let pruned = hooks.prune()?;
            Ok(render::print(cli.json, out, &pruned, |w, v| render::pruned(w, v))?)
        }
        Command::Link(LinkCommand::Prune { all: true, force }) => {
            let report = hooks.prune_all(*force).await?;
            Ok(render::print(cli.json, out, &report, render::prune_all)?)
        }
        Command::Run(r) => {
            let load = load_options(cli, &r.prog, &r.set)?;
            crate::commands::run::run(
                &hooks,
                &r.at.dev,
                r.at.hook,
                &r.prog,
                r.position.position(),
                r.expected_revision,
                &load,
                out,
            )
            .await?;
            Ok(())
        }
        Command::Prog(cmd) => crate::commands::programs::prog(cli, &hooks, cmd, out).await,
        Command::Firewall(cmd) => crate::commands::programs::firewall(cli, &hooks, cmd, out).await,
        Command::Redirect(cmd) => crate::commands::programs::redirect(cli, &hooks, cmd, out).await,
        Command::Stats(args) => crate::commands::programs::stats(cli, &hooks, args, out).await,
        Command::Logs { at: HookPlace { dev, hook }, target } => {
            crate::commands::programs::logs(&hooks, dev, *hook, target.as_ref(), out).await
        }
        Command::Probe
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Metrics { .. }
        | Command::Device(_)
        | Command::Queue(_)
        | Command::Diff(_)
        | Command::Apply(_)
        | Command::Export { .. } => unreachable!("dispatched in run()"),
    }
}

async fn queue_command(cli: &Cli, cmd: &QueueCommand, out: &mut impl Write) -> Result<()> {
    let nl = Netlink::connect()?;
    let here = |nl: Netlink, name: String| async move {
        nl.link_by_name(&name)?.with_context(|| format!("no device named `{name}` in this network namespace"))
    };
    match cmd {
        QueueCommand::List { dev } => {
            let link = here(nl.clone(), dev.clone()).await?;
            let queues = leases::list(&link).await?;
            render::print(cli.json, out, &queues, |w, v| render::queues(w, v))?;
        }
        QueueCommand::Lease { dev, from, queue, from_netns } => {
            let target = here(nl.clone(), dev.clone()).await?;
            let (lender, netns_id) = match from_netns {
                None => (here(nl.clone(), from.clone()).await?, None),
                Some(ns) => {
                    let there = Netlink::connect_to(ns)?;
                    let lender = here(there, from.clone()).await.with_context(|| format!("in {ns}"))?;
                    let fd = ns.open()?;
                    let id = nl.nsid_of(&fd).with_context(|| {
                        format!("{ns} has no namespace id here: the kernel names a lease's namespace by one, and assigns one when a device pair spans the two")
                    })?;
                    (lender, Some(id))
                }
            };
            let id = leases::lease(target.index, lender.index, *queue, netns_id)
                .await
                .map_err(|e| leases::explain(e, &target, &lender, *queue))?;
            let report = render::changes::QueueLeased {
                device: dev.clone(),
                queue: id,
                from: from.clone(),
                from_queue: *queue,
                from_netns: from_netns.as_ref().map(ToString::to_string),
            };
            render::print(cli.json, out, &report, render::changes::queue_leased)?;
        }
    }
    Ok(())
}

/// Runs `fut` on a current-thread runtime: every socket and bpf() call stays on
/// this thread, which is the one that entered the namespace.
fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    crate::runtime().context("starting the async runtime")?.block_on(fut)
}

fn refuse_immutable(set: &DeviceSet) -> Result<(), device::DeviceError> {
    let fixed = [
        ("--mode", set.mode.is_some()),
        ("--scrub", set.scrub.is_some()),
        ("--peer-scrub", set.peer_scrub.is_some()),
        ("--headroom", set.headroom.is_some()),
        ("--tailroom", set.tailroom.is_some()),
        ("--peer", set.peer.is_some()),
        ("--peer-netns", set.peer_netns.is_some()),
        ("--pairing", set.pairing.is_some()),
    ];
    if let Some((option, _)) = fixed.iter().find(|(_, given)| *given) {
        return Err(device::immutable(option));
    }
    if set.mtu.is_some() {
        return Err(device::DeviceError::Invalid(format!(
            "--mtu is a generic device setting, not a pair's: change it with `ip link set dev {} mtu N` (and on the peer)",
            set.name
        )));
    }
    Ok(())
}

async fn device_command(cli: &Cli, cmd: &DeviceCommand, out: &mut impl Write) -> Result<()> {
    let nl = Netlink::connect()?;
    match cmd {
        DeviceCommand::Add(a) => {
            let spec = PairSpec {
                name: a.name.clone(),
                kind: a.kind,
                peer: a.peer.clone(),
                settings: PairSettings {
                    mode: a.mode,
                    policy: a.policy,
                    peer_policy: a.peer_policy,
                    scrub: a.scrub,
                    peer_scrub: a.peer_scrub,
                    headroom: a.headroom,
                    tailroom: a.tailroom,
                    pairing: a.pairing,
                },
                mtu: a.mtu,
                peer_netns: a.peer_netns.clone(),
                up: a.up,
                attrs: a.this.attrs(),
                peer_attrs: a.peer_end.attrs(),
            };
            let mut view = nl.add_pair(&spec).await?;
            count_programs(&mut view);
            render::print(cli.json, out, &view, render::device)?;
        }
        DeviceCommand::Set(set) => {
            refuse_immutable(set)?;
            let change = PairChange {
                policy: set.policy,
                peer_policy: set.peer_policy,
                this: set.this.attrs(),
                peer: set.peer_end.attrs(),
            };
            let mut view = nl.set(&set.name, &change).await?;
            count_programs(&mut view);
            render::print(cli.json, out, &view, render::device)?;
        }
        DeviceCommand::Del { name } => {
            let (deleted, peer, kind) = nl.delete_pair(name).await?;
            let report = render::changes::DeviceDeleted { deleted, peer, kind: kind.to_string() };
            render::print(cli.json, out, &report, render::changes::device_deleted)?;
        }
        DeviceCommand::List { all } => {
            let mut views = nl.list(*all).await?;
            views.iter_mut().for_each(count_programs);
            render::print(cli.json, out, &views, |w, v| render::devices(w, v))?;
        }
        DeviceCommand::Show { name } => {
            let mut view = nl.show(name).await?;
            count_programs(&mut view);
            render::print(cli.json, out, &view, render::device)?;
        }
    }
    Ok(())
}

/// Writes netkit.8 and one page per visible subcommand (netkit-device-add.8,
/// ...) into `dir`, from the clap definitions; returns how many. The
/// examples (`after_long_help`) become an EXAMPLES section set without
/// filling, and every page ends with SEE ALSO.
fn man_pages(dir: &std::path::Path) -> Result<usize> {
    /// Roff text for literal lines: no filling, escapes and leading dots neutralised.
    fn literal(text: &str) -> String {
        let mut out = String::from(".nf\n");
        for line in text.lines().skip_while(|l| l.trim_end().ends_with(':') && !l.starts_with(' ')) {
            let line = line.replace('\\', "\\e").replace('-', "\\-");
            out += &format!("\\&{line}\n");
        }
        out + ".fi\n"
    }
    fn write(cmd: &clap::Command, dir: &std::path::Path, pages: &mut Vec<String>) -> Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
            write(sub, dir, pages)?;
        }
        let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
        let examples = cmd.get_after_long_help().map(|h| h.to_string());
        let bare = cmd.clone().after_long_help(None::<&str>).after_help(None::<&str>);
        let mut text = Vec::new();
        clap_mangen::Man::new(bare).section("8").manual("netkit manual").render(&mut text)?;
        let mut text = String::from_utf8(text).context("a manual page that is not UTF-8")?;
        let mut tail = String::new();
        if let Some(examples) = examples {
            tail += &format!(".SH EXAMPLES\n{}", literal(&examples));
        }
        let see_also = if name == "netkit" {
            "ip(8), bpftool(8), tc(8)".to_string()
        } else {
            "netkit(8), ip(8), bpftool(8)".to_string()
        };
        tail += &format!(".SH \"SEE ALSO\"\n{see_also}\n");
        match text.find(".SH VERSION") {
            Some(at) => text.insert_str(at, &tail),
            None => text.push_str(&tail),
        }
        let path = dir.join(format!("{name}.8"));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        pages.push(name);
        Ok(())
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    write(&cmd, dir, &mut pages)?;
    Ok(pages.len())
}
