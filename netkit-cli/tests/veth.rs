//! veth as a pair kind, on any kernel with veth (the host, and the VM's
//! three kernels): `device add --kind veth` and the device commands on
//! veth pairs, netkit's settings refused before anything is made, a
//! half-made pair removed again, and `apply` pairs with `kind: veth`. Every
//! device fact is read back by iproute2, never by the tool.

mod common;

use common::{
    TestNs,
    apply::Files,
    hooks::{HookEnv, Pair},
    send_udp, stderr, stdout,
};
use netkit::mprog::Hook;
use serde_json::Value;

fn names(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap().to_string()).collect()
}

/// The devices iproute2 sees in `ns`, but `lo`.
fn devices(ns: &TestNs) -> Vec<String> {
    let o = ns.ip(&["-j", "link", "show"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array().unwrap().iter().map(|d| d["ifname"].as_str().unwrap().to_string()).filter(|n| n != "lo").collect()
}

#[test]
fn a_veth_pair_is_made_shown_changed_and_deleted_like_a_netkit_pair() {
    require_root!();
    let host = TestNs::new("vethdev");
    let pod = TestNs::pod("vethdevpod");
    let v = host.json(&[
        "device",
        "add",
        "pod0",
        "--kind",
        "veth",
        "--peer",
        "eth0",
        "--peer-netns",
        &pod.name,
        "--mtu",
        "1400",
        "--address",
        "02:00:00:00:00:01",
        "--peer-address",
        "02:00:00:00:00:02",
        "--up",
    ]);
    assert_eq!(v["kind"], "veth", "{v}");
    assert_eq!(v["peer"]["name"], "eth0", "{v}");
    assert_eq!(v["peer"]["netns"], pod.name.as_str(), "{v}");
    assert!(v["role"].is_null() && v["policy"].is_null() && v["mode"].is_null(), "no netkit settings: {v}");

    // iproute2 sees what was asked, on both ends.
    let here = host.ip_link("pod0");
    assert_eq!(here["linkinfo"]["info_kind"], "veth", "{here}");
    assert_eq!((here["mtu"].as_u64(), here["address"].as_str()), (Some(1400), Some("02:00:00:00:00:01")));
    assert!(here["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{here}");
    let there = pod.ip_link("eth0");
    assert_eq!(there["linkinfo"]["info_kind"], "veth", "{there}");
    assert_eq!((there["mtu"].as_u64(), there["address"].as_str()), (Some(1400), Some("02:00:00:00:00:02")));
    assert!(there["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{there}");

    // list shows both kinds' ends; show names the other end in the pod.
    assert_eq!(names(&host.json(&["device", "list"])), ["pod0"]);
    // The table names the kind; netkit's columns are empty for a veth.
    let table = host.ok(&["device", "list"]);
    let (header, row) = (table.lines().next().unwrap(), table.lines().nth(1).unwrap());
    // (Columns are left-aligned: a cell starts where its heading does.)
    let cell = |col: &str| row[header.find(&format!("{col} ")).unwrap()..].split_whitespace().next().unwrap();
    assert_eq!((cell("NAME"), cell("KIND"), cell("ROLE"), cell("MODE")), ("pod0", "veth", "-", "-"), "{table}");
    let shown = host.json(&["device", "show", "pod0"]);
    assert_eq!((shown["kind"].as_str(), shown["peer"]["name"].as_str()), (Some("veth"), Some("eth0")));
    let from_pod = pod.json(&["device", "show", "eth0"]);
    assert_eq!(from_pod["peer"]["name"], "pod0", "{from_pod}");

    // A live change of each end, reached in its namespace.
    host.ok(&["device", "set", "pod0", "--gso-max-segs", "100", "--peer-gso-max-segs", "200"]);
    assert_eq!(host.ip_link("pod0")["gso_max_segs"], 100);
    assert_eq!(pod.ip_link("eth0")["gso_max_segs"], 200);
    // netkit's policies are refused with the reason, and nothing changes.
    let err = host.fails(&["device", "set", "pod0", "--peer-policy", "drop", "--gso-max-segs", "50"]);
    assert!(err.contains("`pod0` is a veth device: a veth pair has no default verdicts"), "{err}");
    assert_eq!(host.ip_link("pod0")["gso_max_segs"], 100);

    // Deleted by the pod's end: both go.
    pod.ok(&["device", "del", "eth0"]);
    assert_eq!(devices(&host), Vec::<String>::new());
    assert_eq!(devices(&pod), Vec::<String>::new());
}

#[test]
fn netkit_settings_are_refused_for_veth_before_anything_is_made() {
    require_root!();
    let host = TestNs::new("vethbad");
    for (option, value) in [
        ("--mode", "l2"),
        ("--policy", "drop"),
        ("--peer-policy", "drop"),
        ("--scrub", "none"),
        ("--peer-scrub", "none"),
        ("--headroom", "64"),
        ("--tailroom", "64"),
        ("--pairing", "single"),
    ] {
        let err = host.fails(&["device", "add", "pod0", "--kind", "veth", "--peer", "eth0", option, value]);
        assert!(
            err.contains(&format!("{option} is a netkit setting and does not apply to --kind veth (")),
            "{option}: {err}"
        );
        assert!(err.contains("nothing was created"), "{err}");
        assert_eq!(devices(&host), Vec::<String>::new(), "{option}");
    }
    // An unnamed peer gets the first free veth<N> that is not the primary's name.
    let v = host.json(&["device", "add", "veth0", "--kind", "veth"]);
    assert_eq!(v["peer"]["name"], "veth1", "{v}");
    // A name taken on the peer's side: refused, nothing made.
    let err = host.fails(&["device", "add", "pod1", "--kind", "veth", "--peer", "veth1"]);
    assert!(err.contains("a device named `veth1` already exists"), "{err}");
    let mut left = devices(&host);
    left.sort();
    assert_eq!(left, ["veth0", "veth1"]);
}

#[test]
fn a_veth_pair_that_cannot_be_finished_is_removed_again() {
    require_root!();
    let host = TestNs::new("vethrb");
    let pod = TestNs::pod("vethrbpod");
    let out = common::netkit()
        .env("NETKIT_FAULT", "device:peer-up")
        .args(["-n", &host.name, "device", "add", "pod0", "--kind", "veth", "--peer", "eth0"])
        .args(["--peer-netns", &pod.name, "--up"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the injected failure must fail the add");
    let err = stderr(&out);
    assert!(
        err.contains("bringing the peer up failed") && err.contains("removed the half-made pair `pod0` again"),
        "{err}"
    );
    assert_eq!((devices(&host), devices(&pod)), (Vec::new(), Vec::new()));
}

/// `netkit -n NS --bpffs DIR`.
fn netkit_in(ns: &TestNs, bpffs: &common::Bpffs) -> std::process::Command {
    let mut c = common::netkit();
    c.args(["-n", &ns.name, "--bpffs", &bpffs.arg()]);
    c
}

#[test]
fn apply_makes_repairs_refuses_and_prunes_veth_pairs() {
    require_root!();
    let host = TestNs::new("vethap");
    let pod = TestNs::pod("vethappod");
    let (files, bpffs) = (Files::new(), common::Bpffs::new());
    let spec = format!(
        "pairs:\n  - name: pod0\n    kind: veth\n    mtu: 1400\n    peer: {{name: eth0, netns: {}}}\nchains:\n  - device: pod0\n    hook: ingress\n    programs:\n      - {{name: c, program: counter}}\n",
        pod.name
    );
    files.apply(netkit_in(&host, &bpffs), &spec, &[]);
    assert_eq!(host.ip_link("pod0")["linkinfo"]["info_kind"], "veth");
    assert_eq!(pod.ip_link("eth0")["mtu"], 1400);
    assert!(files.apply(netkit_in(&host, &bpffs), &spec, &[]).contains("no changes"));
    // Exported as it is, its kind named; the export applies as a no-op.
    let o = netkit_in(&host, &bpffs).args(["export", "--state", &files.state()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let exported = stdout(&o);
    assert!(exported.contains("- name: pod0\n  kind: veth\n"), "{exported}");
    assert!(files.apply(netkit_in(&host, &bpffs), &exported, &[]).contains("no changes"), "{exported}");

    // Deleted by ip: made again, with its chain.
    host.ip_ok(&["link", "del", "pod0"]);
    let out = files.apply(netkit_in(&host, &bpffs), &spec, &[]);
    assert!(out.contains("pod0"), "{out}");
    assert_eq!(pod.ip_link("eth0")["linkinfo"]["info_kind"], "veth");
    let chain = common::witness::chain(&host, "pod0", common::witness::attach_type("ingress"));
    assert_eq!(chain.slots.len(), 1, "the counter, on a link: {:?}", chain.slots);
    assert_ne!(chain.slots[0].1, 0, "owned by a link");

    // The kind is fixed at creation: a spec that says netkit is refused, untouched.
    let index = host.ifindex_of("pod0");
    let netkit = spec.replace("kind: veth", "kind: netkit");
    let o = files.run(netkit_in(&host, &bpffs), "apply", &netkit, &[], None);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("kind is veth (the spec says netkit)"), "{}", stderr(&o));
    assert_eq!(host.ifindex_of("pod0"), index);

    // netkit's settings and hooks are mistakes in a veth pair's spec, by place.
    let mode = spec.replace("kind: veth", "kind: veth\n    mode: l2");
    let o = files.run(netkit_in(&host, &bpffs), "apply", &mode, &[], None);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(".yaml:2:") && err.contains("mode is a netkit setting and does not apply to kind: veth"),
        "{err}"
    );
    assert_eq!(host.ifindex_of("pod0"), index);

    // The pair's words name its tcx hooks: peer is its ingress, so the same
    // chain said with `peer` changes nothing, and `primary` is its egress.
    let peer_hook = spec.replace("hook: ingress", "hook: peer");
    assert!(files.apply(netkit_in(&host, &bpffs), &peer_hook, &[]).contains("no changes"));
    let both =
        format!("{peer_hook}  - device: pod0\n    hook: ingress\n    programs:\n      - {{name: d, program: pass}}\n");
    let o = files.run(netkit_in(&host, &bpffs), "apply", &both, &[], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("a second chain for pod0 ingress (the first is at"), "{}", stderr(&o));
    let primary =
        format!("{peer_hook}  - device: pod0\n    hook: primary\n    programs:\n      - {{name: d, program: pass}}\n");
    files.apply(netkit_in(&host, &bpffs), &primary, &[]);
    let egress = common::witness::chain(&host, "pod0", common::witness::attach_type("egress"));
    assert_eq!(egress.slots.len(), 1, "{:?}", egress.slots);
    assert!(bpffs.path.join(format!("netkit/links/{}/pod0/egress/d", host.name)).exists(), "pinned under the tcx hook");

    // Pruned: the pair and its pins go.
    files.apply(netkit_in(&host, &bpffs), "{}", &["--prune"]);
    assert_eq!((devices(&host), devices(&pod)), (Vec::new(), Vec::new()));
    assert_eq!(common::witness::pins(&bpffs.path.join("netkit")), Vec::<String>::new());
}

#[test]
fn on_a_veth_device_peer_and_primary_are_its_tcx_ingress_and_egress() {
    require_root!();
    let env = HookEnv::tcx("vethhk");
    if env.pair != Pair::Veth {
        common::skip("this kernel has no veth");
        return;
    }
    // peer: what the other end sends, arriving on the device's tcx ingress.
    let o = env.attach(Hook::Peer, "drop", &["--pin", "d"]);
    assert_eq!(o["hook"], "ingress", "{o}");
    let ingress = common::witness::chain(&env.ns, "dev0", common::witness::attach_type("ingress"));
    assert_eq!(ingress.slots.len(), 1, "{:?}", ingress.slots);
    assert!(env.bpffs.path.join(format!("netkit/links/{}/dev0/ingress/d", env.ns.name)).exists());
    // (Only one way: veth is L2, and a drop one way drops the ARP answers too.)
    assert!(!env.traffic(Hook::Peer), "the pod's packets are dropped");
    let q = env.json(&["query", "dev0", "peer"]);
    assert_eq!((q[0]["hook"].as_str(), q[0]["programs"].as_array().map(Vec::len)), (Some("ingress"), Some(1)), "{q}");
    env.ok(&["detach", "dev0", "peer", "d"]);
    assert!(env.traffic(Hook::Peer));

    // primary: what is sent to the other end, on the device's tcx egress.
    let o = env.attach(Hook::Primary, "drop", &["--pin", "d"]);
    assert_eq!(o["hook"], "egress", "{o}");
    assert!(!env.traffic(Hook::Primary), "packets to the pod are dropped");
    env.ok(&["detach", "dev0", "egress", "d"]);
    assert!(env.traffic(Hook::Primary));

    // A peer redirect works at tc ingress: taken on peer, refused on primary.
    env.attach(Hook::Peer, "redirect-peer", &["--pin", "rp"]);
    let err = env.fails(&["attach", "dev0", "primary", "redirect-peer"]);
    assert!(err.contains("on the egress hook every packet it redirects is dropped"), "{err}");
    env.ok(&["detach", "dev0", "peer", "rp"]);
    assert_eq!(common::witness::pins(&env.bpffs.path.join("netkit")), Vec::<String>::new());

    // The device deleted by ip: its link is defunct, and detach by the
    // pair's word still finds the pin it left under the tcx hook.
    env.attach(Hook::Peer, "pass", &["--pin", "g"]);
    env.ns.ip_ok(&["link", "del", "dev0"]);
    env.eventually("detach to remove the defunct link's pin", || {
        env.run(&["detach", "dev0", "peer", "g"]).status.success()
    });
    assert_eq!(common::witness::pins(&env.bpffs.path.join("netkit")), Vec::<String>::new());
}

#[test]
fn a_peer_redirect_delivers_from_one_veth_pod_into_another() {
    require_root!();
    let (host, a, b) = (TestNs::new("vethrd"), TestNs::pod("vethrda"), TestNs::pod("vethrdb"));
    let bpffs = common::Bpffs::new();
    let nk = |args: &[&str]| -> String {
        let mut all = vec!["--bpffs", bpffs.path.to_str().unwrap()];
        all.extend_from_slice(args);
        host.ok(&all)
    };
    for (end, pod, ip) in [("ha", &a, "10.70.0.2"), ("hb", &b, "10.70.0.3")] {
        nk(&["device", "add", end, "--kind", "veth", "--peer", "eth0", "--peer-netns", &pod.name, "--up"]);
        pod.ip_ok(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        pod.sysctl("net/ipv6/conf/all/disable_ipv6", "1");
    }
    // Pod a's packets for b leave towards a's host end (no ARP: the host
    // has no route and no proxy for it), and only the redirect can carry them.
    let ha_mac = host.ip_link("ha")["address"].as_str().unwrap().to_string();
    a.ip_ok(&["neigh", "replace", "10.70.0.3", "lladdr", &ha_mac, "dev", "eth0"]);
    a.ip_ok(&["route", "replace", "10.70.0.3/32", "dev", "eth0"]);
    assert_eq!(send_udp(&a, &b, "10.70.0.3", 4000, 3), 0, "without the redirect nothing reaches b");

    // redirect-peer on a's peer hook (the host end's tcx ingress), with an
    // entry for b's address into the veth pair whose host end is hb.
    nk(&["attach", "ha", "peer", "redirect-peer", "--pin", "rp"]);
    nk(&["redirect", "add", "ha", "peer", "10.70.0.3", "hb"]);
    assert_eq!(send_udp(&a, &b, "10.70.0.3", 4001, 20), 20, "every datagram redirected into pod b");
    let list: Value = serde_json::from_str(&nk(&["-j", "redirect", "list", "ha", "peer"])).unwrap();
    assert_eq!(list["stats"]["redirected"], 20, "{list}");
    assert_eq!(list["entries"][0]["pair"], "hb", "{list}");
    nk(&["detach", "ha", "peer", "rp"]);
    assert_eq!(common::witness::pins(&bpffs.path.join("netkit")), Vec::<String>::new());
}

/// What one kind of pair made of the spec below: the peer chain's pins in
/// order, then packets counted before and after the firewall, the deny
/// rule's hits, and packets counted on the primary hook.
fn one_spec_on(kind: &str) -> (Vec<String>, u64, u64, u64, u64) {
    let (host, pod) = (TestNs::new(&format!("kind{kind}")), TestNs::pod(&format!("kind{kind}p")));
    host.disable_ipv6();
    pod.disable_ipv6();
    let (files, bpffs) = (Files::new(), common::Bpffs::new());
    let spec = format!(
        "pairs:\n  - name: pod0\n    kind: {kind}\n    peer: {{name: eth0, netns: {}}}\nchains:\n  - device: pod0\n    hook: peer\n    programs:\n      - {{name: c, program: counter}}\n      - name: fw\n        program: firewall\n        rules: ['dst 10.80.0.1/32 proto udp port 6001 deny']\n      - {{name: after, program: counter}}\n  - device: pod0\n    hook: primary\n    programs:\n      - {{name: out, program: counter}}\n",
        pod.name
    );
    files.apply(netkit_in(&host, &bpffs), &spec, &[]);
    host.ip_ok(&["addr", "add", "10.80.0.1/24", "dev", "pod0"]);
    pod.ip_ok(&["addr", "add", "10.80.0.2/24", "dev", "eth0"]);
    if kind == "veth" {
        // No neighbour discovery while counting (netkit's default L3 has none).
        let mac = |ns: &TestNs, dev: &str| ns.ip_link(dev)["address"].as_str().unwrap().to_string();
        host.ip_ok(&["neigh", "replace", "10.80.0.2", "lladdr", &mac(&pod, "eth0"), "dev", "pod0"]);
        pod.ip_ok(&["neigh", "replace", "10.80.0.1", "lladdr", &mac(&host, "pod0"), "dev", "eth0"]);
    }
    let b = bpffs.arg();
    let q = host.json(&["--bpffs", &b, "query", "pod0", "peer"]);
    let slots = q[0]["programs"].as_array().unwrap().clone();
    let pins: Vec<String> =
        slots.iter().map(|s| s["pin"].as_str().unwrap().rsplit('/').next().unwrap().to_string()).collect();
    let id_of = |pin: &str| {
        slots.iter().find(|s| s["pin"].as_str().unwrap().ends_with(&format!("/{pin}"))).unwrap()["prog_id"].clone()
    };
    assert_eq!(send_udp(&pod, &host, "10.80.0.1", 6000, 10), 10, "{kind}: allowed");
    assert_eq!(send_udp(&pod, &host, "10.80.0.1", 6001, 4), 0, "{kind}: denied");
    assert_eq!(send_udp(&host, &pod, "10.80.0.2", 6002, 3), 3, "{kind}: to the pod");
    let packets = |hook: &str, id: &Value| -> u64 {
        let s = host.json(&["--bpffs", &b, "stats", "pod0", hook]);
        let p = s[0]["programs"].as_array().unwrap().iter().find(|p| p["prog_id"] == *id).cloned().unwrap();
        p["packets"].as_u64().unwrap()
    };
    let rules = host.json(&["--bpffs", &b, "firewall", "list", "pod0", "peer", "fw"]);
    let hits = rules.as_array().unwrap().iter().find(|r| r["id"] == 1).unwrap()["hits"].as_u64().unwrap();
    let out_id = host.json(&["--bpffs", &b, "query", "pod0", "primary"])[0]["programs"][0]["prog_id"].clone();
    let seen =
        (pins, packets("peer", &id_of("c")), packets("peer", &id_of("after")), hits, packets("primary", &out_id));
    // Pruned: nothing of either kind is left.
    files.apply(netkit_in(&host, &bpffs), "{}", &["--prune"]);
    assert_eq!((devices(&host), devices(&pod)), (Vec::new(), Vec::new()), "{kind}");
    assert_eq!(common::witness::pins(&bpffs.path.join("netkit")), Vec::<String>::new(), "{kind}");
    seen
}

#[test]
fn one_spec_gives_the_same_chain_verdicts_and_counts_on_netkit_and_on_veth() {
    require_root!();
    let veth = one_spec_on("veth");
    assert_eq!(veth, (vec!["c".to_string(), "fw".into(), "after".into()], 14, 10, 4, 3));
    if !netkit::os::probe::probe(netkit::os::probe::Feature::Netkit).is_supported() {
        common::skip("this kernel has no netkit: the veth half ran alone");
        return;
    }
    assert_eq!(one_spec_on("netkit"), veth, "the same spec, the same chain, verdicts and counts");
}
