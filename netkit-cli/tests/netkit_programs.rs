//! Bundled programs on netkit (VM): redirect-peer from an uplink's tcx
//! ingress into a pod behind a netkit pair, and firewall + counter on a
//! pod's peer hook under peer policy drop.

mod common;

use common::{Bpffs, TestNs, json_shape::check, send_udp};
use serde_json::Value;

const POD: &str = "10.88.0.2";
const POD6: &str = "fd88::2";

/// outside --(uplink ext1|ext0)--> host --redirect-peer--> pod (behind nk0|eth0)
struct Topology {
    host: TestNs,
    outside: TestNs,
    pod: TestNs,
    bpffs: Bpffs,
}

impl Topology {
    fn new() -> Self {
        let (host, outside, pod) = (TestNs::new("rh"), TestNs::new("ro"), TestNs::pod("rp"));
        let t = Self { host, outside, pod, bpffs: Bpffs::new() };
        // The uplink: a veth where the kernel has it, else a netkit pair.
        let veth =
            t.host.ip(&["link", "add", "ext0", "type", "veth", "peer", "name", "ext1", "netns", &t.outside.name]);
        if !veth.status.success() {
            t.nk(&t.host, &["device", "add", "ext0", "--peer", "ext1", "--peer-netns", &t.outside.name]);
        }
        t.nk(&t.host, &["device", "add", "nk0", "--peer", "eth0", "--peer-netns", &t.pod.name, "--up"]);
        t.host.ip_ok(&["link", "set", "ext0", "up"]);
        t.outside.ip_ok(&["link", "set", "ext1", "up"]);
        t.host.ip_ok(&["addr", "add", "10.77.0.1/24", "dev", "ext0"]);
        t.outside.ip_ok(&["addr", "add", "10.77.0.2/24", "dev", "ext1"]);
        t.host.ip_ok(&["-6", "addr", "add", "fd77::1/64", "dev", "ext0"]);
        t.outside.ip_ok(&["-6", "addr", "add", "fd77::2/64", "dev", "ext1"]);
        t.pod.ip_ok(&["addr", "add", &format!("{POD}/32"), "dev", "eth0"]);
        t.pod.ip_ok(&["-6", "addr", "add", &format!("{POD6}/128"), "dev", "eth0"]);
        t.outside.ip_ok(&["route", "add", "10.88.0.0/16", "via", "10.77.0.1", "dev", "ext1"]);
        t.outside.ip_ok(&["-6", "route", "add", "fd88::/64", "via", "fd77::1", "dev", "ext1"]);
        t
    }

    fn args<'a>(&'a self, ns: &'a TestNs, args: &[&'a str]) -> Vec<String> {
        let mut a = vec!["-n".to_string(), ns.name.clone(), "--bpffs".into(), self.bpffs.arg()];
        a.extend(args.iter().map(|s| s.to_string()));
        a
    }

    fn nk(&self, ns: &TestNs, args: &[&str]) -> String {
        let a = self.args(ns, args);
        common::ok(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn nk_fails(&self, ns: &TestNs, args: &[&str]) -> String {
        let a = self.args(ns, args);
        common::fails(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn json(&self, ns: &TestNs, args: &[&str]) -> Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.nk(ns, &a)).unwrap()
    }

    fn pod_rx(&self) -> u64 {
        self.json(&self.pod, &["device", "show", "eth0"])["counters"]["rx_packets"].as_u64().unwrap()
    }
}

#[test]
fn redirect_peer_delivers_into_the_pod() {
    require_netkit!();
    let t = Topology::new();
    assert_eq!(send_udp(&t.outside, &t.pod, POD, 3000, 2), 0, "without a redirect the host has no route to the pod");
    t.nk(&t.host, &["attach", "ext0", "ingress", "redirect-peer", "--pin", "rp"]);
    let err = t.nk_fails(&t.host, &["redirect", "add", "ext0", "ingress", POD, "eth0"]);
    assert!(err.contains("no device named `eth0`"), "{err}");
    t.nk(&t.host, &["device", "add", "nk9", "--peer", "nk9p"]);
    let err = t.nk_fails(&t.host, &["redirect", "add", "ext0", "ingress", POD, "nk9p"]);
    assert!(err.contains("not the primary of a netkit pair"), "{err}");
    let err = t.nk_fails(&t.host, &["redirect", "add", "ext0", "ingress", "10.88.0.300", "nk0"]);
    assert!(err.contains("not an IPv4 or IPv6 address") || err.contains("REF"), "{err}");

    check("redirect add", &t.json(&t.host, &["redirect", "add", "ext0", "ingress", POD, "nk0"]));
    t.nk(&t.host, &["redirect", "add", "ext0", "ingress", "rp", POD6, "nk0"]);
    let list = t.json(&t.host, &["redirect", "list", "ext0", "ingress"]);
    check("redirect list", &list);
    let entries: Vec<(&str, &str)> = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["ip"].as_str().unwrap(), e["pair"].as_str().unwrap()))
        .collect();
    assert_eq!(entries, vec![(POD, "nk0"), (POD6, "nk0")]);

    let rx = t.pod_rx();
    assert_eq!(send_udp(&t.outside, &t.pod, POD, 3001, 5), 5, "redirect-peer delivers IPv4 into the pod");
    assert_eq!(send_udp(&t.outside, &t.pod, POD6, 3002, 3), 3, "and IPv6");
    assert!(t.pod_rx() >= rx + 8, "the peer's counters show the packets");
    let stats = t.json(&t.host, &["stats", "ext0", "ingress"]);
    assert_eq!(stats[0]["programs"][0]["redirect"]["redirected"], 8, "{stats}");

    check("redirect del", &t.json(&t.host, &["redirect", "del", "ext0", "ingress", POD]));
    assert_eq!(send_udp(&t.outside, &t.pod, POD, 3003, 2), 0, "a removed entry no longer redirects");
    assert_eq!(send_udp(&t.outside, &t.pod, POD6, 3004, 1), 1);
    let err = t.nk_fails(&t.host, &["redirect", "del", "ext0", "ingress", POD]);
    assert!(err.contains("no redirect entry for 10.88.0.2"), "{err}");
}

#[test]
fn firewall_and_counter_on_a_pods_peer_hook() {
    require_netkit!();
    let host = TestNs::new("fh");
    let pod = TestNs::pod("fp");
    host.disable_ipv6();
    pod.disable_ipv6();
    let bpffs = Bpffs::new();
    let nk = |args: &[&str]| {
        let mut a = vec!["-n", host.name.as_str(), "--bpffs", bpffs.path.to_str().unwrap()];
        a.extend_from_slice(args);
        common::ok(&a)
    };
    nk(&["device", "add", "nk0", "--peer", "eth0", "--peer-netns", &pod.name, "--peer-policy", "drop", "--up"]);
    host.ip_ok(&["addr", "add", "10.99.0.1/24", "dev", "nk0"]);
    pod.ip_ok(&["addr", "add", "10.99.0.2/24", "dev", "eth0"]);
    assert_eq!(send_udp(&pod, &host, "10.99.0.1", 80, 2), 0, "peer policy drop");
    nk(&["attach", "nk0", "peer", "firewall", "--pin", "fw"]);
    nk(&["attach", "nk0", "peer", "counter", "--after", "fw", "--pin", "count"]);
    assert_eq!(
        send_udp(&pod, &host, "10.99.0.1", 80, 3),
        3,
        "allowed by the firewall's default, NEXT through the counter: it passes"
    );
    nk(&["firewall", "add", "nk0", "peer", "dst", "10.99.0.1/32", "proto", "udp", "port", "80", "deny"]);
    assert_eq!(send_udp(&pod, &host, "10.99.0.1", 80, 4), 0, "the rule denies port 80");
    assert_eq!(send_udp(&pod, &host, "10.99.0.1", 81, 1), 1);
    let stats: Value = serde_json::from_str(&nk(&["-j", "stats", "nk0", "peer"])).unwrap();
    let progs = stats[0]["programs"].as_array().unwrap();
    assert_eq!(progs[0]["name"], "firewall");
    assert_eq!(progs[1]["name"], "counter");
    assert_eq!(progs[1]["packets"], 4, "the counter sees only what the firewall let through");
    let rule = progs[0]["firewall"].as_array().unwrap().iter().find(|r| r["id"] == 1).unwrap();
    assert_eq!(rule["hits"], 4);
}
