//! The one test seam. Debug builds act at a chosen step when
//! `NETKIT_FAULT=SCOPE:STEP[:N][:MODE]` names it, so that rollback, the
//! removal of half-made objects and crash recovery are tested against a real
//! kernel, at a chosen moment, without timing. Release builds never look.
//!
//! - SCOPE:STEP: `apply:` a plan action (create, change, recreate, attach,
//!   update, move, edit, detach, delete), `pin` (a new link pinned) or
//!   `record` (the ownership record written: first the intentions, then the
//!   outcome); `cni:` ipam, pair, address, route, policy (each once that
//!   part of an ADD is made), del-pair; `device:` peer-up (a new pair's
//!   peer brought up), set-peer (a change reaching the peer).
//! - N: the Nth time the process reaches that step (default 1), counted
//!   once per process: in `apply --watch` or a batch of applies only the
//!   Nth of them all fails. With more than one apply job at once, steps
//!   count in the order the jobs reach them (tests pass `--jobs 1`).
//! - MODE: `fail` (default: the step fails, and what was done is undone),
//!   `hang` (it waits forever, holding what it holds), `kill` (SIGKILL right
//!   before the step), `kill-after` (SIGKILL right after it; `apply:` steps
//!   only, the others are checked at one point each).

use std::{
    collections::HashMap,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

/// Which part of the library a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    Apply,
    Cni,
    Device,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Cni => "cni",
            Self::Device => "device",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Fail,
    Hang,
    Kill,
    KillAfter,
}

/// A fault, as NETKIT_FAULT names it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    scope: Scope,
    step: String,
    n: usize,
    mode: Mode,
}

impl Spec {
    fn parse(text: &str) -> Option<Self> {
        let mut it = text.split(':');
        let scope = match it.next()? {
            "apply" => Scope::Apply,
            "cni" => Scope::Cni,
            "device" => Scope::Device,
            _ => return None,
        };
        let step = it.next().filter(|s| !s.is_empty())?.to_string();
        let mut rest: Vec<&str> = it.collect();
        let n = match rest.first().map(|n| n.parse::<usize>()) {
            Some(Ok(n)) if n > 0 => {
                rest.remove(0);
                n
            }
            Some(Ok(_)) => return None,
            _ => 1,
        };
        let mode = match rest.as_slice() {
            [] | ["fail"] => Mode::Fail,
            ["hang"] => Mode::Hang,
            ["kill"] => Mode::Kill,
            ["kill-after"] if scope == Scope::Apply => Mode::KillAfter,
            _ => return None,
        };
        Some(Self { scope, step, n, mode })
    }
}

/// A `fail` fault: the step's error.
#[derive(Debug, thiserror::Error)]
#[error("failure injected by NETKIT_FAULT={0}")]
pub(crate) struct Injected(String);

/// The process's fault, with how often each step was reached.
pub(crate) struct Faults {
    spec: Option<(Spec, String)>,
    seen: Mutex<HashMap<(Scope, String), usize>>,
    /// A `kill-after` whose step has started.
    armed: AtomicBool,
}

/// The seam, read from the environment once per process.
pub(crate) fn faults() -> &'static Faults {
    static FAULTS: OnceLock<Faults> = OnceLock::new();
    FAULTS.get_or_init(|| {
        let text = if cfg!(debug_assertions) { std::env::var("NETKIT_FAULT").ok() } else { None };
        Faults::new(text.as_deref())
    })
}

/// Before the step `step` of `scope`.
pub(crate) fn check(scope: Scope, step: &str) -> Result<(), Injected> {
    faults().check(scope, step)
}

/// After the step `step` of `scope` took effect.
pub(crate) fn after(scope: Scope, step: &str) {
    faults().after(scope, step);
}

/// Writes `msg` straight to fd 2 (a command's main thread may hold the
/// stderr lock for the whole run).
fn say(msg: &str) {
    // SAFETY: writes a buffer this function owns to fd 2.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

fn die(msg: &str) -> ! {
    say(msg);
    // SAFETY: SIGKILL to this process, as a node's OOM killer or an
    // operator's kill -9 sends it; nothing runs after it.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("SIGKILL returned")
}

impl Faults {
    fn new(text: Option<&str>) -> Self {
        let spec = text.and_then(|t| Spec::parse(t).map(|s| (s, t.to_string())));
        Self { spec, seen: Mutex::new(HashMap::new()), armed: AtomicBool::new(false) }
    }

    /// Whether this is the step and the time the fault names (counting it).
    fn hit(&self, scope: Scope, step: &str) -> Option<(&Spec, &str)> {
        let (spec, text) = self.spec.as_ref()?;
        if spec.scope != scope || spec.step != step {
            return None;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let count = seen.entry((scope, step.to_string())).or_default();
        *count += 1;
        (*count == spec.n).then_some((spec, text.as_str()))
    }

    fn check(&self, scope: Scope, step: &str) -> Result<(), Injected> {
        let Some((spec, text)) = self.hit(scope, step) else { return Ok(()) };
        let at = format!("{step} step {} ({})", spec.n, scope.name());
        match spec.mode {
            Mode::Fail => Err(Injected(text.to_string())),
            Mode::Hang => {
                say(&format!("NETKIT_FAULT: hanging in {at}\n"));
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
            Mode::Kill => die(&format!("NETKIT_FAULT: killed before {at}\n")),
            Mode::KillAfter => {
                self.armed.store(true, Ordering::SeqCst);
                Ok(())
            }
        }
    }

    fn after(&self, scope: Scope, step: &str) {
        if let Some((spec, _)) = &self.spec
            && spec.mode == Mode::KillAfter
            && spec.scope == scope
            && spec.step == step
            && self.armed.swap(false, Ordering::SeqCst)
        {
            die(&format!("NETKIT_FAULT: killed after {step} step {} ({})\n", spec.n, scope.name()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_takes_every_form_the_tests_use() {
        let s = |scope, step: &str, n, mode| Some(Spec { scope, step: step.into(), n, mode });
        assert_eq!(Spec::parse("apply:attach"), s(Scope::Apply, "attach", 1, Mode::Fail));
        assert_eq!(Spec::parse("apply:attach:2"), s(Scope::Apply, "attach", 2, Mode::Fail));
        assert_eq!(Spec::parse("apply:pin:2:kill-after"), s(Scope::Apply, "pin", 2, Mode::KillAfter));
        assert_eq!(Spec::parse("apply:record:1:hang"), s(Scope::Apply, "record", 1, Mode::Hang));
        assert_eq!(Spec::parse("cni:ipam:kill"), s(Scope::Cni, "ipam", 1, Mode::Kill));
        assert_eq!(Spec::parse("device:set-peer"), s(Scope::Device, "set-peer", 1, Mode::Fail));
        for bad in [
            "",
            "apply",
            "apply:",
            "attach:1",
            "apply:attach:0",
            "apply:attach:1:explode",
            "x:y",
            "cni:ipam:kill-after",
        ] {
            assert_eq!(Spec::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_the_named_time_of_the_named_step_fails() {
        let f = Faults::new(Some("apply:attach:2"));
        assert!(f.check(Scope::Apply, "pin").is_ok());
        assert!(f.check(Scope::Cni, "attach").is_ok(), "another scope's step of that name");
        assert!(f.check(Scope::Apply, "attach").is_ok(), "the first time");
        let e = f.check(Scope::Apply, "attach").unwrap_err();
        assert_eq!(e.to_string(), "failure injected by NETKIT_FAULT=apply:attach:2");
        assert!(f.check(Scope::Apply, "attach").is_ok(), "the third time");
        assert!(Faults::new(None).check(Scope::Apply, "attach").is_ok());
    }
}
