//! The syntax of the hook commands: where (device and hook, position),
//! what (program, REF), and the commands on a live program's maps.

use super::*;

// A device and one of its hooks: where a hook command acts. (A plain
// comment: a doc comment would become the about text of every command
// that flattens it.)
#[derive(Debug, Clone, Args)]
pub struct HookPlace {
    /// Device (for the netkit hooks primary and peer: the pair's primary).
    #[arg(add = ArgValueCompleter::new(devices))]
    pub dev: String,
    /// ingress, egress (tcx, any device) or primary, peer (netkit).
    #[arg(value_parser = HOOKS)]
    pub hook: Hook,
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
        #[command(flatten)]
        at: HookPlace,
        /// [REF] then the rule's words.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 1.., value_name = "[REF] RULE")]
        words: Vec<String>,
    },
    /// Remove the rule with ID ([REF] ID).
    #[command(after_long_help = examples::FIREWALL_DEL)]
    Del {
        #[command(flatten)]
        at: HookPlace,
        /// [REF] (when the hook has more than one firewall) then the rule's ID.
        #[arg(num_args = 1..=2, value_name = "[REF] ID")]
        args: Vec<String>,
    },
    /// The rules, in id order, with their hits and the default's.
    #[command(after_long_help = examples::FIREWALL_LIST)]
    List {
        #[command(flatten)]
        at: HookPlace,
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
        #[command(flatten)]
        at: HookPlace,
        /// [REF] (when the hook has more than one redirect-peer), the
        /// destination IP, and the pair (its primary) whose peer gets it.
        #[arg(num_args = 2..=3, value_name = "[REF] IP PAIR")]
        args: Vec<String>,
    },
    /// Remove the entry for IP ([REF] IP).
    #[command(after_long_help = examples::REDIRECT_DEL)]
    Del {
        #[command(flatten)]
        at: HookPlace,
        /// [REF] (when the hook has more than one redirect-peer) then the IP.
        #[arg(num_args = 1..=2, value_name = "[REF] IP")]
        args: Vec<String>,
    },
    /// The entries, and how many packets were redirected.
    #[command(after_long_help = examples::REDIRECT_LIST)]
    List {
        #[command(flatten)]
        at: HookPlace,
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
    #[command(flatten)]
    pub at: HookPlace,
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
    #[command(flatten)]
    pub at: HookPlace,
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
    #[command(flatten)]
    pub at: HookPlace,
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

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub at: HookPlace,
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
