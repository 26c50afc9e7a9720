//! Links on a netkit pair's peer hook, managed through the primary, on a node
//! where the primary's ifindex is not the peer's (as on any real node): the
//! kernel keeps the peer device in such a link and reports the peer's
//! ifindex, counted in the peer's namespace. Every step is checked against a
//! chain read by an independent witness (tests/common/witness.rs).

mod common;

use common::{
    Bpffs, TestNs, fails, ok, send_udp,
    witness::{self, Chain, NETKIT_PEER, NETKIT_PRIMARY},
};
use serde_json::Value;

/// A node with devices made before the pair, a pair `h0` whose peer is
/// `peer` (in `pod`, or next to the primary when `pod` is None), and a bpffs.
struct Node {
    host: TestNs,
    pod: Option<TestNs>,
    peer: &'static str,
    bpffs: Bpffs,
}

impl Node {
    fn new(tag: &str, peer_in_pod: bool) -> Self {
        let host = TestNs::new(tag);
        let pod = peer_in_pod.then(|| TestNs::pod(&format!("{tag}p")));
        let node = Self { host, pod, peer: if peer_in_pod { "eth0" } else { "s1" }, bpffs: Bpffs::new() };
        // Devices that were there before the pod: the primary's ifindex moves up.
        node.nk(&["device", "add", "f0", "--peer", "f1"]);
        let mut add = vec!["device", "add", "h0", "--peer", node.peer, "--up"];
        if let Some(pod) = &node.pod {
            add.extend(["--peer-netns", pod.name.as_str()]);
        }
        node.nk(&add);
        assert_ne!(node.host.ifindex_of("h0"), node.peer_ifindex(), "the test needs different ifindexes");
        node
    }

    /// The namespace the peer lives in.
    fn peer_ns(&self) -> &TestNs {
        self.pod.as_ref().unwrap_or(&self.host)
    }

    /// The peer's ifindex in its own namespace, by the witness.
    fn peer_ifindex(&self) -> u32 {
        self.peer_ns().ifindex_of(self.peer)
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<String> {
        let mut a = vec!["-n".to_string(), self.host.name.clone(), "--bpffs".into(), self.bpffs.arg()];
        a.extend(args.iter().map(|s| s.to_string()));
        a
    }

    fn nk(&self, args: &[&str]) -> String {
        ok(&self.args(args).iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn nk_fails(&self, args: &[&str]) -> String {
        fails(&self.args(args).iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        let text = self.nk(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{a:?}: no JSON ({e}): {text}"))
    }

    /// The chain on a netkit hook of `dev`, read by the witness.
    fn chain(&self, dev: &str, attach_type: u32) -> Chain {
        witness::chain(&self.host, dev, attach_type)
    }

    fn peer_chain(&self) -> Chain {
        self.chain("h0", NETKIT_PEER)
    }
}

fn id(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// (program, link) of an attach/update outcome.
fn slot(v: &Value) -> (u64, u64) {
    (id(v, "prog_id"), id(v, "link_id"))
}

/// The sequence, then every way to name a link, link show/list,
/// firewall and stats through a link, and the pair's deletion.
fn peer_links_are_managed_through_the_primary(node: &Node) {
    let c = node.json(&["attach", "h0", "peer", "counter", "--pin", "c"]);
    assert_eq!(node.peer_chain().slots, vec![slot(&c)]);
    let fw = node.json(&["attach", "h0", "peer", "firewall", "--before", "c", "--pin", "fw"]);
    assert_eq!(node.peer_chain().slots, vec![slot(&fw), slot(&c)]);
    assert!(node.chain("h0", NETKIT_PRIMARY).slots.is_empty(), "the primary hook is another chain");

    // update by pin name: same link, same slot, new program.
    let rev = node.peer_chain().revision;
    let u = node.json(&["update", "h0", "peer", "fw", "firewall", "--set", "default=deny"]);
    assert_eq!(id(&u, "link_id"), id(&fw, "link_id"), "update keeps the link");
    assert_ne!(id(&u, "prog_id"), id(&fw, "prog_id"));
    let after = node.peer_chain();
    assert_eq!(after.slots, vec![slot(&u), slot(&c)]);
    assert_eq!(after.revision, rev + 1);

    // link show and link list: the pair's primary and the peer hook; the
    // kernel's ifindex is the peer's, in the peer's namespace.
    for r in ["c", &format!("link:{}", id(&c, "link_id")), &format!("pin:{}", c["pin"].as_str().unwrap())] {
        let shown = node.json(&["link", "show", r]);
        assert_eq!(shown["device"], "h0", "{r}: {shown}");
        assert_eq!(shown["hook"], "peer", "{r}: {shown}");
        assert_eq!(shown["state"], "attached", "{r}: {shown}");
        assert_eq!(shown["ifindex"], node.peer_ifindex(), "{r}: {shown}");
        assert_eq!(shown["link_id"], c["link_id"], "{r}: {shown}");
    }
    let list = node.json(&["link", "list"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|l| l["device"] == "h0" && l["hook"] == "peer" && l["state"] == "attached"), "{list:?}");

    // firewall and stats through a link on the peer hook.
    let fw_link = format!("link:{}", id(&fw, "link_id"));
    let rule = node.json(&["firewall", "add", "h0", "peer", &fw_link, "dst", "10.66.0.1/32", "allow"]);
    assert_eq!(rule["prog_id"], u["prog_id"], "the rule went to the program the link runs now");
    let listed = node.json(&["firewall", "list", "h0", "peer", "fw"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "the rule and the default: {listed}");
    let stats = node.json(&["stats", "h0", "peer"]);
    let progs = stats[0]["programs"].as_array().unwrap();
    assert_eq!(progs.iter().map(|p| p["link_id"].as_u64().unwrap()).collect::<Vec<_>>(), after.links());

    // update by link:ID.
    let u2 = node.json(&["update", "h0", "peer", &fw_link, "firewall"]);
    assert_eq!(node.peer_chain().slots, vec![slot(&u2), slot(&c)]);

    // detach by name, by pin:PATH and by link:ID.
    let d = node.json(&["detach", "h0", "peer", "c"]);
    assert!(!std::path::Path::new(d["pin"].as_str().unwrap()).exists(), "detach removes the pin");
    assert_eq!(node.peer_chain().slots, vec![slot(&u2)]);
    let p = node.json(&["attach", "h0", "peer", "pass", "--after", &fw_link, "--pin", "p"]);
    assert_eq!(node.peer_chain().slots, vec![slot(&u2), slot(&p)]);
    node.json(&["detach", "h0", "peer", &format!("pin:{}", p["pin"].as_str().unwrap())]);
    assert_eq!(node.peer_chain().slots, vec![slot(&u2)]);
    node.json(&["detach", "h0", "peer", &fw_link]);
    assert!(node.peer_chain().slots.is_empty());
    assert!(node.json(&["link", "list"]).as_array().unwrap().is_empty(), "no pins left");

    // Deleting the pair leaves defunct links; prune removes their pins.
    node.json(&["attach", "h0", "peer", "pass", "--pin", "d1"]);
    node.json(&["attach", "h0", "primary", "pass", "--pin", "d2"]);
    node.nk(&["device", "del", "h0"]);
    let list = node.json(&["link", "list"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|l| l["state"] == "defunct" && l["ifindex"] == 0), "{list:?}");
    let pruned = node.json(&["link", "prune"]);
    assert_eq!(pruned.as_array().unwrap().len(), 2);
    assert!(node.json(&["link", "list"]).as_array().unwrap().is_empty());
}

#[test]
fn peer_links_in_a_pod_namespace() {
    require_netkit!();
    let node = Node::new("plpod", true);
    peer_links_are_managed_through_the_primary(&node);
}

#[test]
fn peer_links_with_the_peer_beside_the_primary() {
    require_netkit!();
    let node = Node::new("plsame", false);
    peer_links_are_managed_through_the_primary(&node);
}

/// Two pods whose peers are both ifindex 2 in their own namespaces: a link
/// of one pair is never taken for a link of the other, whichever way it is
/// named, and nothing changes on either chain.
#[test]
fn a_link_of_another_pairs_peer_is_refused() {
    require_netkit!();
    let node = Node::new("plx", true);
    let pod2 = TestNs::pod("plx2");
    node.nk(&["device", "add", "h1", "--peer", "eth0", "--peer-netns", &pod2.name]);
    assert_eq!(pod2.ifindex_of("eth0"), node.peer_ifindex(), "both peers have the same ifindex");
    let mine = node.json(&["attach", "h0", "peer", "pass", "--pin", "mine"]);
    let other = node.json(&["attach", "h1", "peer", "pass", "--pin", "other"]);
    let (before0, before1) = (node.peer_chain(), node.chain("h1", NETKIT_PEER));
    let other_pin = format!("pin:{}", other["pin"].as_str().unwrap());
    let other_link = format!("link:{}", id(&other, "link_id"));
    for r in [other_link.as_str(), other_pin.as_str()] {
        for args in [vec!["update", "h0", "peer", r, "next"], vec!["detach", "h0", "peer", r]] {
            let err = node.nk_fails(&args);
            assert!(err.contains("hook of another device, not to h0 peer"), "{args:?}: {err}");
        }
        let err = node.nk_fails(&["firewall", "list", "h0", "peer", r]);
        assert!(err.contains("is not on h0 peer"), "{r}: {err}");
    }
    // A primary link named on the peer hook is another hook.
    let prim = node.json(&["attach", "h0", "primary", "pass"]);
    let err = node.nk_fails(&["detach", "h0", "peer", &format!("link:{}", id(&prim, "link_id"))]);
    assert!(err.contains("attached to a primary hook, not to h0 peer"), "{err}");
    assert_eq!(node.peer_chain(), before0);
    assert_eq!(node.chain("h1", NETKIT_PEER), before1);
    node.json(&["detach", "h0", "peer", "mine"]);
    node.json(&["detach", "h1", "peer", "other"]);
    assert!(node.peer_chain().slots.is_empty() && node.chain("h1", NETKIT_PEER).slots.is_empty());
    let _ = mine;
}

/// What the pod sends crosses the peer hook: the firewall decides and the
/// counter behind it counts, after updates made through the primary.
#[test]
fn firewall_and_counter_on_the_peer_hook_see_the_pods_packets() {
    require_netkit!();
    let node = Node::new("pltraffic", true);
    let pod = node.pod.as_ref().unwrap();
    node.host.disable_ipv6();
    pod.disable_ipv6();
    node.host.ip_ok(&["addr", "add", "10.66.0.1/24", "dev", "h0"]);
    pod.ip_ok(&["addr", "add", "10.66.0.2/24", "dev", "eth0"]);
    let c = node.json(&["attach", "h0", "peer", "counter", "--pin", "c"]);
    node.json(&["attach", "h0", "peer", "firewall", "--before", "c", "--pin", "fw"]);
    let send = |port, n| send_udp(pod, &node.host, "10.66.0.1", port, n);
    assert_eq!(send(7000, 3), 3, "default allow");
    node.json(&["update", "h0", "peer", "fw", "firewall", "--set", "default=deny"]);
    assert_eq!(send(7000, 2), 0, "the updated firewall denies by default");
    node.json(&["firewall", "add", "h0", "peer", "fw", "dst", "10.66.0.1/32", "proto", "udp", "port", "7001", "allow"]);
    assert_eq!(send(7001, 4), 4, "the live rule allows port 7001");
    let stats = node.json(&["stats", "h0", "peer"]);
    let counter =
        stats[0]["programs"].as_array().unwrap().iter().find(|p| p["prog_id"] == c["prog_id"]).cloned().unwrap();
    assert_eq!(counter["packets"], 7, "the counter sees what the firewall let through: {counter}");
    let fw = node.json(&["firewall", "list", "h0", "peer", "fw"]);
    let hits: u64 = fw.as_array().unwrap().iter().filter(|r| r["id"] != 0).map(|r| r["hits"].as_u64().unwrap()).sum();
    assert_eq!(hits, 4, "{fw}");
}
