//! Links as typed values, the one place their ownership is decided: a link
//! this process holds by its fd ([`Link`]), one pinned on its hook
//! ([`Pinned`]), and a pin whose link is on no hook any more ([`Defunct`]:
//! detached by another tool, its device deleted, a run killed). Attaching
//! and pinning with undo, detaching while keeping the program, updating, and
//! taking over a defunct link's pin go through these types, for the CLI
//! commands, apply's executor and CNI alike.

use std::{
    os::fd::{AsFd as _, BorrowedFd, OwnedFd},
    path::{Path, PathBuf},
};

use crate::{
    bpf::{self, LinkInfo, SyscallError},
    mprog::{self, MprogError},
    pins::{Layout, PinError, open_link},
};

/// Why an operation on a link failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The pin could not be made, read or removed.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The kernel refused the link call.
    #[error(transparent)]
    Kernel(#[from] MprogError),
    /// A bpf(2) call on the link or its program failed.
    #[error(transparent)]
    Syscall(#[from] SyscallError),
    /// The pin holds another link than the one expected (another writer
    /// replaced it).
    #[error(
        "{path} now holds link {now}, not link {expected}: another writer replaced it; look again (netkit link show) and retry"
    )]
    Replaced {
        /// The pin.
        path: String,
        /// The link expected there.
        expected: u32,
        /// The link there now.
        now: u32,
    },
    /// The link the pin holds is on a hook, where only a defunct one (or the
    /// one named) may be cleared.
    #[error("{path} holds link {id}, which is on a hook")]
    OnHook {
        /// The pin.
        path: String,
        /// The link it holds.
        id: u32,
    },
}

/// A link this process holds by its fd. It stays on its hook while the fd
/// or a pin of it lives; dropped unpinned, the kernel detaches it.
#[derive(Debug)]
pub struct Link {
    fd: OwnedFd,
    info: LinkInfo,
}

impl Link {
    /// A link from its fd, with its info read.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, LinkError> {
        let info = bpf::link_info(fd.as_fd())?;
        Ok(Self { fd, info })
    }

    /// A link opened by a REF, with the info already read.
    pub(crate) fn from_parts(fd: OwnedFd, info: LinkInfo) -> Self {
        Self { fd, info }
    }

    /// The link's id.
    pub fn id(&self) -> u32 {
        self.info.id
    }

    /// The id of the program it runs.
    pub fn prog_id(&self) -> u32 {
        self.info.prog_id
    }

    /// Whether the link is still on a hook (a defunct one is on none).
    pub fn on_hook(&self) -> bool {
        self.info.ifindex != 0
    }

    /// The link's fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Pins the link at `path`, creating the directories. When pinning
    /// fails the link is detached, so nothing stays on the hook.
    pub fn pin(self, layout: &Layout, path: PathBuf) -> Result<Pinned, (PinError, Self)> {
        match layout.pin(self.fd.as_fd(), &path) {
            Ok(()) => Ok(Pinned { link: self, path }),
            Err(e) => {
                let _ = mprog::detach_link(self.fd.as_fd());
                Err((e, self))
            }
        }
    }

    /// Pins the link at `path` again (an undo), leaving it as it is when
    /// that fails: another pin or process may hold it on its hook.
    pub fn repin(&self, layout: &Layout, path: &Path) -> Result<(), PinError> {
        layout.pin(self.fd.as_fd(), path)
    }

    /// Detaches the link: its hook no longer runs its program.
    pub fn detach(&self) -> Result<(), MprogError> {
        mprog::detach_link(self.fd.as_fd())
    }

    /// Makes the link run `new` instead of its program, which must still be
    /// `expected_old` when given (BPF_F_REPLACE).
    pub fn update(&self, new: BorrowedFd<'_>, expected_old: Option<BorrowedFd<'_>>) -> Result<(), MprogError> {
        mprog::update_link(self.fd.as_fd(), new, expected_old)
    }

    /// The program it runs, held by a new fd (kept to attach it again).
    pub fn program(&self) -> Result<OwnedFd, SyscallError> {
        bpf::prog_fd_by_id(self.info.prog_id)
    }
}

/// A link pinned at a path, found on its hook (it may have gone defunct
/// since: another tool may detach it at any moment).
#[derive(Debug)]
pub struct Pinned {
    link: Link,
    path: PathBuf,
}

impl Pinned {
    /// The link.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Where it is pinned.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pinned link at `path`, which must be link `expected`. A link
    /// that went defunct since it was found (its device deleted, or detached
    /// by another tool) is opened too: taking it off or detaching it again
    /// is harmless, and the kernel answers both.
    pub fn open(path: &Path, expected: u32) -> Result<Self, LinkError> {
        let (AtPin::Live(Pinned { link, path: at }) | AtPin::Defunct(Defunct { link, path: at })) = AtPin::open(path)?;
        if link.id() != expected {
            return Err(LinkError::Replaced { path: path.display().to_string(), expected, now: link.id() });
        }
        Ok(Pinned { link, path: at })
    }

    /// Removes the pin; the link stays on its hook while the returned value
    /// lives (to pin it again on undo).
    pub fn unpin(self, layout: &Layout) -> Result<Link, PinError> {
        layout.unpin(&self.path)?;
        Ok(self.link)
    }

    /// Detaches the link and removes its pin, keeping its program: what
    /// [`Hooks::attach_link`](super::Hooks::attach_link) needs to put it
    /// back, after the program `after` (none: first).
    pub fn take_off(self, layout: &Layout, after: Option<u32>) -> Result<TakenOff, LinkError> {
        let prog = self.link.program()?;
        self.link.detach()?;
        let _ = layout.unpin(&self.path);
        Ok(TakenOff { prog, after, path: self.path })
    }

    /// Detaches the link and removes its pin.
    pub fn detach(self, layout: &Layout) -> Result<(), LinkError> {
        self.link.detach()?;
        let _ = layout.unpin(&self.path);
        Ok(())
    }
}

/// A pin whose link is on no hook.
#[derive(Debug)]
pub struct Defunct {
    link: Link,
    path: PathBuf,
}

impl Defunct {
    /// The link.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Removes the pin, giving back the link (to pin it again on undo).
    pub fn unpin(self, layout: &Layout) -> Result<Link, PinError> {
        layout.unpin(&self.path)?;
        Ok(self.link)
    }
}

/// What a pin of this tool's layout holds.
#[derive(Debug)]
pub enum AtPin {
    /// A link on its hook.
    Live(Pinned),
    /// A link on no hook.
    Defunct(Defunct),
}

impl AtPin {
    /// Opens the pin at `path`.
    pub fn open(path: &Path) -> Result<Self, LinkError> {
        let (fd, info) = open_link(path)?;
        let link = Link { fd, info };
        let path = path.to_path_buf();
        Ok(if link.on_hook() { Self::Live(Pinned { link, path }) } else { Self::Defunct(Defunct { link, path }) })
    }

    /// Clears the pin for a new link of that name: a defunct link's pin, or
    /// the pin of link `stale` wherever it is (a plan found it stale). A
    /// live link's pin is kept and refused. The link comes back, to pin it
    /// again on undo.
    pub fn clear(self, layout: &Layout, stale: Option<u32>) -> Result<Link, LinkError> {
        match self {
            Self::Defunct(d) => Ok(d.unpin(layout)?),
            Self::Live(p) if Some(p.link.id()) == stale => Ok(p.unpin(layout)?),
            Self::Live(p) => Err(LinkError::OnHook { path: p.path.display().to_string(), id: p.link.id() }),
        }
    }
}

/// A link taken off its hook with its program kept, to attach again.
#[derive(Debug)]
pub struct TakenOff {
    /// The program it ran.
    pub prog: OwnedFd,
    /// The program in front of it on the chain (none: it was first).
    pub after: Option<u32>,
    /// Where it was pinned.
    pub path: PathBuf,
}
