//! Command-line syntax: clap derive types only. Validation of values that
//! clap cannot express lives with the operations that use them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Create netkit device pairs and manage BPF programs on tcx and netkit hooks.
#[derive(Debug, Parser)]
#[command(name = "netkit", version, about, propagate_version = true)]
pub struct Cli {
    /// Run in the named network namespace (under /run/netns), like `ip -n`.
    #[arg(short = 'n', long, global = true, value_name = "NAME")]
    pub netns: Option<String>,

    /// Print JSON instead of tables.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,

    /// The bpffs directory this tool pins links under.
    #[arg(long, global = true, value_name = "DIR", default_value = "/sys/fs/bpf", env = "NETKIT_BPFFS")]
    pub bpffs: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report what this kernel and process support: tcx, netkit, bpffs,
    /// capabilities, BTF. Exits non-zero when something required is missing.
    Probe,
}
