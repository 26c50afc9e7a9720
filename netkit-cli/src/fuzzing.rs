//! The checks behind the fuzz targets in `fuzz/` (`cargo xtask fuzz`): each
//! takes arbitrary bytes, runs one parser of untrusted input the way the tool
//! does, up to the point a kernel would be called, and panics only when an
//! invariant breaks. Not part of the library's interface.

use std::{borrow::Cow, collections::BTreeSet, path::Path, str::FromStr as _};

use crate::{
    apply::{self, Action, ApplyError, PlanOptions, spec},
    cni::{self, config},
    hooks::refs::RefSpec,
    maps::firewall::Rule,
    mprog::Hook,
    netlink::{
        attrs::{Offload, Queues},
        ifname,
        links::{Counters, Link, Mode, NetkitAttrs, Pairing, Policy, Scrub},
        wire,
    },
    programs::{self, ProgSpec},
};

/// One target's check: arbitrary bytes in, a panic when an invariant breaks.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name, as `cargo xtask fuzz` runs them.
pub const TARGETS: &[(&str, Check)] =
    &[("object", object), ("rule", rule), ("reference", reference), ("spec", spec), ("cni", cni), ("link", link)];

/// A user's object file: the ELF checks and the section rewrite, then aya's
/// parse, the choice of function and of loader, and for the lean loader its
/// preparation of each program up to the first system call. The rewrite may change only
/// the names of the renamed sections, where the section-name table and .BTF
/// are, and the section names inside .BTF.ext; everything else stays.
pub fn object(data: &[u8]) {
    let Ok(out) = programs::normalize_object("fuzz.o", data) else { return };
    if let Cow::Owned(out) = &out {
        check_rewrite(data, out);
    }
    if let Ok(progs) = programs::inspect("fuzz.o", &out) {
        let _ = programs::pick_function("fuzz.o", &progs, None);
        if let Some((name, ..)) = progs.first() {
            let _ = programs::pick_function("fuzz.o", &progs, Some(name));
        }
    }
    let Ok(obj) = programs::parse_object(&out) else { return };
    if programs::needs_aya(&obj).is_some() {
        return;
    }
    // What the lean loader does before its first system call, for a few of
    // the object's programs: globals, BTF fix-up, relocation, instructions.
    for function in obj.programs.keys().take(4) {
        let _ = programs::image(&out, function, &[], 100);
    }
}

/// One section header: (header offset, name, flags, offset, size).
type Section = (usize, String, u64, u64, u64);

/// The section headers of an ELF64 image, read independently of the code
/// under test: the index of the section-name table, and per section (header
/// offset, name, flags, offset, size).
fn sections(data: &[u8]) -> (usize, Vec<Section>) {
    let le = data[5] == 1;
    let u = |at: usize, n: usize| -> u64 {
        let b = &data[at..at + n];
        let mut v = 0u64;
        for i in 0..n {
            let byte = if le { b[n - 1 - i] } else { b[i] };
            v = v << 8 | u64::from(byte);
        }
        v
    };
    let (shoff, shentsize, shnum, shstrndx) =
        (u(0x28, 8) as usize, u(0x3a, 2) as usize, u(0x3c, 2) as usize, u(0x3e, 2) as usize);
    let header = |i: usize| shoff + i * shentsize;
    let (str_off, str_size) = (u(header(shstrndx) + 24, 8) as usize, u(header(shstrndx) + 32, 8) as usize);
    let strtab = &data[str_off..str_off + str_size];
    let all = (0..shnum)
        .map(|i| {
            let h = header(i);
            let at = u(h, 4) as usize;
            let rest = &strtab[at..];
            let name = String::from_utf8_lossy(&rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]);
            (h, name.into_owned(), u(h + 8, 8), u(h + 24, 8), u(h + 32, 8))
        })
        .collect();
    (shstrndx, all)
}

fn check_rewrite(data: &[u8], out: &[u8]) {
    assert!(out.len() >= data.len(), "the rewrite shortened the object");
    let ((shstrndx, before), (_, after)) = (sections(data), sections(out));
    assert_eq!(before.len(), after.len(), "the rewrite changed the number of sections");
    let mut may_change: BTreeSet<usize> = BTreeSet::new();
    for (i, (old, new)) in before.iter().zip(&after).enumerate() {
        let alias = programs::classifier_alias(&old.1).filter(|_| old.2 & 0x4 != 0);
        match &alias {
            Some(alias) => {
                assert_eq!(&new.1, alias, "section {} renamed to {} instead", old.1, new.1);
                may_change.extend(old.0..old.0 + 4);
            }
            None => assert_eq!(new.1, old.1, "section {} renamed though it is no libbpf classifier name", old.1),
        }
        if i == shstrndx || old.1 == ".BTF" {
            may_change.extend(old.0 + 24..old.0 + 40);
        } else {
            assert_eq!((new.3, new.4), (old.3, old.4), "section {} moved", old.1);
        }
        if old.1 == ".BTF.ext" {
            // Its header may hold any numbers when the object has no .BTF
            // (then it is left alone): only bytes inside the file count.
            let end = old.3.saturating_add(old.4).min(data.len() as u64);
            may_change.extend(old.3 as usize..end as usize);
        }
    }
    for (at, (a, b)) in data.iter().zip(out).enumerate() {
        assert!(
            a == b || may_change.contains(&at),
            "the rewrite changed byte {at:#x}, outside the names it may change"
        );
    }
}

/// A firewall rule: one that parses prints back to a rule that parses to the
/// same value, and survives the kernel map's entry format unchanged.
pub fn rule(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    let Ok(rule) = Rule::parse(&words) else { return };
    let printed = rule.to_string();
    let words: Vec<String> = printed.split_whitespace().map(str::to_string).collect();
    match Rule::parse(&words) {
        Ok(again) => assert_eq!(again, rule, "{text:?} printed as {printed:?} reads back differently"),
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
    }
    assert_eq!(Rule::from_entry(&rule.entry()), rule, "{text:?} changes through the map's entry format");
}

/// REF and PROG arguments, and hook names: what parses prints back to the
/// same value.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(r) = RefSpec::from_str(text) {
        let printed = r.to_string();
        assert_eq!(RefSpec::from_str(&printed).ok(), Some(r), "REF {text:?} printed as {printed:?}");
    }
    if let Ok(p) = ProgSpec::from_str(text) {
        let printed = p.to_string();
        assert_eq!(ProgSpec::from_str(&printed).ok(), Some(p), "PROG {text:?} printed as {printed:?}");
    }
    if let Ok(h) = Hook::from_str(text) {
        assert_eq!(Hook::from_str(h.name()).ok(), Some(h), "hook {text:?}");
    }
}

/// An apply spec: parse, validation and planning. A spec that validates
/// prints as YAML that reads back to a valid spec printing the same, and
/// plans against an empty node: without error when it needs nothing the
/// node lacks (its chains and redirect entries name only pairs it declares,
/// it names no pinned program and puts no peer in another namespace), as one create per pair and one attach
/// per program; otherwise blocked, never failed.
pub fn spec(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(doc) = spec::parse_doc("fuzz.yaml", text) else { return };
    let Ok(valid) = spec::validate("fuzz.yaml", &doc) else { return };
    plans_on_empty(&valid);
    let printed = spec::to_yaml(&doc);
    let again = spec::parse_doc("printed.yaml", &printed)
        .unwrap_or_else(|e| panic!("a valid spec printed as\n{printed}\ndoes not read back: {e}"));
    if let Err(e) = spec::validate("printed.yaml", &again) {
        panic!("a valid spec printed as\n{printed}\nno longer validates: {e}");
    }
    assert_eq!(spec::to_yaml(&again), printed, "printing a spec read back from its own print changed it");
}

fn plans_on_empty(spec: &spec::Spec) {
    let managed = || {
        spec.chains.iter().flat_map(|c| &c.entries).filter_map(|e| match e {
            spec::Entry::Managed(m) => Some(m),
            spec::Entry::Foreign { .. } => None,
        })
    };
    let declared = |name: &String| spec.pair(name).is_some();
    let contained = spec.pairs.iter().all(|p| p.spec.peer_netns.is_none())
        && spec.chains.iter().all(|c| declared(&c.device))
        && managed().all(|m| !matches!(m.prog, ProgSpec::Pinned(_)))
        && managed().flat_map(|m| m.entries.iter().flat_map(|e| e.values())).all(declared);
    let opts = PlanOptions { prune: true, recreate: true };
    match (apply::plan_on_empty(spec, opts), contained) {
        (Ok(plan), true) => {
            let actions: Vec<Action> = plan.steps.iter().map(|s| s.action).collect();
            let mut want = vec![Action::Create; spec.pairs.len()];
            want.extend(managed().map(|_| Action::Attach));
            assert_eq!(actions, want, "planned on an empty node: {:?}", plan.steps);
            let created: Vec<String> = spec.pairs.iter().map(|p| format!("pair {}", p.spec.name)).collect();
            let objects: Vec<&String> = plan.steps.iter().map(|s| &s.object).collect();
            assert!(objects.starts_with(&created.iter().collect::<Vec<_>>()), "pairs created: {objects:?}");
            assert!(plan.foreign.is_empty(), "foreign programs on an empty node: {:?}", plan.foreign);
            let refs = spec.chains.iter().flat_map(|c| &c.entries).filter(|e| matches!(e, spec::Entry::Foreign { .. }));
            assert_eq!(plan.notes.len(), refs.count(), "notes on an empty node: {:?}", plan.notes);
        }
        (Err(ApplyError::Blocked(_)), false) => {}
        (Err(e), true) => panic!("a spec that needs nothing the empty node lacks does not plan: {e}"),
        (Ok(plan), false) => panic!("a spec that needs what the empty node lacks plans: {:?}", plan.steps),
        (Err(e), false) => panic!("planning on an empty node failed instead of being blocked: {e}"),
    }
}

/// The CNI plugin's input: the first line holds CNI_COMMAND, CNI_IFNAME,
/// CNI_CONTAINERID and CNI_NETNS (separated by spaces), the rest is standard
/// input. VERSION runs whole; for the others, the configuration is parsed as
/// ADD and as DEL would, and an ADD's attachment spec is built. What ADD
/// accepts DEL accepts; an accepted configuration with a valid environment
/// always gives a valid spec; every error is a CNI error object.
pub fn cni(data: &[u8]) {
    let (head, stdin) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut words = head.split(' ');
    let mut next = || words.next().unwrap_or_default().to_string();
    let env = cni::Env {
        command: next(),
        ifname: next(),
        container_id: next(),
        netns: next(),
        args: String::new(),
        path: String::new(),
    };
    if env.command == "VERSION" {
        let out = cni::run(&env, stdin);
        assert!(out.ok, "VERSION failed: {}", out.stdout);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("VERSION's answer is JSON");
        assert!(v["supportedVersions"].is_array(), "VERSION's answer: {v}");
        return;
    }
    let error_object = |e: &cni::CniError| {
        let v: serde_json::Value = serde_json::to_value(e).expect("an error serializes");
        assert!(v["code"].is_u64() && v["msg"].is_string(), "not a CNI error object: {v}");
    };
    let add = config::parse(stdin, true);
    let del = config::parse(stdin, false);
    if let Err(e) = &add {
        error_object(e);
    }
    if let Err(e) = &del {
        error_object(e);
    }
    if add.is_ok()
        && let Err(e) = &del
    {
        panic!("ADD accepts the configuration, DEL refuses it: {e:?}");
    }
    let Ok(conf) = add else { return };
    match env.require(true) {
        Err(e) => error_object(&e),
        Ok(()) => {
            let host = cni::host_name(&env.container_id, &env.ifname, 0);
            assert!(ifname::check(&host).is_ok(), "host name {host} is no valid device name");
            if let Err(e) = conf.spec(&host, &env.ifname, Path::new(&env.netns), Policy::Drop) {
                panic!("an accepted configuration gives no valid spec for {env:?}: {e:?}");
            }
        }
    }
}

/// One device's RTM_NEWLINK as the kernel sends it, after the netlink
/// header: struct ifinfomsg, then the attributes. The byte-level reader
/// (`netlink::wire`) never panics on it, and when netlink-packet-route reads
/// the message too, both read the same values. Not compared, as the kernel
/// never sends them: messages with a string holding more than the one NUL
/// the kernel ends it with, or with the link info, its kind or its data
/// repeated; nor messages netlink-packet-route panics on. The same bytes are also read
/// as a whole datagram of a reply, which must not panic either.
pub fn link(data: &[u8]) {
    use netlink_packet_core::Parseable as _;
    use netlink_packet_route::link::LinkMessage;

    let ours = wire::parse_link(data);
    let seq = data.get(8..12).map_or(0, |b| u32::from_ne_bytes(b.try_into().expect("four bytes")));
    let _ = wire::messages(data, seq, true, &mut Vec::new(), &mut false);
    // netlink-packet-route panics on some malformed messages (the info
    // data of a few kinds); those are not compared.
    let Ok(Ok(msg)) = programs::elf::guarded(|| LinkMessage::parse(data)) else { return };
    let Some(theirs) = link_of(&msg) else { return };
    let ours = ours.unwrap_or_else(|e| panic!("netlink-packet-route reads the message, netkit refuses it: {e}"));
    assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "the two readers disagree on {msg:?}");
}

/// What netlink-packet-route's decode of a link message says, in netkit's
/// terms: the reference the byte-level reader is held to. None for a message
/// whose strings the kernel could not have written.
fn link_of(msg: &netlink_packet_route::link::LinkMessage) -> Option<Link> {
    use netlink_packet_route::link::{InfoData, LinkAttribute as A, LinkFlags, LinkInfo, State};
    // The kernel ends each string with one NUL, which both readers drop;
    // netlink-packet-route keeps any further ones (a kind of "netkit\0" is
    // then another kind to it), so such messages are not compared.
    let odd = std::cell::Cell::new(false);
    let cut = |s: &str| {
        odd.set(odd.get() || s.contains('\0'));
        s.to_string()
    };
    let (mut offload, mut queues) = (Offload::default(), Queues::default());
    let mut link = Link {
        index: msg.header.index,
        operstate: "unknown".into(),
        up: msg.header.flags.contains(LinkFlags::Up),
        ..Default::default()
    };
    for attr in &msg.attributes {
        match attr {
            A::IfName(n) => link.name = cut(n),
            A::Mtu(m) => link.mtu = Some(*m),
            A::OperState(s) => {
                link.operstate = match s {
                    State::Unknown => "unknown".into(),
                    State::NotPresent => "notpresent".into(),
                    State::Down => "down".into(),
                    State::LowerLayerDown => "lowerlayerdown".into(),
                    State::Testing => "testing".into(),
                    State::Dormant => "dormant".into(),
                    State::Up => "up".into(),
                    State::Other(v) => format!("state-{v}"),
                    _ => "unknown".into(),
                }
            }
            A::Address(a) => link.address = Some(a.clone()),
            A::Link(l) => link.link = Some(*l),
            A::LinkNetNsId(id) => link.link_netnsid = Some(*id),
            A::GsoMaxSize(v) => offload.gso_max_size = Some(*v),
            A::GsoIpv4MaxSize(v) => offload.gso_ipv4_max_size = Some(*v),
            A::GroMaxSize(v) => offload.gro_max_size = Some(*v),
            A::GroIpv4MaxSize(v) => offload.gro_ipv4_max_size = Some(*v),
            A::GsoMaxSegs(v) => offload.gso_max_segs = Some(*v),
            A::NumRxQueues(v) => queues.num_rx_queues = Some(*v),
            A::NumTxQueues(v) => queues.num_tx_queues = Some(*v),
            A::ParentDevName(p) => link.parent = Some(cut(p)),
            A::Stats64(s) => {
                link.counters = Counters {
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    rx_bytes: s.rx_bytes,
                    tx_bytes: s.tx_bytes,
                    rx_dropped: s.rx_dropped,
                    tx_dropped: s.tx_dropped,
                }
            }
            A::LinkInfo(infos) => {
                // The kernel writes the link info once, with one kind and
                // at most one data; where these repeat, the two readers
                // may pair a kind with another kind's data differently.
                let kinds = infos.iter().filter(|i| matches!(i, LinkInfo::Kind(_))).count();
                let data = infos.iter().filter(|i| matches!(i, LinkInfo::Data(_))).count();
                odd.set(odd.get() || link.kind.is_some() || kinds > 1 || data > 1);
                for info in infos {
                    match info {
                        LinkInfo::Kind(k) => link.kind = Some(cut(&k.to_string())),
                        LinkInfo::Data(InfoData::Netkit(attrs)) => link.netkit = Some(netkit_of(attrs)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if link.kind.as_deref() == Some("netkit") && link.netkit.is_none() {
        link.netkit = Some(NetkitAttrs::default());
    }
    (link.offload, link.queues) = (offload, queues);
    (!odd.get()).then_some(link)
}

/// [`link_of`] for netkit's IFLA_INFO_DATA.
fn netkit_of(attrs: &[netlink_packet_route::link::InfoNetkit]) -> NetkitAttrs {
    use netlink_packet_core::Nla as _;
    use netlink_packet_route::link::{InfoNetkit, NetkitMode, NetkitPolicy, NetkitScrub};
    let mut n = NetkitAttrs::default();
    let s = &mut n.settings;
    let policy = |p: &NetkitPolicy| match p {
        NetkitPolicy::Pass => Some(Policy::Pass),
        NetkitPolicy::Drop => Some(Policy::Drop),
        _ => None,
    };
    let scrub = |v: &NetkitScrub| Some(if *v == NetkitScrub::None { Scrub::None } else { Scrub::Default });
    for a in attrs {
        match a {
            InfoNetkit::Primary(p) => n.primary = *p,
            InfoNetkit::Mode(NetkitMode::L2) => s.mode = Some(Mode::L2),
            InfoNetkit::Mode(NetkitMode::L3) => s.mode = Some(Mode::L3),
            InfoNetkit::Mode(_) => s.mode = None,
            InfoNetkit::Policy(p) => s.policy = policy(p),
            InfoNetkit::PeerPolicy(p) => s.peer_policy = policy(p),
            InfoNetkit::Scrub(v) => s.scrub = scrub(v),
            InfoNetkit::PeerScrub(v) => s.peer_scrub = scrub(v),
            InfoNetkit::Headroom(h) => s.headroom = Some(*h),
            InfoNetkit::Tailroom(t) => s.tailroom = Some(*t),
            // The flag bits are not part of the type, as for the attributes
            // netlink-packet-route knows.
            InfoNetkit::Other(nla)
                if nla.kind() & 0x3fff == crate::netlink::links::IFLA_NETKIT_PAIRING && nla.value_len() == 4 =>
            {
                let mut value = [0u8; 4];
                nla.emit_value(&mut value);
                s.pairing = Pairing::from_nl(u32::from_ne_bytes(value));
            }
            _ => {}
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed of every target and every input that once broke one (the
    /// files under fuzz/seeds/TARGET and fuzz/regressions/TARGET) passes.
    #[test]
    fn seeds_and_regressions_pass() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut ran = 0;
        for (name, check) in TARGETS {
            for dir in ["seeds", "regressions"] {
                let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else { continue };
                for entry in entries {
                    let path = entry.unwrap().path();
                    let data = std::fs::read(&path).unwrap();
                    if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
                        let why = e.downcast_ref::<String>().cloned().unwrap_or_default();
                        panic!("{name} fails on {}: {why}", path.display());
                    }
                    ran += 1;
                }
            }
        }
        assert!(ran >= TARGETS.len(), "no seeds found under {}", root.display());
    }

    /// The link seeds the kernel sent (or that stand for a netkit device)
    /// are read by both readers, so `link` compares them rather than
    /// passing over them.
    #[test]
    fn link_seeds_are_compared() {
        use netlink_packet_core::Parseable as _;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/link");
        for name in ["lo", "veth", "netkit-primary", "netkit-peer", "netkit-single"] {
            let data = std::fs::read(dir.join(name)).unwrap();
            let theirs = netlink_packet_route::link::LinkMessage::parse(&data[..]);
            assert!(theirs.is_ok(), "{name}: {theirs:?}");
            let ours = wire::parse_link(&data).unwrap();
            assert_eq!(ours.kind.is_some(), name != "lo", "{name}");
            assert_eq!(ours.netkit.as_ref().map(|n| n.primary), name.strip_prefix("netkit-").map(|r| r != "peer"));
        }
    }
}
