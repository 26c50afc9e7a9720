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
