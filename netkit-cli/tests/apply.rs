//! `netkit apply`, `diff` and `export` on tcx hooks against a real kernel (a
//! veth pair on the host and in the VM): idempotence, minimal changes, a
//! foreign link left in place, --prune, export | apply, bad specs, rollback
//! at every kind of chain step, and recovery after kill -9. Chains are read
//! by the witness (the test's own BPF_PROG_QUERY), never by the tool.

mod common;

use std::{
    io::{BufRead as _, BufReader},
    process::{Output, Stdio},
};

use common::{
    apply::Files,
    hooks::{HookEnv, Slot},
    stderr, stdout,
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

    // export | apply changes nothing.
    let exported = t.env.ok(&["export", "--state", &t.files.state()]);
    assert!(exported.contains("ref: link:"), "the foreign link is a reference: {exported}");
    assert_eq!(t.diff(&exported, &[]).0, 0, "{exported}");
    assert!(t.apply(&exported, &[]).contains("no changes"));
    let json = t.env.ok(&["-j", "export", "--state", &t.files.state()]);
    assert_eq!(t.diff(&json, &[]).0, 0, "the JSON export applies as a no-op too: {json}");
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
        ("chains:\n  - device: dev0\n    hook: primary\n", "2:", "not a netkit primary"),
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

fn without_link_ids(mut record: serde_json::Value) -> serde_json::Value {
    for l in record["links"].as_array_mut().into_iter().flatten() {
        l.as_object_mut().unwrap().remove("link_id");
    }
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
    let path = t.files.spec(&target);
    let state = t.files.state();
    let mut child = t
        .env
        .command(&["apply", "-f", &path, "--state", &state, "--jobs", "1"])
        .env("NETKIT_FAULT", "apply:attach:2:hang")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("hanging"), "{line}");
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
