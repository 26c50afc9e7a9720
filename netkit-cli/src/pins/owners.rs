//! Who holds a link: processes with an fd to it (from /proc/*/fdinfo) and
//! pins anywhere in the mounted bpffs trees. Used to say what owns a link this
//! tool refuses to touch.

use std::{fs, os::fd::AsFd as _, path::Path};

use crate::{bpf, os::probe};

/// Descriptions of everything holding link `link_id`, e.g.
/// "process 812 (cilium-agent)" or "a pin at /sys/fs/bpf/tc/globals/x".
pub(crate) fn holders(link_id: u32) -> Vec<String> {
    let mut out = Vec::new();
    let me = std::process::id().to_string();
    for proc_entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = proc_entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let fdinfo = proc_entry.path().join("fdinfo");
        let holds = fs::read_dir(&fdinfo).into_iter().flatten().flatten().any(|fd| {
            fs::read_to_string(fd.path()).is_ok_and(|t| {
                t.contains("link_type:")
                    && t.lines().any(|l| l.strip_prefix("link_id:").is_some_and(|v| v.trim() == link_id.to_string()))
            })
        });
        if holds {
            let comm = fs::read_to_string(proc_entry.path().join("comm")).unwrap_or_default();
            out.push(format!("process {pid} ({})", comm.trim()));
        }
    }
    for mount in probe::bpffs_mounts() {
        walk_pins(Path::new(&mount), link_id, &mut out, 0);
    }
    out.sort();
    out.dedup();
    out
}

fn walk_pins(dir: &Path, link_id: u32, out: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            walk_pins(&path, link_id, out, depth + 1);
        } else if let Ok(fd) = bpf::obj_get(&path)
            && crate::programs::object_kind(fd.as_fd()) == crate::programs::ObjKind::Link
            && bpf::link_info(fd.as_fd()).is_ok_and(|i| i.id == link_id)
        {
            out.push(format!("a pin at {}", path.display()));
        }
    }
}
