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

mod examples;

use netkit::{
    hooks::refs::RefSpec,
    mprog::Hook,
    netlink::{
        attrs::{EndAttrs, Mac, Offload, Queues},
        links::{Mode, Pairing, Policy, Scrub},
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
        /// Device (for the netkit hooks primary and peer: the pair's primary).
        #[arg(add = ArgValueCompleter::new(devices))]
        dev: String,
        /// ingress, egress (tcx) or primary, peer (netkit).
        #[arg(value_parser = HOOKS)]
        hook: Hook,
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
    /// Seconds to wait for another writer of the namespace's record (another
    /// apply) before giving up; --watch waits as long as it takes.
    #[arg(long, default_value_t = 60, value_name = "SECONDS", conflicts_with = "watch")]
    pub wait: u64,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ProgCommand {
    /// The bundled programs: what each does, which hooks suit it, its settings.
    #[command(after_long_help = examples::PROG_LIST)]
    List,
    /// A loaded program: name, tag, type, maps, run count and time, where it is attached.
    #[command(after_long_help = examples::PROG_SHOW)]
    Show {
        /// Program id.
        id: u32,
    },
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum FirewallCommand {
    /// Add a rule: [REF] [src|dst] CIDR [proto P] [port N[-M]] allow|deny.
    #[command(after_long_help = examples::FIREWALL_ADD)]
    Add {
        /// Device (for the netkit hooks primary and peer: the pair's primary).
        #[arg(add = ArgValueCompleter::new(devices))]
        dev: String,
        /// ingress, egress (tcx) or primary, peer (netkit).
        #[arg(value_parser = HOOKS)]
        hook: Hook,
        /// [REF] then the rule's words.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 1.., value_name = "[REF] RULE")]
        words: Vec<String>,
    },
    /// Remove the rule with ID ([REF] ID).
    #[command(after_long_help = examples::FIREWALL_DEL)]
    Del {
        /// Device (for the netkit hooks primary and peer: the pair's primary).
        #[arg(add = ArgValueCompleter::new(devices))]
        dev: String,
        /// ingress, egress (tcx) or primary, peer (netkit).
        #[arg(value_parser = HOOKS)]
        hook: Hook,
        /// [REF] (when the hook has more than one firewall) then the rule's ID.
        #[arg(num_args = 1..=2, value_name = "[REF] ID")]
        args: Vec<String>,
    },
    /// The rules, in id order, with their hits and the default's.
    #[command(after_long_help = examples::FIREWALL_LIST)]
    List {
        /// Device (for the netkit hooks primary and peer: the pair's primary).
        #[arg(add = ArgValueCompleter::new(devices))]
        dev: String,
        /// ingress, egress (tcx) or primary, peer (netkit).
        #[arg(value_parser = HOOKS)]
        hook: Hook,
        /// The program, when the hook has more than one of its kind: prog:ID, link:ID, pin:PATH or NAME.
        target: Option<RefSpec>,
    },
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum RedirectCommand {
    /// Send packets for IP into the pod behind netkit pair PAIR ([REF] IP PAIR;
    /// PAIR is the pair's primary).
    #[command(after_long_help = examples::REDIRECT_ADD)]
    Add {
        /// Device (for the netkit hooks primary and peer: the pair's primary).
        #[arg(add = ArgValueCompleter::new(devices))]
        dev: String,
        /// ingress, egress (tcx) or primary, peer (netkit).
        #[arg(value_parser = HOOKS)]
        hook: Hook,
        /// [REF] (when the hook has more than one redirect-peer), the
        /// destination IP, and the pair (its primary) whose peer gets it.
        #[arg(num_args = 2..=3, value_name = "[REF] IP PAIR")]
        args: Vec<String>,
    },
    /// Remove the entry for IP ([REF] IP).
    #[command(after_long_help = examples::REDIRECT_DEL)]
    Del {
        /// Device (for the netkit hooks primary and peer: the pair's primary).
        #[arg(add = ArgValueCompleter::new(devices))]
        dev: String,
        /// ingress, egress (tcx) or primary, peer (netkit).
        #[arg(value_parser = HOOKS)]
        hook: Hook,
        /// [REF] (when the hook has more than one redirect-peer) then the IP.
        #[arg(num_args = 1..=2, value_name = "[REF] IP")]
        args: Vec<String>,
    },
    /// The entries, and how many packets were redirected.
    #[command(after_long_help = examples::REDIRECT_LIST)]
    List {
        /// Device (for the netkit hooks primary and peer: the pair's primary).
        #[arg(add = ArgValueCompleter::new(devices))]
        dev: String,
        /// ingress, egress (tcx) or primary, peer (netkit).
        #[arg(value_parser = HOOKS)]
        hook: Hook,
        /// The program, when the hook has more than one of its kind: prog:ID, link:ID, pin:PATH or NAME.
        target: Option<RefSpec>,
    },
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Device (default: every device with programs).
    #[arg(add = ArgValueCompleter::new(devices))]
    pub dev: Option<String>,
    /// ingress, egress (tcx) or primary, peer (netkit) (default: every hook of the device).
    #[arg(value_parser = HOOKS)]
    pub hook: Option<Hook>,
    /// Turn kernel BPF run-time statistics on while this command runs
    /// (BPF_ENABLE_STATS) and print the numbers every --interval.
    #[arg(long)]
    pub enable: bool,
    /// Seconds between reports with --enable.
    #[arg(long, default_value_t = 1.0, value_name = "S")]
    pub interval: f64,
    /// Stop after this many reports with --enable (default: until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub count: Option<u32>,
    /// text (the default), json (as -j) or prometheus: the text exposition
    /// format, for node_exporter's textfile collector.
    #[arg(long, value_parser = ["text", "json", "prometheus"], default_value = "text")]
    pub format: String,
}

// Which plain program `detach` removes, without REF; with prog:ID the kernel
// checks that the program sits there and refuses otherwise.
#[derive(Debug, Args, Default)]
#[group(multiple = false)]
pub struct DetachPositionArgs {
    /// The plain program in the first slot.
    #[arg(long)]
    pub first: bool,
    /// The plain program in the last slot.
    #[arg(long)]
    pub last: bool,
    /// The plain program right before REF.
    #[arg(long, value_name = "REF")]
    pub before: Option<RefSpec>,
    /// The plain program right after REF.
    #[arg(long, value_name = "REF")]
    pub after: Option<RefSpec>,
}

// Where in the chain a program goes (default: last).
#[derive(Debug, Args, Default)]
#[group(multiple = false)]
pub struct PositionArgs {
    /// In front of every program on the hook.
    #[arg(long)]
    pub first: bool,
    /// Behind every program on the hook (the default).
    #[arg(long)]
    pub last: bool,
    /// Right before REF (prog:ID, link:ID, pin:PATH or a pinned link's NAME).
    #[arg(long, value_name = "REF")]
    pub before: Option<RefSpec>,
    /// Right after REF (prog:ID, link:ID, pin:PATH or a pinned link's NAME).
    #[arg(long, value_name = "REF")]
    pub after: Option<RefSpec>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Device (for the netkit hooks primary and peer: the pair's primary).
    #[arg(add = ArgValueCompleter::new(devices))]
    pub dev: String,
    /// ingress, egress (tcx, any device) or primary, peer (netkit).
    #[arg(value_parser = HOOKS)]
    pub hook: Hook,
    /// A bundled program (see `netkit prog list`), file:PATH[:FUNCTION], id:N or pinned:PATH.
    pub prog: ProgSpec,
    #[command(flatten)]
    pub position: PositionArgs,
    /// Fail (no retry) unless the hook is at this revision (see `netkit query`).
    #[arg(long, value_name = "N")]
    pub expected_revision: Option<u64>,
    /// Name of the link's pin (default: PROGRAM-LINKID).
    #[arg(long, value_name = "NAME")]
    pub pin: Option<String>,
    /// Attach without a link (BPF_PROG_ATTACH), as older tools do; it stays
    /// until detached and can be replaced in place with --replace.
    #[arg(long)]
    pub plain: bool,
    /// With --plain: take the slot of this plain program (prog:ID or pin:PATH).
    #[arg(long, value_name = "REF", requires = "plain")]
    pub replace: Option<RefSpec>,
    /// Configure the program before it loads (see `netkit prog list`), e.g.
    /// default=deny for firewall, sample=100 for log; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DetachArgs {
    /// Device (for the netkit hooks primary and peer: the pair's primary).
    #[arg(add = ArgValueCompleter::new(devices))]
    pub dev: String,
    /// ingress, egress (tcx) or primary, peer (netkit).
    #[arg(value_parser = HOOKS)]
    pub hook: Hook,
    /// link:ID, pin:PATH or NAME for a link; prog:ID for a plain program.
    /// Without REF, a position option selects the plain program to remove.
    #[arg(value_name = "REF")]
    pub target: Option<RefSpec>,
    #[command(flatten)]
    pub position: DetachPositionArgs,
    /// Fail unless the hook is at this revision.
    #[arg(long, value_name = "N")]
    pub expected_revision: Option<u64>,
    /// Detach a link this tool did not pin.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Device (for the netkit hooks primary and peer: the pair's primary).
    #[arg(add = ArgValueCompleter::new(devices))]
    pub dev: String,
    /// ingress, egress (tcx) or primary, peer (netkit).
    #[arg(value_parser = HOOKS)]
    pub hook: Hook,
    /// The link: link:ID, pin:PATH or NAME.
    pub target: RefSpec,
    /// The new program (bundled name, file:PATH[:FUNCTION], id:N, pinned:PATH).
    pub prog: ProgSpec,
    /// Fail unless the link still runs this program (prog:ID).
    #[arg(long, value_name = "REF")]
    pub expected_old: Option<RefSpec>,
    /// Update a link this tool did not pin.
    #[arg(long)]
    pub force: bool,
    /// Configure the new program before it loads; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum LinkCommand {
    /// Every link this tool pinned, with its device, hook and state.
    #[command(after_long_help = examples::LINK_LIST)]
    List {
        /// Every tcx and netkit link on the system, whoever made it: where it
        /// is, what holds it (pins, processes), whether netkit manages it.
        #[arg(long)]
        all: bool,
    },
    /// One pinned link: link:ID, pin:PATH or its name.
    #[command(after_long_help = examples::LINK_SHOW)]
    Show {
        /// link:ID, pin:PATH or the pin's name.
        target: RefSpec,
    },
    /// Remove the pins of defunct links (device gone or link detached).
    #[command(after_long_help = examples::LINK_PRUNE)]
    Prune {
        /// Look at every defunct tcx and netkit link on the system: prune
        /// this tool's and say which others are left and what holds them.
        #[arg(long)]
        all: bool,
        /// With --all: remove the pins other tools made of defunct links too.
        #[arg(long, requires = "all")]
        force: bool,
    },
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

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Device (for the netkit hooks primary and peer: the pair's primary).
    #[arg(add = ArgValueCompleter::new(devices))]
    pub dev: String,
    /// ingress, egress (tcx) or primary, peer (netkit).
    #[arg(value_parser = HOOKS)]
    pub hook: Hook,
    /// A bundled program, file:PATH[:FUNCTION], id:N or pinned:PATH.
    pub prog: ProgSpec,
    #[command(flatten)]
    pub position: PositionArgs,
    /// Fail unless the hook is at this revision.
    #[arg(long, value_name = "N")]
    pub expected_revision: Option<u64>,
    /// Configure the program before it loads; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum DeviceCommand {
    /// Create a netkit pair (NAME is the primary).
    #[command(after_long_help = examples::DEVICE_ADD)]
    Add(DeviceAdd),
    /// Change the default policies of a live pair (through its primary).
    #[command(after_long_help = examples::DEVICE_SET)]
    Set(DeviceSet),
    /// Delete a pair, named by either end (both ends go).
    #[command(after_long_help = examples::DEVICE_DEL)]
    Del {
        /// The primary or the peer.
        #[arg(add = ArgValueCompleter::new(devices))]
        name: String,
    },
    /// List netkit devices in the namespace.
    #[command(after_long_help = examples::DEVICE_LIST)]
    List {
        /// List every device, not only netkit ones.
        #[arg(long)]
        all: bool,
    },
    /// Show one device in detail.
    #[command(after_long_help = examples::DEVICE_SHOW)]
    Show {
        /// Device name.
        #[arg(add = ArgValueCompleter::new(devices))]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct DeviceAdd {
    /// Name of the primary device.
    pub name: String,
    /// Name of the peer device (default: the first free nk<N> that is not the primary's name).
    #[arg(long)]
    pub peer: Option<String>,
    /// L3 (no MAC, no ARP; the kernel's default) or L2 (random MACs, ARP).
    #[arg(long, value_parser = MODES)]
    pub mode: Option<Mode>,
    /// The primary's default when no program is attached on its hook (kernel default: pass).
    #[arg(long, value_parser = POLICIES)]
    pub policy: Option<Policy>,
    /// The peer's default when no program is attached on its hook (kernel default: pass).
    /// `drop` keeps a pod silent until a program on the peer hook lets it out.
    #[arg(long, value_parser = POLICIES)]
    pub peer_policy: Option<Policy>,
    /// Clear skb mark/priority when crossing namespaces on the primary's side (Linux >= 6.13).
    #[arg(long, value_parser = SCRUBS)]
    pub scrub: Option<Scrub>,
    /// The same for the peer's side (Linux >= 6.13).
    #[arg(long, value_parser = SCRUBS)]
    pub peer_scrub: Option<Scrub>,
    /// Extra headroom the pair reserves in packets, in bytes (Linux >= 6.14).
    #[arg(long)]
    pub headroom: Option<u16>,
    /// Extra tailroom the pair reserves in packets, in bytes (Linux >= 6.14).
    #[arg(long)]
    pub tailroom: Option<u16>,
    /// `single` creates one netkit device without a peer (Linux >= 7.1; its
    /// policy stays pass, it has no primary/peer hooks, and the peer options
    /// do not apply). Default: pair.
    #[arg(long, value_parser = PAIRINGS)]
    pub pairing: Option<Pairing>,
    /// MTU of both ends.
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Create the peer directly inside this network namespace: a name under
    /// /run/netns, an nsfs path or pid:PID.
    #[arg(long, value_name = "NETNS")]
    pub peer_netns: Option<NetnsRef>,
    /// Bring both ends up (the one device with --pairing single).
    #[arg(long)]
    pub up: bool,
    #[command(flatten)]
    pub this: EndArgs,
    #[command(flatten)]
    pub peer_end: PeerEndArgs,
}

// The primary's own attributes (the device's, with --pairing single).
#[derive(Debug, Args)]
pub struct EndArgs {
    /// The primary's MAC address (L2 only). Without one the kernel picks a
    /// random MAC, which systemd-udevd may then replace (MACAddressPolicy).
    #[arg(long, value_name = "MAC")]
    pub address: Option<Mac>,
    /// Largest GSO packet the stack builds for the primary, in bytes (576 to
    /// 524280; above 65536 it is IPv6 Big TCP).
    #[arg(long, value_name = "BYTES")]
    pub gso_max_size: Option<u32>,
    /// The same for IPv4 (IPv4 Big TCP; Linux >= 6.3).
    #[arg(long, value_name = "BYTES")]
    pub gso_ipv4_max_size: Option<u32>,
    /// Largest packet GRO builds on the primary, in bytes (1 to 524280).
    #[arg(long, value_name = "BYTES")]
    pub gro_max_size: Option<u32>,
    /// The same for IPv4 (Linux >= 6.3).
    #[arg(long, value_name = "BYTES")]
    pub gro_ipv4_max_size: Option<u32>,
    /// Most segments in one GSO packet on the primary (1 to 65535).
    #[arg(long, value_name = "N")]
    pub gso_max_segs: Option<u32>,
    /// Receive queues of the primary (1 to 4096; at creation only).
    #[arg(long, value_name = "N")]
    pub numrxqueues: Option<u32>,
    /// Transmit queues of the primary (1 to 4096; at creation only).
    #[arg(long, value_name = "N")]
    pub numtxqueues: Option<u32>,
}

// The peer's own attributes.
#[derive(Debug, Args)]
pub struct PeerEndArgs {
    /// The peer's MAC address (L2 only).
    #[arg(long, value_name = "MAC")]
    pub peer_address: Option<Mac>,
    /// --gso-max-size for the peer.
    #[arg(long, value_name = "BYTES")]
    pub peer_gso_max_size: Option<u32>,
    /// --gso-ipv4-max-size for the peer.
    #[arg(long, value_name = "BYTES")]
    pub peer_gso_ipv4_max_size: Option<u32>,
    /// --gro-max-size for the peer.
    #[arg(long, value_name = "BYTES")]
    pub peer_gro_max_size: Option<u32>,
    /// --gro-ipv4-max-size for the peer.
    #[arg(long, value_name = "BYTES")]
    pub peer_gro_ipv4_max_size: Option<u32>,
    /// --gso-max-segs for the peer.
    #[arg(long, value_name = "N")]
    pub peer_gso_max_segs: Option<u32>,
    /// Receive queues of the peer (1 to 4096; at creation only).
    #[arg(long, value_name = "N")]
    pub peer_numrxqueues: Option<u32>,
    /// Transmit queues of the peer (1 to 4096; at creation only).
    #[arg(long, value_name = "N")]
    pub peer_numtxqueues: Option<u32>,
}

impl EndArgs {
    /// The attributes asked for.
    pub fn attrs(&self) -> EndAttrs {
        EndAttrs {
            address: self.address,
            offload: Offload {
                gso_max_size: self.gso_max_size,
                gso_ipv4_max_size: self.gso_ipv4_max_size,
                gro_max_size: self.gro_max_size,
                gro_ipv4_max_size: self.gro_ipv4_max_size,
                gso_max_segs: self.gso_max_segs,
            },
            queues: Queues { num_rx_queues: self.numrxqueues, num_tx_queues: self.numtxqueues },
        }
    }
}

impl PeerEndArgs {
    /// The attributes asked for.
    pub fn attrs(&self) -> EndAttrs {
        EndAttrs {
            address: self.peer_address,
            offload: Offload {
                gso_max_size: self.peer_gso_max_size,
                gso_ipv4_max_size: self.peer_gso_ipv4_max_size,
                gro_max_size: self.peer_gro_max_size,
                gro_ipv4_max_size: self.peer_gro_ipv4_max_size,
                gso_max_segs: self.peer_gso_max_segs,
            },
            queues: Queues { num_rx_queues: self.peer_numrxqueues, num_tx_queues: self.peer_numtxqueues },
        }
    }
}

#[derive(Debug, Args)]
pub struct DeviceSet {
    /// The primary of the pair.
    #[arg(add = ArgValueCompleter::new(devices))]
    pub name: String,
    /// New default for the primary's hook.
    #[arg(long, value_parser = POLICIES)]
    pub policy: Option<Policy>,
    /// New default for the peer's hook.
    #[arg(long, value_parser = POLICIES)]
    pub peer_policy: Option<Policy>,
    #[command(flatten)]
    pub this: EndArgs,
    #[command(flatten)]
    pub peer_end: PeerEndArgs,
    // Settings the kernel fixes at creation: accepted only to explain that.
    #[arg(long, hide = true)]
    pub mode: Option<String>,
    #[arg(long, hide = true)]
    pub scrub: Option<String>,
    #[arg(long, hide = true)]
    pub peer_scrub: Option<String>,
    #[arg(long, hide = true)]
    pub headroom: Option<String>,
    #[arg(long, hide = true)]
    pub tailroom: Option<String>,
    #[arg(long, hide = true)]
    pub peer: Option<String>,
    #[arg(long, hide = true)]
    pub peer_netns: Option<String>,
    #[arg(long, hide = true)]
    pub pairing: Option<String>,
    #[arg(long, hide = true)]
    pub mtu: Option<String>,
}

/// A closed set of command-line words, each naming one value of a domain
/// type (`Hook`, `Policy`, ...), so that the kernel-facing types know nothing
/// of clap: the words, their help and the mapping live here.
#[derive(Clone)]
pub struct Closed<T: 'static>(&'static [(T, &'static str, &'static str)]);

impl<T: Copy + Send + Sync + 'static> TypedValueParser for Closed<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<T, clap::Error> {
        // The words parser gives clap's own message (with the valid words) for
        // anything else; every word it accepts is in the table.
        let word = PossibleValuesParser::new(self.possible()).parse_ref(cmd, arg, value)?;
        self.0
            .iter()
            .find(|(_, w, _)| *w == word)
            .map(|(v, _, _)| *v)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidValue).with_cmd(cmd))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(self.possible()))
    }
}

impl<T> Closed<T> {
    fn possible(&self) -> impl Iterator<Item = PossibleValue> + '_ {
        self.0.iter().map(|(_, w, help)| {
            let v = PossibleValue::new(*w);
            if help.is_empty() { v } else { v.help(*help) }
        })
    }
}

const HOOKS: Closed<Hook> = Closed(&[
    (Hook::Ingress, "ingress", "tcx ingress of any device"),
    (Hook::Egress, "egress", "tcx egress of any device"),
    (Hook::Primary, "primary", "netkit: programs run when the primary transmits (toward the peer)"),
    (Hook::Peer, "peer", "netkit: programs run when the peer transmits (toward the primary)"),
]);
const POLICIES: Closed<Policy> = Closed(&[(Policy::Pass, "pass", ""), (Policy::Drop, "drop", "")]);
const MODES: Closed<Mode> = Closed(&[(Mode::L2, "l2", ""), (Mode::L3, "l3", "")]);
const SCRUBS: Closed<Scrub> = Closed(&[(Scrub::Default, "default", ""), (Scrub::None, "none", "")]);
const PAIRINGS: Closed<Pairing> = Closed(&[(Pairing::Pair, "pair", ""), (Pairing::Single, "single", "")]);

/// Completes a device name: the devices of the namespace the command line
/// names with `-n`/`--netns`, or of this process's, by an rtnetlink dump
/// (sysfs shows the namespace it was mounted in, not this process's).
fn devices(current: &OsStr) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy();
    let args: Vec<String> = std::env::args().collect();
    let netns = args
        .iter()
        .position(|a| a == "-n" || a == "--netns")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<NetnsRef>().ok());
    let Ok(_visit) = netns.as_ref().map(netns::Visit::enter).transpose() else { return Vec::new() };
    let Ok(rt) = crate::runtime() else { return Vec::new() };
    let links = rt.block_on(async { netkit::netlink::Netlink::connect().ok()?.links().ok() }).unwrap_or_default();
    let mut names: Vec<String> = links.into_iter().map(|l| l.name).filter(|n| n.starts_with(&*prefix)).collect();
    names.sort();
    names.into_iter().map(CompletionCandidate::new).collect()
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
