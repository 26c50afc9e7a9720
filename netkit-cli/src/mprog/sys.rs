//! The raw bpf(2) commands this tool issues itself: attribute layouts as in
//! include/uapi/linux/bpf.h, one function per command, fds returned as
//! `OwnedFd`. Nothing here interprets an errno; `mprog::error` does.

use std::{
    ffi::CString,
    io,
    mem::{offset_of, size_of},
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
    path::Path,
};

/// A failed bpf(2) command: which one, and the errno.
#[derive(Debug, thiserror::Error)]
#[error("{call} failed: {io_error}")]
pub struct SyscallError {
    pub call: &'static str,
    pub io_error: io::Error,
}

impl SyscallError {
    pub fn errno(&self) -> Option<i32> {
        self.io_error.raw_os_error()
    }
}

pub type Result<T> = std::result::Result<T, SyscallError>;

// Commands (enum bpf_cmd).
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_MAP_GET_NEXT_KEY: u32 = 4;
const BPF_PROG_LOAD: u32 = 5;
const BPF_OBJ_PIN: u32 = 6;
const BPF_OBJ_GET: u32 = 7;
const BPF_PROG_ATTACH: u32 = 8;
const BPF_PROG_DETACH: u32 = 9;
const BPF_PROG_TEST_RUN: u32 = 10;
const BPF_PROG_GET_NEXT_ID: u32 = 11;
const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_MAP_GET_FD_BY_ID: u32 = 14;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_PROG_QUERY: u32 = 16;
const BPF_LINK_CREATE: u32 = 28;
const BPF_LINK_UPDATE: u32 = 29;
const BPF_LINK_GET_FD_BY_ID: u32 = 30;
const BPF_LINK_GET_NEXT_ID: u32 = 31;
const BPF_ENABLE_STATS: u32 = 32;
const BPF_LINK_DETACH: u32 = 34;

/// Program type of every program this tool attaches.
pub const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;

// Attach types (enum bpf_attach_type).
pub const BPF_TCX_INGRESS: u32 = 46;
pub const BPF_TCX_EGRESS: u32 = 47;
pub const BPF_NETKIT_PRIMARY: u32 = 54;
pub const BPF_NETKIT_PEER: u32 = 55;

// Link types (enum bpf_link_type).
pub const BPF_LINK_TYPE_TCX: u32 = 11;
pub const BPF_LINK_TYPE_NETKIT: u32 = 13;

// mprog flags. Only `Anchor::encode` combines them.
pub const BPF_F_REPLACE: u32 = 1 << 2;
pub const BPF_F_BEFORE: u32 = 1 << 3;
pub const BPF_F_AFTER: u32 = 1 << 4;
pub const BPF_F_ID: u32 = 1 << 5;
pub const BPF_F_LINK: u32 = 1 << 13;

/// BPF_OBJ_GET file flag: open a pinned object read-only.
pub const BPF_F_RDONLY: u32 = 1 << 3;

/// BPF_ENABLE_STATS type.
const BPF_STATS_RUN_TIME: u32 = 0;

fn sys_bpf<T>(cmd: u32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a repr(C) struct laid out as the kernel's union member
    // for `cmd`; the kernel reads at most size_of::<T>() bytes and zero-fills
    // the rest of its own copy.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T as *mut libc::c_void,
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

fn call<T>(call: &'static str, cmd: u32, attr: &mut T) -> Result<i64> {
    sys_bpf(cmd, attr).map_err(|io_error| SyscallError { call, io_error })
}

fn fd_result(call_name: &'static str, cmd: u32, attr: &mut impl Sized) -> Result<OwnedFd> {
    let fd = call(call_name, cmd, attr)?;
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn raw(fd: Option<BorrowedFd<'_>>) -> u32 {
    fd.map_or(0, |fd| fd.as_raw_fd() as u32)
}

// ---------------------------------------------------------------- MAP_*_ELEM

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value_or_next_key: u64,
    flags: u64,
}

/// BPF_ANY / BPF_NOEXIST for map updates.
pub const BPF_ANY: u64 = 0;
pub const BPF_NOEXIST: u64 = 1;

/// Looks `key` up; `value` must be the map's value size (for per-CPU maps:
/// value size rounded up to 8, times the number of possible CPUs).
/// Returns false when the key is absent.
pub fn map_lookup(map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value_or_next_key: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    match call("BPF_MAP_LOOKUP_ELEM", BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn map_update(map: BorrowedFd<'_>, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value_or_next_key: value.as_ptr() as u64,
        flags,
        ..Default::default()
    };
    call("BPF_MAP_UPDATE_ELEM", BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// Deletes `key`; returns false when it was absent.
pub fn map_delete(map: BorrowedFd<'_>, key: &[u8]) -> Result<bool> {
    let mut attr = MapElemAttr { map_fd: map.as_raw_fd() as u32, key: key.as_ptr() as u64, ..Default::default() };
    match call("BPF_MAP_DELETE_ELEM", BPF_MAP_DELETE_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The key after `key` (the first key with `None`); None at the end.
pub fn map_next_key(map: BorrowedFd<'_>, key: Option<&[u8]>, next: &mut [u8]) -> Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.map_or(0, |k| k.as_ptr() as u64),
        value_or_next_key: next.as_mut_ptr() as u64,
        ..Default::default()
    };
    match call("BPF_MAP_GET_NEXT_KEY", BPF_MAP_GET_NEXT_KEY, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The maps a program uses, by name, opened.
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

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// Loads a raw instruction stream as a sched_cls program. Used by feature
/// probes and benchmarks; real programs are loaded through aya.
pub fn prog_load_sched_cls(name: &str, insns: &[u64]) -> Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_SCHED_CLS,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    for (dst, src) in attr.prog_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src;
    }
    fd_result("BPF_PROG_LOAD", BPF_PROG_LOAD, &mut attr)
}

/// The two instructions `r0 = imm; exit`, little-endian encoded.
pub fn insns_return(imm: i32) -> [u64; 2] {
    // BPF_ALU64 | BPF_MOV | BPF_K = 0xb7, dst r0; BPF_JMP | BPF_EXIT = 0x95.
    [0xb7 | ((imm as u32 as u64) << 32), 0x95]
}

// ---------------------------------------------------------------- LINK_CREATE

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    relative_fd_or_id: u32,
    _pad: u32,
    expected_revision: u64,
}
const _: () = assert!(offset_of!(LinkCreateAttr, relative_fd_or_id) == 16);
const _: () = assert!(offset_of!(LinkCreateAttr, expected_revision) == 24);

/// BPF_LINK_CREATE for tcx and netkit (their `link_create` members share this
/// layout).
pub fn link_create(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    attach_type: u32,
    flags: u32,
    relative_fd_or_id: u32,
    expected_revision: u64,
) -> Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type,
        flags,
        relative_fd_or_id,
        expected_revision,
        ..Default::default()
    };
    fd_result("BPF_LINK_CREATE", BPF_LINK_CREATE, &mut attr)
}

// ---------------------------------------------------------------- PROG_ATTACH/DETACH

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_ifindex: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    relative_fd_or_id: u32,
    expected_revision: u64,
}
const _: () = assert!(offset_of!(ProgAttachAttr, expected_revision) == 24);

/// The fields BPF_PROG_ATTACH and BPF_PROG_DETACH take for mprog hooks.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProgAttachArgs<'a> {
    pub ifindex: u32,
    pub attach_type: u32,
    pub prog: Option<BorrowedFd<'a>>,
    pub flags: u32,
    pub replace: Option<BorrowedFd<'a>>,
    pub relative_fd_or_id: u32,
    pub expected_revision: u64,
}

impl ProgAttachArgs<'_> {
    fn attr(&self) -> ProgAttachAttr {
        ProgAttachAttr {
            target_ifindex: self.ifindex,
            attach_bpf_fd: raw(self.prog),
            attach_type: self.attach_type,
            attach_flags: self.flags,
            replace_bpf_fd: raw(self.replace),
            relative_fd_or_id: self.relative_fd_or_id,
            expected_revision: self.expected_revision,
        }
    }
}

pub fn prog_attach(args: &ProgAttachArgs<'_>) -> Result<()> {
    call("BPF_PROG_ATTACH", BPF_PROG_ATTACH, &mut args.attr()).map(drop)
}

pub fn prog_detach(args: &ProgAttachArgs<'_>) -> Result<()> {
    call("BPF_PROG_DETACH", BPF_PROG_DETACH, &mut args.attr()).map(drop)
}

// ---------------------------------------------------------------- PROG_QUERY

#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
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
const _: () = assert!(offset_of!(ProgQueryAttr, count) == 24);
const _: () = assert!(offset_of!(ProgQueryAttr, revision) == 56);

/// What one BPF_PROG_QUERY call returned.
#[derive(Debug, Clone, Copy)]
pub struct QueryResult {
    /// Programs on the hook (the kernel always writes the total).
    pub count: u32,
    pub revision: u64,
}

/// BPF_PROG_QUERY on an mprog hook, filling `prog_ids` and `link_ids` (same
/// length; pass empty slices to ask for count and revision only). The kernel
/// answers ENOSPC when the slices are shorter than the chain, after filling
/// them and writing the total to `count`.
pub fn prog_query(
    ifindex: u32,
    attach_type: u32,
    prog_ids: &mut [u32],
    link_ids: &mut [u32],
) -> std::result::Result<QueryResult, (SyscallError, QueryResult)> {
    assert_eq!(prog_ids.len(), link_ids.len());
    let mut attr =
        ProgQueryAttr { target_ifindex: ifindex, attach_type, count: prog_ids.len() as u32, ..Default::default() };
    if !prog_ids.is_empty() {
        attr.prog_ids = prog_ids.as_mut_ptr() as u64;
        attr.link_ids = link_ids.as_mut_ptr() as u64;
    }
    let res = call("BPF_PROG_QUERY", BPF_PROG_QUERY, &mut attr);
    let out = QueryResult { count: attr.count, revision: attr.revision };
    match res {
        Ok(_) => Ok(out),
        Err(e) => Err((e, out)),
    }
}

// ---------------------------------------------------------------- LINK_UPDATE / LINK_DETACH

#[repr(C)]
#[derive(Default)]
struct LinkUpdateAttr {
    link_fd: u32,
    new_prog_fd: u32,
    flags: u32,
    old_prog_fd: u32,
}

/// BPF_LINK_UPDATE; with `expected_old` the kernel checks (BPF_F_REPLACE) that
/// the link still runs that program.
pub fn link_update(link: BorrowedFd<'_>, new_prog: BorrowedFd<'_>, expected_old: Option<BorrowedFd<'_>>) -> Result<()> {
    let mut attr = LinkUpdateAttr {
        link_fd: link.as_raw_fd() as u32,
        new_prog_fd: new_prog.as_raw_fd() as u32,
        flags: if expected_old.is_some() { BPF_F_REPLACE } else { 0 },
        old_prog_fd: raw(expected_old),
    };
    call("BPF_LINK_UPDATE", BPF_LINK_UPDATE, &mut attr).map(drop)
}

#[repr(C)]
struct LinkDetachAttr {
    link_fd: u32,
}

pub fn link_detach(link: BorrowedFd<'_>) -> Result<()> {
    let mut attr = LinkDetachAttr { link_fd: link.as_raw_fd() as u32 };
    call("BPF_LINK_DETACH", BPF_LINK_DETACH, &mut attr).map(drop)
}

// ---------------------------------------------------------------- OBJ_PIN / OBJ_GET

#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

fn c_path(path: &Path, call: &'static str) -> Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| SyscallError {
        call,
        io_error: io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"),
    })
}

pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let path = c_path(path, "BPF_OBJ_PIN")?;
    let mut attr = ObjAttr { pathname: path.as_ptr() as u64, bpf_fd: fd.as_raw_fd() as u32, file_flags: 0 };
    call("BPF_OBJ_PIN", BPF_OBJ_PIN, &mut attr).map(drop)
}

pub fn obj_get(path: &Path, file_flags: u32) -> Result<OwnedFd> {
    let path = c_path(path, "BPF_OBJ_GET")?;
    let mut attr = ObjAttr { pathname: path.as_ptr() as u64, bpf_fd: 0, file_flags };
    fd_result("BPF_OBJ_GET", BPF_OBJ_GET, &mut attr)
}

// ---------------------------------------------------------------- GET_FD_BY_ID / GET_NEXT_ID

#[repr(C)]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

pub fn prog_fd_by_id(id: u32) -> Result<OwnedFd> {
    fd_result("BPF_PROG_GET_FD_BY_ID", BPF_PROG_GET_FD_BY_ID, &mut IdAttr { id, ..Default::default() })
}

pub fn map_fd_by_id(id: u32) -> Result<OwnedFd> {
    fd_result("BPF_MAP_GET_FD_BY_ID", BPF_MAP_GET_FD_BY_ID, &mut IdAttr { id, ..Default::default() })
}

pub fn link_fd_by_id(id: u32) -> Result<OwnedFd> {
    fd_result("BPF_LINK_GET_FD_BY_ID", BPF_LINK_GET_FD_BY_ID, &mut IdAttr { id, ..Default::default() })
}

fn next_id(call_name: &'static str, cmd: u32, start: u32) -> Result<Option<u32>> {
    let mut attr = IdAttr { id: start, ..Default::default() };
    match call(call_name, cmd, &mut attr) {
        Ok(_) => Ok(Some(attr.next_id)),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn prog_next_id(start: u32) -> Result<Option<u32>> {
    next_id("BPF_PROG_GET_NEXT_ID", BPF_PROG_GET_NEXT_ID, start)
}

pub fn link_next_id(start: u32) -> Result<Option<u32>> {
    next_id("BPF_LINK_GET_NEXT_ID", BPF_LINK_GET_NEXT_ID, start)
}

// ---------------------------------------------------------------- OBJ_GET_INFO_BY_FD

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn obj_info<T>(fd: BorrowedFd<'_>, info: &mut T) -> Result<()> {
    let mut attr =
        InfoAttr { bpf_fd: fd.as_raw_fd() as u32, info_len: size_of::<T>() as u32, info: info as *mut T as u64 };
    call("BPF_OBJ_GET_INFO_BY_FD", BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
}

/// struct bpf_prog_info, up to `verified_insns`.
#[repr(C)]
#[derive(Debug, Clone, Default)]
pub struct ProgInfo {
    pub prog_type: u32,
    pub id: u32,
    pub tag: [u8; 8],
    pub jited_prog_len: u32,
    pub xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    pub load_time: u64,
    pub created_by_uid: u32,
    pub nr_map_ids: u32,
    map_ids: u64,
    pub name: [u8; 16],
    pub ifindex: u32,
    gpl_compatible: u32,
    netns_dev: u64,
    netns_ino: u64,
    nr_jited_ksyms: u32,
    nr_jited_func_lens: u32,
    jited_ksyms: u64,
    jited_func_lens: u64,
    pub btf_id: u32,
    func_info_rec_size: u32,
    func_info: u64,
    nr_func_info: u32,
    nr_line_info: u32,
    line_info: u64,
    jited_line_info: u64,
    nr_jited_line_info: u32,
    line_info_rec_size: u32,
    jited_line_info_rec_size: u32,
    nr_prog_tags: u32,
    prog_tags: u64,
    pub run_time_ns: u64,
    pub run_cnt: u64,
    pub recursion_misses: u64,
    pub verified_insns: u32,
    _pad: u32,
}
const _: () = assert!(offset_of!(ProgInfo, name) == 64);
const _: () = assert!(offset_of!(ProgInfo, run_time_ns) == 192);
const _: () = assert!(offset_of!(ProgInfo, verified_insns) == 216);

impl ProgInfo {
    pub fn name(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(self.name.len());
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }

    pub fn tag_hex(&self) -> String {
        self.tag.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Program info, and the ids of the maps the program uses.
pub fn prog_info(fd: BorrowedFd<'_>) -> Result<(ProgInfo, Vec<u32>)> {
    let mut info = ProgInfo::default();
    obj_info(fd, &mut info)?;
    if info.nr_map_ids == 0 {
        return Ok((info, Vec::new()));
    }
    // Second call with a buffer for the map ids; every other pointer stays 0.
    let mut map_ids = vec![0u32; info.nr_map_ids as usize];
    let mut again =
        ProgInfo { nr_map_ids: map_ids.len() as u32, map_ids: map_ids.as_mut_ptr() as u64, ..Default::default() };
    obj_info(fd, &mut again)?;
    map_ids.truncate(again.nr_map_ids.min(map_ids.len() as u32) as usize);
    Ok((again, map_ids))
}

/// The info of program `id`, if it is still loaded.
pub fn prog_info_by_id(id: u32) -> Option<ProgInfo> {
    prog_fd_by_id(id).and_then(|fd| prog_info(fd.as_fd())).ok().map(|(info, _)| info)
}

/// struct bpf_link_info with the tcx/netkit member of its union.
#[repr(C)]
#[derive(Debug, Clone, Default)]
pub struct LinkInfo {
    pub link_type: u32,
    pub id: u32,
    pub prog_id: u32,
    _pad: u32,
    /// tcx/netkit: the device's ifindex, 0 once the link is defunct.
    pub ifindex: u32,
    pub attach_type: u32,
    // The union is larger for other link types; keep room so the kernel's
    // copy never exceeds what we declare.
    _rest: [u64; 6],
}
const _: () = assert!(offset_of!(LinkInfo, ifindex) == 16);

pub fn link_info(fd: BorrowedFd<'_>) -> Result<LinkInfo> {
    let mut info = LinkInfo::default();
    obj_info(fd, &mut info)?;
    Ok(info)
}

/// struct bpf_map_info, up to `map_extra`.
#[repr(C)]
#[derive(Debug, Clone, Default)]
pub struct MapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub name: [u8; 16],
    pub ifindex: u32,
    btf_vmlinux_value_type_id: u32,
    netns_dev: u64,
    netns_ino: u64,
    pub btf_id: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
    _pad: u32,
    map_extra: u64,
}
const _: () = assert!(offset_of!(MapInfo, name) == 24);
const _: () = assert!(offset_of!(MapInfo, map_extra) == 80);

impl MapInfo {
    pub fn name(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(self.name.len());
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
}

pub fn map_info(fd: BorrowedFd<'_>) -> Result<MapInfo> {
    let mut info = MapInfo::default();
    obj_info(fd, &mut info)?;
    Ok(info)
}

// ---------------------------------------------------------------- ENABLE_STATS

#[repr(C)]
struct EnableStatsAttr {
    stats_type: u32,
}

/// Turns on kernel BPF run-time statistics for as long as the returned fd is open.
pub fn enable_stats() -> Result<OwnedFd> {
    fd_result("BPF_ENABLE_STATS", BPF_ENABLE_STATS, &mut EnableStatsAttr { stats_type: BPF_STATS_RUN_TIME })
}

// ---------------------------------------------------------------- PROG_TEST_RUN

#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
}

/// What BPF_PROG_TEST_RUN reports: the program's return value and the mean
/// run time per repetition in ns.
#[derive(Debug, Clone, Copy)]
pub struct TestRun {
    pub retval: u32,
    pub duration_ns: u32,
}

pub fn prog_test_run(prog: BorrowedFd<'_>, packet: &[u8], repeat: u32) -> Result<TestRun> {
    let mut out = vec![0u8; packet.len() + 256];
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: packet.len() as u32,
        data_size_out: out.len() as u32,
        data_in: packet.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ..Default::default()
    };
    call("BPF_PROG_TEST_RUN", BPF_PROG_TEST_RUN, &mut attr)?;
    Ok(TestRun { retval: attr.retval, duration_ns: attr.duration })
}
