//! Where a program goes in a hook's chain. An [`Anchor`] becomes kernel flags
//! in exactly one place, `Anchor::encode`; callers never pass flags raw.

use std::os::fd::{AsRawFd as _, BorrowedFd};

use crate::bpf;

/// An object given by file descriptor or by kernel id.
#[derive(Debug, Clone, Copy)]
pub enum Handle<'a> {
    /// A file descriptor this process holds.
    Fd(BorrowedFd<'a>),
    /// A kernel id.
    Id(u32),
}

/// What an anchor is relative to: a program (matched whether it is plain or
/// owned by a link) or a link.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A program, whether plain or owned by a link.
    Program(Handle<'a>),
    /// A link.
    Link(Handle<'a>),
}

/// A position in a chain.
#[derive(Debug, Clone, Copy, Default)]
pub enum Anchor<'a> {
    /// In front of every other program.
    First,
    /// Behind every other program (the default).
    #[default]
    Last,
    /// Right before the target.
    Before(Target<'a>),
    /// Right after the target.
    After(Target<'a>),
    /// In the slot of this plain program (plain attachments only; a link's
    /// program is replaced with a link update instead).
    Replace(BorrowedFd<'a>),
}

/// An anchor in the kernel's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub(crate) flags: u32,
    /// relative_fd or relative_id (one union field in the kernel).
    pub(crate) relative: u32,
    /// replace_bpf_fd (BPF_PROG_ATTACH only).
    pub(crate) replace_fd: u32,
}

impl Anchor<'_> {
    pub(crate) fn encode(&self) -> Encoded {
        fn target(position: u32, t: &Target<'_>) -> Encoded {
            let (kind, handle) = match t {
                Target::Program(h) => (0, h),
                Target::Link(h) => (bpf::BPF_F_LINK, h),
            };
            match handle {
                Handle::Fd(fd) => Encoded { flags: position | kind, relative: fd.as_raw_fd() as u32, replace_fd: 0 },
                // The raw syscall needs BPF_F_ID whenever an id is passed.
                Handle::Id(id) => Encoded { flags: position | kind | bpf::BPF_F_ID, relative: *id, replace_fd: 0 },
            }
        }
        match self {
            Self::First => Encoded { flags: bpf::BPF_F_BEFORE, ..Default::default() },
            Self::Last => Encoded { flags: bpf::BPF_F_AFTER, ..Default::default() },
            Self::Before(t) => target(bpf::BPF_F_BEFORE, t),
            Self::After(t) => target(bpf::BPF_F_AFTER, t),
            Self::Replace(fd) => Encoded { flags: bpf::BPF_F_REPLACE, relative: 0, replace_fd: fd.as_raw_fd() as u32 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_anchor_encodes_as_the_kernel_expects() {
        use bpf::{BPF_F_AFTER as A, BPF_F_BEFORE as B, BPF_F_ID as ID, BPF_F_LINK as L, BPF_F_REPLACE as R};
        let e = |a: Anchor<'_>| a.encode();
        assert_eq!(e(Anchor::First), Encoded { flags: B, relative: 0, replace_fd: 0 });
        assert_eq!(e(Anchor::Last), Encoded { flags: A, relative: 0, replace_fd: 0 });
        assert_eq!(
            e(Anchor::Before(Target::Program(Handle::Id(7)))),
            Encoded { flags: B | ID, relative: 7, replace_fd: 0 }
        );
        assert_eq!(
            e(Anchor::After(Target::Link(Handle::Id(9)))),
            Encoded { flags: A | L | ID, relative: 9, replace_fd: 0 }
        );
        let file = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::AsFd::as_fd(&file);
        let raw = fd.as_raw_fd() as u32;
        assert_eq!(
            e(Anchor::Before(Target::Link(Handle::Fd(fd)))),
            Encoded { flags: B | L, relative: raw, replace_fd: 0 }
        );
        assert_eq!(
            e(Anchor::After(Target::Program(Handle::Fd(fd)))),
            Encoded { flags: A, relative: raw, replace_fd: 0 }
        );
        assert_eq!(e(Anchor::Replace(fd)), Encoded { flags: R, relative: 0, replace_fd: raw });
    }
}
