//! `cargo xtask man [--out DIR]`: the manual pages, netkit(8) and one per
//! subcommand, generated from the clap definitions by the built binary
//! (its hidden `netkit man DIR`), written into DIR (default target/man).

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context as _, Result};

use crate::util::{self, cargo};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Where to write the pages (default: target/man).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(opts: &Options) -> Result<ExitCode> {
    util::run(cargo().args(["build", "-p", "netkit-cli", "--bin", "netkit"]))?;
    let out = opts.out.clone().unwrap_or_else(|| util::target_dir().join("man"));
    let netkit = util::target_dir().join("debug/netkit");
    util::run(std::process::Command::new(&netkit).arg("man").arg(&out))
        .with_context(|| format!("{} man {}", netkit.display(), out.display()))?;
    println!("man: install with `install -m 0644 {}/*.8 /usr/local/share/man/man8/ && mandb`", out.display());
    Ok(ExitCode::SUCCESS)
}
