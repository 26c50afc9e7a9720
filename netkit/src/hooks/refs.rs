//! REF arguments: `prog:ID`, `link:ID`, `pin:PATH`, or `NAME` (a link this
//! tool pinned on the hook in question), parsed before any kernel call and
//! then opened.

use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::PathBuf,
    str::FromStr,
};

use crate::{
    bpf,
    mprog::{Handle, Hook, Target},
    pins::{self, Layout},
    programs::{ObjKind, object_kind},
};

/// A reference to an object on a hook, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefSpec {
    /// `prog:ID`: a program.
    Prog(u32),
    /// `link:ID`: a link.
    Link(u32),
    /// `pin:PATH`: a pinned link or program.
    Pin(PathBuf),
    /// NAME: a link this tool pinned on the hook under that name.
    Name(String),
}

/// Why a REF names nothing usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefError {
    /// The text is no REF.
    #[error("`{0}` is not a valid REF: use prog:ID, link:ID, pin:PATH or the NAME of a link pinned on this hook")]
    Malformed(String),
    /// No program has that id.
    #[error("no program with id {0} is loaded")]
    NoProg(u32),
    /// No link has that id.
    #[error("no link with id {0} exists")]
    NoLink(u32),
    /// Nothing is pinned at the path.
    #[error("nothing is pinned at {0}")]
    NoPin(String),
    /// The pin is neither a link nor a program.
    #[error("{0} is pinned but is neither a link nor a program")]
    NotLinkOrProg(String),
    /// No link of that name is pinned on the hook.
    #[error("no link named `{name}` is pinned on {device} {hook}{}", if pinned.is_empty() { String::new() } else { format!(" (pinned there: {})", pinned.join(", ")) })]
    NoName {
        /// The name as given.
        name: String,
        /// The device the hook belongs to.
        device: String,
        /// The hook.
        hook: Hook,
        /// The names pinned on that hook.
        pinned: Vec<String>,
    },
    /// Opening the object failed for another reason.
    #[error("opening {what}")]
    Open {
        /// What was being done or opened.
        what: String,
        /// What the system call answered.
        #[source]
        cause: bpf::SyscallError,
    },
}

impl FromStr for RefSpec {
    type Err = RefError;

    fn from_str(s: &str) -> Result<Self, RefError> {
        let bad = || RefError::Malformed(s.into());
        if let Some(id) = s.strip_prefix("prog:") {
            return id.parse().ok().filter(|id| *id > 0).map(Self::Prog).ok_or_else(bad);
        }
        if let Some(id) = s.strip_prefix("link:") {
            return id.parse().ok().filter(|id| *id > 0).map(Self::Link).ok_or_else(bad);
        }
        if let Some(path) = s.strip_prefix("pin:") {
            return if path.is_empty() { Err(bad()) } else { Ok(Self::Pin(path.into())) };
        }
        if s.contains(':') || pins::check_name(s).is_err() {
            return Err(bad());
        }
        Ok(Self::Name(s.into()))
    }
}

impl std::fmt::Display for RefSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Prog(id) => write!(f, "prog:{id}"),
            Self::Link(id) => write!(f, "link:{id}"),
            Self::Pin(p) => write!(f, "pin:{}", p.display()),
            Self::Name(n) => f.write_str(n),
        }
    }
}

/// A REF opened: a program or a link, with an fd and its kernel id.
pub(crate) struct Resolved {
    pub(crate) fd: OwnedFd,
    pub(crate) id: u32,
    /// Present exactly for links: the program it runs and where it is attached.
    pub(crate) link_info: Option<bpf::LinkInfo>,
    /// Pass the fd rather than the id when anchoring (pin: and NAME refs).
    pub(crate) by_fd: bool,
    /// The pin this came from, if any.
    pub(crate) pin: Option<PathBuf>,
    pub(crate) spec: RefSpec,
}

impl Resolved {
    pub(crate) fn is_link(&self) -> bool {
        self.link_info.is_some()
    }

    /// The anchor target this REF names.
    pub(crate) fn target(&self) -> Target<'_> {
        let handle = if self.by_fd { Handle::Fd(self.fd.as_fd()) } else { Handle::Id(self.id) };
        if self.is_link() { Target::Link(handle) } else { Target::Program(handle) }
    }

    /// "link 7", "prog 12", for messages.
    pub(crate) fn describe(&self) -> String {
        let what = if self.is_link() { "link" } else { "prog" };
        match &self.spec {
            RefSpec::Name(n) => format!("{what} {} (pinned as {n})", self.id),
            RefSpec::Pin(p) => format!("{what} {} (pin {})", self.id, p.display()),
            _ => format!("{what} {}", self.id),
        }
    }
}

/// Where NAME refs are looked up.
pub(crate) struct Scope<'a> {
    pub(crate) layout: &'a Layout,
    pub(crate) netns: &'a str,
    pub(crate) device: &'a str,
    pub(crate) hook: Hook,
}

fn open_link_fd(fd: OwnedFd, spec: RefSpec, by_fd: bool, pin: Option<PathBuf>) -> Result<Resolved, RefError> {
    let info = bpf::link_info(fd.as_fd()).map_err(|cause| RefError::Open { what: spec.to_string(), cause })?;
    Ok(Resolved { fd, id: info.id, link_info: Some(info), by_fd, pin, spec })
}

fn open_prog_fd(fd: OwnedFd, spec: RefSpec, by_fd: bool, pin: Option<PathBuf>) -> Result<Resolved, RefError> {
    let (info, _) = bpf::prog_info(fd.as_fd()).map_err(|cause| RefError::Open { what: spec.to_string(), cause })?;
    Ok(Resolved { fd, id: info.id, link_info: None, by_fd, pin, spec })
}

/// Opens what `spec` names.
pub(crate) fn resolve(spec: &RefSpec, scope: &Scope<'_>) -> Result<Resolved, RefError> {
    match spec {
        RefSpec::Prog(id) => {
            let fd = bpf::prog_fd_by_id(*id).map_err(|e| match e.errno() {
                Some(libc::ENOENT) => RefError::NoProg(*id),
                _ => RefError::Open { what: spec.to_string(), cause: e },
            })?;
            open_prog_fd(fd, spec.clone(), false, None)
        }
        RefSpec::Link(id) => {
            let fd = bpf::link_fd_by_id(*id).map_err(|e| match e.errno() {
                Some(libc::ENOENT) => RefError::NoLink(*id),
                _ => RefError::Open { what: spec.to_string(), cause: e },
            })?;
            open_link_fd(fd, spec.clone(), false, None)
        }
        RefSpec::Pin(path) => {
            let fd = bpf::obj_get(path).map_err(|e| match e.errno() {
                Some(libc::ENOENT) => RefError::NoPin(path.display().to_string()),
                _ => RefError::Open { what: spec.to_string(), cause: e },
            })?;
            match object_kind(fd.as_fd()) {
                ObjKind::Link => open_link_fd(fd, spec.clone(), true, Some(path.clone())),
                ObjKind::Prog => open_prog_fd(fd, spec.clone(), true, Some(path.clone())),
                _ => Err(RefError::NotLinkOrProg(path.display().to_string())),
            }
        }
        RefSpec::Name(name) => {
            let path = scope.layout.link_path(scope.netns, scope.device, scope.hook, name);
            let fd = bpf::obj_get(&path).map_err(|e| match e.errno() {
                Some(libc::ENOENT) => RefError::NoName {
                    name: name.clone(),
                    device: scope.device.into(),
                    hook: scope.hook,
                    pinned: scope
                        .layout
                        .links_on(scope.netns, scope.device, scope.hook)
                        .into_iter()
                        .map(|l| l.name)
                        .collect(),
                },
                _ => RefError::Open { what: path.display().to_string(), cause: e },
            })?;
            open_link_fd(fd, spec.clone(), true, Some(path))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_parse() {
        assert_eq!("prog:12".parse::<RefSpec>().unwrap(), RefSpec::Prog(12));
        assert_eq!("link:7".parse::<RefSpec>().unwrap(), RefSpec::Link(7));
        assert_eq!("pin:/sys/fs/bpf/x".parse::<RefSpec>().unwrap(), RefSpec::Pin("/sys/fs/bpf/x".into()));
        assert_eq!("fw".parse::<RefSpec>().unwrap(), RefSpec::Name("fw".into()));
    }

    #[test]
    fn malformed_refs_say_what_is_allowed() {
        for bad in ["prog:", "prog:x", "prog:0", "link:-1", "pin:", "a/b", "", "foo:bar", "..", "."] {
            let e = bad.parse::<RefSpec>().unwrap_err().to_string();
            assert!(e.contains("prog:ID, link:ID, pin:PATH"), "{bad}: {e}");
        }
    }
}
