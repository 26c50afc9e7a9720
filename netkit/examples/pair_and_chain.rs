//! The library without the command line: create a netkit pair, attach an
//! ordered chain to its peer hook (a counter, then a firewall placed before
//! it by the counter's pin name), read the chain back, and clean up.
//!
//! Needs root and a kernel with netkit (`cargo xtask test` runs it in the
//! VM); pins go under the bpffs given as the first argument (default
//! /sys/fs/bpf). Exits non-zero, having removed what it made, on any failure.

use std::path::PathBuf;

use anyhow::{Context as _, Result, ensure};
use netkit::{
    hooks::{AttachRequest, Attachment, DetachRequest, DetachTarget, Hooks, Position, refs::RefSpec},
    mprog::Hook,
    netlink::{Netlink, device::PairSpec},
    programs::{LoadOptions, ProgSpec},
};

const PRIMARY: &str = "nkex0";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let bpffs = std::env::args().nth(1).map_or_else(|| PathBuf::from("/sys/fs/bpf"), PathBuf::from);
    let nl = Netlink::connect()?;
    let pair = nl
        .add_pair(&PairSpec { name: PRIMARY.into(), peer: Some("nkex1".into()), up: true, ..Default::default() })
        .await
        .context("creating the pair")?;
    println!("created {} (ifindex {}) with peer nkex1", pair.name, pair.ifindex);
    let hooks = Hooks { nl: &nl, bpffs };
    let result = chain(&hooks).await;
    // Whatever happened: unpin what was pinned, then remove the pair.
    for pin in ["fw", "count"] {
        let req = DetachRequest {
            device: PRIMARY.into(),
            hook: Hook::Peer,
            target: DetachTarget::Ref(RefSpec::Name(pin.into())),
            expected_revision: None,
            force: false,
        };
        let _ = hooks.detach(&req).await;
    }
    nl.delete_pair(PRIMARY).await.context("deleting the pair")?;
    println!("detached the chain and deleted the pair");
    result
}

/// Attaches counter, then firewall before it, and checks the order the kernel
/// reports.
async fn chain(hooks: &Hooks<'_>) -> Result<()> {
    let attach = |prog: &str, position: Position, pin: &str| AttachRequest {
        device: PRIMARY.into(),
        hook: Hook::Peer,
        prog: ProgSpec::Bundled(prog.into()),
        attachment: Attachment::Link { position, pin: Some(pin.into()) },
        expected_revision: None,
        load: LoadOptions::default(),
    };
    let counter = hooks.attach(&attach("counter", Position::Last, "count")).await?;
    println!("{}", counter.action);
    let firewall = hooks.attach(&attach("firewall", Position::Before(RefSpec::Name("count".into())), "fw")).await?;
    println!("{}", firewall.action);
    let views = hooks.query(Some(PRIMARY), Some(Hook::Peer)).await?;
    let order: Vec<(usize, Option<u32>)> = views[0].programs.iter().map(|p| (p.position, p.link_id)).collect();
    for p in &views[0].programs {
        println!("  {}. program {} ({}), link {:?}", p.position, p.prog_id, p.name, p.link_id);
    }
    ensure!(
        order == vec![(1, firewall.link_id), (2, counter.link_id)],
        "the peer chain should be firewall then counter, found {order:?}"
    );
    println!("pair_and_chain: ok");
    Ok(())
}
