//! `netkit apply` with netkit pairs against a real kernel (VM): pods behind
//! pairs whose peers live in their own namespaces, chains on the primary and
//! peer hooks, live changes, fixed attributes refused or recreated, --prune,
//! export | apply, rollback at every pair step kind of a multi-device
//! apply, and the faults a node meets: links detached and replaced by
//! another tool, pairs deleted by `ip`, and apply killed (SIGKILL) right
//! before or after a step, checked by iproute2 (`ip -d -j link show`),
//! BPF_PROG_QUERY and the bpffs itself.

mod common;

use std::{os::unix::process::ExitStatusExt as _, process::Output};

use common::{Bpffs, TestNs, apply::Files, stderr, stdout, witness};
use serde_json::Value;

struct Node {
    ns: TestNs,
    pods: Vec<TestNs>,
    bpffs: Bpffs,
    files: Files,
}

impl Node {
    fn new(tag: &str, pods: usize) -> Self {
        Self {
            ns: TestNs::new(tag),
            pods: (0..pods).map(|i| TestNs::pod(&format!("{tag}p{i}"))).collect(),
            bpffs: Bpffs::new(),
            files: Files::new(),
        }
    }

    fn command(&self) -> std::process::Command {
        let mut cmd = common::netkit();
        cmd.args(["-n", self.ns.name.as_str(), "--bpffs", &self.bpffs.arg()]);
        cmd
    }

    fn run(&self, verb: &str, spec: &str, extra: &[&str], fault: Option<&str>) -> Output {
        self.files.run(self.command(), verb, spec, extra, fault)
    }

    fn apply(&self, spec: &str, extra: &[&str]) -> String {
        self.files.apply(self.command(), spec, extra)
    }

    fn diff(&self, spec: &str, extra: &[&str]) -> (i32, Vec<String>) {
        let mut args = vec!["-j"];
        args.extend_from_slice(extra);
        let o = self.run("diff", spec, &args, None);
        let plan: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        let steps = plan["steps"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| format!("{} {}", s["action"].as_str().unwrap(), s["object"].as_str().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        (o.status.code().unwrap(), steps)
    }

    /// The witness's view of the node: every netkit device with the
    /// attributes iproute2 reports, the peers in the pods, and every
    /// netkit hook's chain of program ids.
    fn state(&self) -> Value {
        let ip = common::ip_bin();
        let dump = |ns: &TestNs| -> Vec<Value> {
            let o = ns.exec(&ip, &["-d", "-j", "link", "show"]);
            let mut all: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
            // By name: a pair restored after a rollback has a new ifindex.
            all.sort_by_key(|l| l["ifname"].as_str().unwrap_or_default().to_string());
            all.into_iter()
                .filter(|l| l["linkinfo"]["info_kind"] == "netkit")
                .map(|l| {
                    let d = &l["linkinfo"]["info_data"];
                    serde_json::json!({
                        "name": l["ifname"], "ifindex": l["ifindex"], "mtu": l["mtu"],
                        "up": l["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
                        "mode": d["mode"], "policy": d["policy"], "peer_policy": d["peer_policy"],
                    })
                })
                .collect()
        };
        let mut chains = Vec::new();
        for dev in dump(&self.ns) {
            let name = dev["name"].as_str().unwrap().to_string();
            for hook in ["primary", "peer"] {
                let c = witness::chain(&self.ns, &name, witness::attach_type(hook));
                chains.push(serde_json::json!({"dev": name, "hook": hook, "progs": c.slots.iter().map(|s| s.0).collect::<Vec<_>>()}));
            }
        }
        serde_json::json!({
            "node": dump(&self.ns),
            "pods": self.pods.iter().map(dump).collect::<Vec<_>>(),
            "chains": chains,
        })
    }
}

fn pods(node: &Node, peer_policy_b: &str, extra_a: &str) -> String {
    format!(
        "
pairs:
  - name: nka
    mtu: 1400{extra_a}
    peer: {{name: eth0, netns: {p0}}}
  - name: nkb
    peer: {{name: eth0, netns: {p1}, policy: {peer_policy_b}}}
chains:
  - device: nka
    hook: peer
    programs:
      - {{name: fw, program: firewall, rules: ['src 10.0.0.9 deny']}}
      - {{name: p, program: pass}}
  - device: nkb
    hook: primary
    programs:
      - {{name: p, program: pass}}
",
        p0 = node.pods[0].name,
        p1 = node.pods[1].name,
    )
}

#[test]
fn pods_behind_pairs_converge_and_change_minimally() {
    require_netkit!();
    let node = Node::new("apn", 2);
    let spec = pods(&node, "pass", "");
    assert_eq!(node.diff(&spec, &[]).0, 2);
    node.apply(&spec, &[]);
    // The witnesses: the pairs exist, the peers live in the pods.
    assert_eq!(node.ns.ip_link("nka")["mtu"], 1400);
    assert_eq!(node.pods[0].ip_link("eth0")["linkinfo"]["info_kind"], "netkit");
    assert_eq!(node.pods[1].ip_link("eth0")["linkinfo"]["info_kind"], "netkit");
    let first = node.state();
    assert_eq!(first["chains"].to_string().matches("progs").count(), 4);

    assert_eq!(node.diff(&spec, &[]), (0, vec![]), "nothing to do");
    assert!(node.apply(&spec, &[]).contains("no changes"));
    assert_eq!(node.state(), first, "same devices, same programs");

    // A live attribute: changed in place.
    let drop = pods(&node, "drop", "");
    assert_eq!(node.diff(&drop, &[]), (2, vec!["change pair nkb".to_string()]));
    node.apply(&drop, &[]);
    let changed = node.state();
    assert_eq!(changed["node"][1]["ifindex"], first["node"][1]["ifindex"], "the same pair");
    assert_eq!(changed["node"][1]["peer_policy"], "blackhole", "{changed}");
    assert_eq!(changed["chains"], first["chains"]);

    // The MTU changes live too, on both ends.
    let smaller = drop.replace("mtu: 1400", "mtu: 1300");
    assert_eq!(node.diff(&smaller, &[]), (2, vec!["change pair nka".to_string()]));
    node.apply(&smaller, &[]);
    assert_eq!(node.ns.ip_link("nka")["mtu"], 1300);
    assert_eq!(node.pods[0].ip_link("eth0")["mtu"], 1300);
    assert_eq!(node.state()["chains"], first["chains"]);
    node.apply(&drop, &[]);
    let changed = node.state();

    // A fixed attribute: refused with the reason, then replaced on request.
    let l2 = pods(&node, "drop", "\n    mode: l2");
    let o = node.run("apply", &l2, &[], None);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("mode is l3 (the spec says l2)") && err.contains("--recreate"), "{err}");
    assert_eq!(node.state(), changed, "nothing changed");
    assert_eq!(node.diff(&l2, &["--recreate"]).1, ["recreate pair nka", "attach nka peer fw", "attach nka peer p"]);
    node.apply(&l2, &["--recreate"]);
    assert_eq!(node.ns.ip_link("nka")["linkinfo"]["info_data"]["mode"], "l2");
    assert_eq!(node.diff(&l2, &[]).0, 0);
    let fw = node.ns.json(&["--bpffs", &node.bpffs.arg(), "firewall", "list", "nka", "peer", "fw"]);
    assert_eq!(fw[0]["rule"], "src 10.0.0.9/32 deny", "the rules came back with the program: {fw}");

    // export | apply is a no-op, pairs included.
    let exported = node.ns.ok(&["--bpffs", &node.bpffs.arg(), "export", "--state", &node.files.state()]);
    assert!(exported.contains("name: nka") && exported.contains("mode: l2"), "{exported}");
    assert_eq!(node.diff(&exported, &[]), (0, vec![]), "{exported}");

    // A pod leaves the spec: --prune deletes its pair; the other is untouched.
    let only_a = l2.split("  - name: nkb").next().unwrap().to_string()
        + "chains:\n  - device: nka\n    hook: peer\n    programs:\n      - {name: fw, program: firewall, rules: ['src 10.0.0.9 deny']}\n      - {name: p, program: pass}\n";
    let kept = node.state();
    assert_eq!(node.diff(&only_a, &[]).0, 0, "without --prune the pair stays managed");
    assert_eq!(node.diff(&only_a, &["--prune"]), (2, vec!["delete pair nkb".to_string()]));
    node.apply(&only_a, &["--prune"]);
    let after = node.state();
    assert_eq!(after["node"].as_array().unwrap().len(), 1);
    assert_eq!(after["node"][0], kept["node"][0]);
    assert!(node.pods[1].ip(&["link", "show", "eth0"]).status.code() != Some(0), "the pod's end went too");
    assert!(!node.files.record().to_string().contains("nkb"), "{}", node.files.record());
}

#[test]
fn a_failure_at_any_pair_step_leaves_the_node_as_it_was() {
    require_netkit!();
    let node = Node::new("apr", 3);
    let pair = |name: &str, pod: usize, policy: &str| {
        format!("  - name: {name}\n    peer: {{name: eth0, netns: {}, policy: {policy}}}\n", node.pods[pod].name)
    };
    let chain =
        |name: &str| format!("  - device: {name}\n    hook: peer\n    programs:\n      - {{name: p, program: pass}}\n");
    // Before: nka and nkb. After: nka changed, nkb gone (--prune), nkc new,
    // and nka recreated (mode) when --recreate is given.
    let base = format!(
        "pairs:\n{}{}chains:\n{}{}",
        pair("nka", 0, "pass"),
        pair("nkb", 1, "pass"),
        chain("nka"),
        chain("nkb")
    );
    let target = format!(
        "pairs:\n{}{}chains:\n{}{}",
        pair("nka", 0, "drop"),
        pair("nkc", 2, "pass"),
        chain("nka"),
        chain("nkc")
    );
    let recreate = target.replacen("  - name: nka\n", "  - name: nka\n    mode: l2\n", 1);
    node.apply(&base, &[]);
    let before = node.state();
    for (fault, spec, extra) in [
        ("apply:create", &target, vec!["--prune"]),
        ("apply:change", &target, vec!["--prune"]),
        ("apply:attach", &target, vec!["--prune"]),
        ("apply:delete", &target, vec!["--prune"]),
        ("apply:recreate", &recreate, vec!["--prune", "--recreate"]),
        ("apply:attach:2", &recreate, vec!["--prune", "--recreate"]),
    ] {
        let o = node.run("apply", spec, &extra, Some(fault));
        let err = stderr(&o);
        assert!(!o.status.success(), "{fault}: {}", stdout(&o));
        assert!(err.contains("failure injected") && err.contains("rolled back"), "{fault}: {err}");
        let now = node.state();
        // A pair deleted and restored, or recreated and restored, has a new
        // ifindex; everything else must be as it was.
        let strip = |mut v: Value| {
            for l in v["node"].as_array_mut().unwrap() {
                l.as_object_mut().unwrap().remove("ifindex");
            }
            for pod in v["pods"].as_array_mut().unwrap() {
                for l in pod.as_array_mut().unwrap() {
                    l.as_object_mut().unwrap().remove("ifindex");
                }
            }
            v
        };
        assert_eq!(strip(now.clone()), strip(before.clone()), "{fault}: {err}");
        if !fault.contains("delete") && !spec.contains("mode: l2") {
            assert_eq!(now, before, "{fault}: the same devices");
        }
        let d = node.run("diff", &base, &[], None);
        assert_eq!(
            d.status.code(),
            Some(0),
            "{fault}: apply still owns the base state: {}{}\nrecord: {}\nstate: {}\napply said: {err}",
            stdout(&d),
            stderr(&d),
            node.files.record(),
            node.state()
        );
    }
    node.apply(&target, &["--prune"]);
    assert_eq!(node.diff(&target, &[]).0, 0);
}

/// The node: two pods, a firewall and a counter on nka's peer
/// hook, a counter on its primary hook.
fn node_spec(node: &Node, with_b: bool) -> String {
    let b = if with_b {
        format!("  - name: nkb\n    peer: {{name: eth0, netns: {}}}\n", node.pods[1].name)
    } else {
        String::new()
    };
    format!(
        "pairs:\n  - name: nka\n    peer: {{name: eth0, netns: {}, policy: drop}}\n{b}chains:\n  - device: nka\n    hook: peer\n    programs:\n      - {{name: fw, program: firewall, rules: ['src 10.0.0.9 deny']}}\n      - {{name: count, program: counter}}\n  - device: nka\n    hook: primary\n    programs:\n      - {{name: count, program: counter}}\n",
        node.pods[0].name
    )
}

impl Node {
    /// The pins in the node's bpffs, by the file system.
    fn pins(&self) -> Vec<String> {
        witness::pins(&self.bpffs.path.join("netkit"))
    }

    /// The node's netkit devices as `ip` lists them.
    fn pairs(&self) -> Vec<String> {
        let o = self.ns.ip(&["-j", "link", "show", "type", "netkit"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        let mut names: Vec<String> =
            v.as_array().into_iter().flatten().map(|l| l["ifname"].as_str().unwrap().to_string()).collect();
        names.sort();
        names
    }

    /// Everything the spec promises, read by the witnesses.
    fn converged(&self, spec: &str, pairs: &[&str], what: &str) {
        assert_eq!(self.diff(spec, &[]), (0, vec![]), "{what}: nothing left to do");
        assert_eq!(self.pairs(), pairs, "{what}: no second pair, none missing");
        let ns = &self.ns.name;
        assert_eq!(
            self.pins(),
            [
                format!("links/{ns}/nka/peer/count"),
                format!("links/{ns}/nka/peer/fw"),
                format!("links/{ns}/nka/primary/count")
            ],
            "{what}: no stray pin"
        );
        for (hook, n) in [(witness::NETKIT_PEER, 2), (witness::NETKIT_PRIMARY, 1)] {
            let c = witness::chain(&self.ns, "nka", hook);
            let mut progs = c.progs();
            progs.dedup();
            assert_eq!((c.slots.len(), progs.len()), (n, n), "{what}: {c:?}");
            assert!(c.links().iter().all(|l| *l != 0), "{what}: every program owned by a link: {c:?}");
        }
    }
}

#[test]
fn drift_from_other_tools_and_kills_at_pair_steps_converge() {
    require_netkit!();
    let node = Node::new("apd", 3);
    let spec = node_spec(&node, true);
    node.apply(&spec, &[]);
    node.converged(&spec, &["nka", "nkb"], "first apply");
    let first = witness::chain(&node.ns, "nka", witness::NETKIT_PEER);

    // Another tool detaches the counter's link (BPF_LINK_DETACH): a repair,
    // the same program back on the hook, behind the firewall.
    witness::detach_link(first.slots[1].1);
    assert_eq!(witness::chain(&node.ns, "nka", witness::NETKIT_PEER).progs(), &first.progs()[..1]);
    assert_eq!(node.diff(&spec, &[]), (2, vec!["attach nka peer count".to_string()]));
    node.apply(&spec, &[]);
    let now = witness::chain(&node.ns, "nka", witness::NETKIT_PEER);
    assert_eq!((now.progs(), now.slots[0].1), (first.progs(), first.slots[0].1), "{now:?}");
    node.converged(&spec, &["nka", "nkb"], "after the repair");

    // Another tool makes the primary's counter run its own program.
    let theirs = common::hooks::raw_program(2);
    let primary = witness::chain(&node.ns, "nka", witness::NETKIT_PRIMARY);
    witness::update_link(primary.slots[0].1, &theirs);
    assert_eq!(node.diff(&spec, &[]), (2, vec!["update nka primary count".to_string()]));
    node.apply(&spec, &[]);
    let now = witness::chain(&node.ns, "nka", witness::NETKIT_PRIMARY);
    assert_eq!(now.links(), primary.links(), "the same link");
    assert_ne!(now.progs(), [common::hooks::prog_id(&theirs)]);
    node.converged(&spec, &["nka", "nkb"], "after the update");

    // ip moves nkb's peer into another namespace: it goes back, and up.
    node.pods[1].ip_ok(&["link", "set", "eth0", "netns", &node.pods[2].name]);
    assert!(node.pods[2].ip(&["link", "show", "eth0"]).status.success());
    let (code, steps) = node.diff(&spec, &[]);
    assert_eq!((code, steps), (2, vec!["change pair nkb".to_string()]));
    node.apply(&spec, &[]);
    let eth0 = node.pods[1].ip_link("eth0");
    assert_eq!(eth0["linkinfo"]["info_kind"], "netkit", "{eth0}");
    assert!(eth0["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{eth0}");
    assert!(!node.pods[2].ip(&["link", "show", "eth0"]).status.success(), "gone from where ip put it");
    node.converged(&spec, &["nka", "nkb"], "after the move back");

    // Both pairs deleted by ip (their links go defunct, their pins stay),
    // then apply killed at a chosen step; the next apply converges.
    for fault in [
        "apply:create:1:kill-after",
        "apply:create:2:kill",
        "apply:attach:1:kill-after",
        "apply:pin:2:kill",
        "apply:pin:2:kill-after",
        "apply:record:2:kill",
    ] {
        for pair in ["nka", "nkb"] {
            node.ns.ip_ok(&["link", "del", pair]);
        }
        let o = node.run("apply", &spec, &["--jobs", "1"], Some(fault));
        assert_eq!(o.status.signal(), Some(libc::SIGKILL), "{fault}: {}", stderr(&o));
        node.apply(&spec, &[]);
        node.converged(&spec, &["nka", "nkb"], fault);
    }

    // nkb leaves the spec; --prune is killed right before, then right
    // after, deleting it.
    let only_a = node_spec(&node, false);
    for fault in ["apply:delete:1:kill", "apply:delete:1:kill-after"] {
        node.apply(&spec, &[]);
        node.converged(&spec, &["nka", "nkb"], fault);
        let o = node.run("apply", &only_a, &["--prune"], Some(fault));
        assert_eq!(o.status.signal(), Some(libc::SIGKILL), "{fault}: {}", stderr(&o));
        node.apply(&only_a, &["--prune"]);
        node.converged(&only_a, &["nka"], fault);
        assert!(!node.files.record().to_string().contains("nkb"), "{fault}: {}", node.files.record());
    }
}

#[test]
fn watch_repairs_pairs_deleted_and_peers_moved_by_ip_one_line_each() {
    require_netkit!();
    use std::io::BufRead as _;
    let node = Node::new("apw", 3);
    let spec = node_spec(&node, true);
    let path = node.files.spec(&spec);
    let mut child = node
        .command()
        .args(["-j", "apply", "--watch", "--interval", "1", "-f", &path, "--state", &node.files.state()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")));
        }
    });
    let next = |what: &str| {
        let l =
            rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap_or_else(|_| panic!("no log line for {what}"));
        format!("{} {}", l["action"].as_str().unwrap_or("?"), l["object"].as_str().unwrap_or("?"))
    };
    let first: Vec<String> = (0..5).map(|_| next("the first apply")).collect();
    assert_eq!(first.iter().filter(|l| l.starts_with("create pair")).count(), 2, "{first:?}");

    node.ns.ip_ok(&["link", "del", "nkb"]);
    assert_eq!(next("the deleted pair"), "create pair nkb");
    node.pods[1].ip_ok(&["link", "set", "eth0", "netns", &node.pods[2].name]);
    assert_eq!(next("the moved peer"), "change pair nkb");
    witness::detach_link(witness::chain(&node.ns, "nka", witness::NETKIT_PRIMARY).slots[0].1);
    assert_eq!(next("the detached link"), "attach nka primary count");

    // SAFETY: signals a child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(rx.recv().is_err(), "one line for each repair, no more");
    node.converged(&spec, &["nka", "nkb"], "after --watch");
}

#[test]
fn a_node_made_with_the_cli_is_adopted_without_a_packet_lost_and_then_managed() {
    require_netkit!();
    let node = Node::new("apa", 1);
    let pod = &node.pods[0];
    node.ns.disable_ipv6();
    pod.disable_ipv6();
    let nk = |args: &[&str]| {
        let mut a = vec!["--bpffs".to_string(), node.bpffs.arg()];
        a.extend(args.iter().map(|s| s.to_string()));
        node.ns.ok(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // The node as a user's script made it: a pair, a firewall with a rule and
    // a counter on its peer hook, a counter on its primary.
    nk(&["device", "add", "na0", "--peer", "eth0", "--peer-netns", &pod.name, "--up"]);
    node.ns.ip_ok(&["addr", "add", "10.61.0.1/24", "dev", "na0"]);
    pod.ip_ok(&["addr", "add", "10.61.0.2/24", "dev", "eth0"]);
    nk(&["attach", "na0", "peer", "firewall", "--pin", "fw"]);
    nk(&["firewall", "add", "na0", "peer", "fw", "dst", "10.61.0.9/32", "deny"]);
    nk(&["attach", "na0", "peer", "counter", "--pin", "sent"]);
    nk(&["attach", "na0", "primary", "counter", "--pin", "received"]);
    let made = node.state();
    let ids = |hook: &str| witness::chain(&node.ns, "na0", witness::attach_type(hook)).slots;
    let (peer, primary) = (ids("peer"), ids("primary"));

    let spec = nk(&["export", "--state", &node.files.state()]);
    assert!(spec.contains("- name: na0") && spec.contains("netns: ") && spec.contains("- name: fw"), "{spec}");
    assert!(spec.contains("- dst 10.61.0.9/32 deny") && spec.contains("- name: received"), "{spec}");

    // Whatever differs is refused, named, and nothing is taken over.
    let other_mode = spec.replace("mode: l3", "mode: l2");
    let other_settings = spec.replace(
        "  - name: fw\n    program: firewall\n",
        "  - name: fw\n    program: firewall\n    set:\n    - default=deny\n",
    );
    let other_order = spec.replace(
        "  - name: fw\n    program: firewall\n    rules:\n    - dst 10.61.0.9/32 deny\n  - name: sent\n    program: counter\n",
        "  - name: sent\n    program: counter\n  - name: fw\n    program: firewall\n    rules:\n    - dst 10.61.0.9/32 deny\n",
    );
    for (other, why) in [
        (&other_mode, "pair na0: not adopted, it differs from the spec: mode is l3 (the spec says l2)"),
        (&other_settings, "not adopted: program"),
        (&other_order, "not adopted: link"),
    ] {
        assert_ne!(other, &spec, "the test changed the spec");
        let o = node.run("apply", other, &["--adopt"], None);
        assert_eq!(o.status.code(), Some(1), "{other}");
        assert!(stderr(&o).contains(why), "{why}: {}", stderr(&o));
        assert_eq!(node.state(), made, "a refused adoption touches nothing");
        assert!(node.files.record()["pairs"].as_object().is_none_or(|p| p.is_empty()), "{}", node.files.record());
    }

    // Adopted while the pod pings the node: no id changes, no packet is lost,
    // and the counters count every one.
    let mut ping = std::process::Command::new("nsenter")
        .arg(format!("--net={}", pod.path.display()))
        .args(["ping", "-q", "-n", "-c", "1000", "-i", "0.01", "-W", "5", "10.61.0.1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (code, steps) = node.diff(&spec, &["--adopt"]);
    assert_eq!(
        (code, steps),
        (
            2,
            ["adopt pair na0", "adopt na0 primary received", "adopt na0 peer fw", "adopt na0 peer sent"]
                .map(String::from)
                .to_vec()
        )
    );
    node.apply(&spec, &["--adopt"]);
    assert!(ping.try_wait().unwrap().is_none(), "the adoption happened while the ping ran");
    assert_eq!(node.state(), made, "adoption changes no device and no program");
    assert_eq!((ids("peer"), ids("primary")), (peer.clone(), primary.clone()), "and no link");
    let out = ping.wait_with_output().unwrap();
    let summary = stdout(&out);
    // iputils and busybox word the summary differently; both say this.
    assert!(summary.contains("1000 packets transmitted, 1000 ") && summary.contains(", 0% packet loss"), "{summary}");
    let stats = |hook: &str| nk(&["-j", "stats", "na0", hook]);
    let count = |hook: &str, i: usize| {
        let v: Value = serde_json::from_str(&stats(hook)).unwrap();
        v[0]["programs"][i]["packets"].as_u64().unwrap()
    };
    assert_eq!((count("peer", 1), count("primary", 0)), (1000, 1000), "every request and every reply counted");
    assert_eq!(node.diff(&spec, &[]), (0, vec![]), "managed now: nothing to do");

    // Managed like anything apply made: a changed rule, a link detached by
    // another tool and the pair deleted by ip are repaired from the spec.
    nk(&["firewall", "add", "na0", "peer", "fw", "dst", "10.61.0.8/32", "deny"]);
    witness::detach_link(peer[1].1);
    let (code, steps) = node.diff(&spec, &[]);
    assert_eq!((code, steps), (2, ["edit na0 peer fw", "attach na0 peer sent"].map(String::from).to_vec()));
    node.apply(&spec, &[]);
    let repaired = ids("peer");
    assert_eq!(repaired.iter().map(|s| s.0).collect::<Vec<_>>(), peer.iter().map(|s| s.0).collect::<Vec<_>>());
    assert_eq!(repaired[0], peer[0], "the firewall kept its link");
    let rules = nk(&["-j", "firewall", "list", "na0", "peer", "fw"]);
    assert!(!rules.contains("10.61.0.8"), "{rules}");
    node.ns.ip_ok(&["link", "del", "na0"]);
    assert_eq!(node.diff(&spec, &[]).0, 2);
    node.apply(&spec, &[]);
    assert_eq!(pod.ip_link("eth0")["linkinfo"]["info_kind"], "netkit");
    assert_eq!(ids("peer").len(), 2);
    assert_eq!(ids("primary").len(), 1);
    assert_eq!(node.diff(&spec, &[]), (0, vec![]));
}
