//! The CNI plugin with veth pairs, on any kernel with veth: on the host,
//! whose kernel has tcx and no netkit, and in the VM's three kernels.
//! `"kind": "veth"` and `"kind": "auto"` through libcni with the reference
//! plugins (host-local, tuning), as in the netkit suite: pods reach each
//! other with the firewall's verdicts and exact hit counts, CHECK, DEL, GC,
//! the pod cut off until its chain is attached, nothing left behind.

mod common;

use common::{
    TestNs,
    cni::{FIREWALL_DENIES, Node, firewall_chain},
    send_udp, stderr, stdout, udp_delivers, witness,
};
use serde_json::{Value, json};

fn has_netkit() -> bool {
    netkit::os::probe::probe(netkit::os::probe::Feature::Netkit).is_supported()
}

fn is_up(link: &Value) -> bool {
    link["flags"].as_array().unwrap().iter().any(|f| f == "UP")
}

#[test]
fn veth_pods_reach_each_other_and_the_firewall_cuts_one_off() {
    require_cni_parts!();
    let node = Node::new("cniv");
    node.ns.ip_ok(&["addr", "add", "10.99.0.1/32", "dev", "lo"]);
    let list = node.conflist(json!({"kind": "veth", "mtu": 1400, "chains": firewall_chain()}));
    let (a, b, c) = (TestNs::pod("cniva"), TestNs::pod("cnivb"), TestNs::pod("cnivc"));
    let ra = node.add(&list, "ctr-a", &a);
    let rb = node.add(&list, "ctr-b", &b);
    let rc = node.add(&list, "ctr-c", &c);
    assert_eq!(Node::ip_of(&rb), FIREWALL_DENIES, "host-local hands out addresses in order: {rb}");

    // A veth pair, up at both ends once ADD is done, with the MTU asked for.
    let host_a = Node::host_of(&ra);
    let link = node.ns.ip_link(&host_a);
    assert_eq!(link["linkinfo"]["info_kind"], "veth", "{link}");
    assert_eq!(link["mtu"], 1400);
    assert!(is_up(&link), "{link}");
    let pod_end = a.ip_link("eth0");
    assert_eq!(pod_end["linkinfo"]["info_kind"], "veth", "{pod_end}");
    assert!(is_up(&pod_end), "{pod_end}");
    assert_eq!(ra["interfaces"][1]["mac"], pod_end["address"], "a veth end has a MAC, reported: {ra}");
    // The chain on the peer hook is the host end's tcx ingress, pinned there.
    assert_eq!(witness::chain(&node.ns, &host_a, witness::attach_type("ingress")).progs().len(), 1);
    assert!(witness::chain(&node.ns, &host_a, witness::attach_type("egress")).progs().is_empty());
    let pin = node.pin("ctr-a", "fw").expect("the firewall's link is pinned under the container's directory");
    assert!(pin.ends_with(format!("{host_a}/ingress/fw")), "{}", pin.display());

    // Traffic: the pods and the host reach each other; the firewall cuts b off.
    let (ip_a, ip_c) = (Node::ip_of(&ra), Node::ip_of(&rc));
    // (UDP from the test's own sockets: the host has no ping.)
    assert!(udp_delivers(&a, &node.ns, "10.99.0.1"), "pod a cannot reach the host");
    assert!(udp_delivers(&a, &c, &ip_c) && udp_delivers(&c, &a, &ip_a), "pods a and c cannot reach each other");
    assert!(!udp_delivers(&b, &node.ns, "10.99.0.1"), "the firewall let pod b reach the host");
    // Five datagrams from b, each a hit of the deny rule and no more (its
    // neighbour requests are not IP and pass).
    let host_b = Node::host_of(&rb);
    let fw_b = format!("pin:{}", node.pin("ctr-b", "fw").unwrap().display());
    let hits = |ns: &TestNs| -> u64 {
        let rules = ns.json(&["firewall", "list", &host_b, "peer", &fw_b]);
        rules.as_array().unwrap().iter().find(|r| r["id"] != 0).map(|r| r["hits"].as_u64().unwrap()).unwrap()
    };
    let before = hits(&node.ns);
    assert_eq!(send_udp(&b, &node.ns, "10.99.0.1", 40_001, 5), 0, "the firewall let pod b reach the host");
    assert_eq!(hits(&node.ns) - before, 5, "one hit per datagram");
    assert!(!udp_delivers(&b, &a, &ip_a), "the firewall let pod b reach pod a");
    assert!(udp_delivers(&a, &b, FIREWALL_DENIES), "what is sent to pod b passes (the chain is on what it sends)");

    for (id, pod) in [("ctr-a", &a), ("ctr-b", &b), ("ctr-c", &c)] {
        let o = node.cmd("check", &list, id, pod);
        assert!(o.status.success(), "CHECK {id}: {}{}", stdout(&o), stderr(&o));
    }
    // A rule written straight into pod b's firewall, which no query of its
    // hook shows, is a difference CHECK names.
    node.ns.ok(&["firewall", "add", &host_b, "peer", &fw_b, "dst", "10.1.0.0/16", "allow"]);
    let o = node.cmd("check", &list, "ctr-b", &b);
    assert!(!o.status.success() && stdout(&o).contains("edit"), "{}{}", stdout(&o), stderr(&o));
    // A host end taken down by another tool is a difference CHECK names.
    node.ns.ip_ok(&["link", "del", &Node::host_of(&rc)]);
    let o = node.cmd("check", &list, "ctr-c", &c);
    assert!(!o.status.success() && stdout(&o).contains("missing"), "{}", stdout(&o));

    for (id, pod) in [("ctr-a", &a), ("ctr-b", &b), ("ctr-c", &c)] {
        let o = node.cmd("del", &list, id, pod);
        assert!(o.status.success(), "DEL {id}: {}", stdout(&o));
    }
    assert_eq!(node.leftovers(), Vec::<String>::new());
}

#[test]
fn auto_gives_netkit_where_the_kernel_has_it_and_veth_elsewhere() {
    require_cni_parts!();
    let node = Node::new("cnia");
    let (kind, peer_hook) =
        if has_netkit() { ("netkit", witness::NETKIT_PEER) } else { ("veth", witness::TCX_INGRESS) };
    let list = node.conflist(json!({"kind": "auto", "chains": firewall_chain()}));
    let a = TestNs::pod("cniaa");
    let o = node.runtime(&["add", &list.display().to_string(), "ctr-a", &a.path.display().to_string(), "eth0"], None);
    assert!(o.status.success(), "ADD: {}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains(&format!("kind auto: container ctr-a gets a {kind} pair")), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let host = Node::host_of(&r);
    assert_eq!(node.ns.ip_link(&host)["linkinfo"]["info_kind"], kind);
    assert_eq!(witness::chain(&node.ns, &host, peer_hook).progs().len(), 1);
    assert!(node.cmd("check", &list, "ctr-a", &a).status.success());
    let o = node.runtime(&["status", &list.display().to_string()], None);
    assert!(o.status.success(), "STATUS: {}", stdout(&o));
    assert!(node.cmd("del", &list, "ctr-a", &a).status.success());
    assert_eq!(node.leftovers(), Vec::<String>::new());

    // netkit's settings where the pair is a veth: a configuration error, nothing made.
    let (conf, why) = if has_netkit() {
        (json!({"kind": "veth", "policy": "drop"}), "`kind` is veth")
    } else {
        (json!({"kind": "auto", "policy": "drop"}), "`kind` auto gives veth pairs here (this kernel")
    };
    let e = node.add_fails(&node.conflist(conf), "ctr-b", &a, None);
    assert_eq!(e["code"], 7, "{e}");
    assert!(e["details"].as_str().unwrap().contains(&format!("`policy` is a netkit setting and {why}")), "{e}");
    assert_eq!(node.leftovers(), Vec::<String>::new());
}

#[test]
fn a_veth_pod_is_cut_off_until_its_chain_is_attached() {
    require_cni_parts!();
    let node = Node::new("cnivh");
    node.ns.ip_ok(&["addr", "add", "10.99.0.1/32", "dev", "lo"]);
    let conf = node.netkit_conf("1.1.0", json!({"kind": "veth", "chains": firewall_chain()}));
    let pod = TestNs::pod("cnivha");
    let pod_path = pod.path.display().to_string();
    let env = [("CNI_CONTAINERID", "ctr-h"), ("CNI_NETNS", pod_path.as_str()), ("CNI_IFNAME", "eth0")];
    // ADD stops inside the apply engine, after the pair is made and before
    // the chain's first program is attached.
    let mut child = node.hung_add(&env, &conf);

    let links = node.ns.ip(&["-d", "-j", "link", "show", "type", "veth"]);
    let links: Value = serde_json::from_slice(&links.stdout).unwrap();
    let host = links[0]["ifname"].as_str().unwrap().to_string();
    assert!(!is_up(&links[0]), "the host end is down until the chain is attached: {links}");
    assert!(witness::chain(&node.ns, &host, witness::TCX_INGRESS).progs().is_empty());
    // Even brought up, addressed and routed by hand inside the pod, the pod
    // cannot send: the other end is down, so its device has no carrier.
    pod.ip_ok(&["link", "set", "eth0", "up"]);
    pod.ip_ok(&["addr", "add", "10.22.0.50/24", "dev", "eth0"]);
    pod.ip_ok(&["route", "add", "default", "dev", "eth0"]);
    assert!(!udp_delivers(&pod, &node.ns, "10.99.0.1"), "the pod sent a packet before its chain was attached");

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
fn veth_attachments_are_deleted_and_collected_like_netkit_ones() {
    require_cni_parts!();
    common::cni::del_and_gc(&Node::new("cnivd"), json!({"kind": "veth"}));
}

#[test]
fn a_veth_add_or_del_killed_at_any_step_is_cleaned_up_by_del() {
    require_cni_parts!();
    common::cni::killed_at_any_step_then_del(&Node::new("cnivx"), json!({"kind": "veth"}));
}

#[test]
fn a_veth_add_retried_after_the_plugin_was_killed_completes_with_what_it_made() {
    require_cni_parts!();
    // A pair's kind is fixed at creation: where the kernel has netkit, a
    // retry configured for netkit finds the killed ADD's veth not as
    // configured.
    let mismatch = has_netkit().then(|| json!({"kind": "netkit"}));
    common::cni::retried_after_a_kill(&Node::new("cnivr"), json!({"kind": "veth"}), mismatch);
}

#[test]
fn an_expedited_add_killed_while_it_attaches_is_put_back_by_del() {
    require_cni_parts!();
    let _knob = common::RcuKnob::zero();
    let read = common::RcuKnob::read;
    let node = Node::new("cnive");
    let conf = node.netkit_conf("1.1.0", json!({"kind": "auto", "expedite": true, "chains": firewall_chain()}));
    let pod = TestNs::pod("cnivea");
    let pod_path = pod.path.display().to_string();
    let env = [("CNI_CONTAINERID", "ctr-e"), ("CNI_NETNS", pod_path.as_str()), ("CNI_IFNAME", "eth0")];
    let mut child = node.hung_add(&env, &conf);
    assert_eq!(read(), "1", "expedited while the ADD attaches");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(read(), "1", "a killed plugin cannot put it back");
    let mut del = vec![("CNI_COMMAND", "DEL")];
    del.extend(env);
    let (ok, e) = node.plugin(&del, &conf);
    assert!(ok, "DEL after a killed ADD: {e}");
    assert_eq!(read(), "0", "the runtime's DEL put it back");
    assert_eq!(node.leftovers(), Vec::<String>::new());
    // A whole expedited ADD leaves it as it found it.
    let mut add = vec![("CNI_COMMAND", "ADD")];
    add.extend(env);
    let (ok, e) = node.plugin(&add, &conf);
    assert!(ok, "{e}");
    assert_eq!(read(), "0");
    let (ok, e) = node.plugin(&del, &conf);
    assert!(ok, "{e}");
}
