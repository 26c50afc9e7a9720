//! An independent witness of a hook's chain: BPF_PROG_QUERY issued here,
//! with the attr laid out from the UAPI header by hand, so that a test's
//! facts about a chain never come from the code under test.
#![allow(dead_code)]

use super::TestNs;

pub const TCX_INGRESS: u32 = 46;
pub const TCX_EGRESS: u32 = 47;
pub const NETKIT_PRIMARY: u32 = 54;
pub const NETKIT_PEER: u32 = 55;

const BPF_PROG_QUERY: libc::c_long = 16;

/// The attach type of a hook, by the name the command line uses.
pub fn attach_type(hook: &str) -> u32 {
    match hook {
        "ingress" => TCX_INGRESS,
        "egress" => TCX_EGRESS,
        "primary" => NETKIT_PRIMARY,
        "peer" => NETKIT_PEER,
        _ => panic!("no hook named {hook}"),
    }
}

/// `union bpf_attr`'s `query` member (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_ifindex: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    count: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

/// A chain as the kernel reports it: the revision and (program id, link id
/// or 0) per slot, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub revision: u64,
    pub slots: Vec<(u64, u64)>,
}

impl Chain {
    pub fn progs(&self) -> Vec<u64> {
        self.slots.iter().map(|s| s.0).collect()
    }

    pub fn links(&self) -> Vec<u64> {
        self.slots.iter().map(|s| s.1).collect()
    }
}

/// The chain on `attach_type` of `dev` in `ns` (for netkit hooks, `dev` is
/// the primary). The ifindex comes from `ip`, the query from this module.
pub fn chain(ns: &TestNs, dev: &str, attach_type: u32) -> Chain {
    let ifindex = ns.ifindex_of(dev);
    ns.within(move || {
        let mut progs = [0u32; 64];
        let mut links = [0u32; 64];
        let mut attr = QueryAttr {
            target_ifindex: ifindex,
            attach_type,
            prog_ids: progs.as_mut_ptr() as u64,
            count: progs.len() as u32,
            link_ids: links.as_mut_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: the attr points at two arrays of `count` u32s that outlive
        // the call; the kernel writes at most `count` ids into each.
        let rc = unsafe {
            libc::syscall(libc::SYS_bpf, BPF_PROG_QUERY, &mut attr as *mut QueryAttr, size_of::<QueryAttr>())
        };
        assert_eq!(rc, 0, "BPF_PROG_QUERY on ifindex {ifindex}: {}", std::io::Error::last_os_error());
        let n = attr.count as usize;
        Chain { revision: attr.revision, slots: (0..n).map(|i| (u64::from(progs[i]), u64::from(links[i]))).collect() }
    })
}

const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_LINK_DETACH: libc::c_long = 34;

fn bpf(cmd: libc::c_long, attr: &mut [u32; 4]) -> std::io::Result<i64> {
    // SAFETY: the attr is 16 bytes of plain integers that outlive the call,
    // enough for the link commands used here (get_fd_by_id, update, detach).
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size_of::<[u32; 4]>()) };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(rc) }
}

/// A link by id, as another tool opens it.
fn link_fd(id: u64) -> std::os::fd::OwnedFd {
    let mut attr = [id as u32, 0, 0, 0];
    let fd = bpf(BPF_LINK_GET_FD_BY_ID, &mut attr).unwrap_or_else(|e| panic!("BPF_LINK_GET_FD_BY_ID {id}: {e}"));
    // SAFETY: the kernel returned a new descriptor this process owns.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) }
}

/// BPF_LINK_DETACH on link `id`, as another agent or an operator does it:
/// the link goes off its hook and stays, defunct, while its pin holds it.
pub fn detach_link(id: u64) {
    use std::os::fd::AsRawFd as _;
    let fd = link_fd(id);
    let mut attr = [fd.as_raw_fd() as u32, 0, 0, 0];
    bpf(BPF_LINK_DETACH, &mut attr).unwrap_or_else(|e| panic!("BPF_LINK_DETACH {id}: {e}"));
}

/// BPF_LINK_UPDATE of link `id` to the program `prog`, as another tool
/// replaces what a link runs.
pub fn update_link(id: u64, prog: &std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd as _;
    let fd = link_fd(id);
    let mut attr = [fd.as_raw_fd() as u32, prog.as_raw_fd() as u32, 0, 0];
    bpf(BPF_LINK_UPDATE, &mut attr).unwrap_or_else(|e| panic!("BPF_LINK_UPDATE {id}: {e}"));
}

/// Every pin under `dir` (a bpffs), as paths relative to it, sorted: read
/// with the file system, not the tool.
pub fn pins(dir: &std::path::Path) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
