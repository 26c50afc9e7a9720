//! The typed layer over the kernel's multi-program (mprog) API for tcx and
//! netkit hooks: links and plain attachments, anchors, revisions, queries.
//! aya loads programs; everything that touches a hook goes through here.

pub mod sys;
