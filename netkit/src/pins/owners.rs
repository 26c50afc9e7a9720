//! Who holds a link: processes with an fd to it (from /proc/*/fdinfo) and
//! pins anywhere in the mounted bpffs trees. Used to say what owns a link this
//! tool refuses to touch.

use std::{
    collections::HashMap,
    fs,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use crate::{bpf, os::probe};

/// Descriptions of everything holding link `link_id`, e.g.
/// "process 812 (cilium-agent)" or "a pin at /sys/fs/bpf/tc/globals/x".
pub(crate) fn holders(link_id: u32) -> Vec<String> {
    Holders::scan().of(link_id).iter().map(ToString::to_string).collect()
}

/// Something that keeps a link alive; shown (and serialized) as
/// "process 812 (cilium-agent)" or "a pin at PATH".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Holder {
    /// A process with an fd to the link.
    Process {
        /// Its pid.
        pid: u32,
        /// Its command name.
        comm: String,
    },
    /// A pin of the link on a bpffs.
    Pin(PathBuf),
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Process { pid, comm } => write!(f, "process {pid} ({comm})"),
            Self::Pin(path) => write!(f, "a pin at {}", path.display()),
        }
    }
}

impl serde::Serialize for Holder {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Who holds which link, from one pass over /proc and the mounted bpffs trees.
#[derive(Debug, Default)]
pub(crate) struct Holders {
    by_link: HashMap<u32, Vec<Holder>>,
    /// The info of each pinned link, as its pin gave it.
    pinned: HashMap<u32, bpf::LinkInfo>,
}

impl Holders {
    /// Processes with an fd to a link (their fdinfo names its `link_id`;
    /// this process is left out) and pins of links anywhere on a bpffs.
    pub(crate) fn scan() -> Self {
        let mut h = Self::default();
        let me = std::process::id().to_string();
        for proc_entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let pid = proc_entry.file_name().to_string_lossy().into_owned();
            let Ok(pid_number) = pid.parse::<u32>() else { continue };
            if pid == me {
                continue;
            }
            let mut held = Vec::new();
            for fd in fs::read_dir(proc_entry.path().join("fdinfo")).into_iter().flatten().flatten() {
                let Ok(text) = fs::read_to_string(fd.path()) else { continue };
                if !text.contains("link_type:") {
                    continue;
                }
                held.extend(text.lines().find_map(|l| l.strip_prefix("link_id:")?.trim().parse::<u32>().ok()));
            }
            if held.is_empty() {
                continue;
            }
            let comm = fs::read_to_string(proc_entry.path().join("comm")).unwrap_or_default();
            for id in held {
                h.add(id, Holder::Process { pid: pid_number, comm: comm.trim().into() });
            }
        }
        for mount in probe::bpffs_mounts() {
            h.walk_pins(Path::new(&mount), 0);
        }
        for list in h.by_link.values_mut() {
            list.sort();
            list.dedup();
        }
        h
    }

    /// Every pin found, with the id of the link it holds.
    pub(crate) fn pins(&self) -> HashMap<PathBuf, u32> {
        let mut out = HashMap::new();
        for (id, holders) in &self.by_link {
            for h in holders {
                if let Holder::Pin(p) = h {
                    out.insert(p.clone(), *id);
                }
            }
        }
        out
    }

    /// The info of link `link_id` as the walk of the pins read it, when a
    /// pin holds it.
    pub(crate) fn pinned_info(&self, link_id: u32) -> Option<bpf::LinkInfo> {
        self.pinned.get(&link_id).copied()
    }

    /// What holds link `link_id`.
    pub(crate) fn of(&self, link_id: u32) -> Vec<Holder> {
        self.by_link.get(&link_id).cloned().unwrap_or_default()
    }

    fn add(&mut self, link_id: u32, holder: Holder) {
        self.by_link.entry(link_id).or_default().push(holder);
    }

    fn walk_pins(&mut self, dir: &Path, depth: usize) {
        if depth > 8 {
            return;
        }
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                self.walk_pins(&path, depth + 1);
            } else if let Ok(fd) = bpf::obj_get(&path)
                && crate::programs::object_kind(fd.as_fd()) == crate::programs::ObjKind::Link
                && let Ok(info) = bpf::link_info(fd.as_fd())
            {
                self.pinned.insert(info.id, info);
                self.add(info.id, Holder::Pin(path));
            }
        }
    }
}
