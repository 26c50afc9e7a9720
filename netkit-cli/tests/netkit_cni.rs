//! The CNI plugin against a real kernel (VM), driven the way runtimes drive
//! it: a conflist executed by libcni (`NETKIT_TEST_CNI_RUNTIME`, the
//! library under containerd, CRI-O and podman) with the reference plugins
//! `host-local` (IPAM) and `tuning` (chained after netkit, reading its
//! prevResult) from Debian's containernetworking-plugins. The node is its
//! own namespace; pods are namespaces as runtimes make them. Facts are read
//! by iproute2, BPF_PROG_QUERY, the file systems and host-local's state.

mod common;

use std::process::Stdio;

use common::{
    TestNs,
    apply::Files,
    cni::{FIREWALL_DENIES, Node, firewall_chain, pings},
    stdout, witness,
};
use serde_json::{Value, json};

#[test]
fn pods_reach_each_other_and_the_host_and_the_firewall_cuts_one_off() {
    require_cni!();
    let node = Node::new("cnip");
    node.ns.ip_ok(&["addr", "add", "10.99.0.1/32", "dev", "lo"]);
    let list = node.conflist(json!({"mtu": 1400, "chains": firewall_chain()}));
    let (a, b) = (TestNs::pod("cnia"), TestNs::pod("cnib"));
    // The third pod's namespace has no name anywhere, as some runtimes make them.
    let c = TestNs::unnamed();

    let ra = node.add(&list, "ctr-a", &a);
    let rb = node.add(&list, "ctr-b", &b);
    let rc = node.add(&list, "ctr-c", &c);
    assert_eq!(Node::ip_of(&rb), FIREWALL_DENIES, "host-local hands out addresses in order: {rb}");

    // The result: the host side, the pod side in its sandbox, the address on it.
    assert_eq!(ra["cniVersion"], "1.1.0");
    let ifs = ra["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 2, "{ra}");
    assert_eq!(ifs[1]["name"], "eth0");
    assert_eq!(ifs[1]["sandbox"], a.path.display().to_string());
    assert_eq!(ifs[1]["mtu"], 1400);
    assert!(ifs[1].get("mac").is_none(), "an L3 pod side has no MAC: {ra}");
    assert_eq!(ra["ips"][0]["interface"], 1);
    assert!(ra["routes"].as_array().unwrap().iter().any(|r| r["dst"] == "0.0.0.0/0"), "{ra}");
    let host_a = Node::host_of(&ra);
    assert!(host_a.len() <= 15 && host_a.starts_with("nk"), "{host_a}");

    // iproute2's view: an L3 pair, peer policy pass after ADD, the MTU.
    let link = node.ns.ip_link(&host_a);
    let nk = &link["linkinfo"]["info_data"];
    assert_eq!(nk["mode"], "l3", "{link}");
    assert_eq!(nk["peer_policy"], "forward", "{link}");
    assert_eq!(link["mtu"], 1400);
    // tuning, chained after netkit, found eth0 through netkit's prevResult.
    let tuned = a.exec("cat", &["/proc/sys/net/ipv4/conf/eth0/arp_ignore"]);
    assert_eq!(stdout(&tuned).trim(), "1");
    // The pod's address and default route through its device.
    let routes = stdout(&a.ip(&["route", "show", "default"]));
    assert!(routes.contains("dev eth0"), "{routes}");
    // The chain: one firewall on the peer hook, pinned per container.
    assert_eq!(witness::chain(&node.ns, &host_a, witness::NETKIT_PEER).progs().len(), 1);
    let pin = node.pin("ctr-a", "fw").expect("the firewall's link is pinned under the container's directory");
    assert!(pin.ends_with(format!("{host_a}/peer/fw")), "{}", pin.display());

    // Traffic: the pods and the host reach each other; the firewall cuts b off.
    let (ip_a, ip_c) = (Node::ip_of(&ra), Node::ip_of(&rc));
    assert!(pings(&a, "10.99.0.1"), "pod a cannot reach the host");
    assert!(pings(&c, "10.99.0.1"), "pod c cannot reach the host");
    assert!(pings(&a, &ip_c), "pod a cannot reach pod c");
    assert!(pings(&c, &ip_a), "pod c cannot reach pod a");
    assert!(!pings(&b, "10.99.0.1"), "the firewall let pod b reach the host");
    assert!(!pings(&a, FIREWALL_DENIES), "the firewall let pod b answer pod a");

    // CHECK passes on every pod.
    for (id, pod) in [("ctr-a", &a), ("ctr-b", &b), ("ctr-c", &c)] {
        let o = node.cmd("check", &list, id, pod);
        assert!(o.status.success(), "CHECK {id}: {}", stdout(&o));
    }

    // DEL of b leaves a and c working.
    let o = node.cmd("del", &list, "ctr-b", &b);
    assert!(o.status.success(), "DEL ctr-b: {}", stdout(&o));
    assert!(node.ns.ip(&["link", "show", &Node::host_of(&rb)]).status.code() != Some(0));
    assert!(pings(&a, &ip_c) && pings(&a, "10.99.0.1"), "pod a lost its network when b left");

    for (id, pod) in [("ctr-a", &a), ("ctr-c", &c)] {
        let o = node.cmd("del", &list, id, pod);
        assert!(o.status.success(), "DEL {id}: {}", stdout(&o));
    }
    assert_eq!(node.leftovers(), Vec::<String>::new());
    // DEL again: nothing to do, success.
    let o = node.cmd("del", &list, "ctr-a", &a);
    assert!(o.status.success(), "second DEL: {}", stdout(&o));
}

#[test]
fn check_names_what_differs() {
    require_cni!();
    let node = Node::new("cnik");
    let list = node.conflist(json!({"chains": firewall_chain()}));
    let a = TestNs::pod("cnika");
    let ra = node.add(&list, "ctr-a", &a);
    let host = Node::host_of(&ra);

    // Someone removes the pod's default route and detaches the firewall.
    a.ip_ok(&["route", "del", "default"]);
    std::fs::remove_file(node.pin("ctr-a", "fw").unwrap()).unwrap();
    assert!(witness::chain(&node.ns, &host, witness::NETKIT_PEER).progs().is_empty());
    let o = node.cmd("check", &list, "ctr-a", &a);
    assert!(!o.status.success(), "CHECK passed on a changed pod");
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["code"], 101, "{e}");
    let details = e["details"].as_str().unwrap();
    assert!(details.contains("no route to 0.0.0.0/0"), "{details}");
    assert!(details.contains("attach") && details.contains("fw"), "{details}");

    // Another tool detaches a pod's peer-hook link (its pin stays): CHECK
    // names it, and DEL still removes everything.
    let b = TestNs::pod("cnikb");
    let rb = node.add(&list, "ctr-b", &b);
    let chain = witness::chain(&node.ns, &Node::host_of(&rb), witness::NETKIT_PEER);
    witness::detach_link(chain.slots[0].1);
    let o = node.cmd("check", &list, "ctr-b", &b);
    assert!(!o.status.success(), "CHECK passed with the firewall detached");
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    let details = e["details"].as_str().unwrap();
    assert!(details.contains("fw") && details.contains("on no hook"), "{details}");

    assert!(node.cmd("del", &list, "ctr-a", &a).status.success());
    assert!(node.cmd("del", &list, "ctr-b", &b).status.success());
    assert_eq!(node.leftovers(), Vec::<String>::new());
}

#[test]
fn add_or_del_killed_at_any_step_is_cleaned_up_by_del() {
    require_cni!();
    common::cni::killed_at_any_step_then_del(&Node::new("cnix"), json!({}));
}

#[test]
fn a_failed_add_leaves_nothing() {
    require_cni!();
    let node = Node::new("cnif");
    let list = node.conflist(json!({"chains": firewall_chain()}));
    let a = TestNs::pod("cnifa");
    for step in ["ipam", "pair", "address", "route", "policy"] {
        let e = node.add_fails(&list, "ctr-a", &a, Some(&format!("cni:{step}")));
        assert_eq!(e["code"], 100, "{step}: {e}");
        assert!(e["details"].as_str().unwrap().contains("everything this ADD made was removed"), "{step}: {e}");
        assert_eq!(node.leftovers(), Vec::<String>::new(), "after a failure at {step}");
        let peers = stdout(&a.ip(&["-j", "link", "show", "type", "netkit"]));
        assert_eq!(peers.trim(), "[]", "a peer stayed in the pod after a failure at {step}");
    }

    // A program the verifier refuses: loaded after the address is allocated.
    let c_dir = std::env::var("NETKIT_TEST_C_DIR").unwrap();
    let bad = node.conflist(json!({"chains": [{"hook": "peer", "programs": [
        {"name": "bad", "program": format!("file:{c_dir}/verifier_refuses.o")}]}]}));
    let e = node.add_fails(&bad, "ctr-a", &a, None);
    assert_eq!(e["code"], 100, "{e}");
    assert_eq!(node.leftovers(), Vec::<String>::new());

    // A program that cannot work on its hook (bpf_redirect_peer from the
    // pair's transmit path): a configuration error, nothing made.
    for hook in ["peer", "primary"] {
        let misplaced = node.conflist(json!({"chains": [{"hook": hook, "programs": [
            {"name": "rp", "program": "redirect-peer"}]}]}));
        let e = node.add_fails(&misplaced, "ctr-a", &a, None);
        assert_eq!(e["code"], 7, "{e}");
        let details = e["details"].as_str().unwrap();
        assert!(
            details.contains(&format!(
                "calls bpf_redirect_peer, which the kernel honours only at tc ingress: on the {hook} hook"
            )),
            "{e}"
        );
        assert_eq!(node.leftovers(), Vec::<String>::new());
    }

    // The namespace is gone before ADD: container unknown, nothing made.
    let gone = TestNs::pod("cnifg");
    let path = gone.path.clone();
    drop(gone);
    let o = node.runtime(&["add", &list.display().to_string(), "ctr-g", &path.display().to_string(), "eth0"], None);
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["code"], 3, "{e}");
    assert_eq!(node.leftovers(), Vec::<String>::new());

    // After all that, the same container is added and removed cleanly.
    node.add(&list, "ctr-a", &a);
    assert!(node.cmd("del", &list, "ctr-a", &a).status.success());
    assert_eq!(node.leftovers(), Vec::<String>::new());
}

#[test]
fn the_pod_is_cut_off_until_its_chain_is_attached_and_a_killed_add_is_deleted() {
    require_cni!();
    let node = Node::new("cnih");
    node.ns.ip_ok(&["addr", "add", "10.99.0.1/32", "dev", "lo"]);
    let conf = node.netkit_conf("1.1.0", json!({"chains": firewall_chain()}));
    let pod = TestNs::pod("cniha");
    let pod_path = pod.path.display().to_string();
    let env = [("CNI_CONTAINERID", "ctr-h"), ("CNI_NETNS", pod_path.as_str()), ("CNI_IFNAME", "eth0")];
    // ADD stops inside the apply engine, after the pair is made and before
    // the chain's first program is attached.
    let mut child = node.hung_add(&env, &conf);

    let links = node.ns.ip(&["-d", "-j", "link", "show", "type", "netkit"]);
    let links: Value = serde_json::from_slice(&links.stdout).unwrap();
    let host = links[0]["ifname"].as_str().unwrap().to_string();
    assert_eq!(links[0]["linkinfo"]["info_data"]["peer_policy"], "blackhole", "{links}");
    assert!(witness::chain(&node.ns, &host, witness::NETKIT_PEER).progs().is_empty());
    // Even addressed and routed by hand, the pod cannot send: its peer
    // drops everything until the chain is there.
    pod.ip_ok(&["addr", "add", "10.22.0.50/24", "dev", "eth0"]);
    pod.ip_ok(&["route", "add", "default", "dev", "eth0"]);
    node.ns.ip_ok(&["route", "add", "10.22.0.50/32", "dev", &host]);
    assert!(!pings(&pod, "10.99.0.1"), "the pod sent a packet before its chain was attached");
    node.ns.ok(&["device", "set", &host, "--peer-policy", "pass"]);
    assert!(pings(&pod, "10.99.0.1"), "the pod's path works once its peer passes");

    // The plugin dies there; the runtime's DEL removes everything it made.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut del = vec![("CNI_COMMAND", "DEL")];
    del.extend(env);
    let (ok, e) = node.plugin(&del, &conf);
    assert!(ok, "DEL after a killed ADD: {e}");
    assert_eq!(node.leftovers(), Vec::<String>::new());
}

#[test]
fn del_tolerates_a_vanished_pod_and_gc_collects_stale_attachments() {
    require_cni!();
    common::cni::del_and_gc(&Node::new("cnid"), json!({}));
}

/// The same with the IPAM plugin Debian 12 ships: the configuration (CNI
/// 1.1.0) reaches it as 1.0.0, GC releases the stale attachments'
/// addresses by DEL instead of passing GC on, and STATUS does not ask it.
#[test]
fn an_ipam_plugin_of_cni_1_0_0_serves_add_del_gc_and_status() {
    require_cni!();
    let Some(node) = Node::with_bookworm_ipam("cnio") else {
        common::skip("no Debian 12 host-local (NETKIT_TEST_CNI_BOOKWORM): the VM suite carries it");
        return;
    };
    let list = node.conflist(json!({}));
    let o = node.runtime(&["status", &list.display().to_string()], None);
    assert!(o.status.success(), "STATUS: {}{}", stdout(&o), common::stderr(&o));
    common::cni::del_and_gc(&node, json!({}));
}

#[test]
fn status_version_and_bad_configurations() {
    require_cni!();
    let node = Node::new("cnis");
    let list = node.conflist(json!({}));
    let o = node.runtime(&["status", &list.display().to_string()], None);
    assert!(o.status.success(), "STATUS: {}", stdout(&o));

    let (ok, v) = node.plugin(&[("CNI_COMMAND", "VERSION")], &json!({"cniVersion": "1.0.0"}));
    assert!(ok);
    assert_eq!(v, json!({"cniVersion": "1.0.0", "supportedVersions": ["1.0.0", "1.1.0"]}));

    // STATUS when the bpffs is missing and the IPAM plugin is not installed.
    let conf = node.netkit_conf("1.1.0", json!({"bpffs": "/tmp", "ipam": {"type": "no-such-ipam"}}));
    let (ok, e) = node.plugin(&[("CNI_COMMAND", "STATUS")], &conf);
    assert!(!ok);
    assert_eq!(e["code"], 50, "{e}");
    let details = e["details"].as_str().unwrap();
    assert!(details.contains("no bpffs at /tmp") && details.contains("no-such-ipam"), "{details}");

    let pod = TestNs::pod("cnisp");
    let pod_path = pod.path.display().to_string();
    let add = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "ctr-x"),
        ("CNI_NETNS", pod_path.as_str()),
        ("CNI_IFNAME", "eth0"),
    ];
    let mut no_ipam = node.netkit_conf("1.1.0", json!({}));
    no_ipam.as_object_mut().unwrap().remove("ipam");
    type Case<'a> = (Value, &'a [(&'a str, &'a str)], u64, &'a str);
    let cases: Vec<Case> = vec![
        (node.netkit_conf("0.4.0", json!({})), &add, 1, "does not speak CNI version `0.4.0`"),
        (no_ipam, &add, 7, "`ipam` is missing"),
        (node.netkit_conf("1.1.0", json!({"chainz": []})), &add, 2, "`chainz`"),
        (
            node.netkit_conf("1.1.0", json!({"chains": [{"hook": "peer", "programs": [{"name": "x", "program": "no-such-program"}]}]})),
            &add,
            7,
            "no bundled program named `no-such-program`",
        ),
        (
            node.netkit_conf("1.1.0", json!({"chains": [{"hook": "sideways", "programs": []}]})),
            &add,
            7,
            "unknown hook `sideways`",
        ),
        (
            node.netkit_conf("1.1.0", json!({"chains": [{"hook": "peer", "programs": [{"name": "fw", "program": "firewall", "rules": ["src nowhere deny"]}]}]})),
            &add,
            7,
            "bad rule",
        ),
        (node.netkit_conf("1.1.0", json!({})), &[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")], 4, "CNI_CONTAINERID"),
        (node.netkit_conf("1.1.0", json!({})), &[("CNI_COMMAND", "BOGUS")], 4, "unknown CNI_COMMAND"),
    ];
    for (conf, env, code, text) in cases {
        let (ok, e) = node.plugin(env, &conf);
        assert!(!ok, "{conf} was accepted");
        assert_eq!(e["code"], code, "{conf}: {e}");
        let all = format!("{} {}", e["msg"], e["details"]);
        assert!(all.contains(text), "{conf}: `{text}` not in {all}");
        assert_eq!(node.leftovers(), Vec::<String>::new(), "{conf} left something");
    }
    let peers = stdout(&pod.ip(&["-j", "link", "show", "type", "netkit"]));
    assert_eq!(peers.trim(), "[]");
}

#[test]
fn l2_mode_and_cni_1_0_0() {
    require_cni!();
    let node = Node::new("cnil");
    node.ns.ip_ok(&["addr", "add", "10.99.0.1/32", "dev", "lo"]);
    let conf = node.netkit_conf("1.0.0", json!({"mode": "l2"}));
    let list = json!({"cniVersion": "1.0.0", "name": "pods", "plugins": [conf]});
    let path = node.dir.join("l2.conflist");
    std::fs::write(&path, list.to_string()).unwrap();
    let (a, b) = (TestNs::pod("cnila"), TestNs::pod("cnilb"));
    let ra = node.add(&path, "ctr-a", &a);
    let rb = node.add(&path, "ctr-b", &b);
    assert_eq!(ra["cniVersion"], "1.0.0");
    assert!(ra["interfaces"][1].get("mtu").is_none(), "CNI 1.0.0 results have no mtu: {ra}");
    assert!(ra["interfaces"][1]["mac"].is_string(), "an L2 pod side has a MAC: {ra}");
    assert_eq!(node.ns.ip_link(&Node::host_of(&ra))["linkinfo"]["info_data"]["mode"], "l2");
    // Neighbour resolution through the host's proxy ARP.
    assert!(pings(&a, "10.99.0.1"), "L2 pod a cannot reach the host");
    assert!(pings(&a, &Node::ip_of(&rb)), "L2 pod a cannot reach pod b");
    for (id, pod) in [("ctr-a", &a), ("ctr-b", &b)] {
        assert!(node.cmd("check", &path, id, pod).status.success());
        assert!(node.cmd("del", &path, id, pod).status.success());
    }
    assert_eq!(node.leftovers(), Vec::<String>::new());
}

#[test]
fn dual_stack_pods() {
    require_cni!();
    let node = Node::new("cni6");
    let ranges = json!({"type": "host-local", "ranges": [[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd00:22::/64"}]],
        "dataDir": node.ipam_dir()});
    let list = node.conflist(json!({"ipam": ranges}));
    let (a, b) = (TestNs::pod("cni6a"), TestNs::pod("cni6b"));
    let ra = node.add(&list, "ctr-a", &a);
    let rb = node.add(&list, "ctr-b", &b);
    let v6 = |r: &Value| -> String {
        let ip = r["ips"].as_array().unwrap().iter().find(|ip| ip["address"].as_str().unwrap().contains(':'));
        ip.unwrap_or_else(|| panic!("no IPv6 address in {r}"))["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .into()
    };
    let routes = ra["routes"].as_array().unwrap();
    assert!(routes.iter().any(|r| r["dst"] == "::/0") && routes.iter().any(|r| r["dst"] == "0.0.0.0/0"), "{ra}");
    assert!(pings(&a, &v6(&rb)), "pod a cannot reach pod b over IPv6");
    assert!(pings(&b, &Node::ip_of(&ra)), "pod b cannot reach pod a over IPv4");
    for (id, pod) in [("ctr-a", &a), ("ctr-b", &b)] {
        assert!(node.cmd("check", &list, id, pod).status.success());
        assert!(node.cmd("del", &list, id, pod).status.success());
    }
    assert_eq!(node.leftovers(), Vec::<String>::new());
}

/// `netkit apply` and the plugin on one node, started together: an apply
/// stopped half-way and then killed, a second apply waiting for it, three
/// ADDs meanwhile; then three DELs together with two pruning applies. Each
/// writer keeps to its own objects (apply's record and pins, the plugin's
/// per-attachment records and pins): nothing waits for the other kind,
/// nothing is lost, nothing is left.
#[test]
fn applies_and_cni_calls_started_together_keep_to_their_own() {
    use std::io::{BufRead as _, BufReader};
    require_cni!();
    let node = Node::new("cnic");
    let list = node.conflist(json!({"chains": firewall_chain()}));
    let pods: Vec<TestNs> = (0..3).map(|i| TestNs::pod(&format!("cnic{i}"))).collect();
    let (pa, pb) = (TestNs::pod("cnica"), TestNs::pod("cnicb"));
    let files = Files::new();
    let spec = |with_b: bool| {
        let b = if with_b {
            format!("  - name: nkb\n    peer: {{name: eth0, netns: {}}}\n", pb.name)
        } else {
            String::new()
        };
        files.spec(&format!(
            "pairs:\n  - name: nka\n    peer: {{name: eth0, netns: {}}}\n{b}chains:\n  - device: nka\n    hook: peer\n    programs:\n      - {{name: fw, program: firewall, rules: ['src 10.0.0.9 deny']}}\n      - {{name: count, program: counter}}\n  - device: nka\n    hook: primary\n    programs:\n      - {{name: count, program: counter}}\n",
            pa.name
        ))
    };
    let (both, only_a) = (spec(true), spec(false));
    let netkit = |verb: &str, path: &str, extra: &[&str]| {
        let mut c = common::netkit();
        c.args(["-n", &node.ns.name, "--bpffs", &node.bpffs.arg(), verb, "-f", path, "--state", &files.state()])
            .args(extra)
            .env_remove("NETKIT_FAULT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    // Reads a child's stderr up to a line containing `what`.
    let until = |child: &mut std::process::Child, what: &str| {
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            assert!(err.read_line(&mut line).unwrap() > 0, "no line with {what:?} in:\n{seen}");
            seen += &line;
            if line.contains(what) {
                return err;
            }
        }
    };
    let finished = |child: std::process::Child, what: &str| {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{what}: {}{}", stdout(&o), common::stderr(&o));
    };
    let apply_pins = || {
        let ns = &node.ns.name;
        let mut p = witness::pins(&node.bpffs.path.join("netkit").join("links"));
        p.sort();
        (p, [format!("{ns}/nka/peer/count"), format!("{ns}/nka/peer/fw"), format!("{ns}/nka/primary/count")])
    };

    // The first apply holds its record's lock, stopped after one link.
    let mut first = netkit("apply", &both, &[]).env("NETKIT_FAULT", "apply:attach:2:hang").spawn().unwrap();
    let _e1 = until(&mut first, "hanging");
    let mut second = netkit("apply", &both, &[]).spawn().unwrap();
    let e2 = until(&mut second, "waiting for the other writer");
    // The plugin's ADDs, started together meanwhile, wait for no apply.
    let adds: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| node.cmd_of("add", &list, &format!("ctr-{i}"), p).stdout(Stdio::piped()).spawn().unwrap())
        .collect();
    for (i, a) in adds.into_iter().enumerate() {
        finished(a, &format!("ADD ctr-{i} while an apply held its lock"));
    }
    // The first apply dies at the worst moment; the second takes over.
    first.kill().unwrap();
    first.wait().unwrap();
    second.stderr = Some(e2.into_inner());
    finished(second, "the waiting apply");

    let diff = netkit("diff", &both, &[]).output().unwrap();
    assert_eq!(diff.status.code(), Some(0), "{}", common::stderr(&diff));
    let (got, want) = apply_pins();
    assert_eq!(got, want, "apply's pins, no stray one");
    for (hook, n) in [(witness::NETKIT_PEER, 2), (witness::NETKIT_PRIMARY, 1)] {
        let c = witness::chain(&node.ns, "nka", hook);
        assert_eq!(c.slots.len(), n, "{c:?}");
        assert!(c.links().iter().all(|l| *l != 0), "every program owned by a link: {c:?}");
    }
    for (i, p) in pods.iter().enumerate() {
        let id = format!("ctr-{i}");
        let o = node.cmd("check", &list, &id, p);
        assert!(o.status.success(), "CHECK {id}: {}", stdout(&o));
        assert!(node.pin(&id, "fw").is_some(), "{id}'s firewall is pinned");
    }

    // DELs and two pruning applies, all started together.
    let dels: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| node.cmd_of("del", &list, &format!("ctr-{i}"), p).stdout(Stdio::piped()).spawn().unwrap())
        .collect();
    let prunes: Vec<_> = (0..2).map(|_| netkit("apply", &only_a, &["--prune"]).spawn().unwrap()).collect();
    for (i, d) in dels.into_iter().enumerate() {
        finished(d, &format!("DEL ctr-{i}"));
    }
    for p in prunes {
        finished(p, "a pruning apply");
    }
    let diff = netkit("diff", &only_a, &["--prune"]).output().unwrap();
    assert_eq!(diff.status.code(), Some(0), "{}", common::stderr(&diff));
    let (got, want) = apply_pins();
    assert_eq!(got, want, "apply's pins survived the plugin's DELs");
    assert_eq!(node.leftovers(), vec![r#"device "nka""#.to_string()], "only apply's pair is left");
}

#[test]
fn an_add_retried_after_the_plugin_was_killed_completes_with_what_it_made() {
    require_cni!();
    common::cni::retried_after_a_kill(&Node::new("cnir"), json!({}), Some(json!({"mode": "l2"})));
}
