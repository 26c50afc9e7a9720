//! Runs one parsed command: enters the namespace, validates, calls the
//! operations and writes their output.

use std::{io::Write, process::ExitCode};

use anyhow::{Context as _, Result};

use crate::{
    cli::{Cli, Command, DeviceCommand, DeviceSet},
    netlink::{
        Netlink,
        device::{self, PairSpec},
    },
    netns, output, probe,
};

/// Runs `cli`, writing results to `out` and hints to `err`.
pub fn run(cli: &Cli, out: &mut impl Write, err: &mut impl Write) -> Result<ExitCode> {
    if let Some(ns) = &cli.netns {
        netns::enter(ns)?;
    }
    match &cli.command {
        Command::Probe => {
            let report = probe::Report::collect(&cli.bpffs);
            if cli.json {
                output::json(out, &report)?;
            } else {
                output::probe(out, &report)?;
            }
            for hint in &report.hints {
                writeln!(err, "hint: {hint}")?;
            }
            Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Device(cmd) => {
            block_on(device_command(cli, cmd, out))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `fut` on a current-thread runtime: every socket and bpf() call stays on
/// this thread, which is the one that entered the namespace.
fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(fut)
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
    ];
    if let Some((option, _)) = fixed.iter().find(|(_, given)| *given) {
        return Err(device::immutable(option));
    }
    if set.mtu.is_some() {
        return Err(device::DeviceError::Invalid(format!(
            "--mtu is a generic device setting, not a netkit one: change it with `ip link set dev {} mtu N` (and on the peer)",
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
                peer: a.peer.clone(),
                mode: a.mode,
                policy: a.policy,
                peer_policy: a.peer_policy,
                scrub: a.scrub,
                peer_scrub: a.peer_scrub,
                headroom: a.headroom,
                tailroom: a.tailroom,
                mtu: a.mtu,
                peer_netns: a.peer_netns.clone(),
                up: a.up,
            };
            let view = nl.add_pair(&spec).await?;
            if cli.json {
                output::json(out, &view)?;
            } else {
                output::device(out, &view)?;
            }
        }
        DeviceCommand::Set(set) => {
            refuse_immutable(set)?;
            let view = nl.set_policies(&set.name, set.policy, set.peer_policy).await?;
            if cli.json {
                output::json(out, &view)?;
            } else {
                output::device(out, &view)?;
            }
        }
        DeviceCommand::Del { name } => {
            let (name, other) = nl.delete_pair(name).await?;
            if cli.json {
                output::json(out, &serde_json::json!({ "deleted": name, "peer": other }))?;
            } else {
                match other {
                    Some(o) => writeln!(out, "deleted netkit pair {name} <-> {o}")?,
                    None => writeln!(out, "deleted netkit pair {name}")?,
                }
            }
        }
        DeviceCommand::List { all } => {
            let views = nl.list(*all).await?;
            if cli.json {
                output::json(out, &views)?;
            } else {
                output::devices(out, &views)?;
            }
        }
        DeviceCommand::Show { name } => {
            let view = nl.show(name).await?;
            if cli.json {
                output::json(out, &view)?;
            } else {
                output::device(out, &view)?;
            }
        }
    }
    Ok(())
}
