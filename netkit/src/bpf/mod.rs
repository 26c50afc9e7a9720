//! The raw bpf(2) commands this tool issues itself, each filling a zeroed
//! `bpf_attr` from `aya_obj::generated` and returning fds as `OwnedFd`.
//! Nothing here interprets an errno; `mprog::error` does.
//!
//! aya_obj parses and relocates objects; aya loads those that need the
//! kernel's BTF. These wrappers exist for what aya 0.14 lacks or keeps
//! private:
//! - BPF_LINK_CREATE for netkit, and for tcx with an expected revision or a
//!   link-id anchor;
//! - BPF_PROG_ATTACH / BPF_PROG_DETACH on mprog hooks, detach by position;
//! - BPF_PROG_QUERY with link ids and the revision;
//! - BPF_LINK_UPDATE / BPF_LINK_DETACH on a link fd of any origin;
//! - BPF_OBJ_PIN / BPF_OBJ_GET of objects aya did not create;
//! - BPF_*_GET_FD_BY_ID and BPF_OBJ_GET_INFO_BY_FD (aya's `ProgramInfo` has
//!   no public constructor from an fd or an id);
//! - BPF_BTF_LOAD, BPF_MAP_CREATE, BPF_MAP_UPDATE_ELEM, BPF_MAP_FREEZE and
//!   BPF_PROG_LOAD for objects that need no kernel BTF (aya's loader reads
//!   and parses all of /sys/kernel/btf/vmlinux as soon as it is made);
//! - BPF_PROG_TEST_RUN (tests, benchmarks).

use std::{
    ffi::CString,
    io,
    mem::{MaybeUninit, size_of},
    ops::Deref,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
    path::Path,
};

use aya_obj::generated::{
    bpf_attach_type, bpf_attr, bpf_cmd, bpf_link_info, bpf_link_type, bpf_map_info, bpf_prog_info, bpf_prog_type,
};

/// A failed bpf(2) command: which one, and the errno.
#[derive(Debug, thiserror::Error)]
#[error("{call} failed: {io_error}")]
pub struct SyscallError {
    pub(crate) call: &'static str,
    pub(crate) io_error: io::Error,
}

impl SyscallError {
    /// The errno the kernel returned, if the failure carries one.
    pub fn errno(&self) -> Option<i32> {
        self.io_error.raw_os_error()
    }
}

pub(crate) type Result<T> = std::result::Result<T, SyscallError>;

/// Program type of every program this tool attaches.
pub const BPF_PROG_TYPE_SCHED_CLS: u32 = bpf_prog_type::BPF_PROG_TYPE_SCHED_CLS as u32;

// Attach types (enum bpf_attach_type).
/// Attach type of the tcx ingress hook (BPF_TCX_INGRESS).
pub const BPF_TCX_INGRESS: u32 = bpf_attach_type::BPF_TCX_INGRESS as u32;
pub(crate) const BPF_TCX_EGRESS: u32 = bpf_attach_type::BPF_TCX_EGRESS as u32;
pub(crate) const BPF_NETKIT_PRIMARY: u32 = bpf_attach_type::BPF_NETKIT_PRIMARY as u32;
pub(crate) const BPF_NETKIT_PEER: u32 = bpf_attach_type::BPF_NETKIT_PEER as u32;

// Link types (enum bpf_link_type).
pub(crate) const BPF_LINK_TYPE_TCX: u32 = bpf_link_type::BPF_LINK_TYPE_TCX as u32;
pub(crate) const BPF_LINK_TYPE_NETKIT: u32 = bpf_link_type::BPF_LINK_TYPE_NETKIT as u32;

// mprog flags. Only `Anchor::encode` combines them.
pub(crate) const BPF_F_REPLACE: u32 = aya_obj::generated::BPF_F_REPLACE;
pub(crate) const BPF_F_BEFORE: u32 = aya_obj::generated::BPF_F_BEFORE;
pub(crate) const BPF_F_AFTER: u32 = aya_obj::generated::BPF_F_AFTER;
pub(crate) const BPF_F_ID: u32 = aya_obj::generated::BPF_F_ID;
pub(crate) const BPF_F_LINK: u32 = aya_obj::generated::BPF_F_LINK;

/// A `bpf_attr` with every byte zero, as the kernel requires of the bytes a
/// command does not use.
fn zeroed() -> bpf_attr {
    // SAFETY: bpf_attr is a union of plain integer structs; all-zero bytes
    // are a valid value of each member.
    unsafe { MaybeUninit::<bpf_attr>::zeroed().assume_init() }
}

/// bpf(2) itself.
///
/// # Safety
/// `attr` must be filled for `cmd` as include/uapi/linux/bpf.h describes it,
/// and every pointer it holds must be valid, for the whole call, for the
/// reads and writes the kernel makes for that command: buffers at least as
/// long as the lengths and counts the attr states, NUL-terminated strings,
/// and an info buffer of `info_len` bytes. The kernel reads at most
/// `size_of::<bpf_attr>()` bytes of `attr` and may write back into it.
unsafe fn sys_bpf(call: &'static str, cmd: bpf_cmd, attr: &mut bpf_attr) -> Result<i64> {
    // SAFETY: the caller upholds the contract above.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr as *mut libc::c_void,
            size_of::<bpf_attr>() as libc::c_uint,
        )
    };
    if ret < 0 { Err(SyscallError { call, io_error: io::Error::last_os_error() }) } else { Ok(ret) }
}

/// [`sys_bpf`] for commands that return a new fd.
///
/// # Safety
/// As for [`sys_bpf`].
unsafe fn sys_bpf_fd(call: &'static str, cmd: bpf_cmd, attr: &mut bpf_attr) -> Result<OwnedFd> {
    // SAFETY: the caller upholds sys_bpf's contract.
    let fd = unsafe { sys_bpf(call, cmd, attr) }?;
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn raw(fd: Option<BorrowedFd<'_>>) -> u32 {
    fd.map_or(0, |fd| fd.as_raw_fd() as u32)
}

/// The maps a program uses, opened.
pub fn prog_maps(prog_id: u32) -> Result<Vec<(MapInfo, OwnedFd)>> {
    let prog = prog_fd_by_id(prog_id)?;
    let (_, ids) = prog_info(prog.as_fd())?;
    let mut out = Vec::new();
    for id in ids {
        let fd = map_fd_by_id(id)?;
        let info = map_info(fd.as_fd())?;
        out.push((info, fd));
    }
    Ok(out)
}

// ---------------------------------------------------------------- PROG_LOAD

/// Copies `name` into a kernel object name field: at most 15 bytes, the
/// rest NUL (the kernel takes program and map names of up to 15 characters).
fn set_name(dst: &mut [libc::c_char; 16], name: &str) {
    for (d, s) in dst.iter_mut().zip(name.bytes().take(15)) {
        *d = s as libc::c_char;
    }
}

/// The program BTF a load refers to, with the function and line records of
/// the program's instructions (`.BTF.ext` entries, already relocated).
pub(crate) struct ProgBtf<'a> {
    pub fd: BorrowedFd<'a>,
    pub func_info: &'a [u8],
    pub func_info_cnt: u32,
    pub func_info_rec_size: u32,
    pub line_info: &'a [u8],
    pub line_info_cnt: u32,
    pub line_info_rec_size: u32,
}

/// A sched_cls program to load (BPF_PROG_LOAD).
pub(crate) struct ProgLoad<'a> {
    pub name: &'a str,
    /// The instructions, 8 bytes each as the kernel reads them.
    pub insns: &'a [u64],
    pub license: &'a std::ffi::CStr,
    pub kern_version: u32,
    pub btf: Option<ProgBtf<'a>>,
}

/// Loads a sched_cls program; with `log`, the verifier writes its log there
/// (level 1, so a refusal says why; since 6.4 a log too long for the buffer
/// keeps its end and the call fails with ENOSPC).
pub(crate) fn prog_load(p: &ProgLoad<'_>, log: Option<&mut [u8]>) -> Result<OwnedFd> {
    let mut attr = zeroed();
    // SAFETY: writing plain integers into the zeroed member for this command.
    let u = unsafe { &mut attr.__bindgen_anon_3 };
    u.prog_type = BPF_PROG_TYPE_SCHED_CLS;
    u.insn_cnt = p.insns.len() as u32;
    u.insns = p.insns.as_ptr() as u64;
    u.license = p.license.as_ptr() as u64;
    u.kern_version = p.kern_version;
    set_name(&mut u.prog_name, p.name);
    if let Some(b) = &p.btf {
        u.prog_btf_fd = b.fd.as_raw_fd() as u32;
        if b.func_info_cnt > 0 {
            u.func_info = b.func_info.as_ptr() as u64;
            u.func_info_cnt = b.func_info_cnt;
            u.func_info_rec_size = b.func_info_rec_size;
        }
        if b.line_info_cnt > 0 {
            u.line_info = b.line_info.as_ptr() as u64;
            u.line_info_cnt = b.line_info_cnt;
            u.line_info_rec_size = b.line_info_rec_size;
        }
    }
    if let Some(log) = log {
        u.log_level = 1;
        u.log_buf = log.as_mut_ptr() as u64;
        u.log_size = log.len() as u32;
    }
    // SAFETY: `insns` holds insn_cnt 8-byte instructions, `license` is
    // NUL-terminated, the BTF records hold cnt * rec_size bytes and the log
    // buffer log_size bytes; all outlive the call.
    unsafe { sys_bpf_fd("BPF_PROG_LOAD", bpf_cmd::BPF_PROG_LOAD, &mut attr) }
}

/// Loads a raw instruction stream as a sched_cls program. Used by feature
/// probes, tests and benchmarks.
pub fn prog_load_sched_cls(name: &str, insns: &[u64]) -> Result<OwnedFd> {
    prog_load(&ProgLoad { name, insns, license: c"GPL", kern_version: 0, btf: None }, None)
}

// ---------------------------------------------------------------- BTF_LOAD, MAP_CREATE, MAP_UPDATE_ELEM, MAP_FREEZE

/// Loads a program's BTF (BPF_BTF_LOAD), without a log.
pub(crate) fn btf_load(data: &[u8]) -> Result<OwnedFd> {
    let mut attr = zeroed();
    // SAFETY: writing plain integers into the zeroed member for this command.
    let u = unsafe { &mut attr.__bindgen_anon_7 };
    u.btf = data.as_ptr() as u64;
    u.btf_size = data.len() as u32;
    // SAFETY: `data` holds btf_size bytes and outlives the call.
    unsafe { sys_bpf_fd("BPF_BTF_LOAD", bpf_cmd::BPF_BTF_LOAD, &mut attr) }
}

/// A map to create (BPF_MAP_CREATE).
pub(crate) struct MapCreate<'a> {
    pub name: &'a str,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub extra: u64,
    /// The BTF and the key and value type ids in it.
    pub btf: Option<(BorrowedFd<'a>, u32, u32)>,
}

pub(crate) fn map_create(m: &MapCreate<'_>) -> Result<OwnedFd> {
    let mut attr = zeroed();
    // SAFETY: writing plain integers into the zeroed member for this command.
    let u = unsafe { &mut attr.__bindgen_anon_1 };
    u.map_type = m.map_type;
    u.key_size = m.key_size;
    u.value_size = m.value_size;
    u.max_entries = m.max_entries;
    u.map_flags = m.flags;
    u.map_extra = m.extra;
    set_name(&mut u.map_name, m.name);
    if let Some((fd, key, value)) = m.btf {
        u.btf_fd = fd.as_raw_fd() as u32;
        u.btf_key_type_id = key;
        u.btf_value_type_id = value;
    }
    // SAFETY: the attr holds only integers and an fd.
    unsafe { sys_bpf_fd("BPF_MAP_CREATE", bpf_cmd::BPF_MAP_CREATE, &mut attr) }
}

/// Sets one element of a map; `key` and `value` must have the map's key and
/// value sizes.
pub(crate) fn map_update(map: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> Result<()> {
    let mut attr = zeroed();
    // SAFETY: writing plain integers into the zeroed member for this command.
    let u = unsafe { &mut attr.__bindgen_anon_2 };
    u.map_fd = map.as_raw_fd() as u32;
    u.key = key.as_ptr() as u64;
    u.__bindgen_anon_1.value = value.as_ptr() as u64;
    // SAFETY: the kernel reads key_size bytes of `key` and value_size bytes
    // of `value`; the caller passes buffers of those sizes, alive for the call.
    unsafe { sys_bpf("BPF_MAP_UPDATE_ELEM", bpf_cmd::BPF_MAP_UPDATE_ELEM, &mut attr) }.map(drop)
}

/// Reads one element of a map into `value`; `key` and `value` must have the
/// map's key and value sizes.
pub(crate) fn map_lookup(map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> Result<()> {
    let mut attr = zeroed();
    // SAFETY: writing plain integers into the zeroed member for this command.
    let u = unsafe { &mut attr.__bindgen_anon_2 };
    u.map_fd = map.as_raw_fd() as u32;
    u.key = key.as_ptr() as u64;
    u.__bindgen_anon_1.value = value.as_mut_ptr() as u64;
    // SAFETY: the kernel reads key_size bytes of `key` and writes value_size
    // bytes to `value`; the caller passes buffers of those sizes, alive for
    // the call.
    unsafe { sys_bpf("BPF_MAP_LOOKUP_ELEM", bpf_cmd::BPF_MAP_LOOKUP_ELEM, &mut attr) }.map(drop)
}

/// Makes a map read-only for user space (BPF_MAP_FREEZE), as `.rodata` is.
pub(crate) fn map_freeze(map: BorrowedFd<'_>) -> Result<()> {
    let mut attr = zeroed();
    attr.__bindgen_anon_2.map_fd = map.as_raw_fd() as u32;
    // SAFETY: the attr holds only an fd.
    unsafe { sys_bpf("BPF_MAP_FREEZE", bpf_cmd::BPF_MAP_FREEZE, &mut attr) }.map(drop)
}

/// The two instructions `r0 = imm; exit`, little-endian encoded.
pub fn insns_return(imm: i32) -> [u64; 2] {
    // BPF_ALU64 | BPF_MOV | BPF_K = 0xb7, dst r0; BPF_JMP | BPF_EXIT = 0x95.
    [0xb7 | ((imm as u32 as u64) << 32), 0x95]
}

// ---------------------------------------------------------------- LINK_CREATE

/// BPF_LINK_CREATE for tcx and netkit (their `link_create` members share one
/// layout: relative fd or id, then the expected revision).
pub(crate) fn link_create(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    attach_type: u32,
    flags: u32,
    relative_fd_or_id: u32,
    expected_revision: u64,
) -> Result<OwnedFd> {
    let mut attr = zeroed();
    // SAFETY: writing plain integers into the zeroed member for this command.
    let u = unsafe { &mut attr.link_create };
    u.__bindgen_anon_1.prog_fd = prog.as_raw_fd() as u32;
    u.__bindgen_anon_2.target_ifindex = ifindex;
    u.attach_type = attach_type;
    u.flags = flags;
    u.__bindgen_anon_3.tcx.__bindgen_anon_1.relative_fd = relative_fd_or_id;
    u.__bindgen_anon_3.tcx.expected_revision = expected_revision;
    // SAFETY: the attr holds only fds and integers, no pointers.
    unsafe { sys_bpf_fd("BPF_LINK_CREATE", bpf_cmd::BPF_LINK_CREATE, &mut attr) }
}

// ---------------------------------------------------------------- PROG_ATTACH/DETACH

/// The fields BPF_PROG_ATTACH and BPF_PROG_DETACH take for mprog hooks.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProgAttachArgs<'a> {
    pub(crate) ifindex: u32,
    pub(crate) attach_type: u32,
    pub(crate) prog: Option<BorrowedFd<'a>>,
    pub(crate) flags: u32,
    pub(crate) replace: Option<BorrowedFd<'a>>,
    pub(crate) relative_fd_or_id: u32,
    pub(crate) expected_revision: u64,
}

impl ProgAttachArgs<'_> {
    fn attr(&self) -> bpf_attr {
        let mut attr = zeroed();
        // SAFETY: writing plain integers into the zeroed member for this command.
        let u = unsafe { &mut attr.__bindgen_anon_5 };
        u.__bindgen_anon_1.target_ifindex = self.ifindex;
        u.attach_bpf_fd = raw(self.prog);
        u.attach_type = self.attach_type;
        u.attach_flags = self.flags;
        u.replace_bpf_fd = raw(self.replace);
        u.__bindgen_anon_2.relative_fd = self.relative_fd_or_id;
        u.expected_revision = self.expected_revision;
        attr
    }
}

pub(crate) fn prog_attach(args: &ProgAttachArgs<'_>) -> Result<()> {
    // SAFETY: the attr holds only fds and integers, no pointers.
    unsafe { sys_bpf("BPF_PROG_ATTACH", bpf_cmd::BPF_PROG_ATTACH, &mut args.attr()) }.map(drop)
}

pub(crate) fn prog_detach(args: &ProgAttachArgs<'_>) -> Result<()> {
    // SAFETY: the attr holds only fds and integers, no pointers.
    unsafe { sys_bpf("BPF_PROG_DETACH", bpf_cmd::BPF_PROG_DETACH, &mut args.attr()) }.map(drop)
}

// ---------------------------------------------------------------- PROG_QUERY

/// What one BPF_PROG_QUERY call returned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryResult {
    /// Programs on the hook (the kernel always writes the total).
    pub(crate) count: u32,
    pub(crate) revision: u64,
}

/// BPF_PROG_QUERY on an mprog hook, filling `prog_ids` and `link_ids` (same
/// length; pass empty slices to ask for count and revision only). The kernel
/// answers ENOSPC when the slices are shorter than the chain, after filling
/// them and writing the total to `count`.
pub(crate) fn prog_query(
    ifindex: u32,
    attach_type: u32,
    prog_ids: &mut [u32],
    link_ids: &mut [u32],
) -> std::result::Result<QueryResult, (SyscallError, QueryResult)> {
    assert_eq!(prog_ids.len(), link_ids.len(), "one link id per program id");
    let mut attr = zeroed();
    // SAFETY: writing plain integers into the zeroed member for this command.
    let u = unsafe { &mut attr.query };
    u.__bindgen_anon_1.target_ifindex = ifindex;
    u.attach_type = attach_type;
    u.__bindgen_anon_2.count = prog_ids.len() as u32;
    if !prog_ids.is_empty() {
        u.prog_ids = prog_ids.as_mut_ptr() as u64;
        u.link_ids = link_ids.as_mut_ptr() as u64;
    }
    // SAFETY: both arrays hold `count` u32s (checked equal above), and the
    // kernel writes at most `count` ids into each; with count 0 it writes none.
    let res = unsafe { sys_bpf("BPF_PROG_QUERY", bpf_cmd::BPF_PROG_QUERY, &mut attr) };
    // SAFETY: reading back integers the kernel wrote into the same member.
    let u = unsafe { &attr.query };
    // SAFETY: `count` is a plain u32 in a union with `prog_cnt` (also u32).
    let out = QueryResult { count: unsafe { u.__bindgen_anon_2.count }, revision: u.revision };
    match res {
        Ok(_) => Ok(out),
        Err(e) => Err((e, out)),
    }
}

// ---------------------------------------------------------------- LINK_UPDATE / LINK_DETACH

/// BPF_LINK_UPDATE; with `expected_old` the kernel checks (BPF_F_REPLACE) that
/// the link still runs that program.
pub(crate) fn link_update(
    link: BorrowedFd<'_>,
    new_prog: BorrowedFd<'_>,
    expected_old: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let mut attr = zeroed();
    // SAFETY: writing plain integers into the zeroed member for this command.
    let u = unsafe { &mut attr.link_update };
    u.link_fd = link.as_raw_fd() as u32;
    u.__bindgen_anon_1.new_prog_fd = new_prog.as_raw_fd() as u32;
    u.flags = if expected_old.is_some() { BPF_F_REPLACE } else { 0 };
    u.__bindgen_anon_2.old_prog_fd = raw(expected_old);
    // SAFETY: the attr holds only fds and integers, no pointers.
    unsafe { sys_bpf("BPF_LINK_UPDATE", bpf_cmd::BPF_LINK_UPDATE, &mut attr) }.map(drop)
}

pub(crate) fn link_detach(link: BorrowedFd<'_>) -> Result<()> {
    let mut attr = zeroed();
    attr.link_detach.link_fd = link.as_raw_fd() as u32;
    // SAFETY: the attr holds only an fd.
    unsafe { sys_bpf("BPF_LINK_DETACH", bpf_cmd::BPF_LINK_DETACH, &mut attr) }.map(drop)
}

// ---------------------------------------------------------------- OBJ_PIN / OBJ_GET

fn c_path(path: &Path, call: &'static str) -> Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| SyscallError {
        call,
        io_error: io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"),
    })
}

pub(crate) fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let path = c_path(path, "BPF_OBJ_PIN")?;
    let mut attr = zeroed();
    // SAFETY: writing plain integers into the zeroed member for this command.
    let u = unsafe { &mut attr.__bindgen_anon_4 };
    u.pathname = path.as_ptr() as u64;
    u.bpf_fd = fd.as_raw_fd() as u32;
    // SAFETY: `pathname` is a NUL-terminated string that outlives the call.
    unsafe { sys_bpf("BPF_OBJ_PIN", bpf_cmd::BPF_OBJ_PIN, &mut attr) }.map(drop)
}

/// Opens the object pinned at `path` (read-write).
pub(crate) fn obj_get(path: &Path) -> Result<OwnedFd> {
    let path = c_path(path, "BPF_OBJ_GET")?;
    let mut attr = zeroed();
    // SAFETY: writing plain integers into the zeroed member for this command.
    let u = unsafe { &mut attr.__bindgen_anon_4 };
    u.pathname = path.as_ptr() as u64;
    // SAFETY: `pathname` is a NUL-terminated string that outlives the call.
    unsafe { sys_bpf_fd("BPF_OBJ_GET", bpf_cmd::BPF_OBJ_GET, &mut attr) }
}

// ---------------------------------------------------------------- GET_FD_BY_ID

fn fd_by_id(call: &'static str, cmd: bpf_cmd, id: u32) -> Result<OwnedFd> {
    let mut attr = zeroed();
    attr.__bindgen_anon_6.__bindgen_anon_1.prog_id = id;
    // SAFETY: the attr holds only an id (prog_id, map_id and link_id share
    // the union slot).
    unsafe { sys_bpf_fd(call, cmd, &mut attr) }
}

/// A new fd for the loaded program with this id (BPF_PROG_GET_FD_BY_ID).
pub fn prog_fd_by_id(id: u32) -> Result<OwnedFd> {
    fd_by_id("BPF_PROG_GET_FD_BY_ID", bpf_cmd::BPF_PROG_GET_FD_BY_ID, id)
}

/// A new fd for the map with this id (BPF_MAP_GET_FD_BY_ID).
pub fn map_fd_by_id(id: u32) -> Result<OwnedFd> {
    fd_by_id("BPF_MAP_GET_FD_BY_ID", bpf_cmd::BPF_MAP_GET_FD_BY_ID, id)
}

pub(crate) fn link_fd_by_id(id: u32) -> Result<OwnedFd> {
    fd_by_id("BPF_LINK_GET_FD_BY_ID", bpf_cmd::BPF_LINK_GET_FD_BY_ID, id)
}

/// The id of the next link after `id` (BPF_LINK_GET_NEXT_ID), None after
/// the last. aya has this walk too (`loaded_links`), but its link info has no
/// tcx or netkit fields, so each link would be opened twice.
pub(crate) fn next_link_id(id: u32) -> Option<u32> {
    let mut attr = zeroed();
    attr.__bindgen_anon_6.__bindgen_anon_1.start_id = id;
    // SAFETY: the attr holds only the start id; the kernel writes next_id.
    unsafe { sys_bpf("BPF_LINK_GET_NEXT_ID", bpf_cmd::BPF_LINK_GET_NEXT_ID, &mut attr) }.ok()?;
    // SAFETY: reading the integer the kernel wrote.
    Some(unsafe { attr.__bindgen_anon_6.next_id })
}

// ---------------------------------------------------------------- OBJ_GET_INFO_BY_FD

/// The info structs BPF_OBJ_GET_INFO_BY_FD fills: plain integer structs from
/// the UAPI header, valid when all zero.
///
/// # Safety
/// Implementors must be `repr(C)` structs of integers (and arrays and unions
/// of them) for which all-zero bytes and any bytes the kernel writes are valid.
unsafe trait KernelInfo: Copy {
    fn zeroed() -> Self {
        // SAFETY: the implementor guarantees that all-zero bytes are valid.
        unsafe { MaybeUninit::<Self>::zeroed().assume_init() }
    }
}

// SAFETY: generated repr(C) structs of integers, arrays and unions of them.
unsafe impl KernelInfo for bpf_prog_info {}
// SAFETY: as above.
unsafe impl KernelInfo for bpf_map_info {}
// SAFETY: as above.
unsafe impl KernelInfo for bpf_link_info {}

/// Fills `info` for the object `fd`; the kernel writes at most
/// `size_of::<T>()` bytes, and pointers inside `info` that are not 0 must
/// point at buffers as long as their counts say (see `prog_info`).
fn obj_info<T: KernelInfo>(fd: BorrowedFd<'_>, info: &mut T) -> Result<()> {
    let mut attr = zeroed();
    attr.info.bpf_fd = fd.as_raw_fd() as u32;
    attr.info.info_len = size_of::<T>() as u32;
    attr.info.info = info as *mut T as u64;
    // SAFETY: `info` is valid for `info_len` bytes of writes, of a type valid
    // for any bytes (KernelInfo); the kernel follows pointers inside it only
    // where the caller set them, with their counts.
    unsafe { sys_bpf("BPF_OBJ_GET_INFO_BY_FD", bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.map(drop)
}

/// A NUL-padded kernel name as a String.
fn c_name(name: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// struct bpf_prog_info, as the kernel filled it (fields through `Deref`).
#[derive(Clone, Copy)]
pub struct ProgInfo(bpf_prog_info);

impl Deref for ProgInfo {
    type Target = bpf_prog_info;

    fn deref(&self) -> &bpf_prog_info {
        &self.0
    }
}

impl std::fmt::Debug for ProgInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgInfo").field("id", &self.id).field("name", &self.name()).finish_non_exhaustive()
    }
}

impl ProgInfo {
    /// The program's name as the kernel keeps it (at most 15 bytes).
    pub fn name(&self) -> String {
        c_name(&self.0.name)
    }

    /// The program's tag (a hash of its instructions) in hex, as bpftool shows it.
    pub fn tag_hex(&self) -> String {
        self.0.tag.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Program info, and the ids of the maps the program uses.
pub fn prog_info(fd: BorrowedFd<'_>) -> Result<(ProgInfo, Vec<u32>)> {
    let mut info = bpf_prog_info::zeroed();
    obj_info(fd, &mut info)?;
    if info.nr_map_ids == 0 {
        return Ok((ProgInfo(info), Vec::new()));
    }
    // Second call with a buffer for the map ids; every other pointer stays 0.
    let mut map_ids = vec![0u32; info.nr_map_ids as usize];
    let mut again = bpf_prog_info::zeroed();
    again.nr_map_ids = map_ids.len() as u32;
    again.map_ids = map_ids.as_mut_ptr() as u64;
    obj_info(fd, &mut again)?;
    map_ids.truncate(again.nr_map_ids.min(map_ids.len() as u32) as usize);
    Ok((ProgInfo(again), map_ids))
}

/// The info of program `id`, if it is still loaded.
pub(crate) fn prog_info_by_id(id: u32) -> Option<ProgInfo> {
    prog_fd_by_id(id).and_then(|fd| prog_info(fd.as_fd())).ok().map(|(info, _)| info)
}

/// What this tool reads of struct bpf_link_info: its ids and, for tcx and
/// netkit links, the tcx/netkit member of the union.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkInfo {
    /// The link's id.
    pub id: u32,
    pub(crate) prog_id: u32,
    /// tcx/netkit: the ifindex of the device the kernel keeps in the link
    /// (for a netkit peer link, the peer's); 0 once the link is defunct.
    pub(crate) ifindex: u32,
    /// tcx/netkit: the attach type.
    pub(crate) attach_type: u32,
    /// enum bpf_link_type.
    pub(crate) link_type: u32,
}

/// BPF_OBJ_GET_INFO_BY_FD on a link.
pub fn link_info(fd: BorrowedFd<'_>) -> Result<LinkInfo> {
    let mut info = bpf_link_info::zeroed();
    obj_info(fd, &mut info)?;
    let (ifindex, attach_type) = match info.type_ {
        // SAFETY: the kernel filled the union's tcx/netkit member for these
        // types; both members are (ifindex, attach_type) u32 pairs.
        BPF_LINK_TYPE_TCX => unsafe { (info.__bindgen_anon_1.tcx.ifindex, info.__bindgen_anon_1.tcx.attach_type) },
        // SAFETY: as above.
        BPF_LINK_TYPE_NETKIT => unsafe {
            (info.__bindgen_anon_1.netkit.ifindex, info.__bindgen_anon_1.netkit.attach_type)
        },
        _ => (0, 0),
    };
    Ok(LinkInfo { id: info.id, prog_id: info.prog_id, ifindex, attach_type, link_type: info.type_ })
}

/// struct bpf_map_info, as the kernel filled it (fields through `Deref`).
#[derive(Clone, Copy)]
pub struct MapInfo(bpf_map_info);

impl Deref for MapInfo {
    type Target = bpf_map_info;

    fn deref(&self) -> &bpf_map_info {
        &self.0
    }
}

impl std::fmt::Debug for MapInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapInfo").field("id", &self.id).field("name", &self.name()).finish_non_exhaustive()
    }
}

impl MapInfo {
    /// The map's name as the kernel keeps it.
    pub fn name(&self) -> String {
        c_name(&self.0.name)
    }
}

/// BPF_OBJ_GET_INFO_BY_FD on a map.
pub fn map_info(fd: BorrowedFd<'_>) -> Result<MapInfo> {
    let mut info = bpf_map_info::zeroed();
    obj_info(fd, &mut info)?;
    Ok(MapInfo(info))
}

// ---------------------------------------------------------------- PROG_TEST_RUN

/// What BPF_PROG_TEST_RUN reports that callers use: the program's return value.
#[derive(Debug, Clone, Copy)]
pub struct TestRun {
    /// What the program returned for the packet.
    pub retval: u32,
}

/// Runs the program `repeat` times on `packet` (BPF_PROG_TEST_RUN); aya has no test-run call.
pub fn prog_test_run(prog: BorrowedFd<'_>, packet: &[u8], repeat: u32) -> Result<TestRun> {
    let mut out = vec![0u8; packet.len() + 256];
    let mut attr = zeroed();
    attr.test.prog_fd = prog.as_raw_fd() as u32;
    attr.test.data_size_in = packet.len() as u32;
    attr.test.data_size_out = out.len() as u32;
    attr.test.data_in = packet.as_ptr() as u64;
    attr.test.data_out = out.as_mut_ptr() as u64;
    attr.test.repeat = repeat;
    // SAFETY: data_in is `packet` (data_size_in bytes, read only) and
    // data_out is `out` (data_size_out bytes, written at most that many);
    // both outlive the call. No context is given.
    unsafe { sys_bpf("BPF_PROG_TEST_RUN", bpf_cmd::BPF_PROG_TEST_RUN, &mut attr) }?;
    // SAFETY: reading back integers the kernel wrote into the same member.
    let test = unsafe { &attr.test };
    Ok(TestRun { retval: test.retval })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stop_at_the_first_nul() {
        let mut raw = [0 as libc::c_char; 16];
        for (d, s) in raw.iter_mut().zip(b"firewall") {
            *d = *s as libc::c_char;
        }
        assert_eq!(c_name(&raw), "firewall");
        assert_eq!(c_name(&[b'x' as libc::c_char; 16]), "x".repeat(16));
    }

    #[test]
    fn the_constants_are_the_kernels() {
        // Values from include/uapi/linux/bpf.h, as KERNEL-SEMANTICS lists them.
        assert_eq!((BPF_TCX_INGRESS, BPF_TCX_EGRESS, BPF_NETKIT_PRIMARY, BPF_NETKIT_PEER), (46, 47, 54, 55));
        assert_eq!((BPF_LINK_TYPE_TCX, BPF_LINK_TYPE_NETKIT), (11, 13));
        assert_eq!((BPF_F_REPLACE, BPF_F_BEFORE, BPF_F_AFTER, BPF_F_ID, BPF_F_LINK), (4, 8, 16, 32, 8192));
    }
}
