//! Declarative state: `netkit apply`, `diff` and `export`. A spec (pairs,
//! and per hook an ordered chain) is compared with the node and with what
//! apply owns ([`state`]), planned into the fewest typed steps ([`Plan`]),
//! and carried out with the same operations the commands use: pairs through
//! the device layer, links through the hook layer, rules and entries
//! through the maps layer. A failed step undoes every step before it.

mod exec;
mod export;
mod node;
mod plan;
pub mod spec;
pub mod state;

use std::path::PathBuf;

pub use exec::{ExecOptions, Report};
pub use plan::{Action, ForeignView, Plan, PlanOptions, StepView};

use crate::{
    netlink::{Netlink, NetlinkError, device::DeviceError},
    os::netns,
    pins::{Layout, PinError},
    programs::ProgramError,
};
use spec::{Spec, SpecDoc, SpecError};
use state::{Record, RecordLock, StateError, Wait};

/// Why a spec could not be planned or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The spec has mistakes.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The spec cannot be reached from the node as it is (each reason with
    /// its place in the file when it has one); nothing was changed.
    #[error("the spec cannot be applied; nothing was changed:{}", .0.iter().map(|m| format!("\n  {m}")).collect::<String>())]
    Blocked(Vec<String>),
    /// A step failed.
    #[error("{what} failed")]
    Step {
        /// The step.
        what: String,
        /// What failed, by kind.
        #[source]
        cause: Box<StepCause>,
    },
    /// A step failed and the steps before it were undone.
    #[error(
        "{}; rolled back {undone} step{} so the node is as it was{}",
        crate::os::errno::error_chain(cause),
        if *undone == 1 { "" } else { "s" },
        if problems.is_empty() { String::new() } else { format!(", except: {}", problems.join("; ")) }
    )]
    RolledBack {
        /// The failure.
        cause: Box<ApplyError>,
        /// How many steps were undone.
        undone: usize,
        /// Undo steps that failed themselves.
        problems: Vec<String>,
    },
    /// The ownership record could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// A device could not be read.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A program could not be prepared or loaded.
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// The bpffs is not usable.
    #[error(transparent)]
    Pin(#[from] PinError),
}

/// Why a step of an apply failed, by kind; each kind carries the error of
/// the layer that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepCause {
    /// A pair could not be made, changed, read or deleted.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A hook refused a link (explained in the hook's terms).
    #[error(transparent)]
    Hook(#[from] crate::hooks::AttachError),
    /// A link or its pin could not be opened, pinned, updated or detached.
    #[error(transparent)]
    Link(#[from] crate::hooks::link::LinkError),
    /// A firewall's rules could not be read or written.
    #[error(transparent)]
    Firewall(#[from] crate::maps::firewall::FirewallError),
    /// A redirect table could not be read or written.
    #[error(transparent)]
    Redirect(#[from] crate::maps::redirect::RedirectError),
    /// A bpf(2) call on a program failed.
    #[error(transparent)]
    Syscall(#[from] crate::bpf::SyscallError),
    /// The system refused a resource (a runtime, a duplicated fd).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The node changed under the plan (a device gone, a name taken): plan
    /// and apply again.
    #[error("{0}")]
    Changed(String),
    /// A failure injected by the test seam (NETKIT_FAULT, debug builds).
    #[error("{0}")]
    Injected(String),
}

impl ApplyError {
    /// Whether it failed because the node changed under the plan (a device
    /// gone, a pin taken by another writer): planning and applying again
    /// may succeed.
    pub fn node_changed(&self) -> bool {
        match self {
            Self::Step { cause, .. } => matches!(**cause, StepCause::Changed(_)),
            Self::RolledBack { cause, .. } => cause.node_changed(),
            _ => false,
        }
    }
}

impl From<crate::mprog::MprogError> for StepCause {
    fn from(e: crate::mprog::MprogError) -> Self {
        Self::Link(e.into())
    }
}

impl From<PinError> for StepCause {
    fn from(e: PinError) -> Self {
        Self::Link(e.into())
    }
}

/// Plans `spec` against a node with no devices, pins or programs on a
/// kernel with every netkit attribute (for the fuzz targets and tests).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub fn plan_on_empty(spec: &Spec, opts: PlanOptions) -> Result<Plan, ApplyError> {
    use std::task::{Context, Poll, Waker};
    let planner = plan::Planner::new(
        &node::Empty,
        Layout::unchecked(std::path::Path::new("/sys/fs/bpf")),
        "default".into(),
        opts,
        Default::default(),
    );
    // Nothing the empty node does waits, so one poll finishes the plan.
    match std::pin::pin!(planner.plan(spec)).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(plan) => plan,
        Poll::Pending => panic!("planning against the empty node waited"),
    }
}

/// Plans, applies and exports in the calling thread's network namespace.
pub struct Engine<'a> {
    /// The rtnetlink connection of that namespace.
    pub nl: &'a Netlink,
    /// The bpffs the links are pinned under.
    pub bpffs: PathBuf,
    /// The ownership record (default: the namespace's under /run/netkit/apply).
    pub record: Record,
}

impl<'a> Engine<'a> {
    /// An engine for the current namespace; `record` overrides where
    /// ownership is recorded.
    pub fn new(nl: &'a Netlink, bpffs: PathBuf, record: Option<PathBuf>) -> Self {
        let record = match record {
            Some(path) => Record { path },
            None => Record::for_netns(&netns::current_name()),
        };
        Self { nl, bpffs, record }
    }

    /// The steps that bring the node to `spec`.
    pub async fn plan(&self, spec: &Spec, opts: PlanOptions) -> Result<Plan, ApplyError> {
        let kernel = node::Kernel::new(self.nl);
        let planner = plan::Planner::new(
            &kernel,
            Layout::unchecked(&self.bpffs),
            netns::current_name(),
            opts,
            self.record.load()?,
        );
        planner.plan(spec).await
    }

    /// Takes the lock that makes this engine the record's only writer:
    /// at once, or after waiting as `wait` says, with `waiting` told once
    /// who holds it. Take it before [`Engine::plan`]
    /// and keep it until [`Engine::apply`] returns, so that no other writer
    /// changes the node between the two and no rollback undoes another
    /// writer's objects.
    pub fn lock(&self, wait: Wait<'_>, waiting: impl FnMut(&str)) -> Result<RecordLock, ApplyError> {
        Ok(self.record.lock(wait, waiting)?)
    }

    /// Carries `plan` out, holding the record's lock (see [`Engine::lock`]).
    /// Builds its own runtime: call it outside one.
    pub fn apply(&self, plan: &Plan, jobs: usize, _writer: &RecordLock) -> Result<Report, ApplyError> {
        let opts = ExecOptions { bpffs: self.bpffs.clone(), jobs };
        exec::run(plan, &self.record, &opts, netns::current_name())
    }

    /// The node as a spec: its pairs, and the chains of `devices` (every
    /// device when empty), naming what can be named (see the `export`
    /// module; `objects` are the object files a pinned program may come
    /// from) and the rest as references.
    pub async fn export(&self, devices: &[String], objects: &[std::path::PathBuf]) -> Result<SpecDoc, ApplyError> {
        export::export(self, devices, objects).await
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;

    /// A step's cause is its source, said once in the chain, and its kind
    /// survives a rollback.
    #[test]
    fn a_step_keeps_its_cause_by_kind_and_says_it_once() {
        let e = ApplyError::Step {
            what: "attaching na0/primary/fw".into(),
            cause: Box::new(StepCause::Changed("the pair is gone".into())),
        };
        assert_eq!(crate::os::errno::error_chain(&e), "attaching na0/primary/fw failed: the pair is gone");
        assert!(e.node_changed());
        let rolled = ApplyError::RolledBack { cause: Box::new(e), undone: 2, problems: Vec::new() };
        assert_eq!(
            rolled.to_string(),
            "attaching na0/primary/fw failed: the pair is gone; rolled back 2 steps so the node is as it was"
        );
        assert!(rolled.node_changed());
        let injected =
            ApplyError::Step { what: "attach step".into(), cause: Box::new(StepCause::Injected("x".into())) };
        assert!(!injected.node_changed());
    }
}
