//! The bundled programs and user objects on real kernels (host tcx on veth,
//! VM tcx on netkit): exact counters, the firewall per rule for IPv4 and IPv6
//! with live changes and hit counts, log lines, load-time settings, a clang
//! object's BTF maps, pinned maps and globals, the prog/stats commands, and
//! which loads read the kernel's BTF.

mod common;

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use common::{
    hooks::{self, HOST_IP, HOST_IP6, HookEnv, POD_IP},
    send_udp,
};
use netkit::mprog::Hook;
use serde_json::Value;

/// Bytes of one "netkit" datagram over IPv4 as a tc program sees it
/// (Ethernet 14 + IPv4 20 + UDP 8 + 6).
const DATAGRAM_V4: u64 = 48;

fn prog_stats(env: &HookEnv, hook: Hook, prog_id: &Value) -> Value {
    let s = env.json(&["stats", "dev0", hook.name()]);
    s[0]["programs"].as_array().unwrap().iter().find(|p| p["prog_id"] == *prog_id).cloned().expect("program in stats")
}

fn hits(env: &HookEnv, hook: Hook) -> Vec<(u64, u64)> {
    let list = env.json(&["firewall", "list", "dev0", hook.name()]);
    list.as_array().unwrap().iter().map(|r| (r["id"].as_u64().unwrap(), r["hits"].as_u64().unwrap())).collect()
}

/// The rules as listed (id and text), without their hit counts.
fn rules(env: &HookEnv, hook: Hook) -> Vec<(u64, String)> {
    let list = env.json(&["firewall", "list", "dev0", hook.name()]);
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_u64().unwrap(), r["rule"].as_str().unwrap().to_string()))
        .collect()
}

fn hit(env: &HookEnv, hook: Hook, id: u64) -> u64 {
    hits(env, hook).into_iter().find(|(i, _)| *i == id).map(|(_, h)| h).unwrap_or_else(|| panic!("no rule {id}"))
}

#[test]
fn counter_counts_exactly_the_packets_sent() {
    require_root!();
    let env = HookEnv::tcx_with("cnt", false);
    // Resolve neighbours first (veth is L2): no ARP while counting.
    assert_eq!(send_udp(&env.pod, &env.ns, HOST_IP, 5000, 1), 1);
    assert_eq!(send_udp(&env.ns, &env.pod, POD_IP, 5000, 1), 1);
    let ingress = env.attach(Hook::Ingress, "counter", &[]);
    let egress = env.attach(Hook::Egress, "counter", &[]);
    assert_eq!(send_udp(&env.pod, &env.ns, HOST_IP, 5001, 25), 25);
    assert_eq!(send_udp(&env.ns, &env.pod, POD_IP, 5002, 7), 7);
    let i = prog_stats(&env, Hook::Ingress, &ingress["prog_id"]);
    assert_eq!(i["packets"], 25, "{i}");
    assert_eq!(i["bytes"], 25 * DATAGRAM_V4, "{i}");
    let e = prog_stats(&env, Hook::Egress, &egress["prog_id"]);
    assert_eq!(e["packets"], 7, "{e}");
    assert_eq!(e["bytes"], 7 * DATAGRAM_V4, "{e}");
}

#[test]
fn the_firewall_allows_and_denies_per_rule_and_changes_live() {
    require_root!();
    let env = HookEnv::tcx("fw");
    env.add_ipv6();
    let h = Hook::Ingress;
    env.attach(h, "firewall", &["--pin", "fw"]);
    let counter = env.attach(h, "counter", &[]);
    let v4 = |port, n| send_udp(&env.pod, &env.ns, HOST_IP, port, n);
    let v6 = |port, n| send_udp(&env.pod, &env.ns, HOST_IP6, port, n);
    assert_eq!(v4(7000, 3), 3, "no rules: the default (allow) applies");
    assert_eq!(v6(7000, 3), 3);

    let add = |words: &str| {
        let mut a = vec!["firewall", "add", "dev0", "ingress"];
        a.extend(words.split_whitespace());
        env.json(&a)["id"].as_u64().unwrap()
    };
    let deny_7000 = add(&format!("dst {HOST_IP}/32 proto udp port 7000 deny"));
    let allow_range = add("dst 10.66.0.0/16 proto udp port 7000-7100 allow");
    let deny_v6 = add(&format!("dst {HOST_IP6}/128 proto udp deny"));
    let src_deny = add("src 10.66.0.0/24 proto udp port 7500 deny");
    assert_eq!((deny_7000, allow_range, deny_v6, src_deny), (1, 2, 3, 4), "ids are handed out in order");

    let before = hit(&env, h, 0);
    assert_eq!(v4(7000, 4), 0, "the /32 rule denies port 7000");
    assert_eq!(v4(7001, 5), 5, "port 7001: the /32 rule does not match, the shorter /16 allows");
    assert_eq!(v4(7500, 2), 0, "no destination rule for 7500; the source rule denies it");
    assert_eq!(v4(8000, 1), 1, "nothing matches: the default allows");
    assert_eq!(v6(7000, 3), 0, "the IPv6 rule denies UDP to the host");
    assert_eq!(hit(&env, h, deny_7000), 4);
    assert_eq!(hit(&env, h, allow_range), 5);
    assert_eq!(hit(&env, h, src_deny), 2);
    assert_eq!(hit(&env, h, deny_v6), 3);
    assert!(hit(&env, h, 0) > before, "the default counts its packets");

    // Live removal: port 7000 falls through to the /16 allow rule.
    env.ok(&["firewall", "del", "dev0", "ingress", "fw", &deny_7000.to_string()]);
    assert_eq!(v4(7000, 2), 2);
    assert_eq!(hit(&env, h, allow_range), 7);
    assert!(!hits(&env, h).iter().any(|(i, _)| *i == deny_7000));
    // A freed id is reused, with its hits starting over.
    assert_eq!(add("dst 10.66.0.1/32 proto udp port 7002 deny"), deny_7000);
    assert_eq!(hit(&env, h, deny_7000), 0);
    assert_eq!(v4(7002, 1), 0);
    let c = prog_stats(&env, h, &counter["prog_id"]);
    assert!(
        c["packets"].as_u64().unwrap() >= 3 + 3 + 5 + 1 + 2,
        "the counter after the firewall saw what it allowed: {c}"
    );
    let table = env.ok(&["stats", "dev0", "ingress"]);
    assert!(table.contains("firewall") && table.contains("hits"), "{table}");
}

#[test]
fn bad_rules_a_full_prefix_and_missing_programs_change_nothing() {
    require_root!();
    let env = HookEnv::tcx("fwbad");
    let err = env.fails(&["firewall", "list", "dev0", "ingress"]);
    assert!(err.contains("no firewall program on dev0 ingress"), "{err}");
    env.attach(Hook::Ingress, "firewall", &[]);
    let err = env.fails(&["redirect", "add", "dev0", "ingress", "10.1.1.1", "dev0"]);
    assert!(err.contains("not the primary of a netkit pair") || err.contains("no redirect-peer"), "{err}");
    let start = rules(&env, Hook::Ingress);
    for (rule, says) in [
        ("dst 10.0.0.0/40 deny", "0-32"),
        ("dst 10.0.0.1/8 deny", "host bits"),
        ("dst 10.0.0.0/8 proto tcp port 5-4 deny", "bad port range"),
        ("dst 10.0.0.0/8 proto quic deny", "unknown protocol"),
        ("dst 10.0.0.0/8 port 80 allow", "needs proto tcp or udp"),
        ("dst 10.0.0.0/8", "no action"),
        ("dst nonsense allow", "not an IPv4 or IPv6"),
    ] {
        let mut args = vec!["firewall", "add", "dev0", "ingress"];
        args.extend(rule.split_whitespace());
        let err = env.fails(&args);
        assert!(err.contains(says), "{rule}: {err}");
    }
    for port in 1..=4 {
        env.ok(&[
            "firewall",
            "add",
            "dev0",
            "ingress",
            "dst",
            "10.9.0.0/16",
            "proto",
            "tcp",
            "port",
            &port.to_string(),
            "deny",
        ]);
    }
    let full = rules(&env, Hook::Ingress);
    let err =
        env.fails(&["firewall", "add", "dev0", "ingress", "dst", "10.9.0.0/16", "proto", "tcp", "port", "5", "deny"]);
    assert!(err.contains("limit per prefix") && err.contains("nothing was changed"), "{err}");
    assert_eq!(rules(&env, Hook::Ingress), full, "the refused rule left the maps alone");
    assert_eq!(full.len(), start.len() + 4);
    let err = env.fails(&["firewall", "del", "dev0", "ingress", "99"]);
    assert!(err.contains("no rule 99"), "{err}");
}

#[test]
fn the_default_action_is_set_before_the_program_loads() {
    require_root!();
    let env = HookEnv::tcx("fwdef");
    env.attach(Hook::Ingress, "firewall", &["--set", "default=deny", "--pin", "fw"]);
    assert_eq!(send_udp(&env.pod, &env.ns, HOST_IP, 6000, 2), 0, "default deny");
    env.ok(&["firewall", "add", "dev0", "ingress", "dst", HOST_IP, "proto", "udp", "port", "6000", "allow"]);
    assert_eq!(send_udp(&env.pod, &env.ns, HOST_IP, 6000, 2), 2, "the rule allows its port");
    assert_eq!(send_udp(&env.pod, &env.ns, HOST_IP, 6001, 1), 0, "other ports still get the default");
    for (set, says) in [("default=maybe", "allow or deny"), ("sample=3", "knows default"), ("oops", "KEY=VALUE")] {
        let err = env.fails(&["attach", "dev0", "ingress", "firewall", "--set", set]);
        assert!(err.contains(says), "{set}: {err}");
    }
    let err = env.fails(&["attach", "dev0", "ingress", "pass", "--set", "x=1"]);
    assert!(err.contains("no settings"), "{err}");
}

#[test]
fn log_lines_appear_and_the_stream_ends_with_its_program() {
    require_root!();
    let env = HookEnv::tcx_with("log", false);
    env.attach(Hook::Ingress, "log", &["--pin", "lg"]);
    let mut child =
        env.command(&["logs", "dev0", "ingress", "lg"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20)).expect("logs starts");
    assert!(first.contains("following the log"), "{first}");
    assert_eq!(send_udp(&env.pod, &env.ns, HOST_IP, 4242, 3), 3);
    let mut lines = Vec::new();
    while lines.iter().filter(|l: &&String| l.contains(":4242")).count() < 3 {
        let l = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("log lines missing: {lines:?}"));
        lines.push(l);
    }
    let line = lines.iter().find(|l| l.contains(":4242")).unwrap();
    assert!(line.contains("proto 17") && line.contains(&format!("{POD_IP}:")) && line.contains("len 48"), "{line}");
    env.ok(&["detach", "dev0", "ingress", "lg"]);
    let mut end = String::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(20)) {
        end = l;
        if end.contains("ended") {
            break;
        }
    }
    assert!(end.contains("left its hook; the log stream ended"), "{end}");
    assert!(child.wait().unwrap().success());

    // A sample rate above the packet count logs nothing.
    let quiet = env.attach(Hook::Ingress, "log", &["--set", "sample=1000000"]);
    assert_eq!(send_udp(&env.pod, &env.ns, HOST_IP, 4243, 5), 5);
    assert_eq!(prog_stats(&env, Hook::Ingress, &quiet["prog_id"])["packets"], 5, "it saw them");
    let err = env.fails(&["logs", "dev0", "egress"]);
    assert!(err.contains("no program that logs"), "{err}");
}

#[test]
fn a_clang_object_with_btf_maps_a_pinned_map_and_a_global() {
    require_root!();
    let Some(obj) = hooks::c_object() else {
        common::skip("no clang-22 and no prebuilt C objects");
        return;
    };
    let env = HookEnv::tcx_with("clang", false);
    let spec = format!("file:{}:count_ingress", obj.display());
    let a = env.attach(Hook::Ingress, &spec, &["--set", "step:u64=5"]);
    let pinned = env.bpffs.path.join("netkit/maps/shared_packets");
    assert!(pinned.exists(), "a map declared pinned is pinned under the layout: {}", pinned.display());
    assert_eq!(send_udp(&env.pod, &env.ns, HOST_IP, 4300, 2), 2);
    let id = a["prog_id"].as_u64().unwrap();
    assert_eq!(hooks::map_u64(id, "packets", 0) % 5, 0, "every packet adds the load-time step of 5");
    assert!(hooks::map_u64(id, "packets", 0) >= 10);
    // A second instance shares the pinned map.
    let b = env.attach(Hook::Egress, &format!("file:{}:count_egress", obj.display()), &[]);
    let shared_before = hooks::map_u64(id, "shared_packets", 0);
    assert_eq!(send_udp(&env.ns, &env.pod, POD_IP, 4301, 1), 1);
    assert!(hooks::map_u64(b["prog_id"].as_u64().unwrap(), "shared_packets", 0) > shared_before);
    let err = env.fails(&["attach", "dev0", "ingress", &spec, "--set", "step:u8=300"]);
    assert!(err.contains("not a valid u8"), "{err}");
}

/// A program the verifier refuses: the error names the function and the
/// errno and shows the end of the verifier's log, and nothing is attached
/// or pinned.
#[test]
fn a_program_the_verifier_refuses_shows_the_end_of_its_log() {
    require_root!();
    let Some(obj) = hooks::c_object_named("verifier_refuses") else {
        common::skip("no clang-22 and no prebuilt C objects");
        return;
    };
    let env = HookEnv::tcx("verif");
    let err = env.fails(&["attach", "dev0", "ingress", &format!("file:{}", obj.display()), "--pin", "x"]);
    assert!(err.contains("the kernel's verifier refused `unchecked_read`"), "{err}");
    assert!(err.contains("Permission denied"), "the errno is named: {err}");
    // The reason, as the running kernel words it at the end of its log: 6.x
    // ends with "invalid access to packet ...", 7.x adds a Reason/At block.
    let reasons = ["invalid access to packet", "outside of the object", "access may be outside object bounds"];
    assert!(reasons.iter().any(|r| err.contains(r)), "the verifier's reason, from the end of its log: {err}");
    assert!(err.lines().count() <= 40, "only the end of the log is shown: {err}");
    assert!(env.chain(Hook::Ingress).1.is_empty(), "nothing attached");
    assert!(env.json(&["link", "list"]).as_array().unwrap().is_empty(), "nothing pinned");
}

/// The bytes `netkit ARGS` read with read(2) and its kin (its rchar), from
/// the /proc/PID/io of the shell that reaped it: a process's counts include
/// those of the children it has waited for, and `cat` is not yet reaped
/// when it reads them.
fn bytes_read(env: &HookEnv, args: &[&str]) -> u64 {
    let netkit = env.command(args);
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#""$@" >/dev/null || exit 1; cat /proc/$$/io"#)
        .arg("sh")
        .arg(netkit.get_program())
        .args(netkit.get_args())
        .output()
        .expect("sh runs");
    assert!(out.status.success(), "netkit {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let io = String::from_utf8_lossy(&out.stdout);
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("rchar in /proc/PID/io")
}

/// The kernel's BTF (megabytes in /sys/kernel/btf/vmlinux) is read only to
/// load an object with CO-RE relocations: never for a bundled program, nor
/// by commands that load nothing.
#[test]
fn only_an_object_with_core_relocations_reads_the_kernel_btf() {
    require_root!();
    let Ok(vmlinux) = std::fs::metadata("/sys/kernel/btf/vmlinux").map(|m| m.len()) else {
        common::skip("the kernel has no BTF in sysfs");
        return;
    };
    let env = HookEnv::tcx_with("btfread", false);
    let lean: &[&[&str]] = &[
        &["attach", "dev0", "ingress", "counter"],
        &["attach", "dev0", "ingress", "log"],
        &["attach", "dev0", "ingress", "firewall", "--set", "default=allow"],
        &["query", "dev0", "ingress"],
        &["stats", "dev0", "ingress"],
        &["device", "list"],
    ];
    for args in lean {
        let read = bytes_read(&env, args);
        assert!(read < vmlinux / 4, "netkit {args:?} read {read} bytes; the kernel's BTF alone is {vmlinux}");
    }
    let Some(obj) = hooks::c_object_named("core_field") else {
        common::skip("no clang-22 and no prebuilt C objects: the CO-RE load was not checked");
        return;
    };
    let read = bytes_read(&env, &["attach", "dev0", "ingress", &format!("file:{}", obj.display())]);
    assert!(read >= vmlinux, "the CO-RE object read {read} bytes, less than the kernel's BTF ({vmlinux})");
    // Relocated from that BTF, the program passes packets on (else it drops them).
    assert_eq!(send_udp(&env.pod, &env.ns, HOST_IP, 4310, 2), 2);
}

#[test]
fn prog_list_show_and_stats_with_run_times() {
    require_root!();
    let env = HookEnv::tcx("prog");
    let list = env.json(&["prog", "list"]);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["pass", "drop", "next", "counter", "firewall", "redirect-peer", "log", "order"]);
    assert!(list.as_array().unwrap().iter().all(|p| !p["hooks"].as_str().unwrap().is_empty()));
    let fw = env.attach(Hook::Ingress, "firewall", &[]);
    let show = env.json(&["prog", "show", &fw["prog_id"].to_string()]);
    assert_eq!(show["name"], "firewall");
    assert_eq!(show["type"], "sched_cls");
    let maps: Vec<&str> = show["maps"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    for m in ["FW_V4_DST", "FW_V6_DST", "FW_RULES", "FW_HITS"] {
        assert!(maps.contains(&m), "{m} missing from {maps:?}");
    }
    assert_eq!(show["attached"][0], format!("dev0 ingress #1 (link {})", fw["link_id"]));
    let err = env.fails(&["prog", "show", "4000000000"]);
    assert!(err.contains("no loaded program with id"), "{err}");

    // With --enable, run counts and times are kept while stats runs.
    let child = env
        .command(&["-j", "stats", "--enable", "--interval", "2", "--count", "1", "dev0", "ingress"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(send_udp(&env.pod, &env.ns, HOST_IP, 4400, 4), 4);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains("run-time statistics are on"), "{}", common::stderr(&out));
    let s: Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(s[0]["run_time_stats"], true);
    let p = &s[0]["programs"][0];
    assert!(p["run_cnt"].as_u64().unwrap() >= 4, "{p}");
    assert!(p["run_time_ns"].as_u64().unwrap() > 0, "{p}");
}

/// Every command's JSON has the shape the README's table documents (the
/// device and redirect commands are checked in the VM, where netkit is).
#[test]
fn json_outputs_are_as_the_readme_documents() {
    require_root!();
    use common::json_shape::{Shape, check, differences, documented};
    // The checker itself: the table parses, and drifted keys and types are caught.
    let table = documented();
    assert!(table.len() >= 20, "{table:?}");
    let drifted = differences("firewall list", &serde_json::json!([{ "id": "1", "rule": "x", "hit": 2 }]));
    assert_eq!(drifted.len(), 3, "a retyped, a missing and an undocumented key: {drifted:?}");
    assert!(table.iter().any(|(c, s)| c == "link list" && *s == Shape::List(Box::new(Shape::Ref("link show".into())))));

    let env = HookEnv::tcx("json");
    let probe = env.run(&["-j", "probe"]);
    check("probe", &serde_json::from_slice(&probe.stdout).expect("probe prints JSON even when it fails"));
    check("prog list", &env.json(&["prog", "list"]));
    let fw = env.json(&["attach", "dev0", "ingress", "firewall", "--pin", "fw"]);
    check("attach", &fw);
    check("attach", &env.json(&["attach", "dev0", "ingress", "counter", "--plain"]));
    check("attach", &env.json(&["attach", "dev0", "egress", "counter", "--pin", "c"]));
    check("query", &env.json(&["query", "dev0"]));
    let updated = env.json(&["update", "dev0", "ingress", "fw", "firewall", "--set", "default=deny"]);
    check("update", &updated);
    check("link show", &env.json(&["link", "show", "fw"]));
    check("link list", &env.json(&["link", "list"]));
    check("firewall add", &env.json(&["firewall", "add", "dev0", "ingress", "dst", "10.0.0.0/8", "allow"]));
    check("firewall list", &env.json(&["firewall", "list", "dev0", "ingress"]));
    check("firewall del", &env.json(&["firewall", "del", "dev0", "ingress", "1"]));
    check("stats", &env.json(&["stats"]));
    check("prog show", &env.json(&["prog", "show", &updated["prog_id"].to_string()]));
    check("detach", &env.json(&["detach", "dev0", "egress", "c"]));
    let (fd, _) = netkit::pins::open_link(std::path::Path::new(fw["pin"].as_str().unwrap())).unwrap();
    netkit::mprog::detach_link(std::os::fd::AsFd::as_fd(&fd)).unwrap();
    let pruned = env.json(&["link", "prune"]);
    assert_eq!(pruned.as_array().unwrap().len(), 1);
    check("link prune", &pruned);
}
