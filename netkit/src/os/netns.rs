//! Network namespaces: named ones under /run/netns (as `ip netns` makes them),
//! any nsfs path or a process's (as container runtimes hand them out),
//! entering one for this thread, and telling which one we are in. Creating
//! and deleting named namespaces is here too, for the demo and the tests.

use std::{
    ffi::CString,
    fmt, fs, io,
    os::{
        fd::{AsRawFd as _, OwnedFd},
        unix::fs::MetadataExt as _,
    },
    path::{Path, PathBuf},
    str::FromStr,
};

/// Where named network namespaces live.
pub(crate) const NETNS_RUN_DIR: &str = "/run/netns";

/// Why a network namespace could not be found, entered, created or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// No namespace of that name under /run/netns.
    #[error("network namespace `{0}` does not exist (no {NETNS_RUN_DIR}/{0}); create it with `ip netns add {0}`")]
    Missing(String),
    /// The name cannot be a namespace name.
    #[error(
        "`{0}` is not a network namespace: give a name under {NETNS_RUN_DIR} (no '/', not . or ..), an nsfs path such as /proc/PID/ns/net, or pid:PID"
    )]
    BadName(String),
    /// No file at the path.
    #[error("network namespace path {0} does not exist")]
    NoSuchPath(PathBuf),
    /// No process with that pid.
    #[error("no process {0}, so no network namespace pid:{0}")]
    NoProcess(u32),
    /// The file is not a network namespace.
    #[error("{0} is not a network namespace (an nsfs file such as /proc/PID/ns/net or a bind mount of one)")]
    NotNetns(String),
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

/// A network namespace as a command line or a container runtime names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsRef {
    /// A name under /run/netns, as `ip netns add` makes them.
    Name(String),
    /// Any nsfs file: `/proc/PID/ns/net`, or a bind mount of one anywhere
    /// (what CNI's `CNI_NETNS` and container runtimes hand out).
    Path(PathBuf),
    /// The namespace process PID is in (`pid:PID`).
    Pid(u32),
}

impl FromStr for NetnsRef {
    type Err = NetnsError;

    /// `pid:PID`, a path (anything with a '/'), or a name under /run/netns.
    fn from_str(s: &str) -> Result<Self, NetnsError> {
        if let Some(pid) = s.strip_prefix("pid:") {
            return match pid.parse::<u32>() {
                Ok(pid) if pid > 0 => Ok(Self::Pid(pid)),
                _ => Err(NetnsError::BadName(s.into())),
            };
        }
        if s.contains('/') {
            return Ok(Self::Path(s.into()));
        }
        validate_name(s)?;
        Ok(Self::Name(s.into()))
    }
}

impl fmt::Display for NetnsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::Pid(pid) => write!(f, "pid:{pid}"),
        }
    }
}

impl NetnsRef {
    /// The nsfs file this refers to.
    pub fn path(&self) -> PathBuf {
        match self {
            Self::Name(n) => path_of(n),
            Self::Path(p) => p.clone(),
            Self::Pid(pid) => format!("/proc/{pid}/ns/net").into(),
        }
    }

    /// Opens the namespace, checking that it is one: a network namespace
    /// file on nsfs, not any file that happens to be at the path.
    pub fn open(&self) -> Result<OwnedFd, NetnsError> {
        if let Self::Name(n) = self {
            validate_name(n)?;
        }
        let fd: OwnedFd = match fs::File::open(self.path()) {
            Ok(f) => f.into(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(match self {
                    Self::Name(n) => NetnsError::Missing(n.clone()),
                    Self::Path(p) => NetnsError::NoSuchPath(p.clone()),
                    Self::Pid(pid) => NetnsError::NoProcess(*pid),
                });
            }
            Err(cause) => return Err(NetnsError::Io { what: "opening", name: self.to_string(), cause }),
        };
        // NS_GET_NSTYPE (_IO(0xb7, 0x3)) answers CLONE_NEWNET for network
        // namespaces and fails (ENOTTY) on files that are not namespaces.
        const NS_GET_NSTYPE: libc::Ioctl = 0xb703;
        // SAFETY: an ioctl without an argument on an fd we own.
        let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
        if kind != libc::CLONE_NEWNET {
            return Err(NetnsError::NotNetns(self.to_string()));
        }
        Ok(fd)
    }

    /// The name this namespace goes by in messages and in the bpffs layout:
    /// its /run/netns name, `default` for init's, else `netns-<inode>` (the
    /// nsfs inode, unique among live namespaces).
    pub fn layout_name(&self) -> Result<String, NetnsError> {
        let fd = self.open()?;
        let meta = fs::File::from(fd).metadata().map_err(|cause| NetnsError::Io {
            what: "reading",
            name: self.to_string(),
            cause,
        })?;
        Ok(name_of((meta.dev(), meta.ino())))
    }
}

fn setns(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: setns on a namespace fd we own; affects only this thread.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Moves the calling thread into the namespace for good (`-n NETNS`).
pub fn enter(ns: &NetnsRef) -> Result<(), NetnsError> {
    let fd = ns.open()?;
    setns(&fd).map_err(|cause| NetnsError::Enter { name: ns.to_string(), cause })
}

/// The calling thread's current network namespace, as an fd.
pub(crate) fn current() -> io::Result<OwnedFd> {
    Ok(fs::File::open("/proc/thread-self/ns/net")?.into())
}

/// While alive, the calling thread is inside another namespace; dropping it
/// returns the thread to where it was.
pub struct Visit {
    home: OwnedFd,
    /// Not Send: dropped on another thread, it would return the wrong
    /// thread and leave this one inside the other namespace.
    _thread: std::marker::PhantomData<*const ()>,
}

impl Visit {
    /// Enters `ns` until the guard is dropped (`-n NETNS` for one command).
    pub fn enter(ns: &NetnsRef) -> Result<Self, NetnsError> {
        let fd = ns.open()?;
        Self::fd(&fd).map_err(|cause| NetnsError::Enter { name: ns.to_string(), cause })
    }

    pub(crate) fn fd(target: &OwnedFd) -> io::Result<Self> {
        let home = current()?;
        setns(target)?;
        Ok(Self { home, _thread: std::marker::PhantomData })
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
pub(crate) fn identity(path: &Path) -> Option<(u64, u64)> {
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

/// A namespace this tool can reach: one under /run/netns, `default` (the
/// namespace init lives in), or `pid:PID` (one a process is in).
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

impl NetnsRef {
    /// What [`others`] would call this namespace, without walking them all:
    /// its /run/netns name (given so, or as a path there), or `pid:PID`.
    /// None for a bind mount elsewhere, which only a walk can name.
    pub(crate) fn as_ns_ref(&self) -> Option<NsRef> {
        let path = self.path();
        let name = match self {
            Self::Name(n) => n.clone(),
            Self::Pid(pid) => format!("pid:{pid}"),
            Self::Path(p) => {
                let parent = p.parent()?;
                let file = p.file_name()?.to_string_lossy().into_owned();
                if parent == Path::new(NETNS_RUN_DIR) || parent == Path::new("/var/run/netns") {
                    file
                } else {
                    let pid = p.strip_prefix("/proc").ok()?.to_str()?.strip_suffix("/ns/net")?;
                    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    format!("pid:{pid}")
                }
            }
        };
        Some(NsRef { name, path })
    }
}

/// Every namespace this tool can reach, other than the calling thread's own:
/// the named ones, init's (`default`), then those only a process is in (as a
/// container runtime's pods may be), named `pid:PID` after one of them, the
/// way `-n` takes them.
pub(crate) fn others() -> Vec<NsRef> {
    let me = identity(Path::new("/proc/thread-self/ns/net"));
    let mut out: Vec<NsRef> = list_named().into_iter().map(|name| NsRef { path: path_of(&name), name }).collect();
    out.push(NsRef { name: "default".into(), path: INIT_NS.into() });
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid.bytes().all(|b| b.is_ascii_digit()) {
            out.push(NsRef { name: format!("pid:{pid}"), path: entry.path().join("ns/net") });
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|ns| identity(&ns.path).is_some_and(|id| Some(id) != me && seen.insert(id)));
    out
}

/// A short name for the calling thread's namespace: its /run/netns name, or
/// `default` for the one init lives in, or `netns-<inode>`.
pub fn current_name() -> String {
    match identity(Path::new("/proc/thread-self/ns/net")) {
        Some(me) => name_of(me),
        None => "unknown".into(),
    }
}

/// The name of the namespace with nsfs identity `id` (see [`NetnsRef::layout_name`]).
///
/// Finding it stats every entry of /run/netns, and a command asks several
/// times (messages, the pin layout): the answer is kept for the life of the
/// process, which also keeps one process's pins under one directory should
/// the namespace be named meanwhile.
fn name_of(id: (u64, u64)) -> String {
    static NAMES: std::sync::Mutex<Vec<((u64, u64), String)>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    // A remembered /run/netns name still names this namespace (nsfs inodes
    // are reused once a namespace is gone): one stat says so.
    let still = |name: &str| match name {
        "default" => identity(Path::new(INIT_NS)) == Some(id),
        n if n.starts_with("netns-") => true,
        n => identity(&path_of(n)) == Some(id),
    };
    if let Some(at) = names.iter().position(|(i, _)| *i == id) {
        if still(&names[at].1) {
            return names[at].1.clone();
        }
        names.remove(at);
    }
    let name = find_name_of(id);
    names.push((id, name.clone()));
    name
}

fn find_name_of(id: (u64, u64)) -> String {
    if let Some(name) = list_named().into_iter().find(|name| identity(&path_of(name)) == Some(id)) {
        return name;
    }
    if identity(Path::new(INIT_NS)) == Some(id) {
        return "default".into();
    }
    format!("netns-{}", id.1)
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
    fn a_namespace_given_by_name_path_or_pid_is_named_as_a_walk_names_it() {
        let named = |r: NetnsRef| r.as_ns_ref().map(|n| (n.name, n.path));
        let run = |n: &str| PathBuf::from(format!("/run/netns/{n}"));
        assert_eq!(named(NetnsRef::Name("pod1".into())), Some(("pod1".into(), run("pod1"))));
        assert_eq!(named(NetnsRef::Path(run("cni-1"))), Some(("cni-1".into(), run("cni-1"))));
        let var = PathBuf::from("/var/run/netns/cni-2");
        assert_eq!(named(NetnsRef::Path(var.clone())), Some(("cni-2".into(), var)));
        let proc = PathBuf::from("/proc/42/ns/net");
        assert_eq!(named(NetnsRef::Path(proc.clone())), Some(("pid:42".into(), proc.clone())));
        assert_eq!(named(NetnsRef::Pid(42)), Some(("pid:42".into(), proc)));
        // Only a walk can name a bind mount elsewhere.
        assert_eq!(named(NetnsRef::Path("/var/lib/pods/x/netns".into())), None);
        assert_eq!(named(NetnsRef::Path("/proc/self/ns/net".into())), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("pod1").is_ok());
        for bad in ["", ".", "..", "a/b"] {
            assert!(matches!(validate_name(bad), Err(NetnsError::BadName(_))), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_namespace_names_the_fix() {
        let e = NetnsRef::Name("netkit-surely-missing-ns".into()).open().unwrap_err().to_string();
        assert!(e.contains("ip netns add netkit-surely-missing-ns"), "{e}");
    }

    #[test]
    fn references_parse_as_name_path_or_pid() {
        let p = |s: &str| s.parse::<NetnsRef>();
        assert_eq!(p("pod1").unwrap(), NetnsRef::Name("pod1".into()));
        assert_eq!(p("/proc/42/ns/net").unwrap(), NetnsRef::Path("/proc/42/ns/net".into()));
        assert_eq!(p("./ns").unwrap(), NetnsRef::Path("./ns".into()));
        assert_eq!(p("pid:42").unwrap(), NetnsRef::Pid(42));
        for bad in ["", ".", "..", "pid:", "pid:0", "pid:x", "pid:-1"] {
            assert!(matches!(p(bad), Err(NetnsError::BadName(_))), "{bad:?}");
        }
        for s in ["pod1", "/run/netns/x", "pid:7"] {
            assert_eq!(p(s).unwrap().to_string(), s, "prints back as given");
        }
    }

    #[test]
    fn only_network_namespace_files_open() {
        let own = NetnsRef::Path("/proc/self/ns/net".into());
        assert!(own.open().is_ok());
        assert_eq!(own.layout_name().unwrap(), current_name());
        let e = NetnsRef::Path("/proc/self/ns/uts".into()).open().unwrap_err();
        assert!(matches!(e, NetnsError::NotNetns(_)), "{e}");
        let e = NetnsRef::Path("/proc/version".into()).open().unwrap_err();
        assert!(matches!(e, NetnsError::NotNetns(_)), "{e}");
        let e = NetnsRef::Path("/nonexistent/ns".into()).open().unwrap_err();
        assert!(matches!(e, NetnsError::NoSuchPath(_)), "{e}");
        assert!(NetnsRef::Pid(std::process::id()).open().is_ok());
        let e = NetnsRef::Pid(u32::MAX).open().unwrap_err();
        assert!(matches!(e, NetnsError::NoProcess(_)), "{e}");
    }
}
