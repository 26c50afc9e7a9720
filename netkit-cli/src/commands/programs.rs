//! The program-level commands: `prog`, `firewall`, `redirect`, `stats` and
//! `logs`. Each finds its program on the chain, acts through the program's
//! maps and prints through `output`.

use std::{io::Write, net::IpAddr, os::fd::AsFd as _, str::FromStr, time::Duration};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;

use netkit::{
    bpf,
    hooks::Hooks,
    hooks::refs::RefSpec,
    maps::firewall::{Firewall, Rule},
    maps::redirect::Redirect,
    maps::stats,
    mprog::Hook,
    netlink::links::Role,
    programs::BUNDLED,
};

use crate::{
    cli::{Cli, FirewallCommand, HookPlace, ProgCommand, RedirectCommand, StatsArgs},
    render,
    render::{
        MapView, ProgView,
        changes::{self, RedirectAdded, RedirectList, RedirectRemoved, RuleAction, RuleChange},
    },
};

/// Splits `[REF] REST...`: the first word is a REF unless `starts_rest` says
/// it begins the rest.
fn split_ref(words: &[String], starts_rest: impl Fn(&str) -> bool) -> Result<(Option<RefSpec>, &[String])> {
    match words.split_first() {
        Some((first, rest)) if !starts_rest(first) => Ok((Some(first.parse()?), rest)),
        _ => Ok((None, words)),
    }
}

fn is_rule_start(w: &str) -> bool {
    w == "src" || w == "dst" || IpAddr::from_str(w.split('/').next().unwrap_or(w)).is_ok()
}

/// A bundled program's BPF name (function), for finding it on chains.
fn function_of(bundled: &str) -> &'static str {
    BUNDLED.iter().find(|b| b.name == bundled).map(|b| b.function).unwrap_or("?")
}

#[derive(Debug, Serialize)]
struct BundledView {
    name: &'static str,
    hooks: &'static str,
    summary: &'static str,
    settings: Vec<SettingView>,
}

#[derive(Debug, Serialize)]
struct SettingView {
    key: &'static str,
    help: &'static str,
}

fn prog_type_name(t: u32) -> String {
    match t {
        bpf::BPF_PROG_TYPE_SCHED_CLS => "sched_cls".into(),
        1 => "socket_filter".into(),
        2 => "kprobe".into(),
        4 => "sched_act".into(),
        5 => "tracepoint".into(),
        6 => "xdp".into(),
        n => format!("type {n}"),
    }
}

fn map_type_name(t: u32) -> String {
    match t {
        1 => "hash".into(),
        2 => "array".into(),
        5 => "percpu_hash".into(),
        6 => "percpu_array".into(),
        9 => "lru_hash".into(),
        11 => "lpm_trie".into(),
        27 => "ringbuf".into(),
        n => format!("type {n}"),
    }
}

pub async fn prog(cli: &Cli, hooks: &Hooks<'_>, cmd: &ProgCommand, out: &mut impl Write) -> Result<()> {
    match cmd {
        ProgCommand::List => {
            let views: Vec<BundledView> = BUNDLED
                .iter()
                .map(|b| BundledView {
                    name: b.name,
                    hooks: b.hooks,
                    summary: b.summary,
                    settings: b.settings.iter().map(|s| SettingView { key: s.key, help: s.help }).collect(),
                })
                .collect();
            Ok(render::print(cli.json, out, &views, |w, v| {
                for b in v {
                    writeln!(w, "{:<14} {}", b.name, b.summary)?;
                    writeln!(w, "{:<14} hooks: {}", "", b.hooks)?;
                    for s in &b.settings {
                        writeln!(w, "{:<14} --set {}=...: {}", "", s.key, s.help)?;
                    }
                }
                Ok(())
            })?)
        }
        ProgCommand::Show { id } => {
            let fd = bpf::prog_fd_by_id(*id).map_err(|e| match e.errno() {
                Some(libc::ENOENT) => anyhow!("no loaded program with id {id}"),
                _ => anyhow!("opening program {id}: {e}"),
            })?;
            let (info, map_ids) = bpf::prog_info(fd.as_fd())?;
            let mut maps = Vec::new();
            for mid in map_ids {
                if let Ok(mfd) = bpf::map_fd_by_id(mid)
                    && let Ok(m) = bpf::map_info(mfd.as_fd())
                {
                    maps.push(MapView {
                        id: m.id,
                        name: m.name(),
                        map_type: map_type_name(m.type_),
                        key_size: m.key_size,
                        value_size: m.value_size,
                        max_entries: m.max_entries,
                    });
                }
            }
            let mut attached = Vec::new();
            for h in hooks.query(None, None).await.unwrap_or_default() {
                for p in h.programs.iter().filter(|p| p.prog_id == *id) {
                    let owner = p.link_id.map_or_else(|| "plain".into(), |l| format!("link {l}"));
                    attached.push(format!("{} {} #{} ({owner})", h.ifname, h.hook, p.position));
                }
            }
            let view = ProgView {
                id: info.id,
                name: info.name(),
                tag: info.tag_hex(),
                prog_type: prog_type_name(info.type_),
                verified_insns: info.verified_insns,
                xlated_bytes: info.xlated_prog_len,
                jited_bytes: info.jited_prog_len,
                run_cnt: info.run_cnt,
                run_time_ns: info.run_time_ns,
                run_time_stats: stats::run_time_stats_on(),
                maps,
                attached,
            };
            Ok(render::print(cli.json, out, &view, render::prog)?)
        }
    }
}

pub async fn firewall(cli: &Cli, hooks: &Hooks<'_>, cmd: &FirewallCommand, out: &mut impl Write) -> Result<()> {
    let fits = |_: u32, name: &str| name == function_of("firewall");
    let (action, id, rule, dev, slot, hook) = match cmd {
        FirewallCommand::Add { at: HookPlace { dev, hook }, words } => {
            let (target, rule_words) = split_ref(words, is_rule_start)?;
            // A bad rule is refused before anything is looked up.
            let rule = Rule::parse(rule_words)?;
            let (dev, slot) = hooks.program_on(dev, *hook, target.as_ref(), "firewall program", fits).await?;
            let id = Firewall::open(slot.prog_id)?.add(&rule)?;
            (RuleAction::Added, id, rule, dev, slot, *hook)
        }
        FirewallCommand::Del { at: HookPlace { dev, hook }, args } => {
            let (target, rest) = split_ref(args, |_| args.len() == 1)?;
            let id: u32 = match rest {
                [id] => id.parse().map_err(|_| anyhow!("`{id}` is not a rule id (see `netkit firewall list`)"))?,
                _ => bail!("firewall del takes [REF] ID"),
            };
            let (dev, slot) = hooks.program_on(dev, *hook, target.as_ref(), "firewall program", fits).await?;
            let rule = Firewall::open(slot.prog_id)?.delete(id)?;
            (RuleAction::Removed, id, rule, dev, slot, *hook)
        }
        FirewallCommand::List { at: HookPlace { dev, hook }, target } => {
            let (_, slot) = hooks.program_on(dev, *hook, target.as_ref(), "firewall program", fits).await?;
            let rules = Firewall::open(slot.prog_id)?.list()?;
            return Ok(render::print(cli.json, out, &rules, |w, r| render::rules(w, r))?);
        }
    };
    let change = RuleChange { action, id, rule: rule.to_string(), prog_id: slot.prog_id, device: dev.name, hook };
    Ok(render::print(cli.json, out, &change, changes::rule_change)?)
}

pub async fn redirect(cli: &Cli, hooks: &Hooks<'_>, cmd: &RedirectCommand, out: &mut impl Write) -> Result<()> {
    let fits = |_: u32, name: &str| name == function_of("redirect-peer");
    let ip_of = |s: &str| IpAddr::from_str(s).map_err(|_| anyhow!("`{s}` is not an IPv4 or IPv6 address"));
    match cmd {
        RedirectCommand::Add { at: HookPlace { dev, hook }, args } => {
            // IP PAIR, or REF IP PAIR: the count tells.
            let (target, rest) = split_ref(args, |_| args.len() == 2)?;
            let [ip, pair] = rest else { bail!("redirect add takes [REF] IP PAIR") };
            let ip = ip_of(ip)?;
            let link = hooks.nl.link_by_name(pair)?.ok_or_else(|| {
                anyhow!(
                    "no device named `{pair}` here; PAIR is the primary of the netkit pair (or the host end of the veth pair) whose peer gets the packets"
                )
            })?;
            // veth has a peer device for bpf_redirect_peer as netkit does.
            if link.role() != Some(Role::Primary) && !link.is_veth() {
                bail!(
                    "`{pair}` is not the primary of a netkit pair or a veth device (it is {}); bpf_redirect_peer needs the device whose peer receives the packets",
                    match link.role() {
                        Some(Role::Peer) => "a netkit peer".to_string(),
                        Some(Role::Single) => "a single netkit device, without a peer".to_string(),
                        _ => link.kind.clone().map_or("not netkit".into(), |k| format!("a {k} device")),
                    }
                );
            }
            let (dev, slot) = hooks.program_on(dev, *hook, target.as_ref(), "redirect-peer program", fits).await?;
            let old = Redirect::open(slot.prog_id)?.add(ip, link.index)?;
            let added = RedirectAdded {
                ip,
                pair: pair.clone(),
                ifindex: link.index,
                replaced_ifindex: old,
                device: dev.name,
                hook: *hook,
            };
            Ok(render::print(cli.json, out, &added, changes::redirect_added)?)
        }
        RedirectCommand::Del { at: HookPlace { dev, hook }, args } => {
            let (target, rest) = split_ref(args, |_| args.len() == 1)?;
            let [ip] = rest else { bail!("redirect del takes [REF] IP") };
            let ip = ip_of(ip)?;
            let (dev, slot) = hooks.program_on(dev, *hook, target.as_ref(), "redirect-peer program", fits).await?;
            let old = Redirect::open(slot.prog_id)?.delete(ip)?;
            let removed = RedirectRemoved { ip, ifindex: old, device: dev.name, hook: *hook };
            Ok(render::print(cli.json, out, &removed, changes::redirect_removed)?)
        }
        RedirectCommand::List { at: HookPlace { dev, hook }, target } => {
            let (_, slot) = hooks.program_on(dev, *hook, target.as_ref(), "redirect-peer program", fits).await?;
            let r = Redirect::open(slot.prog_id)?;
            let mut entries = r.list()?;
            for e in &mut entries {
                e.pair = hooks.nl.link_by_index(e.ifindex).ok().flatten().map(|l| l.name);
            }
            let list = RedirectList { entries, stats: r.stats()? };
            Ok(render::print(cli.json, out, &list, changes::redirect_list)?)
        }
    }
}

pub async fn stats(cli: &Cli, hooks: &Hooks<'_>, args: &StatsArgs, out: &mut impl Write) -> Result<()> {
    if args.dev.is_none() && args.hook.is_some() {
        bail!("a HOOK needs a DEV: netkit stats DEV HOOK");
    }
    if cli.json && args.format == "prometheus" {
        bail!("-j and --format prometheus ask for two formats: give one");
    }
    let json = cli.json || args.format == "json";
    let netns = netkit::os::netns::current_name();
    let defunct = if args.format == "prometheus" { hooks.defunct_here() } else { 0 };
    let print = |out: &mut dyn Write, s: &[stats::HookStats]| -> Result<()> {
        if args.format == "prometheus" {
            out.write_all(netkit::maps::prometheus::exposition(s, &netns, defunct).as_bytes())?;
        } else {
            let mut out = out;
            render::print(json, &mut out, &s.to_vec(), |w, s| render::stats(w, s))?;
        }
        Ok(())
    };
    if !args.enable {
        let views = hooks.query(args.dev.as_deref(), args.hook).await?;
        return print(out, &stats::hooks(&views, false));
    }
    if args.interval.is_nan() || args.interval <= 0.0 {
        bail!("--interval must be more than 0 seconds");
    }
    let _enabled =
        stats::enable().context("turning kernel BPF run-time statistics on (BPF_ENABLE_STATS, needs CAP_SYS_ADMIN)")?;
    eprintln!("kernel BPF run-time statistics are on while this command runs (BPF_ENABLE_STATS); Ctrl-C to stop");
    let mut n = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs_f64(args.interval)) => {}
            () = crate::commands::run::interrupted() => return Ok(()),
        }
        let views = hooks.query(args.dev.as_deref(), args.hook).await?;
        print(out, &stats::hooks(&views, true))?;
        out.flush()?;
        n += 1;
        if args.count.is_some_and(|c| n >= c) {
            return Ok(());
        }
    }
}

pub async fn logs(
    hooks: &Hooks<'_>,
    dev: &str,
    hook: Hook,
    target: Option<&RefSpec>,
    out: &mut impl Write,
) -> Result<()> {
    let logs = |id: u32, _: &str| netkit::maps::ProgMaps::open(id).is_ok_and(|m| m.has("AYA_LOGS"));
    let (dev, slot) = hooks.program_on(dev, hook, target, "program that logs with aya-log", logs).await?;
    let href = netkit::mprog::HookRef::new(dev.ifindex, dev.hook(hook));
    let prog = slot.prog_id;
    let still_there = move || href.query().is_ok_and(|c| c.slots.iter().any(|s| s.prog_id == prog));
    let how = crate::commands::run::follow_logs(prog, still_there, out).await?;
    writeln!(out, "{how}")?;
    Ok(())
}
