//! Network namespaces: named ones under /run/netns (as `ip netns` makes them),
//! entering one for this thread, and telling which one we are in. Creating
//! and deleting named namespaces is here too, for the demo and the tests.

use std::{
    ffi::CString,
    fs, io,
    os::{
        fd::{AsRawFd as _, OwnedFd},
        unix::fs::MetadataExt as _,
    },
    path::{Path, PathBuf},
};

/// Where named network namespaces live.
pub(crate) const NETNS_RUN_DIR: &str = "/run/netns";

/// Why a network namespace could not be found, entered, created or removed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// No namespace of that name under /run/netns.
    #[error("network namespace `{0}` does not exist (no {NETNS_RUN_DIR}/{0}); create it with `ip netns add {0}`")]
    Missing(String),
    /// The name cannot be a namespace name.
    #[error("`{0}` is not a valid network namespace name (no '/', not empty, not . or ..)")]
    BadName(String),
    /// setns(2) refused.
    #[error("cannot enter network namespace `{name}` (needs CAP_SYS_ADMIN)")]
    Enter {
        /// The name as given.
        name: String,
        /// What the system call answered.
        #[source]
        cause: io::Error,
    },
    /// Another system call on the namespace failed (`what` says which).
    #[error("{what} network namespace `{name}`")]
    Io {
        /// What was being done or opened.
        what: &'static str,
        /// The name as given.
        name: String,
        /// What the system call answered.
        #[source]
        cause: io::Error,
    },
}

pub(crate) fn path_of(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

pub(crate) fn validate_name(name: &str) -> Result<(), NetnsError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(NetnsError::BadName(name.into()));
    }
    Ok(())
}

/// Opens the named namespace (refusing names that are not under /run/netns).
pub(crate) fn open(name: &str) -> Result<OwnedFd, NetnsError> {
    validate_name(name)?;
    let path = path_of(name);
    match fs::File::open(&path) {
        Ok(f) => Ok(f.into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(NetnsError::Missing(name.into())),
        Err(cause) => Err(NetnsError::Io { what: "opening", name: name.into(), cause }),
    }
}

fn setns(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: setns on a namespace fd we own; affects only this thread.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Moves the calling thread into the named namespace for good (`-n NAME`).
pub fn enter(name: &str) -> Result<(), NetnsError> {
    let fd = open(name)?;
    setns(&fd).map_err(|cause| NetnsError::Enter { name: name.into(), cause })
}

/// The calling thread's current network namespace, as an fd.
pub(crate) fn current() -> io::Result<OwnedFd> {
    Ok(fs::File::open("/proc/thread-self/ns/net")?.into())
}

/// While alive, the calling thread is inside another namespace; dropping it
/// returns the thread to where it was.
pub(crate) struct Visit {
    home: OwnedFd,
}

impl Visit {
    pub(crate) fn fd(target: &OwnedFd) -> io::Result<Self> {
        let home = current()?;
        setns(target)?;
        Ok(Self { home })
    }
}

impl Drop for Visit {
    fn drop(&mut self) {
        // Failing to return would leave the thread in the wrong namespace;
        // nothing sensible can continue after that.
        setns(&self.home).expect("returning to the original network namespace");
    }
}

/// (device, inode) of a namespace file: equal for the same namespace.
fn identity(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Names of the namespaces under /run/netns.
pub(crate) fn list_named() -> Vec<String> {
    dir_names(Path::new(NETNS_RUN_DIR))
}

/// The names in a directory, sorted (none when it cannot be read).
pub(crate) fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A namespace this tool can name: one under /run/netns, or `default` (the
/// namespace init lives in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NsRef {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
}

/// Where [`others`] finds the initial namespace (init's).
const INIT_NS: &str = "/proc/1/ns/net";

impl NsRef {
    /// The namespace init lives in, which commands reach without `-n`.
    pub(crate) fn is_init(&self) -> bool {
        self.path == Path::new(INIT_NS)
    }

    pub(crate) fn open(&self) -> io::Result<OwnedFd> {
        Ok(fs::File::open(&self.path)?.into())
    }
}

/// Every namespace this tool can name, other than the calling thread's own.
pub(crate) fn others() -> Vec<NsRef> {
    let me = identity(Path::new("/proc/thread-self/ns/net"));
    let mut out: Vec<NsRef> = list_named().into_iter().map(|name| NsRef { path: path_of(&name), name }).collect();
    out.push(NsRef { name: "default".into(), path: INIT_NS.into() });
    out.retain(|ns| identity(&ns.path).is_some() && identity(&ns.path) != me);
    out.dedup_by(|a, b| identity(&a.path) == identity(&b.path));
    out
}

/// A short name for the calling thread's namespace: its /run/netns name, or
/// `default` for the one init lives in, or `netns-<inode>`.
pub(crate) fn current_name() -> String {
    let Some(me) = identity(Path::new("/proc/thread-self/ns/net")) else {
        return "unknown".into();
    };
    if let Some(name) = current_named() {
        return name;
    }
    if identity(Path::new(INIT_NS)) == Some(me) {
        return "default".into();
    }
    format!("netns-{}", me.1)
}

/// The /run/netns name of the calling thread's namespace, if it has one.
pub(crate) fn current_named() -> Option<String> {
    let me = identity(Path::new("/proc/thread-self/ns/net"))?;
    list_named().into_iter().find(|name| identity(&path_of(name)) == Some(me))
}

/// Creates a named namespace the way `ip netns add` does: a new namespace
/// made in a helper thread, kept alive by a bind mount under /run/netns.
pub fn create(name: &str) -> Result<(), NetnsError> {
    validate_name(name)?;
    let path = path_of(name);
    let err = |what, cause| NetnsError::Io { what, name: name.into(), cause };
    fs::create_dir_all(NETNS_RUN_DIR).map_err(|e| err("creating /run/netns for", e))?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| err("creating the mount point of", e))?;
    let target = path.clone();
    let result = std::thread::spawn(move || -> io::Result<()> {
        // SAFETY: unshare affects only this short-lived helper thread.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let src = CString::new("/proc/thread-self/ns/net").expect("no NUL");
        let dst = CString::new(target.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
        // SAFETY: both paths are NUL-terminated; a plain bind mount.
        if unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("namespace helper thread panicked")));
    if let Err(e) = result {
        let _ = fs::remove_file(&path);
        return Err(err("creating", e));
    }
    Ok(())
}

/// Removes a named namespace created by [`create`] or `ip netns add`.
pub fn delete(name: &str) -> Result<(), NetnsError> {
    validate_name(name)?;
    let path = path_of(name);
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| NetnsError::Io {
        what: "deleting",
        name: name.into(),
        cause: io::Error::other(e),
    })?;
    // SAFETY: NUL-terminated path; a lazy unmount of our own bind mount.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    fs::remove_file(&path).map_err(|cause| NetnsError::Io { what: "deleting", name: name.into(), cause })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("pod1").is_ok());
        for bad in ["", ".", "..", "a/b"] {
            assert!(matches!(validate_name(bad), Err(NetnsError::BadName(_))), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_namespace_names_the_fix() {
        let e = open("netkit-surely-missing-ns").unwrap_err().to_string();
        assert!(e.contains("ip netns add netkit-surely-missing-ns"), "{e}");
    }
}
