//! tcx ingress and egress hooks against a real kernel: a veth pair on the
//! host (a netkit pair in the VM, whose kernels have veth only as a module),
//! the peer inside a pod namespace.

mod common;

use common::hooks::{self, HookEnv};
use netkit::mprog::Hook;

each_hook_case!(hook_tests(require_root, ingress, Hook::Ingress, HookEnv::tcx("ti")));
each_hook_case!(hook_tests(require_root, egress, Hook::Egress, HookEnv::tcx("te")));

#[test]
fn deleting_the_device_makes_links_defunct() {
    require_root!();
    let env = HookEnv::tcx("tdel");
    let pair = env.pair;
    hooks::device_deletion(&env, &[Hook::Ingress, Hook::Egress], || match pair {
        hooks::Pair::Veth => env.ns.ip_ok(&["link", "del", "dev0"]),
        hooks::Pair::Netkit => {
            env.ok(&["device", "del", "dev0"]);
        }
    });
}

#[test]
fn query_without_a_device_lists_every_hook_with_programs() {
    require_root!();
    let env = HookEnv::tcx("tq");
    assert!(env.json(&["query"]).as_array().unwrap().is_empty());
    env.attach(Hook::Ingress, "pass", &[]);
    env.attach(Hook::Egress, "pass", &["--plain"]);
    let all = env.json(&["query"]);
    let hooks: Vec<(&str, &str)> =
        all.as_array().unwrap().iter().map(|h| (h["ifname"].as_str().unwrap(), h["hook"].as_str().unwrap())).collect();
    assert_eq!(hooks, vec![("dev0", "ingress"), ("dev0", "egress")]);
    for h in all.as_array().unwrap() {
        let p = &h["programs"][0];
        for key in ["position", "prog_id", "name", "tag", "link_id", "pin"] {
            assert!(p.get(key).is_some(), "{key} missing in {p}");
        }
    }
    assert!(all[1]["programs"][0]["link_id"].is_null() && all[1]["programs"][0]["pin"].is_null());
    let table = env.ok(&["query", "dev0"]);
    assert!(table.contains("ingress") && table.contains("egress") && table.contains("plain"), "{table}");
}

#[test]
fn netkit_hooks_on_a_device_that_is_not_netkit_are_explained() {
    require_root!();
    let env = HookEnv::tcx("tnx");
    let err = env.fails(&["attach", "lo", "primary", "pass"]);
    if netkit::os::probe::probe(netkit::os::probe::Feature::Netkit).is_supported() {
        assert!(err.contains("not a netkit device") && err.contains("ingress and egress"), "{err}");
    } else {
        assert!(err.contains("no netkit"), "{err}");
    }
}
