//! The bpffs layout this tool owns:
//!
//! ```text
//! <bpffs>/netkit/links/<netns>/<device>/<hook>/<name>   links `netkit attach` pinned
//! <bpffs>/netkit/maps/<map>                             maps objects declare as pinned
//! ```
//!
//! `<netns>` is the /run/netns name of the namespace the device lives in, or
//! `default` for init's namespace. A pin keeps its link (and so the program on
//! the hook) alive after the process exits; removing the pin detaches it.

pub mod owners;

use std::{
    fs, io,
    os::fd::{AsFd, OwnedFd},
    path::{Path, PathBuf},
};

use crate::{bpf, mprog::Hook, os::probe};

/// Why a pin could not be made, found or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The directory is not on a bpffs.
    #[error(
        "{0} is not a bpffs mount: mount one with `mount -t bpf bpf {0}`, or pass --bpffs DIR (links are pinned there so they outlive this command)"
    )]
    NotBpffs(String),
    /// The name cannot be a pin name.
    #[error("`{0}` is not a valid pin name (not empty, no '/', not . or .., at most 200 bytes)")]
    BadName(String),
    /// A link of that name is already pinned on the hook.
    #[error("a link named `{name}` is already pinned on this hook ({path}); choose another --pin name")]
    Exists {
        /// The name as given.
        name: String,
        /// The path as given.
        path: String,
    },
    /// A file system call failed (`what` says which).
    #[error("{what} {path}")]
    Io {
        /// What was being done or opened.
        what: &'static str,
        /// The path as given.
        path: String,
        /// What the system call answered.
        #[source]
        cause: io::Error,
    },
}

/// The root of this tool's pins inside one bpffs.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

/// A link pinned under the layout, with what its path says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PinnedLink {
    pub(crate) path: PathBuf,
    pub(crate) netns: String,
    pub(crate) device: String,
    pub(crate) hook: Hook,
    pub(crate) name: String,
}

pub(crate) fn check_name(name: &str) -> Result<(), PinError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') || name.len() > 200 {
        return Err(PinError::BadName(name.into()));
    }
    Ok(())
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PinError {
    let path = path.display().to_string();
    move |cause| PinError::Io { what, path, cause }
}

impl Layout {
    /// The layout in `bpffs`, which must be a mounted bpffs.
    pub(crate) fn new(bpffs: &Path) -> Result<Self, PinError> {
        if !probe::is_bpffs(bpffs) {
            return Err(PinError::NotBpffs(bpffs.display().to_string()));
        }
        Ok(Self::unchecked(bpffs))
    }

    /// The layout without checking the mount (for reading an absent tree).
    pub fn unchecked(bpffs: &Path) -> Self {
        Self { root: bpffs.join("netkit") }
    }

    pub(crate) fn links_root(&self) -> PathBuf {
        self.root.join("links")
    }

    /// The ids of the links the CNI plugin pinned for its pods (under
    /// `cni/` of this layout): their pairs are the plugin's.
    pub(crate) fn cni_links(&self) -> std::collections::BTreeSet<u32> {
        fn walk(dir: &Path, depth: usize, out: &mut std::collections::BTreeSet<u32>) {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() && depth > 0 => walk(&path, depth - 1, out),
                    Ok(t) if t.is_file() => {
                        if let Ok((_, info)) = open_link(&path) {
                            out.insert(info.id);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut out = std::collections::BTreeSet::new();
        // cni/<network>/<container>/<ifname>/netkit/links/<netns>/<dev>/<hook>/<name>
        walk(&self.root.join("cni"), 9, &mut out);
        out
    }

    /// Where maps of loaded user objects are pinned (`--pin-maps`).
    pub fn maps_dir(&self) -> PathBuf {
        self.root.join("maps")
    }

    pub(crate) fn hook_dir(&self, netns: &str, device: &str, hook: Hook) -> PathBuf {
        self.links_root().join(netns).join(device).join(hook.name())
    }

    pub(crate) fn link_path(&self, netns: &str, device: &str, hook: Hook, name: &str) -> PathBuf {
        self.hook_dir(netns, device, hook).join(name)
    }

    /// Fails when `name` is taken on that hook, before anything is attached.
    /// A defunct link (on no hook: detached by another tool, or its device
    /// deleted) does not take it: its id comes back with the path, for the
    /// caller to unpin it with [`Layout::unpin_defunct`] just before pinning.
    pub(crate) fn check_free(
        &self,
        netns: &str,
        device: &str,
        hook: Hook,
        name: &str,
    ) -> Result<(PathBuf, Option<u32>), PinError> {
        check_name(name)?;
        let path = self.link_path(netns, device, hook, name);
        if fs::symlink_metadata(&path).is_err() {
            return Ok((path, None));
        }
        match open_link(&path) {
            Ok((_, info)) if info.ifindex == 0 => Ok((path, Some(info.id))),
            _ => Err(PinError::Exists { name: name.into(), path: path.display().to_string() }),
        }
    }

    /// Removes the pin at `path` if it still holds the defunct link
    /// `link_id`; fails as [`Layout::check_free`] does when anything else
    /// holds the name by now.
    pub(crate) fn unpin_defunct(&self, path: &Path, name: &str, link_id: u32) -> Result<(), PinError> {
        match open_link(path) {
            Ok((_, info)) if info.id == link_id && info.ifindex == 0 => self.unpin(path),
            Err(_) if fs::symlink_metadata(path).is_err() => Ok(()),
            _ => Err(PinError::Exists { name: name.into(), path: path.display().to_string() }),
        }
    }

    /// Pins `link` at `path`, creating the directories.
    pub(crate) fn pin(&self, link: impl AsFd, path: &Path) -> Result<(), PinError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io("creating", dir))?;
        }
        bpf::obj_pin(link.as_fd(), path).map_err(|e| PinError::Io {
            what: "pinning at",
            path: path.display().to_string(),
            cause: e.io_error,
        })
    }

    /// Removes a pin and the directories it leaves empty.
    pub(crate) fn unpin(&self, path: &Path) -> Result<(), PinError> {
        fs::remove_file(path).map_err(io("unpinning", path))?;
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || !d.starts_with(self.links_root()) || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    /// Every link pinned under the layout.
    pub(crate) fn links(&self) -> Vec<PinnedLink> {
        let mut out = Vec::new();
        let root = self.links_root();
        for netns in crate::os::netns::dir_names(&root) {
            for device in crate::os::netns::dir_names(&root.join(&netns)) {
                for hook_name in crate::os::netns::dir_names(&root.join(&netns).join(&device)) {
                    let Ok(hook) = hook_name.parse::<Hook>() else { continue };
                    let dir = root.join(&netns).join(&device).join(&hook_name);
                    for name in crate::os::netns::dir_names(&dir) {
                        out.push(PinnedLink {
                            path: dir.join(&name),
                            netns: netns.clone(),
                            device: device.clone(),
                            hook,
                            name,
                        });
                    }
                }
            }
        }
        out
    }

    /// The links pinned for one hook (only that hook's directory is read).
    pub(crate) fn links_on(&self, netns: &str, device: &str, hook: Hook) -> Vec<PinnedLink> {
        let dir = self.hook_dir(netns, device, hook);
        crate::os::netns::dir_names(&dir)
            .into_iter()
            .map(|name| PinnedLink { path: dir.join(&name), netns: netns.into(), device: device.into(), hook, name })
            .collect()
    }

    /// What a path inside the layout says about its link, without reading
    /// any directory; None for paths outside `links/<netns>/<dev>/<hook>/`.
    pub(crate) fn parse_path(&self, path: &Path) -> Option<PinnedLink> {
        let rest = path.strip_prefix(self.links_root()).ok()?;
        let parts: Vec<String> = rest.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let [netns, device, hook, name] = parts.as_slice() else { return None };
        Some(PinnedLink {
            path: path.to_path_buf(),
            netns: netns.clone(),
            device: device.clone(),
            hook: hook.parse().ok()?,
            name: name.clone(),
        })
    }

    /// The pinned link whose kernel id is `link_id`, if this tool pinned it.
    pub(crate) fn find_by_id(&self, link_id: u32) -> Option<PinnedLink> {
        self.links().into_iter().find(|l| open_link(&l.path).ok().map(|(_, info)| info.id) == Some(link_id))
    }
}

/// Opens a pinned link and reads its info.
pub fn open_link(path: &Path) -> Result<(OwnedFd, bpf::LinkInfo), bpf::SyscallError> {
    let fd = bpf::obj_get(path)?;
    let info = bpf::link_info(fd.as_fd())?;
    Ok((fd, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_netns_device_and_hook() {
        let l = Layout::unchecked(Path::new("/sys/fs/bpf"));
        assert_eq!(
            l.link_path("pod1", "nk0", Hook::Peer, "fw"),
            PathBuf::from("/sys/fs/bpf/netkit/links/pod1/nk0/peer/fw")
        );
        assert_eq!(l.maps_dir(), PathBuf::from("/sys/fs/bpf/netkit/maps"));
    }

    #[test]
    fn pin_names_are_checked() {
        for bad in ["", ".", "..", "a/b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("pass-1").is_ok());
    }

    #[test]
    fn a_directory_that_is_not_bpffs_is_refused_with_the_mount_command() {
        let e = Layout::new(Path::new("/tmp")).unwrap_err().to_string();
        assert!(e.contains("mount -t bpf bpf /tmp"), "{e}");
    }
}
