//! The typed layer over the kernel's multi-program (mprog) API for tcx and
//! netkit hooks: links and plain attachments, anchors, revisions, queries.
//! `programs` loads programs; everything that touches a hook goes through here.
//! Errors carry the command and errno; `error::explain` words them in the
//! hook's terms for people.

pub mod anchor;
pub mod error;
pub mod hook;

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::bpf;

pub use anchor::Anchor;

pub(crate) use anchor::Handle;

pub(crate) use anchor::Target;
pub(crate) use error::MprogError;
pub use hook::Hook;

/// Where a hook lives: a device (by ifindex, in the caller's namespace) and
/// which of its chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookRef {
    pub(crate) ifindex: u32,
    pub(crate) hook: Hook,
}

/// One slot of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The program's id.
    pub prog_id: u32,
    /// The owning link, or None for a plain attachment.
    pub(crate) link_id: Option<u32>,
}

/// A hook's chain as one query saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    pub(crate) revision: u64,
    /// The slots in the order they run.
    pub slots: Vec<Slot>,
}

impl Chain {
    fn from_ids(revision: u64, progs: &[u32], links: &[u32]) -> Self {
        let slots = progs
            .iter()
            .zip(links)
            .map(|(&prog_id, &link)| Slot { prog_id, link_id: (link != 0).then_some(link) })
            .collect();
        Self { revision, slots }
    }
}

/// The kernel's limit of programs per hook (BPF_MPROG_MAX less the terminator).
pub(crate) const MAX_PROGRAMS: usize = 63;

/// The query buffer starts this small; longer chains take the ENOSPC path.
const INITIAL_QUERY_SLOTS: usize = 8;

fn expected(rev: Option<u64>) -> u64 {
    rev.unwrap_or(0)
}

impl HookRef {
    /// The hook `hook` of the device with this ifindex in the current namespace.
    pub fn new(ifindex: u32, hook: Hook) -> Self {
        Self { ifindex, hook }
    }

    /// Creates a link owning `prog` at `anchor` (BPF_LINK_CREATE). With
    /// `expected_revision`, the kernel refuses (ESTALE) if the chain moved.
    pub fn attach_link(
        &self,
        prog: BorrowedFd<'_>,
        anchor: &Anchor<'_>,
        expected_revision: Option<u64>,
    ) -> Result<OwnedFd, MprogError> {
        if let Anchor::Replace(_) = anchor {
            // The kernel refuses BPF_F_REPLACE on link create; say so before asking.
            return Err(MprogError::found(error::Op::LinkCreate, error::Refusal::ReplaceOnLink));
        }
        let e = anchor.encode();
        bpf::link_create(prog, self.ifindex, self.hook.attach_type(), e.flags, e.relative, expected(expected_revision))
            .map_err(|err| MprogError::from_sys(error::Op::LinkCreate, err))
    }

    /// Attaches `prog` without a link (BPF_PROG_ATTACH); it stays until detached.
    pub(crate) fn attach_plain(
        &self,
        prog: BorrowedFd<'_>,
        anchor: &Anchor<'_>,
        expected_revision: Option<u64>,
    ) -> Result<(), MprogError> {
        let e = anchor.encode();
        let replace = match anchor {
            Anchor::Replace(fd) => Some(*fd),
            _ => None,
        };
        bpf::prog_attach(&bpf::ProgAttachArgs {
            ifindex: self.ifindex,
            attach_type: self.hook.attach_type(),
            prog: Some(prog),
            flags: e.flags,
            replace,
            relative_fd_or_id: e.relative,
            expected_revision: expected(expected_revision),
        })
        .map_err(|err| MprogError::from_sys(error::Op::ProgAttach, err))
    }

    /// Detaches a plain program (BPF_PROG_DETACH). `anchor` (First, Last,
    /// Before/After a target) may select the slot or, with `prog`, must agree
    /// with where it is.
    pub(crate) fn detach_plain(
        &self,
        prog: Option<BorrowedFd<'_>>,
        anchor: Option<&Anchor<'_>>,
        expected_revision: Option<u64>,
    ) -> Result<(), MprogError> {
        let e = anchor.map(Anchor::encode).unwrap_or_default();
        bpf::prog_detach(&bpf::ProgAttachArgs {
            ifindex: self.ifindex,
            attach_type: self.hook.attach_type(),
            prog,
            flags: e.flags,
            replace: None,
            relative_fd_or_id: e.relative,
            expected_revision: expected(expected_revision),
        })
        .map_err(|err| MprogError::from_sys(error::Op::ProgDetach, err))
    }

    /// The chain in order, with the owning link of each slot (BPF_PROG_QUERY).
    /// Starts with a small buffer on the stack and grows it on the heap when
    /// the kernel answers ENOSPC.
    pub fn query(&self) -> Result<Chain, MprogError> {
        let mut progs = [0u32; INITIAL_QUERY_SLOTS];
        let mut links = [0u32; INITIAL_QUERY_SLOTS];
        let mut cap = match bpf::prog_query(self.ifindex, self.hook.attach_type(), &mut progs, &mut links) {
            Ok(r) => {
                return Ok(Chain::from_ids(r.revision, &progs[..(r.count as usize).min(INITIAL_QUERY_SLOTS)], &links));
            }
            Err((e, r)) if e.errno() == Some(libc::ENOSPC) && r.count as usize > INITIAL_QUERY_SLOTS => {
                r.count as usize
            }
            Err((e, _)) => return Err(MprogError::from_sys(error::Op::Query, e)),
        };
        loop {
            let mut progs = vec![0u32; cap];
            let mut links = vec![0u32; cap];
            match bpf::prog_query(self.ifindex, self.hook.attach_type(), &mut progs, &mut links) {
                Ok(r) => return Ok(Chain::from_ids(r.revision, &progs[..(r.count as usize).min(cap)], &links)),
                // The kernel filled `cap` slots and told the total; ask again
                // with room for all of them (the chain may grow meanwhile).
                Err((e, r)) if e.errno() == Some(libc::ENOSPC) && r.count as usize > cap => {
                    cap = r.count as usize;
                }
                Err((e, _)) => return Err(MprogError::from_sys(error::Op::Query, e)),
            }
        }
    }

    /// Only the revision and the number of programs.
    pub(crate) fn count(&self) -> Result<bpf::QueryResult, MprogError> {
        bpf::prog_query(self.ifindex, self.hook.attach_type(), &mut [], &mut [])
            .map_err(|(e, _)| MprogError::from_sys(error::Op::Query, e))
    }
}

/// How many programs are on `hook` of `ifindex` (a count-only query), or the
/// errno that prevented the query.
pub(crate) fn count(ifindex: u32, hook: Hook) -> Result<u32, i32> {
    HookRef::new(ifindex, hook).count().map(|r| r.count).map_err(|e| e.errno().unwrap_or(libc::EIO))
}

/// Replaces the program of a link in place (BPF_LINK_UPDATE), keeping its
/// position and id. With `expected_old`, fails (EPERM) unless the link still
/// runs that program.
pub fn update_link(
    link: BorrowedFd<'_>,
    new_prog: BorrowedFd<'_>,
    expected_old: Option<BorrowedFd<'_>>,
) -> Result<(), MprogError> {
    bpf::link_update(link, new_prog, expected_old).map_err(|e| MprogError::from_sys(error::Op::LinkUpdate, e))
}

/// Detaches a link from its hook (BPF_LINK_DETACH); the link object stays,
/// defunct, until its last fd and pin are gone.
pub fn detach_link(link: BorrowedFd<'_>) -> Result<(), MprogError> {
    bpf::link_detach(link).map_err(|e| MprogError::from_sys(error::Op::LinkDetach, e))
}
