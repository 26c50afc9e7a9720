//! Loading an object that needs nothing of the kernel's BTF, without aya's
//! loader: aya 0.14 reads and parses all of /sys/kernel/btf/vmlinux (about
//! 5 MB) as soon as an `EbpfLoader` is made, even when relocations will not
//! use it. The bundled programs and most sched_cls objects need only their
//! own maps, their globals and their calls relocated; aya_obj does that, and
//! `bpf` issues the few commands the load takes.
//!
//! Objects with CO-RE relocations, pinned maps or map kinds that need more
//! than a create (maps of maps, CPU and device maps, perf arrays sized by
//! the CPU count) go to aya, which knows them all.
//!
//! Why this loader exists, and when it goes: it is a second loader beside
//! aya's for one reason, aya 0.14 reading the kernel's BTF in its
//! constructor. aya has since merged a BTF source read only when a CO-RE
//! relocation or a typed kernel symbol needs it (aya-rs/aya#1644, July
//! 2026; not reading the system's BTF by default is aya-rs/aya#1172). The
//! aya releases after 0.14 need rustc 1.98, which this project's toolchain
//! (rustc 1.95) is not, so the first aya release that carries that
//! change and builds here makes this module unnecessary: load the bundled
//! programs through aya with the lazy source, compare `cargo xtask bench
//! --only startup` before and after, and remove it.

use std::collections::{HashMap, HashSet};

use aya_obj::{
    EbpfSectionKind, Object,
    btf::BtfFeatures,
    generated::{bpf_insn, bpf_map_type},
    maps::PinningType,
};

use super::*;

/// Why an object must be loaded by aya rather than here, or `None` when it
/// needs nothing this loader lacks.
pub fn needs_aya(obj: &Object) -> Option<String> {
    if obj.has_btf_relocations() {
        return Some("its CO-RE relocations need the kernel's BTF".into());
    }
    for (name, map) in &obj.maps {
        if map.pinning() != PinningType::None {
            return Some(format!("map `{name}` is pinned by name"));
        }
        if !LEAN_MAP_TYPES.contains(&map.map_type()) {
            return Some(format!("map `{name}` is of type {}", map.map_type()));
        }
    }
    None
}

/// Map types created with one BPF_MAP_CREATE from the object's definition.
const LEAN_MAP_TYPES: &[u32] = &[
    bpf_map_type::BPF_MAP_TYPE_HASH as u32,
    bpf_map_type::BPF_MAP_TYPE_ARRAY as u32,
    bpf_map_type::BPF_MAP_TYPE_PERCPU_HASH as u32,
    bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY as u32,
    bpf_map_type::BPF_MAP_TYPE_LRU_HASH as u32,
    bpf_map_type::BPF_MAP_TYPE_LRU_PERCPU_HASH as u32,
    bpf_map_type::BPF_MAP_TYPE_LPM_TRIE as u32,
    bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32,
];

/// Of those, the ones whose key and value the kernel does not take BTF types for.
const NO_BTF_TYPES: &[u32] = &[bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32];

/// BTF features of every kernel this tool runs on: tcx came in 6.6, and
/// each of these kinds is older (enum64, the newest, 6.0).
const BTF_FEATURES: BtfFeatures = BtfFeatures::new(true, true, true, true, true, true, true, true);

/// The first verifier log buffer; a longer log keeps its end (the reason).
const LOG_SIZE: usize = 1 << 20;

/// Loads `function` of the parsed object `obj` (which [`needs_aya`] let
/// through), with `globals` set in its data sections.
pub(crate) fn load(mut obj: Object, function: &str, globals: &[(String, Vec<u8>)]) -> Result<Loaded, ProgramError> {
    let load_err = |why: String| ProgramError::Load { function: function.into(), why };
    // The object's own BTF gives the kernel function and line records; a
    // sched_cls program loads without it if the kernel refuses it.
    let btf = patch(&mut obj, globals).map_err(load_err)?.and_then(|btf| bpf::btf_load(&btf).ok());

    let mut maps = Vec::with_capacity(obj.maps.len());
    for (name, map) in &obj.maps {
        let map_type = map.map_type();
        let (max_entries, value_size) = if map_type == bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32 {
            (ring_size(map.max_entries()), 0)
        } else {
            (map.max_entries(), map.value_size())
        };
        let types = match (map, &btf) {
            (aya_obj::Map::Btf(m), Some(fd)) if !NO_BTF_TYPES.contains(&map_type) => {
                Some((fd.as_fd(), m.def.btf_key_type_id, m.def.btf_value_type_id))
            }
            _ => None,
        };
        let fd = bpf::map_create(&bpf::MapCreate {
            name,
            map_type,
            key_size: map.key_size(),
            value_size,
            max_entries,
            flags: map.map_flags(),
            extra: map.map_extra(),
            btf: types,
        })
        .map_err(|e| load_err(format!("creating map `{name}`: {e}")))?;
        let data = map.data();
        if !data.is_empty() {
            bpf::map_update(fd.as_fd(), &0u32.to_ne_bytes(), data)
                .map_err(|e| load_err(format!("setting the data of `{name}`: {e}")))?;
        }
        if map.section_kind() == EbpfSectionKind::Rodata {
            bpf::map_freeze(fd.as_fd()).map_err(|e| load_err(format!("freezing `{name}`: {e}")))?;
        }
        maps.push((name.clone(), fd));
    }

    let fds: Vec<i32> = maps.iter().map(|(_, fd)| std::os::fd::AsRawFd::as_raw_fd(fd)).collect();
    relocate(&mut obj, &fds).map_err(load_err)?;
    let (prog, func, insns) = program(&obj, function).ok_or_else(|| load_err("not in the object".into()))?;
    let (func_info, line_info) = (func.func_info.func_info_bytes(), func.line_info.line_info_bytes());
    let attrs = bpf::ProgLoad {
        name: function,
        insns: &insns,
        license: &prog.license,
        kern_version: prog.kernel_version.unwrap_or(0),
        btf: btf.as_ref().map(|fd| bpf::ProgBtf {
            fd: fd.as_fd(),
            func_info: &func_info,
            func_info_cnt: func.func_info.func_info.len() as u32,
            func_info_rec_size: func.func_info_rec_size as u32,
            line_info: &line_info,
            line_info_cnt: func.line_info.line_info.len() as u32,
            line_info_rec_size: func.line_info_rec_size as u32,
        }),
    };
    let fd = match bpf::prog_load(&attrs, None) {
        Ok(fd) => fd,
        Err(first) => {
            // Again with a log, for the verifier's reason; the errno is the
            // first answer's (a full log buffer turns the second into ENOSPC).
            let mut log = vec![0u8; LOG_SIZE];
            let _ = bpf::prog_load(&attrs, Some(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            return Err(verifier_error(function, first.io_error, &String::from_utf8_lossy(&log[..end])));
        }
    };
    let (info, _) = bpf::prog_info(fd.as_fd()).map_err(|e| load_err(e.to_string()))?;
    Ok(Loaded { fd, info, ebpf: None })
}

/// The pure first half of a load: `globals` set in the object's data
/// sections, and its own BTF fixed for the kernel (None when it has none or
/// it cannot be fixed; the program loads without it). aya_obj's panics on a
/// malformed object become errors.
pub(crate) fn patch(obj: &mut Object, globals: &[(String, Vec<u8>)]) -> Result<Option<Vec<u8>>, String> {
    elf::guarded_aya(|| {
        let patch: HashMap<&str, (&[u8], bool)> =
            globals.iter().map(|(name, value)| (name.as_str(), (value.as_slice(), true))).collect();
        obj.patch_map_data(patch).map_err(|e| error_chain(&e))?;
        Ok(match obj.fixup_and_sanitize_btf(&BTF_FEATURES) {
            Ok(Some(btf)) => Some(btf.to_bytes()),
            Ok(None) | Err(_) => None,
        })
    })?
}

/// The pure second half: every map reference set to the fd of its map
/// (`fds` in the order of `obj.maps`) and every call resolved.
pub(crate) fn relocate(obj: &mut Object, fds: &[i32]) -> Result<(), String> {
    elf::guarded_aya(|| {
        let text: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
        let maps: Vec<(String, i32, aya_obj::Map)> =
            obj.maps.iter().zip(fds).map(|((name, map), &fd)| (name.clone(), fd, map.clone())).collect();
        obj.relocate_maps(maps.iter().map(|(name, fd, map)| (name.as_str(), *fd, map)), &text)
            .map_err(|e| error_chain(&e))?;
        obj.relocate_calls(&text).map_err(|e| error_chain(&e))
    })?
}

/// A relocated object's program `function`: the program, its function and
/// its instructions as the kernel reads them.
pub(crate) fn program<'o>(
    obj: &'o Object,
    function: &str,
) -> Option<(&'o aya_obj::Program, &'o aya_obj::Function, Vec<u64>)> {
    let prog = obj.programs.get(function)?;
    let func = obj.functions.get(&prog.function_key())?;
    Some((prog, func, func.instructions.iter().map(insn_word).collect()))
}

/// A program as the lean loader hands it to the kernel, with made-up map
/// fds: everything a load does before its first system call. For the
/// bench's C floor and the fuzz targets; not part of the interface.
#[doc(hidden)]
pub struct Image {
    /// The object's maps, each with the fd its references were set to.
    pub maps: Vec<(String, aya_obj::Map, i32)>,
    /// The program's license.
    pub license: String,
    /// The relocated instructions, as the kernel reads them.
    pub insns: Vec<u64>,
}

/// `function` of `object` with `globals` set, relocated against map fds
/// `first_fd`, `first_fd + 1`, ... in the order of the object's maps.
#[doc(hidden)]
pub fn image(object: &[u8], function: &str, globals: &[(String, Vec<u8>)], first_fd: i32) -> Result<Image, String> {
    let mut obj = elf::parse_object(object)?;
    patch(&mut obj, globals)?;
    let fds: Vec<i32> = (first_fd..).take(obj.maps.len()).collect();
    relocate(&mut obj, &fds)?;
    let (prog, _, insns) = program(&obj, function).ok_or_else(|| format!("no program {function} in the object"))?;
    let license = prog.license.to_string_lossy().into_owned();
    let maps = obj.maps.iter().zip(fds).map(|((name, map), fd)| (name.clone(), map.clone(), fd)).collect();
    Ok(Image { maps, license, insns })
}

/// A ring buffer's size as the kernel takes it: a power-of-two number of pages.
/// Zero stays zero, for the kernel to refuse.
fn ring_size(bytes: u32) -> u32 {
    if bytes == 0 {
        return 0;
    }
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u32;
    bytes.div_ceil(page).next_power_of_two().saturating_mul(page)
}

/// One instruction as the 8 bytes the kernel reads.
fn insn_word(insn: &bpf_insn) -> u64 {
    const _: () = assert!(std::mem::size_of::<bpf_insn>() == 8);
    // SAFETY: bpf_insn is a repr(C) struct of 8 bytes of plain integers.
    unsafe { std::mem::transmute::<bpf_insn, u64>(*insn) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_buffers_are_whole_pages_in_a_power_of_two() {
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u32;
        assert_eq!(ring_size(1 << 17), (1u32 << 17).max(page));
        assert_eq!(ring_size(page + 1), 2 * page);
        assert_eq!(ring_size(3 * page), 4 * page);
        assert_eq!(ring_size(0), 0);
    }

    #[test]
    fn every_bundled_object_loads_without_aya() {
        if STUB_BUILD {
            return;
        }
        for b in BUNDLED {
            let obj = Object::parse(b.object().unwrap()).unwrap();
            assert_eq!(needs_aya(&obj), None, "{}", b.name);
        }
    }
}
