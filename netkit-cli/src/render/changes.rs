//! Reports of one change each: a firewall rule added or removed, a redirect
//! entry added or removed, the redirect table, a device pair deleted. Each is
//! a struct that serializes to the JSON and renders the text, so the two
//! carry the same facts.

use std::{
    io::{self, Write},
    net::IpAddr,
};

use serde::Serialize;

use super::table;
use netkit::{
    maps::redirect::{Entry, RedirectStats},
    mprog::Hook,
};

/// `queue lease`: the queue a netkit device got.
#[derive(Debug, Clone, Serialize)]
pub struct QueueLeased {
    pub device: String,
    pub queue: u32,
    pub from: String,
    pub from_queue: u32,
    pub from_netns: Option<String>,
}

pub fn queue_leased(w: &mut impl Write, r: &QueueLeased) -> io::Result<()> {
    let ns = r.from_netns.as_ref().map(|n| format!(" in {n}")).unwrap_or_default();
    writeln!(w, "{} got receive queue {}, leased from queue {} of {}{ns}", r.device, r.queue, r.from_queue, r.from)
}

/// What happened to a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Added,
    Removed,
}

/// `firewall add` / `firewall del`.
#[derive(Debug, Clone, Serialize)]
pub struct RuleChange {
    pub action: RuleAction,
    pub id: u32,
    pub rule: String,
    pub prog_id: u32,
    pub device: String,
    pub hook: Hook,
}

pub fn rule_change(w: &mut impl Write, c: &RuleChange) -> io::Result<()> {
    let RuleChange { id, rule, prog_id, device, hook, .. } = c;
    match c.action {
        RuleAction::Added => writeln!(w, "rule {id} added to firewall program {prog_id} on {device} {hook}: {rule}"),
        RuleAction::Removed => writeln!(w, "rule {id} removed from {device} {hook}: {rule}"),
    }
}

/// `redirect add`.
#[derive(Debug, Clone, Serialize)]
pub struct RedirectAdded {
    pub ip: IpAddr,
    /// The netkit primary whose peer gets the packets.
    pub pair: String,
    pub ifindex: u32,
    /// The primary the entry pointed at before, if it existed.
    pub replaced_ifindex: Option<u32>,
    pub device: String,
    pub hook: Hook,
}

pub fn redirect_added(w: &mut impl Write, a: &RedirectAdded) -> io::Result<()> {
    writeln!(w, "{} -> peer of {} (ifindex {}) via {} {}", a.ip, a.pair, a.ifindex, a.device, a.hook)?;
    if let Some(o) = a.replaced_ifindex {
        writeln!(w, "  (replaced the entry to ifindex {o})")?;
    }
    Ok(())
}

/// `redirect del`.
#[derive(Debug, Clone, Serialize)]
pub struct RedirectRemoved {
    pub ip: IpAddr,
    /// The primary the entry pointed at.
    pub ifindex: u32,
    pub device: String,
    pub hook: Hook,
}

pub fn redirect_removed(w: &mut impl Write, r: &RedirectRemoved) -> io::Result<()> {
    writeln!(w, "removed {} (was ifindex {}) from {} {}", r.ip, r.ifindex, r.device, r.hook)
}

/// `redirect list`: the table and the program's counters.
#[derive(Debug, Clone, Serialize)]
pub struct RedirectList {
    pub entries: Vec<Entry>,
    pub stats: RedirectStats,
}

pub fn redirect_list(w: &mut impl Write, l: &RedirectList) -> io::Result<()> {
    if l.entries.is_empty() {
        writeln!(w, "no redirect entries")?;
    } else {
        let mut rows = vec![["IP", "PAIR", "IFINDEX"].map(String::from).to_vec()];
        for e in &l.entries {
            rows.push(vec![e.ip.to_string(), e.pair.clone().unwrap_or_else(|| "?".into()), e.ifindex.to_string()]);
        }
        table(w, &rows)?;
    }
    writeln!(w, "packets redirected {}, not matched {}", l.stats.redirected, l.stats.not_matched)
}

/// `device del`.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceDeleted {
    pub deleted: String,
    /// The other end, when there was one.
    pub peer: Option<String>,
    /// netkit or veth.
    pub kind: String,
}

pub fn device_deleted(w: &mut impl Write, d: &DeviceDeleted) -> io::Result<()> {
    match &d.peer {
        Some(o) => writeln!(w, "deleted {} pair {} <-> {o}", d.kind, d.deleted),
        None => writeln!(w, "deleted {} device {}", d.kind, d.deleted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_table_shows_its_counters_in_text_too() {
        let l = RedirectList {
            entries: vec![Entry { ip: "10.0.0.2".parse().unwrap(), ifindex: 7, pair: Some("nk0".into()) }],
            stats: RedirectStats { redirected: 5, not_matched: 2 },
        };
        let mut text = Vec::new();
        redirect_list(&mut text, &l).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("10.0.0.2") && text.contains("nk0"), "{text}");
        assert!(text.contains("redirected 5, not matched 2"), "{text}");
        let json = serde_json::to_value(&l).unwrap();
        assert_eq!(json["stats"]["redirected"], 5);
    }

    #[test]
    fn a_rule_change_says_what_happened_in_both_forms() {
        let c = RuleChange {
            action: RuleAction::Removed,
            id: 3,
            rule: "dst 10.0.0.0/8 deny".into(),
            prog_id: 9,
            device: "nk0".into(),
            hook: Hook::Peer,
        };
        let mut text = Vec::new();
        rule_change(&mut text, &c).unwrap();
        assert_eq!(String::from_utf8(text).unwrap(), "rule 3 removed from nk0 peer: dst 10.0.0.0/8 deny\n");
        assert_eq!(serde_json::to_value(&c).unwrap()["action"], "removed");
    }
}
