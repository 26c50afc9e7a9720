//! The typed layer over the kernel's multi-program (mprog) API for tcx and
//! netkit hooks: links and plain attachments, anchors, revisions, queries.
//! aya loads programs; everything that touches a hook goes through here.

pub mod hook;
pub mod sys;

pub use hook::Hook;

/// How many programs are on `hook` of `ifindex` (a count-only query), or the
/// errno that prevented the query.
pub fn count(ifindex: u32, hook: Hook) -> Result<u32, i32> {
    match sys::prog_query(ifindex, hook.attach_type(), &mut [], &mut []) {
        Ok(r) => Ok(r.count),
        Err((e, _)) => Err(e.errno().unwrap_or(0)),
    }
}
