//! Expedited RCU grace periods for bulk changes, by choice.
//!
//! Every change of a tcx or netkit chain (attach, detach, replace, a link's
//! release) waits for an RCU grace period while it holds RTNL, so changes
//! of different devices do not overlap and a node of many pods comes up no
//! faster than one grace period per change (~12.5 ms on the machines this
//! was measured on). The kernel's own `/sys/kernel/rcu_expedited` makes
//! those waits expedited: far shorter, at a system-wide cost (an expedited
//! grace period interrupts every CPU). [`Expedited::start`] sets it for the
//! life of the returned guard and puts the previous value back when the
//! last guard of any process on the node is dropped.
//!
//! The knob is one for the whole machine, so the holders are recorded in a
//! directory (default [`DEFAULT_DIR`]): the value found before the first
//! holder set it (`saved`), and one file per holder, locked (flock) for as
//! long as its process holds it. A holder killed before it could restore
//! the value leaves its file unlocked; the next [`Expedited::start`] or
//! [`recover`] (which apply and the CNI plugin call on every run) finds no
//! live holder and puts the saved value back.

use std::{
    fs,
    io::{self, Read as _, Write as _},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

/// The kernel's switch.
pub const KNOB: &str = "/sys/kernel/rcu_expedited";

/// Where holders are recorded unless told otherwise.
pub const DEFAULT_DIR: &str = "/run/netkit/rcu-expedited";

/// Why expediting (or restoring) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RcuError {
    /// The kernel's knob could not be read or written.
    #[error(
        "{what} {KNOB} failed: {cause} (it needs root and a writable /sys; leave expediting off where the node does not allow it)"
    )]
    Knob {
        /// Reading or writing.
        what: &'static str,
        /// What the file system answered.
        #[source]
        cause: io::Error,
    },
    /// The record of holders could not be kept.
    #[error("keeping the record of expedited grace periods in {}: {cause}", path.display())]
    Record {
        /// The file or directory.
        path: PathBuf,
        /// What the file system answered.
        #[source]
        cause: io::Error,
    },
}

/// What [`recover`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing was left to restore (or a live holder still holds it).
    Nothing,
    /// A holder had died with the knob set: it was put back to this value.
    Restored(u8),
}

/// [`recover`], for a command's first step: what it did, or why it could
/// not, as one line for the command's standard error (None: nothing to say).
/// Never a failure: a knob that cannot be put back now stays recorded, and
/// the next run tries again.
pub fn recover_line(dir: &Path) -> Option<String> {
    match recover(dir) {
        Ok(Recovery::Nothing) => None,
        Ok(Recovery::Restored(v)) => {
            Some(format!("a run that ended while it expedited RCU grace periods left {KNOB} at 1; put back to {v}"))
        }
        Err(e) => Some(format!("warning: {}", crate::os::errno::error_chain(&e))),
    }
}

/// Grace periods are expedited while this lives (see the module docs).
#[derive(Debug)]
pub struct Expedited {
    dir: PathBuf,
    /// This holder's file, locked while it is held.
    holder: Option<(PathBuf, fs::File)>,
}

fn record_err(path: &Path) -> impl FnOnce(io::Error) -> RcuError + '_ {
    move |cause| RcuError::Record { path: path.to_path_buf(), cause }
}

fn read_knob() -> Result<u8, RcuError> {
    let mut s = String::new();
    fs::File::open(KNOB)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(|cause| RcuError::Knob { what: "reading", cause })?;
    Ok(u8::from(s.trim() != "0"))
}

fn write_knob(value: u8) -> Result<(), RcuError> {
    fs::OpenOptions::new()
        .write(true)
        .open(KNOB)
        .and_then(|mut f| f.write_all(if value == 0 { b"0\n" } else { b"1\n" }))
        .map_err(|cause| RcuError::Knob { what: "writing", cause })
}

/// flock(2) on `f`; false when `nonblocking` and another holds it.
fn flock(f: &fs::File, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: flock on an fd this function borrows for the call.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// The record's directory, locked for one change of the record.
struct Locked {
    _lock: fs::File,
    dir: PathBuf,
}

impl Locked {
    fn take(dir: &Path) -> Result<Self, RcuError> {
        fs::create_dir_all(dir.join("holders")).map_err(record_err(dir))?;
        let path = dir.join("lock");
        let lock =
            fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(record_err(&path))?;
        flock(&lock, libc::LOCK_EX).map_err(record_err(&path))?;
        Ok(Self { _lock: lock, dir: dir.to_path_buf() })
    }

    fn saved_path(&self) -> PathBuf {
        self.dir.join("saved")
    }

    /// The value found before the first holder, if one is recorded. A
    /// record that is neither 0 nor 1 cannot have been written whole (it is
    /// renamed into place): it is dropped and the knob left alone.
    fn saved(&self) -> Result<Option<u8>, RcuError> {
        let path = self.saved_path();
        match fs::read_to_string(&path) {
            Ok(s) => match s.trim() {
                "0" => Ok(Some(0)),
                "1" => Ok(Some(1)),
                _ => {
                    fs::remove_file(&path).map_err(record_err(&path))?;
                    Ok(None)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(record_err(&path)(e)),
        }
    }

    /// Records the value found, whole or not at all (written beside, then renamed).
    fn save(&self, value: u8) -> Result<(), RcuError> {
        let (path, tmp) = (self.saved_path(), self.dir.join("saved.new"));
        fs::write(&tmp, format!("{value}\n")).map_err(record_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(record_err(&path))
    }

    /// Holders whose process still holds its file; the files of dead ones
    /// are removed on the way. A file that cannot be looked at counts as
    /// held: the knob is never put back under a live holder.
    fn live_holders(&self) -> Result<usize, RcuError> {
        let holders = self.dir.join("holders");
        let mut live = 0;
        for entry in fs::read_dir(&holders).map_err(record_err(&holders))? {
            let path = entry.map_err(record_err(&holders))?.path();
            let f = match fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(_) => {
                    live += 1;
                    continue;
                }
            };
            if flock(&f, libc::LOCK_EX | libc::LOCK_NB).map_err(record_err(&path))? {
                // Nobody holds it: its process is gone.
                let _ = fs::remove_file(&path);
            } else {
                live += 1;
            }
        }
        Ok(live)
    }

    /// With no live holder left, puts the saved value back.
    fn restore_if_last(&self) -> Result<Recovery, RcuError> {
        if self.live_holders()? > 0 {
            return Ok(Recovery::Nothing);
        }
        let Some(saved) = self.saved()? else { return Ok(Recovery::Nothing) };
        write_knob(saved)?;
        fs::remove_file(self.saved_path()).map_err(record_err(&self.saved_path()))?;
        Ok(Recovery::Restored(saved))
    }
}

/// Puts the knob back if a holder died with it set and no other holds it:
/// what every run of apply and of the CNI plugin does first. A directory
/// that was never made means nothing to recover.
pub fn recover(dir: &Path) -> Result<Recovery, RcuError> {
    if !dir.join("saved").exists() {
        return Ok(Recovery::Nothing);
    }
    Locked::take(dir)?.restore_if_last()
}

impl Expedited {
    /// Expedites grace periods until the guard is dropped; `dir` records
    /// the holders ([`DEFAULT_DIR`] for everything on one node).
    pub fn start(dir: &Path) -> Result<Self, RcuError> {
        let locked = Locked::take(dir)?;
        locked.restore_if_last()?;
        let first = locked.saved()?.is_none();
        let held = (|| {
            if first {
                locked.save(read_knob()?)?;
            }
            if read_knob()? != 1 {
                write_knob(1)?;
            }
            let path = dir.join("holders").join(format!("{}-{}", std::process::id(), unique()));
            let file = fs::File::create(&path).map_err(record_err(&path))?;
            flock(&file, libc::LOCK_EX).map_err(record_err(&path))?;
            Ok((path, file))
        })();
        match held {
            Ok(holder) => Ok(Self { dir: dir.to_path_buf(), holder: Some(holder) }),
            Err(e) => {
                // Nothing of this attempt may outlive it: a value recorded by
                // it would make every later run try to put it back.
                if first {
                    let _ = locked.restore_if_last();
                    let _ = fs::remove_file(locked.saved_path());
                }
                Err(e)
            }
        }
    }

    /// Ends this hold now (as dropping it does), saying what became of the knob.
    pub fn finish(mut self) -> Result<Recovery, RcuError> {
        self.release()
    }

    fn release(&mut self) -> Result<Recovery, RcuError> {
        let Some((path, file)) = self.holder.take() else { return Ok(Recovery::Nothing) };
        let locked = Locked::take(&self.dir)?;
        let _ = fs::remove_file(&path);
        drop(file);
        locked.restore_if_last()
    }
}

impl Drop for Expedited {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// A number no other holder of this process has taken.
fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
