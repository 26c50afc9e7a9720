//! netkit primary and peer hooks against a real kernel (VM): the shared hook
//! cases on both chains, their independence, primary/peer targeting, the
//! revision of an emptied hook, and the peer policy with programs.

mod common;

use common::{
    hooks::{self, HookEnv},
    udp_delivers,
};
use netkit::mprog::Hook;

each_hook_case!(hook_tests(require_netkit, primary, Hook::Primary, HookEnv::netkit("np", &[])));
each_hook_case!(hook_tests(require_netkit, peer, Hook::Peer, HookEnv::netkit("nq", &[])));

#[test]
fn primary_and_peer_chains_are_independent() {
    require_netkit!();
    let env = HookEnv::netkit("nind", &[]);
    let p = env.attach(Hook::Primary, "next", &[]);
    let (peer_rev, peer) = env.chain(Hook::Peer);
    assert!(peer.is_empty(), "an attach on primary leaves peer alone");
    assert_eq!(peer_rev, 1);
    let q = env.attach(Hook::Peer, "next", &[]);
    assert_eq!(env.progs(Hook::Primary), vec![p["prog_id"].as_u64().unwrap()]);
    assert_eq!(env.progs(Hook::Peer), vec![q["prog_id"].as_u64().unwrap()]);
    // The same program may sit on both chains: they are different hooks.
    env.ok(&["attach", "dev0", "peer", &format!("id:{}", p["prog_id"])]);
    assert_eq!(env.progs(Hook::Peer).len(), 2);
    let listed = env.json(&["device", "show", "dev0"]);
    assert_eq!(listed["programs"]["primary"], 1);
    assert_eq!(listed["programs"]["peer"], 2);
    let both = env.json(&["query", "dev0"]);
    let hooks: Vec<&str> = both.as_array().unwrap().iter().map(|h| h["hook"].as_str().unwrap()).collect();
    assert_eq!(hooks, vec!["ingress", "egress", "primary", "peer"], "a primary shows its tcx and netkit hooks");
}

#[test]
fn the_peer_is_reached_through_the_primary() {
    require_netkit!();
    let env = HookEnv::netkit("nacc", &[]);
    let out = netkit_in(&env, &env.pod.name, &["attach", "eth0", "peer", "pass"]);
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(err.contains("eth0 is the peer of a netkit pair"), "{err}");
    assert!(err.contains(&format!("use dev0 in network namespace {}", env.ns.name)), "{err}");
    assert!(err.contains(&format!("`netkit -n {} attach dev0 peer ...`", env.ns.name)), "{err}");
    // tcx hooks work on either end of a netkit pair.
    let ok = netkit_in(&env, &env.pod.name, &["attach", "eth0", "ingress", "pass"]);
    assert!(ok.status.success(), "{}", common::stderr(&ok));
}

/// As on a real node: the primary in the initial namespace, the peer in a
/// pod. From the pod, the way to the primary is to drop `-n`.
#[test]
fn a_primary_in_the_initial_namespace_is_reached_without_n() {
    require_netkit!();
    let pod = common::TestNs::pod("ninit");
    let name = format!("nki{}", std::process::id() % 100_000);
    common::ok(&["device", "add", &name, "--peer", "eth0", "--peer-netns", &pod.name]);
    struct Pair(String);
    impl Drop for Pair {
        fn drop(&mut self) {
            let _ = common::run(&["device", "del", &self.0]);
        }
    }
    let _pair = Pair(name.clone());
    let bpffs = common::Bpffs::new();
    let b = bpffs.arg();
    let err = pod.fails(&["--bpffs", &b, "attach", "eth0", "peer", "pass"]);
    assert!(err.contains(&format!("use {name} in the initial network namespace")), "{err}");
    assert!(err.contains(&format!("`netkit attach {name} peer ...`")), "{err}");
    let o: serde_json::Value =
        serde_json::from_str(&common::ok(&["-j", "--bpffs", &b, "attach", &name, "peer", "pass", "--pin", "x"]))
            .unwrap();
    let err = pod.fails(&["--bpffs", &b, "detach", "eth0", "peer", &format!("link:{}", o["link_id"])]);
    assert!(err.contains(&format!("`netkit detach {name} peer ...`")), "{err}");
    common::ok(&["--bpffs", &b, "detach", &name, "peer", "x"]);
    let err = pod.fails(&["device", "set", "eth0", "--policy", "drop"]);
    assert!(err.contains(&format!("`netkit device set {name} ...`")), "{err}");
}

fn netkit_in(env: &HookEnv, ns: &str, args: &[&str]) -> std::process::Output {
    let mut a = vec!["-n", ns, "--bpffs"];
    let b = env.bpffs.arg();
    a.push(&b);
    a.extend_from_slice(args);
    common::run(&a)
}

#[test]
fn an_emptied_netkit_hook_keeps_counting_revisions() {
    require_netkit!();
    let env = HookEnv::netkit("nrev", &[]);
    assert_eq!(env.chain(Hook::Primary).0, 1);
    env.attach(Hook::Primary, "next", &["--pin", "x"]);
    env.ok(&["detach", "dev0", "primary", "x"]);
    assert_eq!(env.chain(Hook::Primary).0, 1, "an empty hook's query reports revision 1");
    let err = env.fails(&["attach", "dev0", "primary", "pass", "--expected-revision", "1"]);
    assert!(err.contains("emptied netkit hook keeps counting"), "{err}");
    // Without an explicit revision the tool gets it right.
    let o = env.attach(Hook::Primary, "pass", &[]);
    assert_eq!(o["position"], 1);
}

#[test]
fn with_peer_policy_drop_the_pod_is_silent_until_a_program_passes() {
    require_netkit!();
    let env = HookEnv::netkit("npol", &["--peer-policy", "drop"]);
    assert!(!udp_delivers(&env.pod, &env.ns, hooks::HOST_IP), "peer policy drop: nothing leaves the pod");
    assert!(env.traffic(Hook::Primary), "the primary's policy is pass");
    let pass = env.attach(Hook::Peer, "pass", &["--pin", "gate"]);
    assert!(env.traffic(Hook::Peer), "a program on the peer hook decides now, and it passes");
    env.ok(&["detach", "dev0", "peer", "gate"]);
    assert!(!env.traffic(Hook::Peer), "without programs the policy (drop) applies again");
    env.attach(Hook::Peer, "next", &[]);
    assert!(env.traffic(Hook::Peer), "when the last program returns NEXT the packet passes, whatever the policy");
    env.attach(Hook::Peer, "drop", &["--first"]);
    assert!(!env.traffic(Hook::Peer), "drop first ends the chain");
    let _ = pass;
}

#[test]
fn deleting_the_pair_makes_links_defunct() {
    require_netkit!();
    let env = HookEnv::netkit("ndel", &[]);
    hooks::device_deletion(&env, &[Hook::Primary, Hook::Peer, Hook::Ingress], || {
        // Deleting the peer, from inside the pod, removes the primary too.
        let out = netkit_in(&env, &env.pod.name, &["device", "del", "eth0"]);
        assert!(out.status.success(), "{}", common::stderr(&out));
    });
}

#[test]
fn a_peer_redirect_is_refused_on_the_primary_peer_and_egress_hooks() {
    require_netkit!();
    hooks::peer_redirects_only_at_tc_ingress(&HookEnv::netkit("nrp", &[]), &[Hook::Primary, Hook::Peer, Hook::Egress]);
}
