//! tcx ingress and egress hooks against a real kernel: a veth pair (on the
//! host, and in the VM, which loads the veth module of its kernel at boot),
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

#[test]
fn namespaces_are_reached_by_pid_by_path_and_by_a_bind_mount() {
    require_root!();
    // A pod's namespace as a runtime makes it: no name under /run/netns.
    let pod = common::TestNs::unnamed();
    let bpffs = common::Bpffs::new();
    let b = bpffs.arg();
    let path = pod.path.display().to_string();
    let run = |ns: &str, args: &[&str]| {
        let mut a = vec!["-n", ns, "--bpffs", b.as_str(), "-j"];
        a.extend_from_slice(args);
        let text = common::ok(&a);
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("{a:?}: {e}: {text}"))
    };
    let attached = run(&pod.name, &["attach", "lo", "ingress", "pass", "--pin", "p"]);
    // The kernel, asked from inside that namespace, has it on lo.
    let chain = common::witness::chain(&pod, "lo", common::witness::attach_type("ingress"));
    assert_eq!(chain.links(), vec![attached["link_id"].as_u64().unwrap()]);
    let q = run(&path, &["query", "lo", "ingress"]);
    assert_eq!(q[0]["programs"][0]["link_id"], attached["link_id"], "by path: {q}");

    // A bind mount anywhere names the same namespace.
    let bind = std::env::temp_dir().join(format!("netkit-test-ns-{}-{}", std::process::id(), common::unique()));
    std::fs::write(&bind, "").unwrap();
    let mounted = std::process::Command::new("mount").arg("--bind").arg(&pod.path).arg(&bind).status().unwrap();
    assert!(mounted.success(), "bind-mounting the namespace");
    let listed = run(&bind.display().to_string(), &["link", "list"]);
    let inode_name = format!("netns-{}", pod.inode());
    assert_eq!(listed[0]["netns"], inode_name.as_str(), "an unnamed namespace is named by its inode: {listed}");
    assert!(listed[0]["pin"].as_str().unwrap().contains(&format!("/{inode_name}/lo/ingress/p")), "{listed}");
    // Only that namespace's pins are its own: the initial namespace sees none of them as here.
    run(&pod.name, &["detach", "lo", "ingress", "p"]);
    assert!(common::witness::chain(&pod, "lo", common::witness::attach_type("ingress")).progs().is_empty());
    let _ = std::process::Command::new("umount").arg(&bind).status();
    let _ = std::fs::remove_file(&bind);

    for (ns, says) in [
        ("/proc/version", "is not a network namespace"),
        ("/proc/self/ns/uts", "is not a network namespace"),
        ("/nonexistent/ns", "does not exist"),
        ("pid:4000000000", "no process 4000000000"),
        ("pid:x", "pid:PID"),
    ] {
        let err = common::fails(&["-n", ns, "query"]);
        assert!(err.contains(says), "-n {ns}: {err}");
    }
}
