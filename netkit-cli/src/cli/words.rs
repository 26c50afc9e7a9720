//! The command-line words of the domain's closed sets (hooks, policies,
//! modes, scrub, pairing) and device-name completion.

use super::*;

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

pub(super) const HOOKS: Closed<Hook> = Closed(&[
    (Hook::Ingress, "ingress", "tcx ingress of any device"),
    (Hook::Egress, "egress", "tcx egress of any device"),
    (Hook::Primary, "primary", "netkit: programs run when the primary transmits (toward the peer); veth: tcx egress"),
    (Hook::Peer, "peer", "netkit: programs run when the peer transmits (toward the primary); veth: tcx ingress"),
]);

pub(super) const KINDS: Closed<PairKind> = Closed(&[
    (PairKind::Netkit, "netkit", "BPF in the device's transmit path, primary and peer hooks (Linux >= 6.7)"),
    (PairKind::Veth, "veth", "any kernel; its programs go on tcx (Linux >= 6.6)"),
]);

pub(super) const POLICIES: Closed<Policy> = Closed(&[(Policy::Pass, "pass", ""), (Policy::Drop, "drop", "")]);

pub(super) const MODES: Closed<Mode> = Closed(&[(Mode::L2, "l2", ""), (Mode::L3, "l3", "")]);

pub(super) const SCRUBS: Closed<Scrub> = Closed(&[(Scrub::Default, "default", ""), (Scrub::None, "none", "")]);

pub(super) const PAIRINGS: Closed<Pairing> = Closed(&[(Pairing::Pair, "pair", ""), (Pairing::Single, "single", "")]);

/// Completes a device name: the devices of the namespace the command line
/// names with `-n`/`--netns`, or of this process's, by an rtnetlink dump
/// (sysfs shows the namespace it was mounted in, not this process's).
pub(super) fn devices(current: &OsStr) -> Vec<CompletionCandidate> {
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
