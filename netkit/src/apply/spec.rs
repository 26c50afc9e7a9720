//! The spec file: what a node should look like. One schema read from YAML
//! or JSON (JSON is read as the YAML flow style it is, so both report
//! places the same way), checked as a whole before anything changes: every
//! mistake is reported with its line and column, not only the first.

use std::{collections::BTreeMap, net::IpAddr, path::Path, str::FromStr};

use serde::{Deserialize, Serialize};
use serde_saphyr::{Location, Spanned};

use crate::{
    hooks::refs::RefSpec,
    maps::firewall::Rule,
    mprog::Hook,
    netlink::{
        attrs::{EndAttrs, Mac, Offload, Queues},
        device::PairSpec,
        ifname,
        links::{Mode, PairKind, PairSettings, Pairing, Policy, Scrub},
    },
    os::netns::NetnsRef,
    pins,
    programs::{self, ProgSpec},
};

/// A spec file as written: `pairs` and `chains`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpecDoc {
    /// The netkit pairs, created in the namespace apply runs in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<PairDoc>,
    /// The ordered chains of programs, one per device and hook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainDoc>,
}

/// One pair: netkit, or veth.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PairDoc {
    /// The primary's name (for veth: the end apply makes here).
    pub name: Spanned<String>,
    /// netkit (the default) or veth; fixed at creation. A veth pair takes
    /// none of netkit's settings (mode, pairing, headroom, tailroom, the
    /// ends' policy and scrub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<PairKind>,
    /// l3 (the default) or l2; fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// pair (the default) or single (Linux >= 7.1); fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairing: Option<Pairing>,
    /// Extra headroom in bytes (Linux >= 6.14); fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headroom: Option<u16>,
    /// Extra tailroom in bytes (Linux >= 6.14); fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tailroom: Option<u16>,
    /// MTU of both ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Both ends administratively up (the default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<bool>,
    /// The primary end's own settings.
    #[serde(default, skip_serializing_if = "EndDoc::is_empty")]
    pub primary: EndDoc,
    /// The peer end's own settings, its name and namespace.
    #[serde(default, skip_serializing_if = "EndDoc::is_empty")]
    pub peer: EndDoc,
}

/// The settings of one end of a pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndDoc {
    /// The peer's name (the first free `nk<N>`, `veth<N>` for veth, when absent); not for the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The peer's namespace: NAME, PATH or pid:PID; not for the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// The end's default verdict: pass or drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// default (clear mark and priority when crossing namespaces) or none; fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrub: Option<Scrub>,
    /// The MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// IFLA_GSO_MAX_SIZE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gso_max_size: Option<u32>,
    /// IFLA_GSO_IPV4_MAX_SIZE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gso_ipv4_max_size: Option<u32>,
    /// IFLA_GRO_MAX_SIZE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gro_max_size: Option<u32>,
    /// IFLA_GRO_IPV4_MAX_SIZE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gro_ipv4_max_size: Option<u32>,
    /// IFLA_GSO_MAX_SEGS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gso_max_segs: Option<u32>,
    /// Receive queues; fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numrxqueues: Option<u32>,
    /// Transmit queues; fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numtxqueues: Option<u32>,
}

impl EndDoc {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The chain of one hook of one device.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChainDoc {
    /// The device (for netkit hooks: the pair's primary), in apply's namespace.
    pub device: Spanned<String>,
    /// ingress, egress (tcx) or primary, peer (netkit).
    pub hook: Spanned<String>,
    /// The programs, first to last.
    #[serde(default)]
    pub programs: Vec<EntryDoc>,
}

/// One program of a chain: one this spec manages (`name` + `program`), or a
/// reference to one it does not (`ref`), which apply leaves alone.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EntryDoc {
    /// The link's pin name on the hook (its identity from one apply to the next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Spanned<String>>,
    /// A bundled name, `file:PATH[:FUNCTION]` or `pinned:PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<Spanned<String>>,
    /// Settings, as `--set KEY=VALUE` takes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<Spanned<String>>,
    /// `firewall`: its rules, in order, as `firewall add` takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Spanned<String>>>,
    /// `redirect-peer`: destination address -> the pair (primary) whose peer gets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<BTreeMap<String, String>>,
    /// A program this spec does not manage (link:ID or prog:ID): left alone.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<Spanned<String>>,
}

/// A place in the spec file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Place {
    /// 1-based line (0: unknown).
    pub line: u64,
    /// 1-based column (0: unknown).
    pub column: u64,
}

impl From<Location> for Place {
    fn from(l: Location) -> Self {
        Self { line: l.line(), column: l.column() }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One mistake in a spec, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mistake {
    /// Where it is.
    pub place: Place,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// Why a spec cannot be applied: every mistake found, each with its place.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct SpecError {
    /// The file, as given.
    pub file: String,
    /// The mistakes, in file order.
    pub mistakes: Vec<Mistake>,
}

impl SpecError {
    fn render(&self) -> String {
        let n = self.mistakes.len();
        let mut s = format!("{} has {n} mistake{}; nothing was changed", self.file, if n == 1 { "" } else { "s" });
        for m in &self.mistakes {
            s += &format!("\n  {}:{}: {}", self.file, m.place, m.message);
        }
        s
    }
}

/// A validated pair.
#[derive(Debug, Clone)]
pub struct PairEntry {
    /// Where it is declared.
    pub place: Place,
    /// What to create (or what a live pair must match).
    pub spec: PairSpec,
}

/// A validated program of a chain.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Managed by apply: attached as a link pinned under `name`.
    Managed(Managed),
    /// Someone else's, left where it is.
    Foreign {
        /// Where it is declared.
        place: Place,
        /// link:ID or prog:ID.
        reference: RefSpec,
    },
}

/// A program apply manages.
#[derive(Debug, Clone)]
pub struct Managed {
    /// Where it is declared.
    pub place: Place,
    /// The pin name on the hook.
    pub name: String,
    /// The program.
    pub prog: ProgSpec,
    /// Its `--set` values, as written.
    pub set: Vec<String>,
    /// The globals those values set.
    pub globals: Vec<(String, Vec<u8>)>,
    /// Firewall rules (bundled `firewall` only).
    pub rules: Option<Vec<Rule>>,
    /// Redirect entries: address -> primary name (bundled `redirect-peer` only).
    pub entries: Option<BTreeMap<IpAddr, String>>,
}

/// A validated chain.
#[derive(Debug, Clone)]
pub struct Chain {
    /// Where it is declared.
    pub place: Place,
    /// The device.
    pub device: String,
    /// The hook.
    pub hook: Hook,
    /// The programs, first to last.
    pub entries: Vec<Entry>,
}

/// A spec checked as a whole, ready to plan against the node.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// The file, as messages name it.
    pub file: String,
    /// The pairs.
    pub pairs: Vec<PairEntry>,
    /// The chains.
    pub chains: Vec<Chain>,
}

/// Pairs by name, for lookups that would otherwise search the list per
/// chain (quadratic in pods).
pub(crate) fn by_name(pairs: &[PairEntry]) -> std::collections::HashMap<&str, &PairEntry> {
    pairs.iter().map(|p| (p.spec.name.as_str(), p)).collect()
}

impl Spec {
    /// The pair named `name`, if the spec declares it.
    pub fn pair(&self, name: &str) -> Option<&PairEntry> {
        self.pairs.iter().find(|p| p.spec.name == name)
    }
}

/// Reads a spec file (`-`: standard input).
pub fn read(path: &Path) -> Result<Spec, SpecError> {
    let shown = if path == Path::new("-") { "standard input".to_string() } else { path.display().to_string() };
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map(|_| s)
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| SpecError {
        file: shown.clone(),
        mistakes: vec![Mistake { place: Place::default(), message: format!("cannot read it: {e}") }],
    })?;
    parse(&shown, &text)
}

/// Parses and checks a spec's text; `file` names it in messages.
pub fn parse(file: &str, text: &str) -> Result<Spec, SpecError> {
    validate(file, &parse_doc(file, text)?)
}

/// Checks a document (read or built) as a whole; `file` names it in messages.
pub fn validate(file: &str, doc: &SpecDoc) -> Result<Spec, SpecError> {
    let mut v = Validator::default();
    let mut spec = v.spec(doc);
    spec.file = file.into();
    if v.mistakes.is_empty() {
        Ok(spec)
    } else {
        v.mistakes.sort_by_key(|m| (m.place.line, m.place.column));
        Err(SpecError { file: file.into(), mistakes: v.mistakes })
    }
}

/// The document, without the checks that need more than its syntax.
pub fn parse_doc(file: &str, text: &str) -> Result<SpecDoc, SpecError> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    let doc: Option<SpecDoc> = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let place = e.location().map(Place::from).unwrap_or_default();
        SpecError { file: file.into(), mistakes: vec![Mistake { place, message: plain_message(&e) }] }
    })?;
    Ok(doc.unwrap_or_default())
}

/// The parser's message without its own rendering of the place.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    // "error: line 3 column 5: unknown field ..." -> "unknown field ..."
    let mut msg = first.trim_start_matches("error:").trim();
    if let Some(rest) = msg.strip_prefix("line ")
        && let Some((_, after)) = rest.split_once(": ")
    {
        msg = after;
    }
    msg.to_string()
}

/// Writes a spec document as YAML.
pub fn to_yaml(doc: &SpecDoc) -> String {
    serde_saphyr::to_string(doc).unwrap_or_default()
}

/// A spanned value with no place (for documents built, not read).
pub fn unplaced<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}

#[derive(Default)]
struct Validator {
    mistakes: Vec<Mistake>,
}

fn place<T>(s: &Spanned<T>) -> Place {
    s.referenced.into()
}

impl Validator {
    fn wrong(&mut self, place: Place, message: impl Into<String>) {
        self.mistakes.push(Mistake { place, message: message.into() });
    }

    fn spec(&mut self, doc: &SpecDoc) -> Spec {
        let pairs: Vec<PairEntry> = doc.pairs.iter().filter_map(|p| self.pair(p)).collect();
        // Names are checked on what was written, valid or not.
        let mut names: BTreeMap<String, Place> = BTreeMap::new();
        for d in &doc.pairs {
            let mut here = vec![(d.name.value.clone(), place(&d.name))];
            if d.peer.netns.is_none()
                && let Some(peer) = &d.peer.name
            {
                here.push((peer.clone(), place(&d.name)));
            }
            for (name, at) in here {
                if let Some(first) = names.get(&name) {
                    self.wrong(
                        at,
                        format!(
                            "`{name}` is declared twice (first at {first}): device names are unique in a namespace"
                        ),
                    );
                } else {
                    names.insert(name, at);
                }
            }
        }
        let mut chains: Vec<Chain> = Vec::new();
        let mut hooks: std::collections::HashMap<(String, Hook), Place> = std::collections::HashMap::new();
        let by_name = by_name(&pairs);
        for c in &doc.chains {
            let Some(chain) = self.chain(c) else { continue };
            if let Some(first) = hooks.get(&(chain.device.clone(), chain.hook)) {
                self.wrong(
                    chain.place,
                    format!(
                        "a second chain for {} {} (the first is at {first}): give each hook one chain",
                        chain.device, chain.hook
                    ),
                );
                continue;
            }
            hooks.insert((chain.device.clone(), chain.hook), chain.place);
            if chain.hook.is_netkit()
                && let Some(p) = by_name.get(chain.device.as_str())
                && p.spec.settings.pairing == Some(Pairing::Single)
            {
                self.wrong(
                    chain.place,
                    format!(
                        "{} is a single netkit device: it has no {} hook (use ingress or egress)",
                        chain.device, chain.hook
                    ),
                );
            }
            chains.push(chain);
        }
        Spec { file: String::new(), pairs, chains }
    }

    fn pair(&mut self, d: &PairDoc) -> Option<PairEntry> {
        let at = place(&d.name);
        let before = self.mistakes.len();
        if let Err(e) = ifname::check(&d.name.value) {
            self.wrong(at, e);
        }
        for (field, given) in [("name", d.primary.name.is_some()), ("netns", d.primary.netns.is_some())] {
            if given {
                self.wrong(at, format!("primary.{field}: the primary's {field} is the pair's own (`name`, and the namespace apply runs in); peer.{field} is the peer's"));
            }
        }
        let end = |v: &mut Self, e: &EndDoc, peer: bool| -> EndAttrs {
            let address = e.address.as_ref().and_then(|a| match a.parse::<Mac>() {
                Ok(m) => Some(m),
                Err(msg) => {
                    v.wrong(at, format!("{}.address: {msg}", if peer { "peer" } else { "primary" }));
                    None
                }
            });
            EndAttrs {
                address,
                offload: Offload {
                    gso_max_size: e.gso_max_size,
                    gso_ipv4_max_size: e.gso_ipv4_max_size,
                    gro_max_size: e.gro_max_size,
                    gro_ipv4_max_size: e.gro_ipv4_max_size,
                    gso_max_segs: e.gso_max_segs,
                },
                queues: Queues { num_rx_queues: e.numrxqueues, num_tx_queues: e.numtxqueues },
            }
        };
        let attrs = end(self, &d.primary, false);
        let peer_attrs = end(self, &d.peer, true);
        let peer_netns = d.peer.netns.as_ref().and_then(|n| match n.parse::<NetnsRef>() {
            Ok(r) => Some(r),
            Err(e) => {
                self.wrong(at, format!("peer.netns: {e}"));
                None
            }
        });
        let spec = PairSpec {
            name: d.name.value.clone(),
            kind: d.kind.unwrap_or_default(),
            peer: d.peer.name.clone(),
            settings: PairSettings {
                mode: d.mode,
                policy: d.primary.policy,
                peer_policy: d.peer.policy,
                scrub: d.primary.scrub,
                peer_scrub: d.peer.scrub,
                headroom: d.headroom,
                tailroom: d.tailroom,
                pairing: d.pairing,
            },
            mtu: d.mtu,
            peer_netns,
            up: d.up.unwrap_or(true),
            attrs,
            peer_attrs,
        };
        // The checks `device add` makes, in the spec's words.
        if let Err(e) = spec.check_request() {
            self.wrong(at, spec_words(&e.to_string()));
        }
        (self.mistakes.len() == before).then_some(PairEntry { place: at, spec })
    }

    fn chain(&mut self, d: &ChainDoc) -> Option<Chain> {
        let at = place(&d.device);
        let before = self.mistakes.len();
        if let Err(e) = ifname::check(&d.device.value) {
            self.wrong(at, format!("device: {e}"));
        }
        let hook = match d.hook.value.parse::<Hook>() {
            Ok(h) => Some(h),
            Err(e) => {
                self.wrong(place(&d.hook), e.to_string());
                None
            }
        };
        let mut entries = Vec::new();
        let mut seen: BTreeMap<String, Place> = BTreeMap::new();
        for e in &d.programs {
            if let Some(name) = &e.name {
                if let Some(first) = seen.get(&name.value) {
                    self.wrong(place(name), format!("`{}` names two programs of this chain (the first at {first}): names are pins, unique per hook", name.value));
                    continue;
                }
                seen.insert(name.value.clone(), place(name));
            }
            if let Some(entry) = self.entry(e) {
                entries.push(entry);
            }
        }
        (self.mistakes.len() == before).then(|| Chain {
            place: at,
            device: d.device.value.clone(),
            hook: hook.expect("a hook without a mistake parsed"),
            entries,
        })
    }

    fn entry(&mut self, d: &EntryDoc) -> Option<Entry> {
        let at = [d.name.as_ref().map(place), d.program.as_ref().map(place), d.reference.as_ref().map(place)]
            .into_iter()
            .flatten()
            .next()
            .unwrap_or_default();
        if let Some(r) = &d.reference {
            if d.program.is_some() || d.name.is_some() || !d.set.is_empty() || d.rules.is_some() || d.entries.is_some()
            {
                self.wrong(at, "an entry with `ref` names a program this spec does not manage: it takes nothing else (no name, program, set, rules or entries)");
                return None;
            }
            return match r.value.parse::<RefSpec>() {
                Ok(reference @ (RefSpec::Link(_) | RefSpec::Prog(_))) => Some(Entry::Foreign { place: at, reference }),
                _ => {
                    self.wrong(place(r), format!("ref `{}`: write link:ID or prog:ID", r.value));
                    None
                }
            };
        }
        let (Some(name), Some(program)) = (&d.name, &d.program) else {
            self.wrong(at, "a program entry needs `name` (its pin on the hook) and `program` (bundled name, file:PATH[:FUNCTION] or pinned:PATH), or `ref` for one this spec leaves alone");
            return None;
        };
        let before = self.mistakes.len();
        if let Err(e) = pins::check_name(&name.value) {
            self.wrong(place(name), format!("name: {e}"));
        }
        let prog = match program.value.parse::<ProgSpec>() {
            Ok(ProgSpec::Id(id)) => {
                self.wrong(place(program), format!("program id:{id}: ids change from boot to boot; a spec names a bundled program, file:PATH or pinned:PATH (or `ref: prog:{id}` for one it leaves alone)"));
                None
            }
            Ok(p) => match programs::prepare(&p) {
                Ok(_) => Some(p),
                Err(e) => {
                    self.wrong(place(program), e.to_string());
                    None
                }
            },
            Err(e) => {
                self.wrong(place(program), e.to_string());
                None
            }
        };
        let set: Vec<String> = d.set.iter().map(|s| s.value.clone()).collect();
        let globals = match &prog {
            Some(p) => match programs::globals(p, &set) {
                Ok(g) => g,
                Err(e) => {
                    let at = d.set.first().map(place).unwrap_or(place(program));
                    self.wrong(at, format!("set: {}", e.to_string().replace("--set ", "")));
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let bundled = |n: &str| matches!(&prog, Some(ProgSpec::Bundled(b)) if b == n);
        let rules = d.rules.as_ref().map(|rules| {
            if !bundled("firewall") {
                self.wrong(place(program), "rules: only the bundled firewall program has rules");
            }
            rules
                .iter()
                .filter_map(|r| {
                    let words: Vec<String> = r.value.split_whitespace().map(String::from).collect();
                    Rule::parse(&words).map_err(|e| self.wrong(place(r), e.to_string())).ok()
                })
                .collect::<Vec<Rule>>()
        });
        let entries = d.entries.as_ref().map(|entries| {
            if !bundled("redirect-peer") {
                self.wrong(place(program), "entries: only the bundled redirect-peer program has entries");
            }
            let mut out = BTreeMap::new();
            for (ip, pair) in entries {
                match (IpAddr::from_str(ip), ifname::check(pair)) {
                    (Ok(ip), Ok(())) => {
                        out.insert(ip, pair.clone());
                    }
                    (Err(_), _) => self.wrong(place(program), format!("entries: `{ip}` is not an IP address")),
                    (_, Err(e)) => self.wrong(place(program), format!("entries: {ip}: {e}")),
                }
            }
            out
        });
        if self.mistakes.len() != before {
            return None;
        }
        Some(Entry::Managed(Managed {
            place: place(name),
            name: name.value.clone(),
            prog: prog?,
            set,
            globals,
            rules,
            entries,
        }))
    }
}

/// A `device add` message in the spec's words: flags become keys.
fn spec_words(message: &str) -> String {
    message
        .replace("--kind veth", "kind: veth")
        .replace("--policy is", "primary.policy is")
        .replace("--scrub is", "primary.scrub is")
        .replace("--pairing is", "pairing is")
        .replace("--peer-netns", "peer.netns")
        .replace("--peer-policy", "peer.policy")
        .replace("--peer-scrub", "peer.scrub")
        .replace("--peer-address", "peer.address")
        .replace("--peer-", "peer.")
        .replace("--peer", "peer.name")
        .replace("--pairing", "pairing:")
        .replace("--", "")
        .replace("; nothing was created", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mistakes(text: &str) -> Vec<String> {
        match parse("s.yaml", text) {
            Ok(_) => Vec::new(),
            Err(e) => e.mistakes.iter().map(|m| format!("{}: {}", m.place, m.message)).collect(),
        }
    }

    #[test]
    fn a_good_spec_parses_from_yaml_and_json_alike() {
        let yaml = "pairs:\n  - name: nk0\n    mode: l2\n    peer: {name: eth0, policy: drop}\nchains:\n  - device: nk0\n    hook: peer\n    programs:\n      - {name: a, program: pass}\n      - ref: link:7\n";
        let json = r#"{"pairs": [{"name": "nk0", "mode": "l2", "peer": {"name": "eth0", "policy": "drop"}}],
            "chains": [{"device": "nk0", "hook": "peer", "programs": [{"name": "a", "program": "pass"}, {"ref": "link:7"}]}]}"#;
        for text in [yaml, json] {
            let s = parse("s", text).unwrap();
            assert_eq!(s.pairs[0].spec.settings.mode, Some(Mode::L2));
            assert_eq!(s.pairs[0].spec.settings.peer_policy, Some(Policy::Drop));
            assert_eq!(s.pairs[0].spec.peer.as_deref(), Some("eth0"));
            assert!(s.pairs[0].spec.up);
            assert_eq!(s.chains[0].hook, Hook::Peer);
            assert!(matches!(&s.chains[0].entries[0], Entry::Managed(m) if m.name == "a"));
            assert!(matches!(&s.chains[0].entries[1], Entry::Foreign { reference: RefSpec::Link(7), .. }));
        }
        assert!(parse("s", "").unwrap().pairs.is_empty());
    }

    #[test]
    fn syntax_and_schema_mistakes_name_their_line() {
        let m = mistakes("pairs:\n  - name: nk0\n    colour: red\n");
        assert_eq!(m.len(), 1);
        assert!(m[0].starts_with("3:") && m[0].contains("colour"), "{m:?}");
        let m = mistakes("pairs:\n  - name: nk0\n    mode: l4\n");
        assert!(m[0].starts_with("3:") && m[0].contains("l4"), "{m:?}");
        let m = mistakes("pairs: [\n");
        assert_eq!(m.len(), 1, "{m:?}");
        let m = mistakes("pairs:\n  - name: a\n    name: b\n");
        assert!(m[0].contains("name"), "duplicate keys are refused: {m:?}");
    }

    #[test]
    fn every_semantic_mistake_is_reported_with_its_place() {
        let text = "\
pairs:
  - name: nk0
    mtu: 20
  - name: nk1
    peer: {address: '01:00:00:00:00:01'}
  - name: nk1
chains:
  - device: nk0
    hook: sideways
  - device: nk1
    hook: peer
    programs:
      - {name: fw, program: firewall, set: [default=maybe]}
      - {name: fw, program: pass}
      - {name: x, program: pass, rules: ['10.0.0.1 deny']}
      - {name: y, program: 'id:5'}
      - {name: z}
      - {ref: 'name'}
      - {name: r, program: firewall, rules: ['10.0.0.0/8 maybe']}
";
        let m = mistakes(text);
        let want = [
            // A pair's mistakes point at its name, naming the key.
            ("2:", "mtu 20"),
            ("4:", "peer.address"),
            ("6:", "declared twice"),
            ("9:", "unknown hook `sideways`"),
            ("13:", "allow or deny"),
            ("14:", "names two programs"),
            ("15:", "only the bundled firewall"),
            ("16:", "ids change"),
            ("17:", "needs `name`"),
            ("18:", "link:ID or prog:ID"),
            ("19:", "bad rule"),
        ];
        for (line, text) in want {
            assert!(m.iter().any(|x| x.starts_with(line) && x.contains(text)), "{line} {text}: {m:#?}");
        }
        assert_eq!(m.len(), want.len(), "{m:#?}");
    }

    #[test]
    fn the_specs_the_readme_and_deploy_show_are_valid() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
        let start = readme.find("```yaml\npairs:").expect("the README shows a spec");
        let text = &readme[start + "```yaml\n".len()..];
        let text = &text[..text.find("```").unwrap()];
        let spec = parse("README.md", text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((spec.pairs.len(), spec.chains.len()), (1, 2));
        let deploy = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/daemonset.yaml"));
        let body = deploy.split("spec.yaml: |\n").nth(1).unwrap().split("---").next().unwrap();
        let text: String =
            body.lines().map(|l| l.strip_prefix("    ").unwrap_or(l)).map(|l| format!("{l}\n")).collect();
        let spec = parse("deploy/daemonset.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.chains[0].entries.len(), 2);
    }

    #[test]
    fn a_veth_pair_takes_no_netkit_setting() {
        let ok = "pairs:\n  - name: v0\n    kind: veth\n    mtu: 1400\n    peer: {name: eth0, address: '02:00:00:00:00:02'}\nchains:\n  - device: v0\n    hook: ingress\n    programs:\n      - {name: c, program: counter}\n";
        let spec = parse("s", ok).unwrap();
        assert_eq!(spec.pairs[0].spec.kind, PairKind::Veth);
        for (setting, word) in [
            ("mode: l2", "mode"),
            ("pairing: single", "pairing"),
            ("headroom: 64", "headroom"),
            ("primary: {policy: drop}", "primary.policy"),
            ("primary: {scrub: none}", "primary.scrub"),
            ("peer: {name: eth0, policy: drop}", "peer.policy"),
        ] {
            let text = ok.replace("    mtu: 1400\n", &format!("    mtu: 1400\n    {setting}\n"));
            let text = if setting.starts_with("peer:") {
                text.replace("    peer: {name: eth0, address: '02:00:00:00:00:02'}\n", "")
            } else {
                text
            };
            let m = mistakes(&text);
            assert_eq!(m.len(), 1, "{setting}: {m:?}");
            assert!(
                m[0].starts_with("2:")
                    && m[0].contains(&format!("{word} is a netkit setting and does not apply to kind: veth")),
                "{setting}: {m:?}"
            );
        }
        // A pair's words name a veth's tcx hooks (the planner maps them).
        assert!(mistakes(&ok.replace("hook: ingress", "hook: primary")).is_empty());
    }
}
