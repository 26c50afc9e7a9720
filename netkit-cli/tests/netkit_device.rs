//! netkit pairs over rtnetlink against a real kernel (VM): every option
//! round-trips through a netlink dump and sysfs, live policy changes, peers in
//! other namespaces, the data path under each policy, deletion and bad input.

mod common;

use common::{IFF_NOARP, TestNs, udp_delivers};
use serde_json::Value;

fn release_at_least(major: u32, minor: u32) -> bool {
    netkit::os::probe::parse_release(&netkit::os::probe::kernel_release()).is_some_and(|r| r >= (major, minor))
}

/// iproute2's word for a policy (it says forward/blackhole for pass/drop).
fn ip_policy(policy: &str) -> &'static str {
    match policy {
        "pass" => "forward",
        "drop" => "blackhole",
        other => panic!("no policy {other}"),
    }
}

/// What iproute2 says of a netkit device: kind, and the netkit attributes it
/// decodes (each end's own policy and scrub; the tool speaks in pair terms).
fn witness(ns: &TestNs, dev: &str) -> Value {
    let l = ns.ip_link(dev);
    assert_eq!(l["linkinfo"]["info_kind"], "netkit", "{dev}: {l}");
    l
}

fn names(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn defaults_are_the_kernels() {
    require_netkit!();
    let ns = TestNs::new("defaults");
    let v = ns.json(&["device", "add", "nk0", "--peer", "nk1"]);
    assert_eq!(v["role"], "primary");
    assert_eq!(v["mode"], "l3");
    assert_eq!(v["policy"], "pass");
    assert_eq!(v["peer_policy"], "pass");
    assert_eq!(v["peer"]["name"], "nk1");
    assert_eq!(v["programs"]["primary"], 0);
    assert_eq!(v["programs"]["peer"], 0);
    let peer = ns.json(&["device", "show", "nk1"]);
    assert_eq!(peer["role"], "peer");
    assert_eq!(peer["peer"]["name"], "nk0");
    assert_eq!(peer["ifindex"], v["peer"]["ifindex"]);
    // sysfs agrees: L3 means NOARP and no MAC, and each end links to the other.
    let sys = ns.sysfs();
    assert_ne!(sys.flags("nk0") & IFF_NOARP, 0);
    assert_eq!(sys.read("nk0", "address"), "00:00:00:00:00:00");
    assert_eq!(sys.read("nk0", "iflink"), v["peer"]["ifindex"].to_string());
    assert_eq!(sys.read("nk1", "iflink"), v["ifindex"].to_string());
    assert_eq!(sys.read("nk0", "mtu"), "1500");
    assert_eq!(sys.read("nk0", "operstate"), "down");
    // iproute2 agrees, end by end.
    for (end, other, role) in [("nk0", "nk1", "primary"), ("nk1", "nk0", "peer")] {
        let l = witness(&ns, end);
        let d = &l["linkinfo"]["info_data"];
        assert_eq!((d["mode"].as_str(), d["type"].as_str()), (Some("l3"), Some(role)), "{end}: {l}");
        assert_eq!((d["policy"].as_str(), d["peer_policy"].as_str()), (Some("forward"), Some("forward")), "{end}: {l}");
        assert_eq!(l["link"], other, "{end}: {l}");
        assert_eq!(l["mtu"], 1500);
    }
}

#[test]
fn every_mode_and_policy_combination_round_trips() {
    require_netkit!();
    let ns = TestNs::new("combos");
    let sys = ns.sysfs();
    let mut n = 0;
    for mode in ["l2", "l3"] {
        for policy in ["pass", "drop"] {
            for peer_policy in ["pass", "drop"] {
                let (a, b) = (format!("a{n}"), format!("b{n}"));
                n += 1;
                let v = ns.json(&[
                    "device",
                    "add",
                    &a,
                    "--peer",
                    &b,
                    "--mode",
                    mode,
                    "--policy",
                    policy,
                    "--peer-policy",
                    peer_policy,
                    "--mtu",
                    "9000",
                    "--up",
                ]);
                for (end, role) in [(&a, "primary"), (&b, "peer")] {
                    let d = ns.json(&["device", "show", end]);
                    assert_eq!(d["role"], role);
                    assert_eq!(d["mode"], mode, "{end}");
                    assert_eq!(d["policy"], policy, "{end}: policy in pair terms");
                    assert_eq!(d["peer_policy"], peer_policy, "{end}");
                    assert_eq!(d["mtu"], 9000);
                    assert_eq!(d["operstate"], "up", "{end}: --up brings both ends up");
                    assert_eq!(sys.read(end, "mtu"), "9000");
                    let noarp = sys.flags(end) & IFF_NOARP != 0;
                    assert_eq!(noarp, mode == "l3", "{end}: NOARP iff L3");
                    let mac = sys.read(end, "address");
                    assert_eq!(mac == "00:00:00:00:00:00", mode == "l3", "{end}: MAC {mac}");
                    let l = witness(&ns, end);
                    let data = &l["linkinfo"]["info_data"];
                    let (own, other) = if role == "primary" { (policy, peer_policy) } else { (peer_policy, policy) };
                    assert_eq!(data["mode"], mode, "{end}: {l}");
                    assert_eq!(data["type"], role, "{end}: {l}");
                    assert_eq!(data["policy"], ip_policy(own), "{end}: its own policy: {l}");
                    assert_eq!(data["peer_policy"], ip_policy(other), "{end}: {l}");
                    assert_eq!((l["mtu"].as_u64(), l["operstate"].as_str()), (Some(9000), Some("UP")), "{end}: {l}");
                }
                assert_eq!(v["name"], a.as_str());
            }
        }
    }
}

#[test]
fn scrub_round_trips_where_the_kernel_has_it() {
    require_netkit!();
    let ns = TestNs::new("scrub");
    let out = ns.run(&["-j", "device", "add", "nk0", "--peer", "nk1", "--scrub", "none", "--peer-scrub", "default"]);
    if !out.status.success() {
        let err = common::stderr(&out);
        assert!(!release_at_least(6, 13), "scrub must work from 6.13: {err}");
        assert!(err.contains("does not support --scrub") && err.contains("6.13"), "{err}");
        assert!(names(&ns.json(&["device", "list"])).is_empty(), "nothing may be created");
        common::skip("this kernel has no netkit scrub (Linux >= 6.13)");
        return;
    }
    for (end, scrub, peer_scrub) in [("nk0", "none", "default"), ("nk1", "none", "default")] {
        let d = ns.json(&["device", "show", end]);
        assert_eq!(d["scrub"], scrub, "{end}");
        assert_eq!(d["peer_scrub"], peer_scrub, "{end}");
    }
    // iproute2 reports each end's own setting first.
    for (end, own, other) in [("nk0", "none", "default"), ("nk1", "default", "none")] {
        let l = witness(&ns, end);
        let data = &l["linkinfo"]["info_data"];
        assert_eq!((data["scrub"].as_str(), data["peer_scrub"].as_str()), (Some(own), Some(other)), "{end}: {l}");
    }
    ns.ok(&["device", "add", "nk2", "--peer", "nk3", "--peer-scrub", "none"]);
    let d = ns.json(&["device", "show", "nk3"]);
    assert_eq!(d["scrub"], "default");
    assert_eq!(d["peer_scrub"], "none");
}

#[test]
fn headroom_and_tailroom_fail_cleanly_on_old_kernels_and_work_on_new_ones() {
    require_netkit!();
    let ns = TestNs::new("room");
    let out = ns.run(&["-j", "device", "add", "nk0", "--peer", "nk1", "--headroom", "64", "--tailroom", "32"]);
    if release_at_least(6, 14) || out.status.success() {
        assert!(out.status.success(), "headroom/tailroom must work from 6.14: {}", common::stderr(&out));
        for end in ["nk0", "nk1"] {
            let d = ns.json(&["device", "show", end]);
            assert_eq!(d["headroom"], 64, "{end}");
            assert_eq!(d["tailroom"], 32, "{end}");
        }
    } else {
        let err = common::stderr(&out);
        assert!(err.contains("does not support --headroom") && err.contains("6.14"), "{err}");
        assert!(err.contains("nothing was created"), "{err}");
        assert!(names(&ns.json(&["device", "list", "--all"])).iter().all(|n| n == "lo"), "nothing may be created");
        let err = ns.fails(&["device", "add", "nk0", "--tailroom", "8"]);
        assert!(err.contains("--tailroom"), "{err}");
    }
}

#[test]
fn single_device_mode_works_on_new_kernels_and_is_refused_cleanly_on_old_ones() {
    require_netkit!();
    let ns = TestNs::new("single");
    let only_lo = |ns: &TestNs| names(&ns.json(&["device", "list", "--all"])).iter().all(|n| n == "lo");
    // Options that make no sense without a peer are refused on every kernel.
    for (extra, option) in [
        (vec!["--peer", "x"], "--peer"),
        (vec!["--peer-netns", ns.name.as_str()], "--peer-netns"),
        (vec!["--peer-policy", "drop"], "--peer-policy"),
        (vec!["--peer-scrub", "none"], "--peer-scrub"),
        (vec!["--scrub", "none"], "--scrub"),
        (vec!["--policy", "drop"], "--policy drop"),
    ] {
        let mut args = vec!["device", "add", "s0", "--pairing", "single"];
        args.extend(extra);
        let err = ns.fails(&args);
        assert!(err.contains(option) && err.contains("--pairing single"), "{err}");
    }
    assert!(only_lo(&ns), "nothing may be created");

    let out = ns.run(&["-j", "device", "add", "s0", "--pairing", "single", "--mode", "l2", "--up"]);
    if !release_at_least(7, 1) && !out.status.success() {
        let err = common::stderr(&out);
        assert!(err.contains("does not support --pairing single") && err.contains("7.1"), "{err}");
        assert!(err.contains("nothing was created"), "{err}");
        assert!(only_lo(&ns), "nothing may be created");
        return;
    }
    assert!(out.status.success(), "single-device mode must work from 7.1: {}", common::stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["role"], "single");
    assert_eq!(v["pairing"], "single");
    assert_eq!(v["peer"], Value::Null);
    assert_eq!(v["policy"], "pass");
    assert_eq!(v["mode"], "l2");
    assert_eq!(v["programs"], Value::Null, "a single device has no primary/peer hooks to count");
    assert_eq!(names(&ns.json(&["device", "list"])), vec!["s0"], "one device, no peer");
    let sys = ns.sysfs();
    assert_eq!(sys.read("s0", "operstate"), "up", "a single device has carrier without a peer");
    assert_eq!(sys.flags("s0") & IFF_NOARP, 0, "L2");
    assert_eq!(sys.read("s0", "iflink"), "0", "no other end to link to");

    // No netkit hooks, but tcx works on it like on any device.
    let bpffs = common::Bpffs::new();
    let b = bpffs.arg();
    for hook in ["primary", "peer"] {
        let err = ns.fails(&["--bpffs", &b, "attach", "s0", hook, "pass"]);
        assert!(err.contains("single-device netkit"), "{err}");
    }
    let a = ns.json(&["--bpffs", &b, "attach", "s0", "ingress", "pass"]);
    let q = ns.json(&["--bpffs", &b, "query"]);
    assert_eq!(q.as_array().unwrap().len(), 1, "only the tcx hook with a program: {q}");
    assert_eq!(q[0]["programs"][0]["link_id"], a["link_id"]);

    let err = ns.fails(&["device", "set", "s0", "--policy", "pass"]);
    assert!(err.contains("single netkit device") && err.contains("nothing to set"), "{err}");
    let err = ns.fails(&["device", "set", "s0", "--pairing", "pair"]);
    assert!(err.contains("--pairing") && err.contains("cannot be changed"), "{err}");

    let d = ns.json(&["device", "del", "s0"]);
    assert_eq!(d["peer"], Value::Null);
    assert!(only_lo(&ns));
    ns.ok(&["--bpffs", &b, "link", "prune"]);
}

#[test]
fn l2_has_macs_and_arp_l3_refuses_a_mac() {
    require_netkit!();
    let host = TestNs::new("l2");
    let pod = TestNs::pod("l2pod");
    host.ok(&["device", "add", "nk0", "--peer", "nk1", "--mode", "l2", "--peer-netns", &pod.name, "--up"]);
    host.ip_ok(&["addr", "add", "10.77.0.1/24", "dev", "nk0"]);
    pod.ip_ok(&["addr", "add", "10.77.0.2/24", "dev", "nk1"]);
    let (h, p) = (host.sysfs(), pod.sysfs());
    let (mac0, mac1) = (h.read("nk0", "address"), p.read("nk1", "address"));
    assert_ne!(mac0, "00:00:00:00:00:00");
    assert_ne!(mac0, mac1, "each end gets its own random MAC");
    assert_eq!(h.flags("nk0") & IFF_NOARP, 0, "L2 uses ARP");
    assert!(udp_delivers(&pod, &host, "10.77.0.1"));
    let neigh = common::stdout(&host.ip(&["neigh", "show", "dev", "nk0"]));
    assert!(neigh.contains("10.77.0.2") && neigh.contains(&mac1), "ARP resolved the pod: {neigh}");
    assert!(host.ip(&["link", "set", "dev", "nk0", "address", "02:00:00:00:00:42"]).status.success(), "L2 takes a MAC");

    let l3 = TestNs::new("l3mac");
    l3.ok(&["device", "add", "nk0", "--peer", "nk1"]);
    let o = l3.ip(&["link", "set", "dev", "nk0", "address", "02:00:00:00:00:42"]);
    assert!(!o.status.success(), "an L3 netkit device has no MAC to set");
}

#[test]
fn set_changes_policies_live_and_only_policies() {
    require_netkit!();
    let ns = TestNs::new("set");
    ns.ok(&["device", "add", "nk0", "--peer", "nk1"]);
    let v = ns.json(&["device", "set", "nk0", "--policy", "drop", "--peer-policy", "drop"]);
    assert_eq!(v["policy"], "drop");
    assert_eq!(v["peer_policy"], "drop");
    let peer = ns.json(&["device", "show", "nk1"]);
    assert_eq!(peer["policy"], "drop");
    assert_eq!(peer["peer_policy"], "drop");
    let v = ns.json(&["device", "set", "nk0", "--peer-policy", "pass"]);
    assert_eq!(v["policy"], "drop", "unchanged when not given");
    assert_eq!(v["peer_policy"], "pass");
    // The kernel, through iproute2: the primary drops, the peer passes.
    let data = witness(&ns, "nk0")["linkinfo"]["info_data"].clone();
    assert_eq!((data["policy"].as_str(), data["peer_policy"].as_str()), (Some("blackhole"), Some("forward")), "{data}");
    let data = witness(&ns, "nk1")["linkinfo"]["info_data"].clone();
    assert_eq!((data["policy"].as_str(), data["peer_policy"].as_str()), (Some("forward"), Some("blackhole")), "{data}");

    let err = ns.fails(&["device", "set", "nk1", "--policy", "pass"]);
    // The caller came in with -n: the command that reaches the primary keeps it.
    assert!(err.contains("peer end") && err.contains(&format!("`netkit -n {} device set nk0 ...`", ns.name)), "{err}");
    for (opt, val) in [("--mode", "l2"), ("--scrub", "none"), ("--headroom", "4"), ("--peer", "x")] {
        let err = ns.fails(&["device", "set", "nk0", opt, val]);
        assert!(err.contains(opt) && err.contains("cannot be changed"), "{err}");
    }
    let err = ns.fails(&["device", "set", "nk0"]);
    assert!(err.contains("nothing to change"), "{err}");
    let err = ns.fails(&["device", "set", "lo", "--policy", "drop"]);
    assert!(err.contains("not a netkit or veth device"), "{err}");
}

#[test]
fn a_peer_in_another_namespace() {
    require_netkit!();
    let host = TestNs::new("host");
    let pod = TestNs::pod("pod");
    let v = host.json(&["device", "add", "nk0", "--peer", "eth0", "--peer-netns", &pod.name, "--mtu", "1400", "--up"]);
    assert_eq!(v["peer"]["name"], "eth0");
    assert_eq!(v["peer"]["netns"], pod.name.as_str());
    let list = pod.json(&["device", "list"]);
    assert_eq!(names(&list), vec!["eth0"]);
    assert_eq!(list[0]["role"], "peer");
    assert_eq!(list[0]["peer"]["name"], "nk0");
    assert_eq!(list[0]["peer"]["netns"], host.name.as_str());
    assert_eq!(list[0]["programs"]["primary"], 0, "hooks are queried through the primary, across namespaces");
    let sys = pod.sysfs();
    assert_eq!(sys.read("eth0", "mtu"), "1400");
    assert!(!host.sysfs().has("eth0"));
    // iproute2, in each namespace: the peer is there, the primary here, and
    // each end's other end lives in another namespace (a link-netnsid).
    let (p, h) = (witness(&pod, "eth0"), witness(&host, "nk0"));
    assert_eq!((p["linkinfo"]["info_data"]["type"].as_str(), p["mtu"].as_u64()), (Some("peer"), Some(1400)), "{p}");
    assert_eq!(h["linkinfo"]["info_data"]["type"], "primary", "{h}");
    assert!(p["link_netnsid"].is_u64() && h["link_netnsid"].is_u64(), "{p}\n{h}");
    // The same name may exist in both namespaces.
    host.ok(&["device", "add", "eth0", "--peer", "eth1"]);
    // Deleting through the peer, from the pod, removes both ends.
    pod.ok(&["device", "del", "eth0"]);
    assert!(names(&host.json(&["device", "list"])).iter().all(|n| n != "nk0"));
}

#[test]
fn a_peer_in_a_namespace_given_by_pid_or_by_path() {
    require_netkit!();
    let host = TestNs::new("byref");
    // A pod's namespace as a runtime makes it: no name, a process in it.
    let pod = TestNs::unnamed();
    let path = pod.path.display().to_string();
    let v = host.json(&["device", "add", "nk0", "--peer", "eth0", "--peer-netns", &pod.name, "--up"]);
    assert_eq!(v["peer"]["name"], "eth0");
    assert_eq!(v["peer"]["netns"], pod.name.as_str(), "the pod is named the way -n takes it: {v}");
    assert_eq!(witness(&pod, "eth0")["linkinfo"]["info_data"]["type"], "peer");
    // The same namespace by its nsfs path: the peer, and its primary across namespaces.
    let text = common::ok(&["-n", &path, "-j", "device", "list"]);
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(names(&list), vec!["eth0"]);
    assert_eq!((list[0]["role"].as_str(), list[0]["peer"]["name"].as_str()), (Some("peer"), Some("nk0")), "{list}");
    assert_eq!(list[0]["peer"]["netns"], host.name.as_str());
    // A second pair, its peer placed by path.
    host.ok(&["device", "add", "nk1", "--peer", "eth1", "--peer-netns", &path]);
    assert_eq!(witness(&pod, "eth1")["linkinfo"]["info_data"]["type"], "peer");
    // Programs on the pod's own devices, pinned under the namespace's inode.
    let bpffs = common::Bpffs::new();
    let b = bpffs.arg();
    let a = pod.json(&["--bpffs", &b, "attach", "eth0", "ingress", "pass", "--pin", "p"]);
    let links = pod.json(&["--bpffs", &b, "link", "list"]);
    assert_eq!(links[0]["netns"], format!("netns-{}", pod.inode()).as_str(), "{links}");
    assert_eq!(links[0]["link_id"], a["link_id"]);
    // A file that is no namespace is refused before anything is made.
    let err = host.fails(&["device", "add", "nk2", "--peer", "eth2", "--peer-netns", "/proc/version"]);
    assert!(err.contains("is not a network namespace"), "{err}");
    assert_eq!(names(&host.json(&["device", "list"])), vec!["nk0", "nk1"], "nothing may be created");
    // Deleting through the peer, from the pod by pid, removes both ends.
    pod.ok(&["device", "del", "eth0"]);
    assert_eq!(names(&host.json(&["device", "list"])), vec!["nk1"]);
}

#[test]
fn macs_offload_limits_and_queues_at_creation_and_live() {
    require_netkit!();
    let host = TestNs::new("attrs");
    let pod = TestNs::pod("attrspod");
    #[rustfmt::skip]
    let v = host.json(&[
        "device", "add", "nk0", "--peer", "eth0", "--peer-netns", &pod.name, "--mode", "l2", "--up",
        "--address", "02:00:00:00:00:01", "--peer-address", "02:00:00:00:00:02",
        "--gso-max-size", "196608", "--gso-ipv4-max-size", "131072", "--gro-max-size", "196608",
        "--gro-ipv4-max-size", "131072", "--gso-max-segs", "128",
        "--peer-gso-max-size", "65536", "--peer-gro-max-size", "262144", "--peer-gso-max-segs", "64",
        "--numrxqueues", "4", "--peer-numrxqueues", "3", "--numtxqueues", "1", "--peer-numtxqueues", "1",
    ]);
    assert_eq!(v["address"], "02:00:00:00:00:01");
    assert_eq!((v["gso_max_size"].as_u64(), v["num_rx_queues"].as_u64()), (Some(196608), Some(4)), "{v}");
    // iproute2, on each end in its own namespace.
    let expect = |ns: &TestNs, dev: &str, want: &[(&str, Value)]| {
        let l = witness(ns, dev);
        for (key, value) in want {
            assert_eq!(&l[*key], value, "{dev} {key}: {l}");
        }
    };
    #[rustfmt::skip]
    expect(&host, "nk0", &[
        ("address", "02:00:00:00:00:01".into()), ("gso_max_size", 196608.into()),
        ("gso_ipv4_max_size", 131072.into()), ("gro_max_size", 196608.into()),
        ("gro_ipv4_max_size", 131072.into()), ("gso_max_segs", 128.into()),
        ("num_rx_queues", 4.into()), ("num_tx_queues", 1.into()),
    ]);
    #[rustfmt::skip]
    expect(&pod, "eth0", &[
        ("address", "02:00:00:00:00:02".into()), ("gso_max_size", 65536.into()),
        ("gro_max_size", 262144.into()), ("gso_max_segs", 64.into()), ("num_rx_queues", 3.into()),
    ]);

    // Live, through the primary: MACs and limits of both ends.
    #[rustfmt::skip]
    let v = host.json(&[
        "device", "set", "nk0", "--address", "02:00:00:00:00:11", "--peer-address", "02:00:00:00:00:12",
        "--gso-max-size", "65536", "--peer-gro-max-size", "65536",
    ]);
    assert_eq!(v["address"], "02:00:00:00:00:11");
    expect(&host, "nk0", &[("address", "02:00:00:00:00:11".into()), ("gso_max_size", 65536.into())]);
    expect(&pod, "eth0", &[("address", "02:00:00:00:00:12".into()), ("gro_max_size", 65536.into())]);

    // Refused before anything is made or changed, each saying why.
    #[rustfmt::skip]
    let refusals: &[(&[&str], &str)] = &[
        (&["device", "add", "nk1", "--peer", "nk2", "--address", "02:00:00:00:00:21"], "an L3 netkit pair has no MAC"),
        (&["device", "add", "nk1", "--peer", "nk2", "--mode", "l2", "--address", "01:00:5e:00:00:01"], "multicast"),
        (&["device", "add", "nk1", "--peer", "nk2", "--peer-gso-max-size", "524281"], "--peer-gso-max-size 524281: must be between 576 and 524280"),
        (&["device", "add", "nk1", "--peer", "nk2", "--gso-max-segs", "0"], "--gso-max-segs 0"),
        (&["device", "add", "nk1", "--peer", "nk2", "--numrxqueues", "4097"], "between 1 and 4096"),
        (&["device", "add", "s1", "--pairing", "single", "--peer-address", "02:00:00:00:00:21"], "--pairing single"),
        (&["device", "set", "nk0", "--numrxqueues", "2"], "cannot be changed"),
        (&["device", "set", "nk0", "--gro-max-size", "524281"], "--gro-max-size 524281"),
    ];
    for (args, says) in refusals {
        let err = host.fails(args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(names(&host.json(&["device", "list"])), vec!["nk0"], "nothing may be created");
    expect(&host, "nk0", &[("address", "02:00:00:00:00:11".into()), ("gso_max_size", 65536.into())]);

    // Several transmit queues: taken where the kernel's netkit takes them,
    // else refused with nothing created.
    let out = host.run(&["-j", "device", "add", "nk3", "--peer", "nk4", "--numtxqueues", "2"]);
    if out.status.success() {
        expect(&host, "nk3", &[("num_tx_queues", 2.into())]);
    } else {
        let err = common::stderr(&out);
        assert!(err.contains("refused more than one transmit queue") && err.contains("nothing was created"), "{err}");
        assert_eq!(names(&host.json(&["device", "list"])), vec!["nk0"]);
    }
}

#[test]
fn queue_leasing_is_probed_listed_and_a_refusal_is_explained() {
    require_netkit!();
    let ns = TestNs::new("lease");
    let probe: Value = serde_json::from_slice(&common::run(&["-j", "probe"]).stdout).unwrap();
    common::json_shape::check("probe", &probe);
    let supported = probe["queue_leasing"]["state"] == "supported";
    assert_eq!(supported, release_at_least(7, 1), "queue-create came with 7.1: {probe}");
    ns.ok(&["device", "add", "nk0", "--peer", "nk1", "--up"]);
    // The VM loads dummy: a device with queues, but a virtual one.
    ns.ip_ok(&["link", "add", "dm0", "type", "dummy"]);
    ns.ip_ok(&["link", "set", "dm0", "up"]);
    let before = ns.json(&["queue", "list", "nk1"]);
    common::json_shape::check("queue list", &before);
    let kinds: Vec<(&str, u64)> =
        before.as_array().unwrap().iter().map(|q| (q["type"].as_str().unwrap(), q["id"].as_u64().unwrap())).collect();
    assert_eq!(kinds, vec![("rx", 0), ("tx", 0)], "{before}");
    // The request reaches the kernel, which refuses a virtual lender; the
    // refusal names what would work, and nothing changes.
    let err = ns.fails(&["queue", "lease", "nk1", "--from", "dm0", "--queue", "0"]);
    if supported {
        assert!(err.contains("dm0 is a virtual device") && err.contains("bnxt_en") && err.contains("EINVAL"), "{err}");
        assert!(err.contains("nothing was leased"), "{err}");
    } else {
        assert!(err.contains("no queue leasing") && err.contains("7.1"), "{err}");
    }
    assert_eq!(ns.json(&["queue", "list", "nk1"]), before, "nothing may change");
    let err = ns.fails(&["queue", "list", "nosuch0"]);
    assert!(err.contains("no device named `nosuch0`"), "{err}");
    ns.ip_ok(&["link", "set", "dm0", "down"]);
    let err = ns.fails(&["queue", "list", "dm0"]);
    assert!(err.contains("is down"), "{err}");
}

#[test]
fn traffic_follows_the_policies() {
    require_netkit!();
    let host = TestNs::new("dp");
    let pod = TestNs::pod("dppod");
    host.ok(&["device", "add", "nk0", "--peer", "eth0", "--peer-netns", &pod.name, "--up"]);
    host.ip_ok(&["addr", "add", "10.78.0.1/24", "dev", "nk0"]);
    pod.ip_ok(&["addr", "add", "10.78.0.2/24", "dev", "eth0"]);
    assert!(udp_delivers(&pod, &host, "10.78.0.1"), "policy pass: pod reaches host");
    assert!(udp_delivers(&host, &pod, "10.78.0.2"), "policy pass: host reaches pod");
    let ping = pod.exec("ping", &["-c", "1", "-W", "2", "10.78.0.1"]);
    assert!(ping.status.success(), "ping under pass: {}", common::stderr(&ping));

    host.ok(&["device", "set", "nk0", "--peer-policy", "drop"]);
    let before = pod.json(&["device", "show", "eth0"])["counters"]["tx_dropped"].as_u64().unwrap();
    assert!(!udp_delivers(&pod, &host, "10.78.0.1"), "peer policy drop: pod traffic must not leave");
    assert!(!pod.exec("ping", &["-c", "1", "-W", "1", "10.78.0.1"]).status.success());
    let after = pod.json(&["device", "show", "eth0"])["counters"]["tx_dropped"].as_u64().unwrap();
    assert!(after > before, "the peer's drop counter must rise ({before} -> {after})");
    assert!(udp_delivers(&host, &pod, "10.78.0.2"), "host -> pod still passes (primary policy pass)");

    host.ok(&["device", "set", "nk0", "--peer-policy", "pass"]);
    assert!(udp_delivers(&pod, &host, "10.78.0.1"), "pass again after set --peer-policy pass");
    assert!(pod.exec("ping", &["-c", "1", "-W", "2", "10.78.0.1"]).status.success());
}

#[test]
fn a_pair_that_cannot_be_finished_is_removed_again() {
    require_netkit!();
    let host = TestNs::new("rollback");
    let pod = TestNs::pod("rollbackpod");
    // The primary is up and the peer sits in the pod's namespace when the
    // injected failure hits: both ends must go.
    let out = common::netkit()
        .env("NETKIT_FAULT", "device:peer-up")
        .args(["-n", &host.name, "device", "add", "nk0", "--peer", "eth0", "--peer-netns", &pod.name, "--up"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the injected failure must fail the add");
    let err = common::stderr(&out);
    assert!(err.contains("bringing the peer up failed"), "{err}");
    assert!(err.contains("removed the half-made pair `nk0` again"), "{err}");
    for ns in [&host, &pod] {
        assert!(names(&ns.json(&["device", "list", "--all"])).iter().all(|n| n == "lo"), "nothing left in {}", ns.name);
    }
    // Without the fault the same request works.
    host.ok(&["device", "add", "nk0", "--peer", "eth0", "--peer-netns", &pod.name, "--up"]);
}

#[test]
fn a_live_change_that_fails_part_way_is_undone() {
    require_netkit!();
    let host = TestNs::new("setundo");
    let pod = TestNs::pod("setundopod");
    host.ok(&[
        "device",
        "add",
        "nk0",
        "--peer",
        "eth0",
        "--peer-netns",
        &pod.name,
        "--mode",
        "l2",
        "--address",
        "02:00:00:00:00:31",
    ]);
    let before = (witness(&host, "nk0"), witness(&pod, "eth0"));
    // The policies and the primary's MAC and GSO limit change first; the
    // injected failure hits the peer's step, and both earlier steps are undone.
    #[rustfmt::skip]
    let out = common::netkit()
        .env("NETKIT_FAULT", "device:set-peer")
        .args(["-n", &host.name, "device", "set", "nk0", "--policy", "drop", "--peer-policy", "drop",
               "--address", "02:00:00:00:00:41", "--gso-max-size", "32768", "--peer-address", "02:00:00:00:00:42"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the injected failure must fail the set");
    assert!(common::stderr(&out).contains("NETKIT_FAULT=device:set-peer"), "{}", common::stderr(&out));
    let after = (witness(&host, "nk0"), witness(&pod, "eth0"));
    for key in ["address", "gso_max_size"] {
        assert_eq!(after.0[key], before.0[key], "primary {key} restored");
        assert_eq!(after.1[key], before.1[key], "peer {key} untouched");
    }
    for key in ["policy", "peer_policy"] {
        assert_eq!(after.0["linkinfo"]["info_data"][key], before.0["linkinfo"]["info_data"][key], "{key} restored");
    }
    // Without the fault the same change is made, end to end.
    host.ok(&[
        "device",
        "set",
        "nk0",
        "--policy",
        "drop",
        "--address",
        "02:00:00:00:00:41",
        "--peer-address",
        "02:00:00:00:00:42",
    ]);
    assert_eq!(witness(&host, "nk0")["linkinfo"]["info_data"]["policy"], "blackhole");
    assert_eq!(witness(&pod, "eth0")["address"], "02:00:00:00:00:42");
}

#[test]
fn del_removes_both_ends() {
    require_netkit!();
    let ns = TestNs::new("del");
    ns.ok(&["device", "add", "nk0", "--peer", "nk1"]);
    ns.ok(&["device", "add", "nk2", "--peer", "nk3"]);
    let out = ns.ok(&["device", "del", "nk1"]);
    assert!(out.contains("nk1") && out.contains("nk0"), "{out}");
    assert_eq!(names(&ns.json(&["device", "list"])), vec!["nk3", "nk2"]);
    ns.ok(&["device", "del", "nk2"]);
    assert!(names(&ns.json(&["device", "list"])).is_empty());
    let err = ns.fails(&["device", "del", "nk0"]);
    assert!(err.contains("no device named `nk0`"), "{err}");
    let err = ns.fails(&["device", "del", "lo"]);
    assert!(err.contains("not a netkit or veth device"), "{err}");
}

/// Without --peer the peer gets the first free nk<N>, as the kernel would
/// name it, but never the primary's own name (the kernel registers the
/// peer first, so `nk0` would take it and the primary could not be made)
/// nor another device's alternative name.
#[test]
fn an_unnamed_peer_gets_the_first_free_name_but_not_the_primarys() {
    require_netkit!();
    let ns = TestNs::new("unnamed");
    let peer = |v: &Value| v["peer"]["name"].as_str().map(str::to_string);
    let first = ns.json(&["device", "add", "nk0"]);
    assert_eq!(peer(&first).as_deref(), Some("nk1"), "{first}");
    let second = ns.json(&["device", "add", "pod"]);
    assert_eq!(peer(&second).as_deref(), Some("nk2"), "{second}");
    ns.ok(&["device", "del", "nk0"]);
    // nk0 and nk1 are free again; the primary nk1 takes nk1, its peer nk0.
    let third = ns.json(&["device", "add", "nk1"]);
    assert_eq!(peer(&third).as_deref(), Some("nk0"), "{third}");
    assert_eq!(witness(&ns, "nk0")["linkinfo"]["info_data"]["type"], "peer");
    assert_eq!(names(&ns.json(&["device", "list"])), vec!["nk2", "pod", "nk0", "nk1"]);
    // An alternative name takes a name as much as a device's own does.
    ns.ip_ok(&["link", "property", "add", "dev", "pod", "altname", "nk3"]);
    let fourth = ns.json(&["device", "add", "x0"]);
    assert_eq!(peer(&fourth).as_deref(), Some("nk4"), "{fourth}");
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    require_netkit!();
    let ns = TestNs::new("bad");
    for (args, says) in [
        (vec!["device", "add", ""], "cannot be empty"),
        (vec!["device", "add", "sixteen_chars_xx"], "at most 15"),
        (vec!["device", "add", "a/b"], "'/'"),
        (vec!["device", "add", "a b"], "whitespace"),
        (vec!["device", "add", "."], "cannot be an interface name"),
        (vec!["device", "add", ".."], "cannot be an interface name"),
        (vec!["device", "add", "nk0", "--peer", "bad/peer"], "--peer"),
        (vec!["device", "add", "nk0", "--peer", "nk0"], "same network namespace"),
        (vec!["device", "add", "nk0", "--peer-netns", "nkt-missing-ns"], "ip netns add nkt-missing-ns"),
        (vec!["device", "add", "nk0", "--mtu", "20"], "between 68 and 65535"),
    ] {
        let err = ns.fails(&args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(names(&ns.json(&["device", "list"])).is_empty());
    ns.ok(&["device", "add", "nk0", "--peer", "nk1"]);
    let err = ns.fails(&["device", "add", "nk0"]);
    assert!(err.contains("already exists"), "{err}");
    let err = ns.fails(&["device", "add", "nk5", "--peer", "nk1"]);
    assert!(err.contains("`nk1` already exists"), "{err}");
    assert_eq!(names(&ns.json(&["device", "list"])), vec!["nk1", "nk0"]);
    let err = common::fails(&["-n", "nkt-missing-ns", "device", "list"]);
    assert!(err.contains("ip netns add nkt-missing-ns"), "{err}");
}

#[test]
fn list_shows_netkit_unless_all() {
    require_netkit!();
    let ns = TestNs::new("list");
    ns.ok(&["device", "add", "nk0", "--peer", "nk1"]);
    assert_eq!(names(&ns.json(&["device", "list"])), vec!["nk1", "nk0"]);
    assert_eq!(names(&ns.json(&["device", "list", "--all"])), vec!["lo", "nk1", "nk0"]);
    let table = ns.ok(&["device", "list"]);
    let header = table.lines().next().unwrap();
    for col in ["NAME", "IFINDEX", "ROLE", "PEER", "MODE", "POLICY", "PEER-POLICY", "SCRUB", "MTU", "STATE"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(table.lines().any(|l| l.starts_with("nk0") && l.contains("primary") && l.contains("nk1")), "{table}");
}

/// The device commands' JSON has the shape the README's table documents,
/// for a pair, a peer in another namespace, and a single device.
#[test]
fn device_json_is_as_the_readme_documents() {
    require_netkit!();
    use common::json_shape::check;
    let host = TestNs::new("djson");
    let pod = TestNs::pod("djsonp");
    check("device add", &host.json(&["device", "add", "nk0", "--peer", "eth0", "--peer-netns", &pod.name]));
    check("device add", &host.json(&["device", "add", "nk2", "--peer", "nk3", "--mode", "l2"]));
    check("device set", &host.json(&["device", "set", "nk0", "--peer-policy", "drop"]));
    check("device show", &host.json(&["device", "show", "nk0"]));
    check("device show", &pod.json(&["device", "show", "eth0"]));
    check("device list", &host.json(&["device", "list", "--all"]));
    check("device list", &pod.json(&["device", "list"]));
    check("device del", &host.json(&["device", "del", "nk2"]));
    check("device del", &host.json(&["device", "del", "nk0"]));
}
