//! The executor's order, stops and rollback, against effects that only
//! record what they are asked (no kernel): which steps run, which undo runs
//! in which order after a failure, and what the record says at each write.

use super::*;
use crate::apply::{PlanOptions, plan_on_empty, spec};

/// Effects that succeed, except the step named `fail`, and an undo named
/// `undo_fails`; every step, undo and record write is logged. At the step
/// named `killed_after` the process dies once the step took effect, as
/// `kill -9` would: no rollback, no last record write.
#[derive(Default)]
struct Fake {
    fail: Option<String>,
    undo_fails: Option<String>,
    killed_after: Option<String>,
    log: Mutex<Vec<String>>,
    saved: Mutex<Vec<Ownership>>,
}

impl Fake {
    fn step(&self, what: String) -> Result<(), ApplyError> {
        self.log.lock().unwrap().push(what.clone());
        if self.fail.as_ref() == Some(&what) {
            return Err(changed(what, "failed as the test asked"));
        }
        Ok(())
    }

    /// After a step took effect.
    fn took_effect(&self, what: &str) {
        if self.killed_after.as_deref() == Some(what) {
            std::panic::resume_unwind(Box::new(format!("killed after {what}")));
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Effects for Fake {
    type Undo = String;
    type Conn = ();

    fn connect(&self) -> Result<(), ApplyError> {
        Ok(())
    }

    async fn pair(&self, _: &(), sh: &Shared<'_>, p: &PairWork, undo: &mut Vec<String>) -> Result<(), ApplyError> {
        let PairWork::Create(spec) = p else { panic!("only creations in these plans") };
        self.step(format!("create {}", spec.name))?;
        undo.push(format!("delete {}", spec.name));
        self.took_effect(&format!("create {}", spec.name));
        sh.did(Did::Made { action: Action::Create, name: &spec.name, ifindex: 7 });
        Ok(())
    }

    fn unpin(&self, _: &Shared<'_>, unpins: &[Unpin], _: &mut Vec<String>) -> Result<(), ApplyError> {
        assert!(unpins.is_empty(), "nothing to unpin on an empty node");
        Ok(())
    }

    async fn chain(&self, _: &(), sh: &Shared<'_>, c: &ChainWork, undo: &mut Vec<String>) -> Result<(), ApplyError> {
        for (i, w) in c.wants.iter().enumerate() {
            if sh.failed.load(Ordering::SeqCst) {
                return Ok(());
            }
            self.step(format!("attach {}", w.key))?;
            undo.push(format!("detach {}", w.key));
            self.took_effect(&format!("attach {}", w.key));
            sh.did(Did::Runs {
                action: Some(Action::Attach),
                want: w,
                link_id: 100 + i as u32,
                prog_id: 200 + i as u32,
            });
        }
        Ok(())
    }

    async fn delete(&self, _: &(), _: &Shared<'_>, _: &PairDeletion, _: &mut Vec<String>) -> Result<(), ApplyError> {
        panic!("nothing to delete on an empty node")
    }

    fn recreates(_: &String) -> Option<String> {
        None
    }

    async fn undo(&self, _: &(), _: &Shared<'_>, u: String) -> Result<(), ApplyError> {
        self.log.lock().unwrap().push(format!("undo: {u}"));
        if self.undo_fails.as_ref() == Some(&u) {
            return Err(changed(u, "the undo failed as the test asked"));
        }
        Ok(())
    }

    fn follow(&self, _: &(), _: &Shared<'_>, _: &mut Ownership, _: &[String]) {}

    fn save(&self, owned: &Ownership, _: bool) -> Result<(), ApplyError> {
        self.saved.lock().unwrap().push(owned.clone());
        Ok(())
    }
}

const SPEC: &str = "
pairs:
  - name: a0
  - name: b0
chains:
  - device: a0
    hook: peer
    programs:
      - {name: c1, program: counter}
      - {name: p1, program: pass}
  - device: b0
    hook: peer
    programs:
      - {name: c2, program: counter}
      - {name: p2, program: pass}
";

/// Runs the plan of SPEC on an empty node with `fx`, one job at a time.
fn run_with(fx: &Fake) -> Result<Report, ApplyError> {
    let doc = spec::parse_doc("test.yaml", SPEC).unwrap();
    let valid = spec::validate("test.yaml", &doc).unwrap();
    let plan = plan_on_empty(&valid, PlanOptions::default()).unwrap();
    let opts = ExecOptions { bpffs: "/sys/fs/bpf".into(), jobs: 1 };
    let layout = Layout::unchecked(std::path::Path::new("/sys/fs/bpf"));
    execute(fx, &runtime::new().unwrap(), &plan, &opts, layout, "default".into())
}

#[test]
fn the_record_names_the_intentions_first_and_the_outcome_last() {
    let fx = Fake::default();
    let report = run_with(&fx).unwrap();
    assert_eq!(
        fx.log(),
        ["create a0", "create b0", "attach a0 peer c1", "attach a0 peer p1", "attach b0 peer c2", "attach b0 peer p2"]
    );
    assert_eq!(report.steps.len(), 6);
    assert_eq!(report.steps[0].ifindex, Some(7), "the report carries the ids: {:?}", report.steps[0]);
    assert_eq!((report.steps[2].link_id, report.steps[2].prog_id), (Some(100), Some(200)));
    let saved = fx.saved.lock().unwrap();
    assert_eq!(saved.len(), 2, "before the first step and after the last");
    let (intent, outcome) = (&saved[0], &saved[1]);
    assert!(intent.pairs.values().all(|p| p.ifindex.is_none()), "pairs not made yet: {intent:?}");
    assert!(intent.links.values().all(|l| l.link_id.is_none()), "links not made yet: {intent:?}");
    assert_eq!(intent.links.len(), 4, "every link name the run will attach: {intent:?}");
    assert!(outcome.pairs.values().all(|p| p.ifindex == Some(7)));
    assert!(outcome.links.values().all(|l| l.link_id.is_some() && l.fingerprint.is_some()));
}

#[test]
fn a_failure_stops_the_jobs_and_undoes_everything_newest_first() {
    let fx = Fake { fail: Some("attach b0 peer p2".into()), ..Default::default() };
    let e = run_with(&fx).unwrap_err();
    let ApplyError::RolledBack { cause, undone, problems } = &e else { panic!("not rolled back: {e}") };
    assert!(cause.node_changed(), "the step's own failure is the cause: {cause}");
    assert_eq!((*undone, problems.len()), (5, 0));
    let undos: Vec<String> = fx.log().into_iter().filter(|l| l.starts_with("undo: ")).collect();
    assert_eq!(
        undos,
        [
            "undo: detach b0 peer c2",
            "undo: detach a0 peer p1",
            "undo: detach a0 peer c1",
            "undo: delete b0",
            "undo: delete a0"
        ]
    );
    let saved = fx.saved.lock().unwrap();
    assert_eq!(saved.last(), Some(&Ownership::default()), "the record is as before the run");
}

#[test]
fn an_undo_that_fails_is_reported_and_the_others_still_run() {
    let fx = Fake {
        fail: Some("attach b0 peer c2".into()),
        undo_fails: Some("detach a0 peer p1".into()),
        ..Default::default()
    };
    let e = run_with(&fx).unwrap_err();
    let ApplyError::RolledBack { undone, problems, .. } = &e else { panic!("not rolled back: {e}") };
    assert_eq!(*undone, 4);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("the undo failed"), "{problems:?}");
    assert!(fx.log().contains(&"undo: delete a0".to_string()), "the rollback went on: {:?}", fx.log());
    assert!(e.to_string().contains("except: "), "{e}");
}

#[test]
fn a_failed_pair_stops_the_chains_and_the_pair_made_beside_it_is_undone() {
    let fx = Fake { fail: Some("create a0".into()), ..Default::default() };
    let e = run_with(&fx).unwrap_err();
    let ApplyError::RolledBack { undone, .. } = &e else { panic!("not rolled back: {e}") };
    assert!(!fx.log().iter().any(|l| l.starts_with("attach")), "no chain runs after a pair failed: {:?}", fx.log());
    // The pairs are made side by side: b0 was made while a0 failed.
    assert_eq!(*undone, 1);
    assert_eq!(fx.log().last().map(String::as_str), Some("undo: delete b0"));
    assert_eq!(fx.saved.lock().unwrap().last(), Some(&Ownership::default()));
}

#[test]
fn a_run_killed_after_any_step_leaves_a_record_naming_everything_it_made() {
    let all = {
        let fx = Fake::default();
        run_with(&fx).unwrap();
        fx.log()
    };
    for (n, step) in all.iter().enumerate() {
        let fx = Fake { killed_after: Some(step.clone()), ..Default::default() };
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_with(&fx)));
        assert!(died.is_err(), "the run went on after {step}");
        let log = fx.log();
        assert_eq!(log, all[..=n], "steps up to the kill, in order, and no undo");
        let saved = fx.saved.lock().unwrap();
        assert_eq!(saved.len(), 1, "killed after {step}: only the intentions were written");
        let record = &saved[0];
        for made in &log {
            let (verb, object) = made.split_once(' ').unwrap();
            let named = match verb {
                "create" => record.pairs.contains_key(object),
                _ => record.links.keys().any(|k| k.to_string() == object),
            };
            assert!(named, "killed after {step}: {object} exists and the record does not name it: {record:?}");
        }
        // What the next run must check before trusting: nothing is taken as
        // confirmed.
        assert!(record.pairs.values().all(|p| p.ifindex.is_none()), "{record:?}");
        assert!(record.links.values().all(|l| l.link_id.is_none() && l.fingerprint.is_none()), "{record:?}");
    }
}
