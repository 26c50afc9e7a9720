//! `netkit apply`, `diff` and `export` on tcx hooks against a real kernel (a
//! veth pair on the host and in the VM): idempotence, minimal changes, a
//! foreign link left in place, --prune, export | apply, bad specs, rollback
//! at every kind of chain step, recovery after SIGKILL right before and
//! right after every step kind, drift made by other tools (bpftool, raw
//! BPF_LINK_DETACH and BPF_LINK_UPDATE, rm, ip), and writers started
//! together. Chains are read by the witness (the test's own BPF_PROG_QUERY)
//! and pins by the file system, never by the tool.

mod common;

use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::ExitStatusExt as _,
    process::{Output, Stdio},
};

use common::{
    apply::Files,
    hooks::{HookEnv, Slot},
    stderr, stdout, witness,
};
use netkit::mprog::Hook;

struct T {
    env: HookEnv,
    files: Files,
}

impl T {
    fn new(tag: &str) -> Self {
        Self { env: HookEnv::tcx(tag), files: Files::new() }
    }

    fn run(&self, verb: &str, spec: &str, extra: &[&str], fault: Option<&str>) -> Output {
        self.files.run(self.env.command(&[]), verb, spec, extra, fault)
    }

    /// `apply` of `spec` on one job, stopped by its fault seam before its
    /// second attach and hanging there; returned once it says so.
    fn hung_apply(&self, spec: &str, extra: &[&str]) -> std::process::Child {
        let (path, state) = (self.files.spec(spec), self.files.state());
        let mut child = self
            .env
            .command(&["apply", "-f", &path, "--state", &state, "--jobs", "1"])
            .args(extra)
            .env("NETKIT_FAULT", "apply:attach:2:hang")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.contains("hanging"), "{line}");
        child
    }

    fn apply(&self, spec: &str, extra: &[&str]) -> String {
        self.files.apply(self.env.command(&[]), spec, extra)
    }

    /// (exit code, plan as JSON).
    fn diff(&self, spec: &str, extra: &[&str]) -> (i32, serde_json::Value) {
        let mut args = vec!["-j"];
        args.extend_from_slice(extra);
        let o = self.run("diff", spec, &args, None);
        let code = o.status.code().unwrap();
        let plan = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
        if code != 1 {
            common::json_shape::check("diff", &plan);
        }
        (code, plan)
    }

    fn slots(&self, hook: Hook) -> Vec<Slot> {
        self.env.chain(hook).1
    }

    fn progs(&self, hook: Hook) -> Vec<u64> {
        self.slots(hook).into_iter().map(|s| s.prog).collect()
    }

    /// Every pin in the test's bpffs, read from the file system.
    fn pins(&self) -> Vec<String> {
        witness::pins(&self.env.bpffs.path.join("netkit"))
    }

    /// The path of a pin apply makes on dev0.
    fn pin(&self, hook: Hook, name: &str) -> std::path::PathBuf {
        self.env.bpffs.path.join(format!("netkit/links/{}/dev0/{}/{name}", self.env.ns.name, hook.name()))
    }

    fn rules(&self, hook: Hook, name: &str) -> Vec<String> {
        let v = self.env.json(&["firewall", "list", "dev0", hook.name(), name]);
        v.as_array().unwrap().iter().filter(|r| r["id"] != 0).map(|r| r["rule"].as_str().unwrap().to_string()).collect()
    }
}

/// The plan's steps as "action object".
fn steps(plan: &serde_json::Value) -> Vec<String> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{} {}", s["action"].as_str().unwrap(), s["object"].as_str().unwrap()))
        .collect()
}

const BASE: &str = "
chains:
  - device: dev0
    hook: ingress
    programs:
      - {name: a, program: pass}
      - name: fw
        program: firewall
        set: [default=allow]
        rules: ['src 10.9.0.0/16 deny']
      - {name: c, program: counter}
";

#[test]
fn apply_is_idempotent_minimal_and_leaves_foreign_links_alone() {
    require_root!();
    let t = T::new("ap");
    assert_eq!(t.diff(BASE, &[]).0, 2, "something to do");
    t.apply(BASE, &[]);
    let first = t.slots(Hook::Ingress);
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|s| s.link.is_some()), "every program is owned by a link: {first:?}");
    let (rev, _) = t.env.chain(Hook::Ingress);

    // Idempotent: nothing to do, nothing done, same ids and revision.
    let (code, plan) = t.diff(BASE, &[]);
    assert_eq!((code, steps(&plan).len()), (0, 0), "{plan}");
    assert!(t.apply(BASE, &[]).contains("no changes"));
    assert_eq!(t.env.chain(Hook::Ingress), (rev, first.clone()));
    let o = t.run("apply", BASE, &["-j"], None);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    common::json_shape::check("apply", &report);
    assert_eq!(report["steps"], serde_json::json!([]));

    // A foreign link, put first by another tool, is shown and stays.
    t.env.ok(&["attach", "dev0", "ingress", "pass", "--pin", "theirs", "--first"]);
    let foreign = t.slots(Hook::Ingress)[0].clone();
    let (_, plan) = t.diff(BASE, &[]);
    assert_eq!(plan["foreign"][0]["link_id"], foreign.link.unwrap(), "{plan}");

    // One setting changed: exactly that link is updated in place.
    let deny = BASE.replace("default=allow", "default=deny");
    let (code, plan) = t.diff(&deny, &[]);
    assert_eq!((code, steps(&plan)), (2, vec!["update dev0 ingress fw".to_string()]));
    t.apply(&deny, &[]);
    let after = t.slots(Hook::Ingress);
    assert_eq!(after[0], foreign);
    assert_eq!(after[1], first[0], "a keeps link and program");
    assert_eq!(after[3], first[2], "c keeps link and program");
    assert_eq!(after[2].link, first[1].link, "fw keeps its link");
    assert_ne!(after[2].prog, first[1].prog, "fw runs a new program");
    assert_eq!(t.rules(Hook::Ingress, "fw"), ["src 10.9.0.0/16 deny"], "the new program got the rules");

    // Rules changed: edited live, no link or program changes.
    let rules = deny.replace("'src 10.9.0.0/16 deny'", "'src 10.9.0.0/16 deny', '10.1.0.1 proto tcp port 80 allow'");
    let (_, plan) = t.diff(&rules, &[]);
    assert_eq!(steps(&plan), ["edit dev0 ingress fw"]);
    t.apply(&rules, &[]);
    assert_eq!(t.slots(Hook::Ingress), after);
    assert_eq!(t.rules(Hook::Ingress, "fw"), ["src 10.9.0.0/16 deny", "dst 10.1.0.1/32 proto tcp port 80 allow"]);

    // Reordered: only the program that must move moves (new link, same program).
    let reordered = "
chains:
  - device: dev0
    hook: ingress
    programs:
      - {name: c, program: counter}
      - {name: a, program: pass}
      - name: fw
        program: firewall
        set: [default=deny]
        rules: ['src 10.9.0.0/16 deny', '10.1.0.1 proto tcp port 80 allow']
";
    let (_, plan) = t.diff(reordered, &[]);
    assert_eq!(steps(&plan), ["move dev0 ingress c"]);
    t.apply(reordered, &[]);
    let moved = t.slots(Hook::Ingress);
    assert_eq!(moved[0], foreign, "the foreign link stays first");
    assert_eq!(moved[1].prog, after[3].prog, "c runs the same program");
    assert_ne!(moved[1].link, after[3].link, "c has a new link");
    assert_eq!(&moved[2..], &after[1..3], "a and fw did not move");

    // export | apply changes nothing. The foreign link runs a bundled
    // program under a pin of this tool's layout: the export names it, and
    // only --adopt takes it; as a reference it is left alone.
    let exported = t.env.ok(&["export", "--state", &t.files.state()]);
    assert!(exported.contains("  - name: theirs\n    program: pass\n"), "{exported}");
    assert_eq!(t.diff(&exported, &[]).0, 1, "not adopted without --adopt: {exported}");
    let reference = format!("  - ref: link:{}\n", foreign.link.unwrap());
    let exported = exported.replace("  - name: theirs\n    program: pass\n", &reference);
    assert_eq!(t.diff(&exported, &[]).0, 0, "{exported}");
    assert!(t.apply(&exported, &[]).contains("no changes"));
    let mut json: serde_json::Value =
        serde_json::from_str(&t.env.ok(&["-j", "export", "--state", &t.files.state()])).unwrap();
    json["chains"][0]["programs"][0] = serde_json::json!({ "ref": format!("link:{}", foreign.link.unwrap()) });
    assert_eq!(t.diff(&json.to_string(), &[]).0, 0, "the JSON export applies as a no-op too: {json}");
    assert_eq!(t.slots(Hook::Ingress), moved);

    // A spec without the ingress chain: kept without --prune, removed with it,
    // the foreign link stays.
    let egress_only = "
chains:
  - device: dev0
    hook: egress
    programs:
      - {name: e, program: pass}
";
    let (_, plan) = t.diff(egress_only, &[]);
    assert_eq!(steps(&plan), ["attach dev0 egress e"]);
    assert!(plan["notes"].to_string().contains("--prune"), "{plan}");
    t.apply(egress_only, &[]);
    assert_eq!(t.slots(Hook::Ingress), moved);
    let (_, plan) = t.diff(egress_only, &["--prune"]);
    assert_eq!(steps(&plan).len(), 3, "{plan}");
    t.apply(egress_only, &["--prune"]);
    assert_eq!(t.slots(Hook::Ingress), vec![foreign], "only the foreign link is left");
    assert_eq!(t.slots(Hook::Egress).len(), 1);
    let record = t.files.record();
    assert_eq!(record["links"].as_array().unwrap().len(), 1, "{record}");
}

#[test]
fn diff_exit_codes_follow_diff() {
    require_root!();
    let t = T::new("apd");
    assert_eq!(t.diff("chains: []\n", &[]).0, 0);
    assert_eq!(t.diff(BASE, &[]).0, 2);
    assert_eq!(t.diff("chains: [\n", &[]).0, 1);
    let o = t.run("diff", BASE, &[], None);
    assert!(stdout(&o).contains("attach  dev0 ingress a"), "{}", stdout(&o));
}

#[test]
fn bad_specs_name_their_place_and_change_nothing() {
    require_root!();
    let t = T::new("apb");
    t.env.ok(&["attach", "dev0", "ingress", "pass", "--pin", "taken"]);
    let before = t.slots(Hook::Ingress);
    let cases = [
        ("chains:\n  - device: dev0\n    hook: ingress\n    colour: red\n", "4:", "colour"),
        ("chains:\n  - device: dev0\n    hook: sideways\n", "3:", "unknown hook"),
        ("chains:\n  - device: dev9\n    hook: ingress\n", "2:", "no device dev9"),
        // (On dev0, a veth, primary is its tcx egress.)
        ("chains:\n  - device: lo\n    hook: primary\n", "2:", "not a netkit primary"),
        (
            "chains:\n  - device: dev0\n    hook: ingress\n    programs:\n      - {name: x, program: pass}\n      - {name: x, program: pass}\n",
            "6:",
            "names two programs",
        ),
        (
            "chains:\n  - device: dev0\n    hook: ingress\n    programs:\n      - {name: x, program: 'id:1'}\n",
            "5:",
            "ids change",
        ),
        (
            "chains:\n  - device: dev0\n    hook: ingress\n    programs:\n      - {name: x, program: pass, rules: ['10.0.0.1 deny']}\n",
            "5:",
            "only the bundled firewall",
        ),
        (
            "chains:\n  - device: dev0\n    hook: ingress\n    programs:\n      - {name: x, program: 'file:/nonexistent.o'}\n",
            "5:",
            "cannot read",
        ),
        (
            "chains:\n  - device: dev0\n    hook: ingress\n    programs:\n      - {name: taken, program: pass}\n",
            "5:",
            "apply did not attach it",
        ),
        (
            "chains:\n  - device: dev0\n    hook: egress\n    programs:\n      - {name: ok, program: pass}\n      - {name: rp, program: redirect-peer}\n",
            "6:",
            "dev0 egress rp: redirect-peer calls bpf_redirect_peer, which the kernel honours only at tc ingress",
        ),
    ];
    for (spec, line, words) in cases {
        let o = t.run("apply", spec, &[], None);
        let err = stderr(&o);
        assert!(!o.status.success(), "{spec}");
        assert!(err.contains("spec-") && err.contains(line) && err.contains(words), "{spec}\n{err}");
        assert!(err.contains("nothing was changed"), "{err}");
        assert_eq!(t.slots(Hook::Ingress), before, "{spec}");
    }
    assert!(t.files.record().is_null() || t.files.record()["links"].as_array().is_none_or(Vec::is_empty));
}

/// Base state on both hooks: after it, `TARGET` needs a detach, a move, an
/// edit, an update and an attach on each hook.
fn base_and_target() -> (String, String) {
    let chain = |hook: &str, programs: &str| format!("  - device: dev0\n    hook: {hook}\n    programs:\n{programs}");
    let base = "      - {name: p1, program: pass}\n      - {name: fw, program: firewall, rules: ['10.0.0.1 deny']}\n      - {name: c, program: counter}\n      - {name: g, program: next}\n      - {name: u, program: firewall, set: [default=allow]}\n";
    let target = "      - {name: c, program: counter}\n      - {name: p1, program: pass}\n      - {name: fw, program: firewall, rules: ['10.0.0.2 deny']}\n      - {name: u, program: firewall, set: [default=deny]}\n      - {name: n, program: pass}\n";
    (
        format!("chains:\n{}{}", chain("egress", base), chain("ingress", base)),
        format!("chains:\n{}{}", chain("egress", target), chain("ingress", target)),
    )
}

/// The record without what a rollback changes by design: the ids of links
/// attached again, and the proofs of the hooks it touched (their chains
/// hold those new ids, so the next run reads them in full).
fn without_link_ids(mut record: serde_json::Value) -> serde_json::Value {
    for l in record["links"].as_array_mut().into_iter().flatten() {
        l.as_object_mut().unwrap().remove("link_id");
    }
    record.as_object_mut().unwrap().remove("hooks");
    record
}

#[test]
fn a_failure_at_any_kind_of_step_rolls_everything_back() {
    require_root!();
    let t = T::new("apf");
    let (base, target) = base_and_target();
    t.apply(&base, &[]);
    let (_, plan) = t.diff(&target, &[]);
    let kinds: Vec<String> = steps(&plan).iter().map(|s| s.split(' ').next().unwrap().to_string()).collect();
    for k in ["detach", "move", "edit", "update", "attach"] {
        assert_eq!(kinds.iter().filter(|x| *x == k).count(), 2, "{k} once per hook: {plan}");
    }
    let state = |t: &T| {
        (
            t.progs(Hook::Ingress),
            t.progs(Hook::Egress),
            t.rules(Hook::Ingress, "fw"),
            t.rules(Hook::Egress, "fw"),
            // Links attached again on rollback have new ids; the rest of
            // the record must be as it was.
            without_link_ids(t.files.record()),
        )
    };
    let before = state(&t);
    for kind in ["detach", "move", "edit", "update", "attach"] {
        // One job at a time: egress is done entirely, then ingress fails at
        // its step of that kind, so there is real work to undo.
        let o = t.run("apply", &target, &["--jobs", "1"], Some(&format!("apply:{kind}:2")));
        let err = stderr(&o);
        assert!(!o.status.success(), "{kind}: {}", stdout(&o));
        assert!(err.contains("failure injected") && err.contains("rolled back"), "{kind}: {err}");
        assert!(!err.contains("except"), "{kind}: every undo step worked: {err}");
        assert_eq!(state(&t), before, "{kind}: the node is as it was");
        assert_eq!(t.diff(&base, &[]).0, 0, "{kind}: apply sees the base state as its own");
    }
    t.apply(&target, &[]);
    assert_eq!(t.diff(&target, &[]).0, 0);
}

#[test]
fn apply_killed_mid_way_converges_on_the_next_run() {
    require_root!();
    let t = T::new("apk");
    let (base, target) = base_and_target();
    t.apply(&base, &[]);
    let mut child = t.hung_apply(&target, &[]);
    // SIGKILL: no rollback, no record written after this point.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(t.diff(&target, &[]).0, 2, "work is left");
    t.apply(&target, &[]);
    assert_eq!(t.diff(&target, &[]).0, 0, "converged");
    let names = |hook: Hook| -> Vec<String> {
        let (_, shown) = t.env.query(hook);
        shown.into_iter().map(|s| s.pin.unwrap().rsplit('/').next().unwrap().to_string()).collect()
    };
    for hook in [Hook::Ingress, Hook::Egress] {
        assert_eq!(names(hook), ["c", "p1", "fw", "u", "n"], "{hook}: every program pinned, in spec order");
    }
}

#[test]
fn expedite_holds_the_knob_for_the_change_and_the_next_run_undoes_a_killed_one() {
    require_root!();
    let _knob = common::RcuKnob::zero();
    let rcu_expedited = common::RcuKnob::read;
    let (a, b) = (T::new("apxa"), T::new("apxb"));
    let (base, target) = base_and_target();
    a.apply(&base, &[]);
    assert_eq!(rcu_expedited(), "0", "apply without --expedite leaves it alone");
    // Stopped half-way through its changes, it holds the knob.
    let mut child = a.hung_apply(&target, &["--expedite"]);
    assert_eq!(rcu_expedited(), "1", "expedited while the changes are made");
    // Another expedited apply, done while the first still holds it.
    b.apply(&target, &["--expedite"]);
    assert_eq!(rcu_expedited(), "1", "the first holder still holds it");
    // SIGKILL at that step: nothing of the first run puts it back...
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(rcu_expedited(), "1", "a killed run cannot put it back");
    // ...until the next run, expedited or not, which says so.
    let o = a.run("apply", &target, &[], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("put back to 0"), "{}", stderr(&o));
    assert_eq!(rcu_expedited(), "0");
    assert_eq!(a.diff(&target, &[]).0, 0, "converged");
    // An expedited run that finishes leaves it as it found it.
    a.apply(&base, &["--expedite"]);
    assert_eq!(rcu_expedited(), "0");

    // Where the knob cannot be written (a read-only bind mount over it, in
    // a mount namespace of the run's own, as a container has /sys): the
    // expedited apply is refused before any change, with the reason, and
    // leaves no record that a later run would try to put back.
    let (path, state) = (a.files.spec(&target), a.files.state());
    let inner = a.env.command(&["apply", "-f", &path, "--state", &state, "--expedite"]);
    let knob = netkit::os::rcu::KNOB;
    let o = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(format!("mount -o bind {knob} {knob} && mount -o remount,bind,ro {knob} && exec \"$@\""))
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args())
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("writing /sys/kernel/rcu_expedited failed"), "{}", stderr(&o));
    assert_eq!(a.diff(&base, &[]).0, 0, "nothing changed");
    assert!(!std::path::Path::new(netkit::os::rcu::DEFAULT_DIR).join("saved").exists(), "a record was left");
    let o = a.run("apply", &target, &[], None);
    assert!(o.status.success() && stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn watch_follows_the_file_repairs_drift_and_stops_on_sigterm() {
    require_root!();
    let t = T::new("apw");
    let path = t.files.dir.join("watched.yaml");
    std::fs::write(&path, BASE).unwrap();
    let state = t.files.state();
    let mut child = t
        .env
        .command(&["-j", "apply", "--watch", "--interval", "1", "-f", path.to_str().unwrap(), "--state", &state])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")));
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap_or_else(|_| panic!("no log line for {what}"))
    };
    let first: Vec<serde_json::Value> = (0..3).map(|_| next("the first apply")).collect();
    assert!(first.iter().all(|l| l["action"] == "attach" && l["ts"].is_f64()), "{first:?}");

    // The file is replaced (as a ConfigMap update does): one update.
    let tmp = t.files.dir.join("watched.new");
    std::fs::write(&tmp, BASE.replace("default=allow", "default=deny")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let l = next("the changed file");
    assert_eq!((l["action"].as_str(), l["object"].as_str()), (Some("update"), Some("dev0 ingress fw")), "{l}");

    // Drift: someone detaches a managed link; the next interval puts it back.
    t.env.ok(&["detach", "dev0", "ingress", "a"]);
    let l = next("the repair");
    assert_eq!((l["action"].as_str(), l["object"].as_str()), (Some("attach"), Some("dev0 ingress a")), "{l}");

    // Another tool detaches one (BPF_LINK_DETACH; its pin stays, defunct):
    // one line, the repair, and the program it ran is back in its place.
    let before = t.slots(Hook::Ingress);
    witness::detach_link(before[2].link.unwrap());
    let l = next("the repair of a defunct link");
    assert_eq!((l["action"].as_str(), l["object"].as_str()), (Some("attach"), Some("dev0 ingress c")), "{l}");
    assert!(l["detail"].as_str().unwrap().contains("on no hook"), "{l}");
    let now = t.slots(Hook::Ingress);
    assert_eq!((now.len(), now[2].prog), (3, before[2].prog));

    // Another tool makes a link run its own program: one line, the update.
    let theirs = common::hooks::raw_program(2);
    witness::update_link(now[0].link.unwrap(), &theirs);
    let l = next("the repair of a replaced program");
    assert_eq!((l["action"].as_str(), l["object"].as_str()), (Some("update"), Some("dev0 ingress a")), "{l}");
    assert_ne!(t.slots(Hook::Ingress)[0].prog, common::hooks::prog_id(&theirs));

    // A pin removed by hand (its link goes with it): one line, the attach.
    std::fs::remove_file(t.pin(Hook::Ingress, "c")).unwrap();
    let l = next("the repair of a removed pin");
    assert_eq!((l["action"].as_str(), l["object"].as_str()), (Some("attach"), Some("dev0 ingress c")), "{l}");
    assert_eq!(t.slots(Hook::Ingress).len(), 3);

    // A rule written straight into the managed firewall: the interval's
    // check reads every map, and puts the spec's rules back.
    t.env.ok(&["firewall", "add", "dev0", "ingress", "fw", "dst", "10.1.0.0/16", "deny"]);
    let l = next("the repair of the rules");
    assert_eq!((l["action"].as_str(), l["object"].as_str()), (Some("edit"), Some("dev0 ingress fw")), "{l}");
    assert_eq!(t.rules(Hook::Ingress, "fw"), ["src 10.9.0.0/16 deny"]);

    let before = t.slots(Hook::Ingress);
    // SAFETY: signals a child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "a clean exit on SIGTERM: {status}");
    assert_eq!(t.slots(Hook::Ingress), before, "the state stays as last applied");
    assert_eq!(t.diff(&BASE.replace("default=allow", "default=deny"), &[]).0, 0);
}

#[test]
fn a_program_from_a_file_that_changed_is_exported_as_a_reference_and_kept() {
    require_root!();
    let Some(object) = common::hooks::c_object() else {
        common::skip("no C test object (clang)");
        return;
    };
    let t = T::new("apx");
    let copy = t.files.dir.join("prog.o");
    std::fs::copy(&object, &copy).unwrap();
    let spec = format!(
        "chains:\n  - device: dev0\n    hook: ingress\n    programs:\n      - {{name: a, program: pass}}\n      - {{name: mine, program: 'file:{}:count_ingress'}}\n",
        copy.display()
    );
    t.apply(&spec, &[]);
    let before = t.slots(Hook::Ingress);
    assert!(t.env.ok(&["export", "--state", &t.files.state()]).contains("program: file:"));
    // The file goes away: export can no longer say what the link runs.
    std::fs::remove_file(&copy).unwrap();
    let exported = t.env.ok(&["export", "--state", &t.files.state()]);
    assert!(exported.contains(&format!("ref: link:{}", before[1].link.unwrap())), "{exported}");
    assert_eq!(t.diff(&exported, &[]).0, 0, "the reference keeps the link: {exported}");
    assert!(t.apply(&exported, &[]).contains("no changes"));
    assert_eq!(t.slots(Hook::Ingress), before);
}

/// A hook the last apply left as the spec says is planned from its proof in
/// the record: one query of the chain (same device, revision, programs and
/// links), no pin opened, no map read, so a one-pod change costs the same
/// on a node of any size. A chain another tool changed is read in full and
/// repaired; what another writer puts straight into a managed program's
/// maps is found by `--full`, which puts the spec's rules back.
#[test]
fn a_hook_left_as_proved_is_planned_from_one_query_and_full_reads_its_maps() {
    require_root!();
    let t = T::new("apf");
    let spec =
        format!("{BASE}  - device: dev0\n    hook: egress\n    programs:\n      - {{name: e, program: counter}}\n");
    t.apply(&spec, &[]);
    let proofs = || -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(t.files.state()).unwrap()).unwrap()["hooks"]
            .clone()
    };
    for hook in [Hook::Ingress, Hook::Egress] {
        let (revision, slots) = t.env.chain(hook);
        let proof = &proofs()[format!("dev0 {}", hook.name())];
        assert_eq!(proof["revision"], revision, "{proof}");
        let want: Vec<serde_json::Value> =
            slots.iter().map(|s| serde_json::json!([s.prog, s.link.unwrap_or(0)])).collect();
        assert_eq!(proof["slots"].as_array().unwrap(), &want, "{proof}");
    }

    // Another writer adds a rule to the managed firewall; another tool
    // detaches the egress link.
    t.env.ok(&["firewall", "add", "dev0", "ingress", "fw", "dst", "10.1.0.0/16", "deny"]);
    let written = ["src 10.9.0.0/16 deny", "dst 10.1.0.0/16 deny"];
    assert_eq!(t.rules(Hook::Ingress, "fw"), written);
    let egress = t.slots(Hook::Egress)[0].link.unwrap();
    witness::detach_link(egress);
    // The egress chain is read in full and repaired; ingress, as proved, is
    // not read.
    let (code, plan) = t.diff(&spec, &[]);
    assert_eq!((code, steps(&plan)), (2, vec!["attach dev0 egress e".to_string()]), "{plan}");
    t.apply(&spec, &[]);
    assert_eq!(t.slots(Hook::Egress).len(), 1);
    assert_eq!(t.rules(Hook::Ingress, "fw"), written, "taken from the proof");
    assert_eq!(t.diff(&spec, &[]).0, 0);
    // --full reads every map and puts the spec's rules back.
    let (code, plan) = t.diff(&spec, &["--full"]);
    assert_eq!((code, steps(&plan)), (2, vec!["edit dev0 ingress fw".to_string()]), "{plan}");
    t.apply(&spec, &["--full"]);
    assert_eq!(t.rules(Hook::Ingress, "fw"), ["src 10.9.0.0/16 deny"]);
    assert_eq!((t.diff(&spec, &["--full"]).0, t.diff(&spec, &[]).0), (0, 0));

    // A spec that changes the hook's chain reads it in full: the rule
    // written behind apply's back goes with the spec's change.
    t.env.ok(&["firewall", "add", "dev0", "ingress", "fw", "dst", "10.1.0.0/16", "deny"]);
    let changed = spec.replace("'src 10.9.0.0/16 deny'", "'src 10.8.0.0/16 deny'");
    t.apply(&changed, &[]);
    assert_eq!(t.rules(Hook::Ingress, "fw"), ["src 10.8.0.0/16 deny"]);
    let proof = &proofs()["dev0 ingress"];
    assert_eq!(proof["revision"], t.env.chain(Hook::Ingress).0, "proved again after the change: {proof}");
}

/// `bpftool ARGS` (the drift a node's operator makes), or None where the
/// machine has no bpftool (the VM guest), for the caller to fall back on the
/// raw syscall.
fn bpftool(args: &[&str]) -> Option<()> {
    let o = std::process::Command::new("bpftool").args(args).output().ok()?;
    assert!(o.status.success(), "bpftool {args:?}: {}", stderr(&o));
    Some(())
}

/// The detail of the plan's step on `object`.
fn detail(plan: &serde_json::Value, object: &str) -> String {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["object"] == object)
        .map(|s| s["detail"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn drift_made_by_other_tools_is_repaired_and_nothing_is_left_over() {
    require_root!();
    let t = T::new("apd");
    t.apply(BASE, &[]);
    let pins = t.pins();
    assert_eq!(pins.len(), 3, "{pins:?}");
    let first = t.slots(Hook::Ingress);
    let link = |i: usize| first[i].link.unwrap();

    // bpftool detaches the counter's link: off the hook, still pinned.
    if bpftool(&["link", "detach", "id", &link(2).to_string()]).is_none() {
        witness::detach_link(link(2));
    }
    assert_eq!(t.slots(Hook::Ingress), first[..2]);
    let (code, plan) = t.diff(BASE, &[]);
    assert_eq!((code, steps(&plan)), (2, vec!["attach dev0 ingress c".to_string()]), "a repair, not a refusal");
    assert!(detail(&plan, "dev0 ingress c").contains(&format!("repair: link {} is on no hook", link(2))), "{plan}");
    t.apply(BASE, &[]);
    let now = t.slots(Hook::Ingress);
    assert_eq!(now[..2], first[..2], "a and fw keep their links");
    assert_eq!(now[2].prog, first[2].prog, "the counter's own program is attached again");
    assert_ne!(now[2].link, first[2].link);
    assert_eq!((t.diff(BASE, &[]).0, t.pins()), (0, pins.clone()));

    // A raw BPF_LINK_DETACH of the middle one: attached again in its place.
    let first = now;
    witness::detach_link(first[1].link.unwrap());
    t.apply(BASE, &[]);
    let now = t.slots(Hook::Ingress);
    assert_eq!((now[0].clone(), now[2].clone()), (first[0].clone(), first[2].clone()));
    assert_eq!(now[1].prog, first[1].prog, "between a and c, with its rules: {now:?}");
    assert_eq!(t.rules(Hook::Ingress, "fw"), ["src 10.9.0.0/16 deny"]);

    // Another tool makes a's link run its own program: a's comes back,
    // through the same link.
    let first = now;
    let theirs = common::hooks::raw_program(2);
    witness::update_link(first[0].link.unwrap(), &theirs);
    assert_eq!(t.slots(Hook::Ingress)[0].prog, common::hooks::prog_id(&theirs));
    let (code, plan) = t.diff(BASE, &[]);
    assert_eq!((code, steps(&plan)), (2, vec!["update dev0 ingress a".to_string()]));
    t.apply(BASE, &[]);
    let now = t.slots(Hook::Ingress);
    assert_eq!(now[0].link, first[0].link);
    assert_ne!(now[0].prog, common::hooks::prog_id(&theirs));
    assert_eq!(now[1..], first[1..]);

    // A pin removed by hand: its link went with it; attached again.
    std::fs::remove_file(t.pin(Hook::Ingress, "a")).unwrap();
    assert_eq!(t.slots(Hook::Ingress).len(), 2);
    assert_eq!(steps(&t.diff(BASE, &[]).1), ["attach dev0 ingress a"]);
    t.apply(BASE, &[]);
    assert_eq!((t.slots(Hook::Ingress).len(), t.diff(BASE, &[]).0, t.pins()), (3, 0, pins.clone()));

    // The device deleted and made again by ip: every link is defunct, every
    // pin stays; apply attaches all three again and leaves no stray pin.
    t.env.ns.ip_ok(&["link", "del", "dev0"]);
    t.env.ns.ip_ok(&["link", "add", "dev0", "type", "veth", "peer", "name", "eth0", "netns", &t.env.pod.name]);
    assert_eq!(t.pins(), pins, "the pins outlive the device");
    let (code, plan) = t.diff(BASE, &[]);
    assert_eq!(code, 2, "{plan}");
    assert_eq!(steps(&plan), ["attach dev0 ingress a", "attach dev0 ingress fw", "attach dev0 ingress c"]);
    t.apply(BASE, &[]);
    assert_eq!((t.slots(Hook::Ingress).len(), t.diff(BASE, &[]).0, t.pins()), (3, 0, pins.clone()));

    // A managed link that leaves the spec while defunct: its pin goes.
    witness::detach_link(t.slots(Hook::Ingress)[2].link.unwrap());
    let two = BASE.replace("      - {name: c, program: counter}\n", "");
    assert_eq!(steps(&t.diff(&two, &[]).1), ["detach dev0 ingress c"]);
    t.apply(&two, &[]);
    assert_eq!(
        t.pins(),
        pins[..2].iter().chain(&pins[2..]).filter(|p| !p.ends_with("/c")).cloned().collect::<Vec<_>>()
    );
    assert_eq!(t.diff(&two, &[]).0, 0);
}

#[test]
fn a_namespace_made_again_under_its_name_converges() {
    require_root!();
    let t = T::new("apn");
    t.apply(BASE, &[]);
    let pins = t.pins();
    // The node's namespace goes (its devices and their links with it) and a
    // new one gets the same name, as a node's agent or a test rig does.
    let ns = t.env.ns.name.clone();
    let ip = common::ip_bin();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(&ip).args(args).output().unwrap();
        assert!(o.status.success(), "ip {args:?}: {}", stderr(&o));
    };
    run(&["netns", "del", ns.as_str()]);
    // The kernel tears a namespace down in a work queue, after the last
    // reference goes: the pair (its end in the pod too) lives until then.
    t.env.eventually("the old namespace's veth pair to go", || {
        !t.env.pod.ip(&["link", "show", "eth0"]).status.success()
    });
    for args in [
        vec!["netns", "add", ns.as_str()],
        vec![
            "-n",
            ns.as_str(),
            "link",
            "add",
            "dev0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &t.env.pod.name,
        ],
    ] {
        run(&args);
    }
    assert_eq!(t.slots(Hook::Ingress), [], "a new device, an empty hook");
    t.apply(BASE, &[]);
    assert_eq!(t.slots(Hook::Ingress).len(), 3);
    assert_eq!((t.diff(BASE, &[]).0, t.pins()), (0, pins));
}

#[test]
fn apply_killed_before_or_after_any_step_converges_with_nothing_left_over() {
    require_root!();
    let t = T::new("apc");
    let (base, target) = base_and_target();
    t.apply(&target, &[]);
    let target_pins = t.pins();
    t.apply(&base, &[]);
    let base_pins = t.pins();
    // Every hook as the spec says: its programs once each, every one owned
    // by a link, every pin holding one of them.
    let whole = |t: &T, n: usize, what: &str| {
        for hook in [Hook::Ingress, Hook::Egress] {
            let slots = t.slots(hook);
            let mut progs: Vec<u64> = slots.iter().map(|s| s.prog).collect();
            progs.sort();
            progs.dedup();
            assert_eq!((slots.len(), progs.len()), (n, n), "{what}: {hook}: {slots:?}");
            assert!(slots.iter().all(|s| s.link.is_some()), "{what}: {hook}: {slots:?}");
        }
    };
    // With one job, egress is worked on before ingress: the second step of
    // a kind is on the second hook, so the first is finished when it dies.
    for kind in ["record:1", "detach:2", "move:2", "edit:2", "update:2", "attach:2", "pin:2", "pin:3", "record:2"] {
        for mode in ["kill", "kill-after"] {
            let fault = format!("apply:{kind}:{mode}");
            let o = t.run("apply", &target, &["--jobs", "1"], Some(&fault));
            assert_eq!(o.status.signal(), Some(libc::SIGKILL), "{fault}: {}{}", stdout(&o), stderr(&o));
            assert!(stderr(&o).contains("NETKIT_FAULT: killed"), "{fault}: {}", stderr(&o));
            let again = t.run("apply", &target, &[], None);
            assert!(again.status.success(), "{fault}: the next apply converges: {}", stderr(&again));
            assert_eq!(t.diff(&target, &[]).0, 0, "{fault}");
            whole(&t, 5, &fault);
            assert_eq!(t.pins(), target_pins, "{fault}: no stray pin");
            assert_eq!(t.rules(Hook::Ingress, "fw"), ["dst 10.0.0.2/32 deny"], "{fault}");
            t.apply(&base, &[]);
            assert_eq!((t.diff(&base, &[]).0, t.pins()), (0, base_pins.clone()), "{fault}: back to the base");
            whole(&t, 5, &fault);
        }
    }
}

#[test]
fn writers_started_together_wait_for_each_other_and_converge() {
    require_root!();
    let t = T::new("apl");
    // 20 devices, a counter and a pass on each.
    let mut spec = String::from("chains:\n");
    let mut devices = vec!["dev0".to_string()];
    for i in 1..20 {
        let d = format!("r{i}");
        t.env.ns.ip_ok(&["link", "add", &d, "type", "veth", "peer", "name", &format!("r{i}p")]);
        devices.push(d);
    }
    for d in &devices {
        spec += &format!(
            "  - device: {d}\n    hook: ingress\n    programs:\n      - {{name: c, program: counter}}\n      - {{name: p, program: pass}}\n"
        );
    }
    let path = t.files.spec(&spec);
    let state = t.files.state();
    let start = |fault: Option<&str>, extra: &[&str]| {
        let mut cmd = t.env.command(&["apply", "-f", &path, "--state", &state]);
        cmd.args(extra).stdout(Stdio::null()).stderr(Stdio::piped());
        if let Some(f) = fault {
            cmd.env("NETKIT_FAULT", f);
        }
        let mut child = cmd.spawn().unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        (child, line, err)
    };
    // The first holds the lock, stopped half-way through (7 links made).
    let (mut first, line, _e1) = start(Some("apply:attach:8:hang"), &[]);
    assert!(line.contains("hanging"), "{line}");
    let pid = format!("pid {}", first.id());
    // Two more start: each says whom it waits for.
    let (second, l2, _e2) = start(None, &[]);
    let (third, l3, _e3) = start(None, &["--jobs", "2"]);
    for l in [&l2, &l3] {
        assert!(l.contains("waiting for the other writer") && l.contains(&pid), "{l}");
    }
    // One that will not wait gives up, naming the holder, and changes nothing.
    let o = t.env.command(&["apply", "-f", &path, "--state", &state, "--wait", "0"]).output().unwrap();
    assert!(!o.status.success() && stderr(&o).contains(&pid) && stderr(&o).contains("--wait"), "{}", stderr(&o));
    // The first dies at the worst moment; the others take over in turn.
    first.kill().unwrap();
    first.wait().unwrap();
    for mut c in [second, third] {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(t.diff(&spec, &[]).0, 0);
    for d in &devices {
        let c = witness::chain(&t.env.ns, d, witness::TCX_INGRESS);
        assert_eq!(c.slots.len(), 2, "{d}: {c:?}");
        assert!(c.slots.iter().all(|s| s.1 != 0), "{d}: {c:?}");
    }
    assert_eq!(t.pins().len(), 40);
}

#[test]
fn attach_takes_a_pin_name_a_defunct_link_holds() {
    require_root!();
    let t = T::new("apa");
    let made = t.env.attach(Hook::Ingress, "pass", &["--pin", "c"]);
    witness::detach_link(made["link_id"].as_u64().unwrap());
    // Taken by a live link: refused.
    t.env.ok(&["attach", "dev0", "egress", "pass", "--pin", "e"]);
    let e = t.env.fails(&["attach", "dev0", "egress", "counter", "--pin", "e"]);
    assert!(e.contains("already pinned"), "{e}");
    // Held by a defunct one: the name is free again, and the reply says so.
    let again = t.env.attach(Hook::Ingress, "counter", &["--pin", "c"]);
    assert!(again["action"].as_str().unwrap().contains("defunct link"), "{again}");
    let slots = t.slots(Hook::Ingress);
    assert_eq!(slots.iter().map(|s| s.link.unwrap()).collect::<Vec<_>>(), [again["link_id"].as_u64().unwrap()]);
    assert!(t.pin(Hook::Ingress, "c").exists());

    // The device deleted by ip: update by name is refused (no device),
    // detach by name removes what is left, the pin.
    t.env.ns.ip_ok(&["link", "del", "dev0"]);
    let e = t.env.fails(&["update", "dev0", "ingress", "c", "pass"]);
    assert!(e.contains("no device named `dev0`"), "{e}");
    let out = t.env.json(&["detach", "dev0", "ingress", "c"]);
    assert!(out["action"].as_str().unwrap().contains("already defunct"), "{out}");
    assert!(!t.pin(Hook::Ingress, "c").exists());
    t.env.ok(&["detach", "dev0", "egress", "e"]);
    assert_eq!(t.pins(), Vec::<String>::new(), "nothing left");
}

#[test]
fn a_chain_made_with_the_cli_is_exported_and_adopted_in_place() {
    require_root!();
    let t = T::new("apo");
    let e = &t.env;
    e.ok(&["attach", "dev0", "ingress", "firewall", "--set", "default=deny", "--pin", "fw"]);
    e.ok(&["firewall", "add", "dev0", "ingress", "fw", "src", "10.9.0.0/16", "allow"]);
    e.ok(&["attach", "dev0", "ingress", "counter", "--pin", "c"]);
    e.ok(&["attach", "dev0", "ingress", "log", "--set", "sample=5", "--pin", "lg"]);
    let made = e.chain(Hook::Ingress);
    let state = t.files.state();

    // The export names every program by its pin, program and settings.
    let spec = e.ok(&["export", "--state", &state]);
    let expected = "chains:
- device: dev0
  hook: ingress
  programs:
  - name: fw
    program: firewall
    set:
    - default=deny
    rules:
    - src 10.9.0.0/16 allow
  - name: c
    program: counter
  - name: lg
    program: log
    set:
    - sample=5
";
    assert_eq!(spec, expected);

    // Without --adopt the pins are refused as before, with the way out.
    let o = t.run("diff", &spec, &[], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("apply --adopt takes it over"), "{}", stderr(&o));

    // Whatever differs is refused, named, and nothing is taken over.
    let differing = [
        (spec.replace("default=deny", "default=allow"), "firewall with default=deny; the spec sets default=allow"),
        (spec.replace("sample=5", "sample=6"), "log with sample=5; the spec sets sample=6"),
        (
            spec.replace("program: log", "program: counter").replace("    set:\n    - sample=5\n", ""),
            "runs log, not counter",
        ),
        (spec.replace("10.9.0.0/16 allow", "10.9.0.0/16 deny"), "its rules are src 10.9.0.0/16 allow"),
        (
            spec.replace("  - name: c\n    program: counter\n", "")
                .replace("    - sample=5\n", "    - sample=5\n  - name: c\n    program: counter\n"),
            "is at position",
        ),
    ];
    for (other, why) in &differing {
        for verb in ["diff", "apply"] {
            let o = t.run(verb, other, &["--adopt"], None);
            assert_eq!(o.status.code(), Some(1), "{verb} --adopt of\n{other}");
            assert!(stderr(&o).contains("not adopted") && stderr(&o).contains(why), "{why}: {}", stderr(&o));
        }
        assert_eq!(e.chain(Hook::Ingress), made, "a refused adoption touches nothing");
        assert!(t.files.record()["links"].as_object().is_none_or(|l| l.is_empty()), "{}", t.files.record());
    }

    // The export as it is: adopted, nothing touched (same links, programs
    // and revision), then managed like anything apply made.
    let (code, plan) = t.diff(&spec, &["--adopt"]);
    assert_eq!(
        (code, steps(&plan)),
        (2, vec!["adopt dev0 ingress fw".into(), "adopt dev0 ingress c".into(), "adopt dev0 ingress lg".into()])
    );
    assert_eq!(plan["steps"][1]["link_id"], made.1[1].link.unwrap(), "{plan}");
    let o = t.run("apply", &spec, &["--adopt", "-j"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    common::json_shape::check("apply", &report);
    assert_eq!(report["steps"].as_array().map(Vec::len), Some(3), "{report}");
    assert_eq!(e.chain(Hook::Ingress), made, "adoption changes no id and no revision");
    assert_eq!(t.diff(&spec, &[]).0, 0, "managed now: nothing to do, with or without --adopt");
    assert_eq!(t.diff(&spec, &["--adopt"]).0, 0);

    // Drift on an adopted chain is repaired: a link detached by another tool,
    // a rule changed by hand.
    let c = made.1[1].link.unwrap();
    if bpftool(&["link", "detach", "id", &c.to_string()]).is_none() {
        witness::detach_link(c);
    }
    e.ok(&["firewall", "add", "dev0", "ingress", "fw", "dst", "10.1.0.0/16", "deny"]);
    let (code, plan) = t.diff(&spec, &[]);
    assert_eq!((code, steps(&plan)), (2, vec!["edit dev0 ingress fw".into(), "attach dev0 ingress c".into()]));
    t.apply(&spec, &[]);
    let now = t.slots(Hook::Ingress);
    assert_eq!(now.iter().map(|s| s.prog).collect::<Vec<_>>(), made.1.iter().map(|s| s.prog).collect::<Vec<_>>());
    assert_eq!((now[0].link, now[2].link), (made.1[0].link, made.1[2].link));
    assert_eq!(t.rules(Hook::Ingress, "fw"), ["src 10.9.0.0/16 allow"]);
    assert_eq!(t.diff(&spec, &[]).0, 0);

    // --prune applies to what was adopted.
    let two = spec.replace("  - name: lg\n    program: log\n    set:\n    - sample=5\n", "");
    t.apply(&two, &["--prune"]);
    assert_eq!(t.slots(Hook::Ingress).len(), 2);
    assert!(!t.pins().iter().any(|p| p.ends_with("/lg")), "{:?}", t.pins());
}

#[test]
fn a_program_the_cli_attached_from_a_file_is_exported_by_its_path_and_adopted() {
    require_root!();
    let Some(object) = common::hooks::c_object() else {
        common::skip("no C test object (clang)");
        return;
    };
    let t = T::new("apf");
    let e = &t.env;
    let copy = t.files.dir.join("mine.o");
    std::fs::copy(&object, &copy).unwrap();
    e.ok(&["attach", "dev0", "ingress", &format!("file:{}:count_ingress", copy.display()), "--pin", "mine"]);
    let made = e.chain(Hook::Ingress);
    let state = t.files.state();
    let link = made.1[0].link.unwrap();

    // Without the object, export cannot say where the program came from.
    assert!(e.ok(&["export", "--state", &state]).contains(&format!("ref: link:{link}")));
    // With it, the program is named by the file's absolute path and function.
    // Comparing loads the file again; the map it declares pinned is the
    // running program's, and one it has to pin (its pin removed here) is
    // unpinned again: the comparison leaves no pin anywhere.
    let pins = t.pins();
    assert!(pins.iter().any(|p| p == "maps/shared_packets"), "{pins:?}");
    let stray = std::path::Path::new("/sys/fs/bpf/shared_packets");
    let stray_before = stray.exists();
    let spec = e.ok(&["export", "--state", &state, "--object", &copy.display().to_string()]);
    assert_eq!(t.pins(), pins);
    std::fs::remove_file(t.env.bpffs.path.join("netkit/maps/shared_packets")).unwrap();
    let without = t.pins();
    assert_eq!(e.ok(&["export", "--state", &state, "--object", &copy.display().to_string()]), spec);
    assert_eq!(t.pins(), without, "the comparison pinned nothing");
    assert_eq!(stray.exists(), stray_before, "nor outside this bpffs");
    let expected = format!(
        "chains:\n- device: dev0\n  hook: ingress\n  programs:\n  - name: mine\n    program: file:{}:count_ingress\n",
        copy.canonicalize().unwrap().display()
    );
    assert_eq!(spec, expected);
    // An object that does not hold the running code leaves it a reference.
    let other = t.files.dir.join("other.o");
    std::fs::write(&other, b"not an object").unwrap();
    let o = t.env.run(&["export", "--state", &state, "--object", &other.display().to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("ref: link:{link}")));

    // Another function of the same file is not what runs: refused, untouched.
    let wrong = spec.replace(":count_ingress", ":count_egress");
    let o = t.run("apply", &wrong, &["--adopt"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not adopted") && stderr(&o).contains("runs count_ingress"), "{}", stderr(&o));
    assert_eq!(e.chain(Hook::Ingress), made);

    // The export as it is is adopted in place, then managed.
    let (code, plan) = t.diff(&spec, &["--adopt"]);
    assert_eq!((code, steps(&plan)), (2, vec!["adopt dev0 ingress mine".into()]));
    t.apply(&spec, &["--adopt"]);
    assert_eq!(e.chain(Hook::Ingress), made, "adoption changes no id and no revision");
    assert_eq!(t.diff(&spec, &[]).0, 0);
    if bpftool(&["link", "detach", "id", &link.to_string()]).is_none() {
        witness::detach_link(link);
    }
    assert_eq!(steps(&t.diff(&spec, &[]).1), vec!["attach dev0 ingress mine".to_string()]);
    t.apply(&spec, &[]);
    assert_eq!(t.slots(Hook::Ingress).len(), 1);
    assert_eq!(t.diff(&spec, &[]).0, 0);
}

#[test]
fn a_program_that_keeps_state_is_each_hooks_own() {
    require_root!();
    let t = T::new("apst");
    let spec = "chains:\n  - device: dev0\n    hook: ingress\n    programs:\n      - {name: c, program: counter}\n      - {name: p, program: pass}\n  - device: dev0\n    hook: egress\n    programs:\n      - {name: c, program: counter}\n      - {name: p, program: pass}\n";
    for jobs in ["1", "8"] {
        t.apply(spec, &["--jobs", jobs]);
        let (i, e) = (t.progs(Hook::Ingress), t.progs(Hook::Egress));
        // A counter's counts are its hook's: two programs. A program that
        // writes no map is loaded once and runs on both (one job at a time:
        // jobs running together may each load it before either shares it).
        assert_ne!(i[0], e[0], "--jobs {jobs}: one counter on two hooks would mix their counts");
        if jobs == "1" {
            assert_eq!(i[1], e[1], "pass is shared");
        }
        t.apply("{}", &["--prune"]);
    }
}
