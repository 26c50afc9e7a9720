//! Firewall rules of an attached `firewall` program, changed live through its
//! maps (found from the chain: program id -> map ids, nothing pinned).
//!
//! A rule is `[src|dst] CIDR [proto P] [port N[-M]] allow|deny`. Lookups walk
//! the most specific matching prefix first (up to 8 nested prefixes);
//! destination rules are consulted before source rules; within one prefix,
//! rules keep the order they were added in. Allowed packets go on down the
//! chain (TCX_NEXT), denied ones are dropped (TCX_DROP).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use aya::maps::{Array, LpmTrie, MapData, PerCpuArray, lpm_trie::Key};
use netkit_common::firewall::{
    ACTION_ALLOW, ACTION_DENY, DIR_DST, DIR_SRC, MAX_RULES, PROTO_ANY, RULES_PER_PREFIX, RuleEntry, RuleMatch, RuleSet,
};
use serde::Serialize;

use crate::maps::{MapsError, ProgMaps, aya_err};

/// A rule as the user writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub(crate) source: bool,
    pub(crate) addr: IpAddr,
    pub(crate) prefix_len: u8,
    pub(crate) proto: u8,
    pub(crate) ports: (u16, u16),
    pub(crate) allow: bool,
}

/// Why a firewall rule could not be parsed, added, found or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FirewallError {
    /// The rule does not parse.
    #[error(
        "bad rule `{rule}`: {why} (a rule is: [src|dst] CIDR [proto tcp|udp|icmp|icmpv6|N] [port N[-M]] allow|deny)"
    )]
    Parse {
        /// The rule text.
        rule: String,
        /// Why, in words.
        why: String,
    },
    /// The rule table is full (the message says which).
    #[error("{0}")]
    Full(String),
    /// No rule has that id.
    #[error("no rule {0} on this firewall (see `netkit firewall list`)")]
    NoRule(u32),
    /// The program's maps could not be opened.
    #[error(transparent)]
    Maps(#[from] MapsError),
}

fn protocol(name: &str, v6: bool) -> Option<u8> {
    Some(match name {
        "tcp" => 6,
        "udp" => 17,
        "icmp" if v6 => 58,
        "icmp" => 1,
        "icmpv6" | "ipv6-icmp" => 58,
        "sctp" => 132,
        "gre" => 47,
        n => n.parse::<u8>().ok().filter(|p| *p != 0)?,
    })
}

/// The word a rule prints for protocol `p`: one that reads back as `p` for
/// the rule's family (`icmp` means 58 for IPv6, so 1 stays a number there).
fn proto_name(p: u8, v6: bool) -> String {
    match p {
        PROTO_ANY => "any".into(),
        1 if !v6 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        47 => "gre".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

impl Rule {
    /// Parses the words of one rule.
    pub fn parse(words: &[String]) -> Result<Self, FirewallError> {
        let text = words.join(" ");
        let bad = |why: &str| FirewallError::Parse { rule: text.clone(), why: why.into() };
        let mut it = words.iter().map(String::as_str).peekable();
        let source = match it.peek() {
            Some(&"src") => {
                it.next();
                true
            }
            Some(&"dst") => {
                it.next();
                false
            }
            _ => false,
        };
        let cidr = it.next().ok_or_else(|| bad("no CIDR"))?;
        let (addr, prefix_len) = parse_cidr(cidr).map_err(|why| bad(&why))?;
        let mut rule = Rule { source, addr, prefix_len, proto: PROTO_ANY, ports: (0, u16::MAX), allow: false };
        let mut action = None;
        while let Some(word) = it.next() {
            match word {
                "proto" => {
                    let p = it.next().ok_or_else(|| bad("proto needs a protocol"))?;
                    rule.proto = protocol(p, addr.is_ipv6()).ok_or_else(|| {
                        bad(&format!("unknown protocol `{p}` (tcp, udp, icmp, icmpv6, sctp, gre or 1-255)"))
                    })?;
                }
                "port" => {
                    let p = it.next().ok_or_else(|| bad("port needs N or N-M"))?;
                    let (lo, hi) = p.split_once('-').unwrap_or((p, p));
                    let (lo, hi) = match (lo.parse::<u16>(), hi.parse::<u16>()) {
                        (Ok(lo), Ok(hi)) if lo <= hi => (lo, hi),
                        _ => return Err(bad(&format!("bad port range `{p}` (N or N-M with N <= M <= 65535)"))),
                    };
                    rule.ports = (lo, hi);
                }
                "allow" | "deny" if action.is_none() => action = Some(word == "allow"),
                other => return Err(bad(&format!("unexpected `{other}`"))),
            }
        }
        rule.allow = action.ok_or_else(|| bad("no action: end the rule with allow or deny"))?;
        if rule.ports != (0, u16::MAX) && rule.proto != 6 && rule.proto != 17 {
            return Err(bad("a port range needs proto tcp or udp"));
        }
        Ok(rule)
    }

    pub(crate) fn entry(&self) -> RuleEntry {
        let mut addr = [0u8; 16];
        let family = match self.addr {
            IpAddr::V4(a) => {
                addr[..4].copy_from_slice(&a.octets());
                4
            }
            IpAddr::V6(a) => {
                addr = a.octets();
                6
            }
        };
        RuleEntry {
            used: 1,
            family,
            direction: if self.source { DIR_SRC } else { DIR_DST },
            prefix_len: self.prefix_len,
            proto: self.proto,
            action: if self.allow { ACTION_ALLOW } else { ACTION_DENY },
            port_lo: self.ports.0,
            port_hi: self.ports.1,
            _pad: [0; 6],
            addr,
        }
    }

    pub(crate) fn from_entry(e: &RuleEntry) -> Self {
        let addr = if e.family == 4 {
            IpAddr::V4(Ipv4Addr::new(e.addr[0], e.addr[1], e.addr[2], e.addr[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(e.addr))
        };
        Rule {
            source: e.direction == DIR_SRC,
            addr,
            prefix_len: e.prefix_len,
            proto: e.proto,
            ports: (e.port_lo, e.port_hi),
            allow: e.action == ACTION_ALLOW,
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", if self.source { "src" } else { "dst" }, self.addr, self.prefix_len)?;
        if self.proto != PROTO_ANY {
            write!(f, " proto {}", proto_name(self.proto, self.addr.is_ipv6()))?;
        }
        match self.ports {
            (0, u16::MAX) => {}
            (a, b) if a == b => write!(f, " port {a}")?,
            (a, b) => write!(f, " port {a}-{b}")?,
        }
        write!(f, " {}", if self.allow { "allow" } else { "deny" })
    }
}

/// Parses `ADDR/LEN` (a bare address means a host route), refusing host bits
/// beyond the prefix.
pub(crate) fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr = IpAddr::from_str(addr).map_err(|_| format!("`{s}` is not an IPv4 or IPv6 address or CIDR"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("prefix length in `{s}` must be 0-{max}"))?,
        None => max,
    };
    let masked = mask(addr, len);
    if masked != addr {
        return Err(format!("`{s}` has host bits set beyond /{len}; did you mean {masked}/{len}?"));
    }
    Ok((addr, len))
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// A rule with its id and hits, for listing.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    /// 0 stands for the default action.
    pub id: u32,
    /// The rule, as `firewall add` takes it.
    pub rule: String,
    /// Packets it decided.
    pub hits: u64,
}

/// The maps of one attached firewall program.
pub struct Firewall {
    maps: ProgMaps,
}

impl Firewall {
    /// The firewall program `prog_id`'s maps.
    pub fn open(prog_id: u32) -> Result<Self, FirewallError> {
        Ok(Self { maps: ProgMaps::open(prog_id)? })
    }

    /// The firewall whose program's maps are `maps`, already read.
    pub(crate) fn with(maps: ProgMaps) -> Self {
        Self { maps }
    }

    fn trie_name(rule: &Rule) -> &'static str {
        match (rule.addr.is_ipv4(), rule.source) {
            (true, false) => "FW_V4_DST",
            (true, true) => "FW_V4_SRC",
            (false, false) => "FW_V6_DST",
            (false, true) => "FW_V6_SRC",
        }
    }

    fn rules_array(&self) -> Result<Array<MapData, RuleEntry>, FirewallError> {
        Ok(Array::try_from(self.maps.get("FW_RULES")?).map_err(aya_err("FW_RULES"))?)
    }

    /// Reads, changes and writes back the rule set of `rule`'s prefix.
    fn edit_set(
        &self,
        rule: &Rule,
        f: impl FnOnce(Option<RuleSet>) -> Result<Option<RuleSet>, FirewallError>,
    ) -> Result<(), FirewallError> {
        let name = Self::trie_name(rule);
        match rule.addr {
            IpAddr::V4(a) => self.edit_trie(name, a.octets(), rule.prefix_len, f),
            IpAddr::V6(a) => self.edit_trie(name, a.octets(), rule.prefix_len, f),
        }
    }

    fn edit_trie<K: aya::Pod>(
        &self,
        name: &'static str,
        addr: K,
        prefix_len: u8,
        f: impl FnOnce(Option<RuleSet>) -> Result<Option<RuleSet>, FirewallError>,
    ) -> Result<(), FirewallError> {
        let mut trie: LpmTrie<MapData, K, RuleSet> = LpmTrie::try_from(self.maps.get(name)?).map_err(aya_err(name))?;
        let key = Key::new(u32::from(prefix_len), addr);
        let current = exact(trie.get(&key, 0).ok(), prefix_len);
        match f(current)? {
            Some(set) => trie.insert(&key, set, 0).map_err(|e| full_or(name, e))?,
            None => trie.remove(&key).map_err(aya_err(name))?,
        }
        Ok(())
    }

    /// Adds `rule` with the lowest free id; returns the id. On any failure
    /// the maps are as they were.
    pub fn add(&self, rule: &Rule) -> Result<u32, FirewallError> {
        let mut rules = self.rules_array()?;
        let id = (1..MAX_RULES).find(|i| rules.get(i, 0).map(|e| e.used == 0).unwrap_or(false)).ok_or_else(|| {
            FirewallError::Full(format!("the firewall holds {} rules already (its limit)", MAX_RULES - 1))
        })?;
        let entry = rule.entry();
        let matcher = RuleMatch {
            id: id as u16,
            proto: entry.proto,
            action: entry.action,
            port_lo: entry.port_lo,
            port_hi: entry.port_hi,
        };
        self.edit_set(rule, |set| {
            let mut set = set.unwrap_or(RuleSet { prefix_len: u32::from(rule.prefix_len), count: 0, rules: Default::default() });
            if set.count as usize >= RULES_PER_PREFIX {
                return Err(FirewallError::Full(format!(
                    "{}/{} already has {RULES_PER_PREFIX} rules in this direction (the limit per prefix); nothing was changed",
                    rule.addr, rule.prefix_len
                )));
            }
            set.rules[set.count as usize] = matcher;
            set.count += 1;
            Ok(Some(set))
        })?;
        if let Err(e) = rules.set(id, entry, 0) {
            // Undo the trie change so the maps stay as they were.
            let _ = self.edit_set(rule, |set| Ok(remove_rule(set, id)));
            return Err(aya_err("FW_RULES")(e).into());
        }
        self.reset_hits(id)?;
        Ok(id)
    }

    /// Removes rule `id`; returns it.
    pub fn delete(&self, id: u32) -> Result<Rule, FirewallError> {
        let mut rules = self.rules_array()?;
        let entry = rules.get(&id, 0).ok().filter(|e| e.used == 1).ok_or(FirewallError::NoRule(id))?;
        let rule = Rule::from_entry(&entry);
        self.edit_set(&rule, |set| Ok(remove_rule(set, id)))?;
        rules.set(id, RuleEntry::default(), 0).map_err(aya_err("FW_RULES"))?;
        self.reset_hits(id)?;
        Ok(rule)
    }

    fn reset_hits(&self, id: u32) -> Result<(), FirewallError> {
        Ok(self.maps.reset_per_cpu_u64("FW_HITS", id)?)
    }

    /// Every rule in id order with its hits, then the default action's hits
    /// (id 0).
    pub fn list(&self) -> Result<Vec<RuleView>, FirewallError> {
        let hits: PerCpuArray<MapData, u64> =
            PerCpuArray::try_from(self.maps.get("FW_HITS")?).map_err(aya_err("FW_HITS"))?;
        let hit = |id: u32| hits.get(&id, 0).map(|v| v.iter().sum()).unwrap_or(0);
        let mut out: Vec<RuleView> = self
            .rules()?
            .into_iter()
            .map(|(id, rule)| RuleView { id, rule: rule.to_string(), hits: hit(id) })
            .collect();
        out.push(RuleView { id: 0, rule: "default".into(), hits: hit(0) });
        Ok(out)
    }

    /// The rules in id order, without their hits (what apply compares).
    ///
    /// The ids in use are read from the four tries that match packets (one
    /// entry per prefix in use), not by a lookup of each of FW_RULES'
    /// MAX_RULES slots: on a node of 1000 pods that scan was most of what
    /// `stats`, `export` and `apply` asked the kernel. A rule is listed when
    /// a trie matches by it and FW_RULES holds it, as adding and deleting
    /// keep them.
    pub(crate) fn rules(&self) -> Result<Vec<(u32, Rule)>, FirewallError> {
        let rules = self.rules_array()?;
        let mut ids = std::collections::BTreeSet::new();
        self.trie_ids::<[u8; 4]>("FW_V4_DST", &mut ids)?;
        self.trie_ids::<[u8; 4]>("FW_V4_SRC", &mut ids)?;
        self.trie_ids::<[u8; 16]>("FW_V6_DST", &mut ids)?;
        self.trie_ids::<[u8; 16]>("FW_V6_SRC", &mut ids)?;
        Ok(ids
            .into_iter()
            .filter_map(|id| rules.get(&id, 0).ok().filter(|e| e.used == 1).map(|e| (id, Rule::from_entry(&e))))
            .collect())
    }

    /// Adds the rule ids the trie `name` matches by to `ids`.
    fn trie_ids<K: aya::Pod>(
        &self,
        name: &'static str,
        ids: &mut std::collections::BTreeSet<u32>,
    ) -> Result<(), FirewallError> {
        let trie: LpmTrie<MapData, K, RuleSet> = LpmTrie::try_from(self.maps.get(name)?).map_err(aya_err(name))?;
        for entry in trie.iter() {
            let (_, set) = entry.map_err(aya_err(name))?;
            let count = (set.count as usize).min(RULES_PER_PREFIX);
            ids.extend(set.rules[..count].iter().map(|r| u32::from(r.id)).filter(|id| (1..MAX_RULES).contains(id)));
        }
        Ok(())
    }
}

/// A trie lookup returns the longest prefix that matches; keep it only if it
/// is the exact prefix being edited.
fn exact(set: Option<RuleSet>, prefix_len: u8) -> Option<RuleSet> {
    set.filter(|s| s.prefix_len == u32::from(prefix_len))
}

fn remove_rule(set: Option<RuleSet>, id: u32) -> Option<RuleSet> {
    let mut set = set?;
    let kept: Vec<RuleMatch> =
        set.rules[..set.count as usize].iter().copied().filter(|r| u32::from(r.id) != id).collect();
    set.rules = Default::default();
    set.rules[..kept.len()].copy_from_slice(&kept);
    set.count = kept.len() as u32;
    (set.count > 0).then_some(set)
}

fn full_or(map: &'static str, e: aya::maps::MapError) -> FirewallError {
    if let aya::maps::MapError::SyscallError(s) = &e
        && matches!(s.io_error.raw_os_error(), Some(libc::ENOSPC | libc::E2BIG))
    {
        return FirewallError::Full(format!("{map} is full ({MAX_RULES} prefixes); nothing was changed"));
    }
    aya_err(map)(e).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> Result<Rule, FirewallError> {
        Rule::parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    /// Found by `cargo xtask fuzz`: protocol 1 on an IPv6 rule printed as
    /// `icmp`, which reads back as 58 for IPv6.
    #[test]
    fn protocol_one_on_ipv6_prints_as_a_number() {
        let r = rule("dst ::/0 proto 1 deny").unwrap();
        assert_eq!(r.to_string(), "dst ::/0 proto 1 deny");
        assert_eq!(rule(&r.to_string()).unwrap(), r);
        assert_eq!(rule("dst 10.0.0.0/8 proto 1 deny").unwrap().to_string(), "dst 10.0.0.0/8 proto icmp deny");
    }

    #[test]
    fn rules_parse_and_print_back() {
        for text in [
            "dst 10.0.0.0/8 deny",
            "src 192.168.1.7/32 allow",
            "dst 10.1.0.0/16 proto tcp port 80-443 allow",
            "dst 2001:db8::/32 proto icmpv6 deny",
            "dst 0.0.0.0/0 proto udp port 53 allow",
        ] {
            assert_eq!(rule(text).unwrap().to_string(), text);
        }
        assert_eq!(rule("10.0.0.1 deny").unwrap().to_string(), "dst 10.0.0.1/32 deny");
        assert_eq!(rule("dst ::/0 proto icmp allow").unwrap().proto, 58, "icmp in an IPv6 rule is ICMPv6");
    }

    #[test]
    fn malformed_rules_are_refused_with_the_reason() {
        for (text, why) in [
            ("", "no CIDR"),
            ("10.0.0.0/33 deny", "0-32"),
            ("10.0.0.1/8 deny", "host bits"),
            ("nonsense deny", "not an IPv4 or IPv6"),
            ("10.0.0.0/8", "no action"),
            ("10.0.0.0/8 proto bogus deny", "unknown protocol"),
            ("10.0.0.0/8 proto tcp port 90-80 deny", "bad port range"),
            ("10.0.0.0/8 proto tcp port 70000 deny", "bad port range"),
            ("10.0.0.0/8 port 80 deny", "needs proto tcp or udp"),
            ("10.0.0.0/8 deny allow", "unexpected"),
            ("2001:db8::/129 deny", "0-128"),
        ] {
            let e = rule(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn removing_a_rule_keeps_the_others_in_order() {
        let m = |id| RuleMatch { id, proto: 0, action: 1, port_lo: 0, port_hi: 65535 };
        let set = RuleSet { prefix_len: 8, count: 3, rules: [m(1), m(2), m(3), RuleMatch::default()] };
        let left = remove_rule(Some(set), 2).unwrap();
        assert_eq!(left.count, 2);
        assert_eq!((left.rules[0].id, left.rules[1].id), (1, 3));
        let one = RuleSet {
            prefix_len: 8,
            count: 1,
            rules: [m(5), RuleMatch::default(), RuleMatch::default(), RuleMatch::default()],
        };
        assert!(remove_rule(Some(one), 5).is_none(), "an empty prefix is removed");
    }
}
