//! Failures as CNI error objects: each layer's error with the step it broke,
//! and the test seam's steps of ADD and DEL.

use std::{io, path::Path};

use super::{CniError, Code};
use crate::apply::ApplyError;

pub(super) fn io_error(what: &str, path: &Path, e: io::Error) -> CniError {
    CniError::new(Code::Io, format!("{what} {}", path.display()), e.to_string())
}

/// A netlink or device failure while doing `what`, its causes spelled out.
pub(super) fn layer_error<E: std::error::Error>(what: &str) -> impl Fn(E) -> CniError + '_ {
    move |e| CniError::new(Code::Plugin, what.to_string(), crate::os::errno::error_chain(&e))
}

/// Plan-time failures are the configuration's; a node that changed under
/// the plan is worth another try; other failures are the node's.
pub(super) fn apply_error(what: &str, e: ApplyError) -> CniError {
    let code = match &e {
        ApplyError::Spec(_) | ApplyError::Blocked(_) | ApplyError::Program(_) => Code::InvalidConfig,
        e if e.node_changed() => Code::TryAgain,
        _ => Code::Plugin,
    };
    CniError::new(code, what.to_string(), crate::os::errno::error_chain(&e))
}

/// A step of an ADD or DEL, through the fault seam (`crate::fault`).
pub(super) fn fault(step: &str) -> Result<(), CniError> {
    crate::fault::check(crate::fault::Scope::Cni, step)
        .map_err(|e| CniError::new(Code::Plugin, format!("failure injected at {step}"), e.to_string()))
}
