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

#[test]
fn every_link_on_the_system_is_listed_with_what_holds_it() {
    require_root!();
    let env = HookEnv::tcx("tall");
    let by_id = |all: &serde_json::Value, id: u64| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|l| l["link_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("link {id} not listed: {all}"))
    };
    // Ours; one a process holds (netkit run); one another tool pinned outside our layout.
    let ours = env.attach(Hook::Ingress, "pass", &["--pin", "mine"])["link_id"].as_u64().unwrap();
    let mut run = env.spawn_run(Hook::Egress, "pass");
    let held = env.chain(Hook::Egress).1[0].link.unwrap();
    let theirs = env.attach(Hook::Egress, "next", &["--first", "--pin", "theirs"]);
    let elsewhere = env.bpffs.path.join("other");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let foreign_pin = elsewhere.join("theirs");
    std::fs::rename(theirs["pin"].as_str().unwrap(), &foreign_pin).unwrap();
    let theirs = theirs["link_id"].as_u64().unwrap();

    let all = env.json(&["link", "list", "--all"]);
    let l = by_id(&all, ours);
    assert_eq!(
        (l["managed"].as_bool(), l["hook"].as_str(), l["device"].as_str()),
        (Some(true), Some("ingress"), Some("dev0")),
        "{l}"
    );
    assert_eq!(
        (l["type"].as_str(), l["state"].as_str(), l["netns"].as_str()),
        (Some("tcx"), Some("attached"), Some(env.ns.name.as_str())),
        "{l}"
    );
    assert!(l["held_by"].to_string().contains("netkit/links/"), "{l}");
    let l = by_id(&all, held);
    assert_eq!(l["managed"], false, "{l}");
    assert!(l["held_by"].to_string().contains(&format!("process {}", run.child.id())), "{l}");
    let l = by_id(&all, theirs);
    assert_eq!((l["managed"].as_bool(), l["device"].as_str()), (Some(false), Some("dev0")), "{l}");
    assert!(l["held_by"].to_string().contains(&foreign_pin.display().to_string()), "{l}");
    common::json_shape::check("link list --all", &all);
    // Listed from the pod's namespace, which has no chain holding it: the
    // walk of the other namespaces places it.
    let out = common::netkit()
        .args(["-j", "-n", &env.pod.name, "--bpffs", &env.bpffs.arg(), "link", "list", "--all"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let from_pod: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let l = by_id(&from_pod, ours);
    assert_eq!(
        (l["device"].as_str(), l["netns"].as_str(), l["managed"].as_bool()),
        (Some("dev0"), Some(env.ns.name.as_str()), Some(true)),
        "{l}"
    );
    let table = env.ok(&["link", "list", "--all"]);
    assert!(table.contains("HELD BY") && table.contains("managed"), "{table}");

    // The device goes: all three are defunct. The process ends with its link.
    let _ = run.child.kill();
    let _ = run.child.wait();
    match env.pair {
        hooks::Pair::Veth => env.ns.ip_ok(&["link", "del", "dev0"]),
        hooks::Pair::Netkit => {
            env.ok(&["device", "del", "dev0"]);
        }
    }
    let all = env.json(&["link", "list", "--all"]);
    assert_eq!(by_id(&all, ours)["state"], "defunct");
    assert_eq!(by_id(&all, theirs)["state"], "defunct");
    // Without --force only what netkit pinned goes; the rest is named and left.
    let r = env.json(&["link", "prune", "--all"]);
    common::json_shape::check("link prune --all", &r);
    let ids = |list: &serde_json::Value| -> Vec<u64> {
        list.as_array().unwrap().iter().map(|l| l["link_id"].as_u64().unwrap()).collect()
    };
    assert!(ids(&r["pruned"]).contains(&ours) && !ids(&r["pruned"]).contains(&theirs), "{r}");
    assert!(ids(&r["left"]).contains(&theirs), "{r}");
    assert!(foreign_pin.exists(), "another tool's pin stays without --force");
    let text = env.ok(&["link", "prune", "--all"]);
    assert!(text.contains(&format!("left defunct link {theirs}")) && text.contains("--force"), "{text}");
    let r = env.json(&["link", "prune", "--all", "--force"]);
    assert!(ids(&r["pruned"]).contains(&theirs), "{r}");
    assert!(!foreign_pin.exists(), "--force removes it");
    let err = env.fails(&["link", "prune", "--force"]);
    assert!(err.contains("--all"), "{err}");
}

#[test]
fn a_peer_redirect_is_refused_on_tcx_egress_and_taken_on_ingress() {
    require_root!();
    hooks::peer_redirects_only_at_tc_ingress(&HookEnv::tcx("trp"), &[Hook::Egress]);
}
