//! Command-line syntax: clap derive types, and the command-line names of the
//! domain's closed sets (hooks, policies, modes). Validation of values that
//! clap cannot express lives with the operations that use them.
// The doc comments here are the --help texts: `[REF]` is an optional
// argument, not a link, and `nk<N>` a placeholder, not HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::{ffi::OsStr, path::PathBuf};

use clap::{
    Args, Parser, Subcommand,
    builder::{PossibleValue, PossibleValuesParser, TypedValueParser},
};
use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};

mod device;
mod examples;
mod hooks;
mod words;

pub use device::*;
pub use hooks::*;
use words::*;

use netkit::{
    hooks::refs::RefSpec,
    mprog::Hook,
    netlink::{
        attrs::{EndAttrs, Mac, Offload, Queues},
        links::{Mode, PairKind, Pairing, Policy, Scrub},
    },
    os::netns::{self, NetnsRef},
    programs::ProgSpec,
};

/// Create netkit device pairs and manage BPF programs on tcx and netkit hooks.
#[derive(Debug, Parser)]
#[command(
    name = "netkit",
    version,
    about,
    propagate_version = true,
    arg_required_else_help = true,
    args_override_self = true
)]
pub struct Cli {
    /// Run in this network namespace, like `ip -n`: a name under /run/netns,
    /// an nsfs path (/proc/PID/ns/net, a bind mount anywhere) or pid:PID.
    #[arg(short = 'n', long, global = true, value_name = "NETNS")]
    pub netns: Option<NetnsRef>,

    /// Print JSON instead of tables.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,

    /// The bpffs directory this tool pins links under.
    #[arg(long, global = true, value_name = "DIR", default_value = "/sys/fs/bpf", env = "NETKIT_BPFFS")]
    pub bpffs: PathBuf,

    /// Run the commands in FILE (`-`: standard input) in one process, one per
    /// line as it would follow `netkit` (global options allowed per line);
    /// blank lines and `#` comments are skipped. Stops at the first failing
    /// line, naming it, unless --force.
    #[arg(short = 'b', long, value_name = "FILE")]
    pub batch: Option<PathBuf>,

    /// With --batch: go on after a failing line (the exit status still says
    /// that one failed).
    #[arg(long, requires = "batch")]
    pub force: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

// Parsed once per run; boxing variants would only make the code noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Report what this kernel and process support: tcx, netkit, bpffs,
    /// capabilities, BTF. Exits non-zero when something required is missing.
    #[command(after_long_help = examples::PROBE)]
    Probe,
    /// Create, change, delete and list netkit device pairs.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Attach a program to a hook through a BPF link, pinned so it outlives
    /// this command (or plainly, without a link, with --plain).
    #[command(after_long_help = examples::ATTACH)]
    Attach(AttachArgs),
    /// Detach a link (and remove its pin) or a plain program from a hook.
    #[command(after_long_help = examples::DETACH)]
    Detach(DetachArgs),
    /// Replace the program of a link atomically, keeping its place in the chain.
    #[command(after_long_help = examples::UPDATE)]
    Update(UpdateArgs),
    /// Show the revision and the ordered chain of hooks: one hook, one
    /// device's hooks, or (without DEV) every hook that has programs.
    #[command(after_long_help = examples::QUERY)]
    Query {
        /// Device (for netkit hooks: the primary).
        #[arg(add = ArgValueCompleter::new(devices))]
        dev: Option<String>,
        /// ingress, egress (tcx) or primary, peer (netkit).
        #[arg(value_parser = HOOKS)]
        hook: Option<Hook>,
    },
    /// The links this tool pinned: list them, show one, prune defunct ones.
    #[command(subcommand)]
    Link(LinkCommand),
    /// Queues of a netkit device, and leasing a physical device's receive
    /// queue to it (Linux >= 7.1).
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Attach without pinning and stay in the foreground, streaming the
    /// program's log; the kernel detaches it when this process ends, however
    /// it ends (Ctrl-C, SIGTERM, kill -9).
    #[command(after_long_help = examples::RUN)]
    Run(RunArgs),
    /// The bundled programs, and details of any loaded program.
    #[command(subcommand)]
    Prog(ProgCommand),
    /// Change the rules of an attached firewall program, live.
    #[command(subcommand)]
    Firewall(FirewallCommand),
    /// Change the entries of an attached redirect-peer program, live.
    #[command(subcommand)]
    Redirect(RedirectCommand),
    /// What the programs on hooks counted: packets and bytes, firewall hits,
    /// redirects, and run count and time while kernel BPF stats are on.
    #[command(after_long_help = examples::STATS)]
    Stats(StatsArgs),
    /// Show what `apply -f FILE` would change, step by step in the order it
    /// would run; exits 0 when nothing would change, 2 when something would,
    /// 1 on error (like diff).
    #[command(after_long_help = examples::DIFF)]
    Diff(SpecArgs),
    /// Bring the node to the spec in FILE: pairs and ordered chains, with the
    /// fewest changes, touching only what apply created, undoing every change
    /// if a step fails.
    #[command(after_long_help = examples::APPLY)]
    Apply(ApplyArgs),
    /// Write the current state as a spec (YAML; JSON with -j) that `apply`
    /// takes as a no-op: the pairs apply owns, and every chain, with
    /// programs apply does not own as `ref` entries.
    #[command(after_long_help = examples::EXPORT)]
    Export {
        /// Only these devices (default: every device with programs, and
        /// every pair apply owns).
        #[arg(add = ArgValueCompleter::new(devices))]
        devices: Vec<String>,
        /// The ownership record (default: /run/netkit/apply/<netns>.json).
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// An object file programs on pinned links may come from: a program
        /// one of its functions still gives, unchanged, is written as
        /// `file:PATH` (absolute) instead of a reference. Repeatable.
        #[arg(long = "object", value_name = "PATH")]
        objects: Vec<PathBuf>,
    },
    /// Print the shell completion script for bash, zsh or fish. Load it
    /// with `source <(netkit completions bash)` (zsh: the same; fish:
    /// `netkit completions fish | source`), or install it where the shell
    /// looks (see the README). Subcommands, flags and hooks complete; device
    /// names complete from the namespace the line names with -n, or this one.
    #[command(after_long_help = examples::COMPLETIONS)]
    Completions {
        /// bash, zsh or fish.
        #[arg(value_parser = ["bash", "zsh", "fish"])]
        shell: String,
    },
    /// Serve the programs' numbers (as `stats --format prometheus` prints
    /// them) over HTTP at /metrics, for Prometheus to scrape; runs until
    /// SIGINT or SIGTERM.
    #[command(after_long_help = examples::METRICS)]
    Metrics {
        /// Address and port to listen on (loopback by default; 0.0.0.0:PORT
        /// for a scrape from elsewhere).
        #[arg(long, default_value = "127.0.0.1:9475", value_name = "ADDR:PORT")]
        listen: std::net::SocketAddr,
    },
    /// Write the manual pages (netkit(8), one per subcommand) into DIR;
    /// `cargo xtask man` runs it.
    #[command(hide = true)]
    Man {
        /// The directory to write into (made if missing).
        dir: PathBuf,
    },
    /// Follow the log of an attached program built with aya-log (e.g. the
    /// bundled `log`); ends when the program leaves the hook.
    #[command(after_long_help = examples::LOGS)]
    Logs {
        #[command(flatten)]
        at: HookPlace,
        /// The program: prog:ID, link:ID, pin:PATH or NAME (default: the one
        /// program on the hook that logs).
        target: Option<RefSpec>,
    },
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The spec: YAML or JSON (`-`: standard input).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: PathBuf,
    /// Also remove managed pairs and links the spec no longer has.
    #[arg(long)]
    pub prune: bool,
    /// Replace pairs whose fixed attributes (mode, pairing, scrub,
    /// headroom, tailroom, queues, peer name or namespace) differ from the
    /// spec, instead of refusing.
    #[arg(long)]
    pub recreate: bool,
    /// Take over pairs and links pinned under this tool's layout that exist
    /// exactly as the spec says, without touching them (their ids stay);
    /// refuse, naming the difference, any that differ.
    #[arg(long)]
    pub adopt: bool,
    /// Read every managed hook in full: its pins, and its programs' rules
    /// and redirect entries. Without it, a hook the last apply left as the
    /// spec still says, and whose chain the kernel still reports unchanged
    /// (same revision, programs and links), is taken as it is: what another
    /// tool writes straight into a managed program's maps is found only
    /// with --full (and by every --watch interval).
    #[arg(long)]
    pub full: bool,
    /// The ownership record (default: /run/netkit/apply/<netns>.json).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// At most this many changes at once (different devices and hooks).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Keep running: apply again when FILE changes, and repair drift every
    /// --interval; one line per change; exits cleanly on SIGTERM.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: seconds between drift checks.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", requires = "watch")]
    pub interval: u64,
    /// Expedite the kernel's RCU grace periods while changes are made: every
    /// chain change waits for one under RTNL, so bulk changes go many times
    /// faster. System-wide, at a cost to everything else on the machine (an
    /// expedited grace period interrupts every CPU); the previous value of
    /// /sys/kernel/rcu_expedited is put back afterwards, and by the next run
    /// if this one is killed.
    #[arg(long)]
    pub expedite: bool,
    /// Seconds to wait for another writer of the namespace's record (another
    /// apply) before giving up; --watch waits as long as it takes.
    #[arg(long, default_value_t = 60, value_name = "SECONDS", conflicts_with = "watch")]
    pub wait: u64,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum QueueCommand {
    /// Lease receive queue QUEUE of a physical device to DEV (a netkit peer
    /// or single device here): queue-create of the netdev family. The driver
    /// of FROM must support queue management (see the README).
    #[command(after_long_help = examples::QUEUE_LEASE)]
    Lease {
        /// The netkit device that gets the queue.
        #[arg(add = ArgValueCompleter::new(devices))]
        dev: String,
        /// The physical device that lends it.
        #[arg(long, value_name = "DEV")]
        from: String,
        /// The receive queue of FROM to lease.
        #[arg(long, value_name = "N")]
        queue: u32,
        /// The namespace FROM is in (name, nsfs path or pid:PID; default:
        /// DEV's).
        #[arg(long, value_name = "NETNS")]
        from_netns: Option<NetnsRef>,
    },
    /// DEV's queues, and which are leased from where.
    #[command(after_long_help = examples::QUEUE_LIST)]
    List {
        /// The device.
        #[arg(add = ArgValueCompleter::new(devices))]
        dev: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_grammar_is_consistent() {
        // clap checks its own rules (conflicts, requirements, names) here,
        // not only when a user happens to hit the broken path.
        super::Cli::command().debug_assert();
    }

    /// Every command and argument a user can see says what it is (the
    /// manual pages and --help are made of these texts), and every command
    /// that does something shows examples.
    #[test]
    fn everything_visible_is_documented_with_examples() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && path != " netkit" {
                missing.push(format!("{path}: no description"));
            }
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path}: `{id}` has no help"));
                }
            }
            // clap's own `help` subcommands document themselves.
            let subs: Vec<&clap::Command> =
                cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help").collect();
            if subs.is_empty() && !cmd.get_after_long_help().is_some_and(|h| h.to_string().contains("Examples:")) {
                missing.push(format!("{path}: no Examples: section"));
            }
            for sub in subs {
                walk(sub, &path, missing);
            }
        }
        let mut cmd = super::Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "", &mut missing);
        assert!(missing.is_empty(), "{} gaps:\n{}", missing.len(), missing.join("\n"));
    }

    /// Subcommands build their arguments only when one is used (`defer`):
    /// building must not change what a command says it is. A doc comment
    /// on an argument struct would become the description of every command
    /// that flattens it, so none has one, and no two commands share one.
    #[test]
    fn deferred_commands_keep_their_own_descriptions() {
        fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                out.push((path.clone(), sub.get_about().map(|a| a.to_string()).unwrap_or_default()));
                walk(sub, &path, out);
            }
        }
        let (mut unbuilt, mut built) = (Vec::new(), Vec::new());
        walk(&super::Cli::command(), "", &mut unbuilt);
        let mut cmd = super::Cli::command();
        cmd.build();
        walk(&cmd, "", &mut built);
        for (path, about) in &unbuilt {
            let after = built.iter().find(|(p, _)| p == path).map(|(_, a)| a);
            assert_eq!(after, Some(about), "{path}: its description changed when it was built");
        }
        let mut seen = std::collections::HashMap::new();
        for (path, about) in &built {
            if let Some(other) = seen.insert(about.clone(), path.clone()) {
                panic!("{path} and {other} share the description `{about}`");
            }
        }
    }

    /// Every example is a command line this grammar takes.
    #[test]
    fn every_example_parses() {
        fn walk(cmd: &clap::Command, n: &mut usize) {
            for line in cmd.get_after_long_help().map(|h| h.to_string()).unwrap_or_default().lines() {
                let Some(line) = line.trim().strip_prefix("netkit ") else { continue };
                // Drop the explanation (after two spaces) and a redirection.
                let line = line.split("  ").next().unwrap_or_default();
                let line = line.split(" > ").next().unwrap_or_default();
                let mut words = vec!["netkit".to_string()];
                words.extend(shlex::split(line).expect("shell words"));
                if let Err(e) = <super::Cli as clap::Parser>::try_parse_from(&words) {
                    panic!("example `{}` does not parse: {e}", words.join(" "));
                }
                *n += 1;
            }
            for sub in cmd.get_subcommands() {
                walk(sub, n);
            }
        }
        let mut n = 0;
        walk(&super::Cli::command(), &mut n);
        assert!(n > 50, "only {n} examples found");
    }
}
