//! User ELF objects: checks that they are BPF objects, the libbpf section
//! names renamed in place to the one aya 0.14 parses (every other byte kept),
//! and which sched_cls function of an object to load.

use super::*;

/// Section names of libbpf's conventions that aya does not parse, mapped to
/// the `classifier` name it does. The rest of the object is untouched.
pub fn classifier_alias(name: &str) -> Option<String> {
    const ALIASES: &[&str] =
        &["tc", "tc/ingress", "tc/egress", "tcx/ingress", "tcx/egress", "netkit/primary", "netkit/peer"];
    ALIASES.contains(&name).then(|| format!("classifier/{}", name.replace('/', "_")))
}

pub(super) const EM_BPF: u16 = 247;
pub(super) const SHF_EXECINSTR: u64 = 0x4;

/// Reads little- or big-endian integers at offsets of an ELF64 image.
pub(super) struct Elf<'a> {
    data: &'a [u8],
    le: bool,
}

impl Elf<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.data.get(at..at.checked_add(N)?)?.try_into().ok()
    }
    fn u16(&self, at: usize) -> Option<u16> {
        self.bytes(at).map(|b| if self.le { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) })
    }
    fn u32(&self, at: usize) -> Option<u32> {
        self.bytes(at).map(|b| if self.le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    }
    fn u64(&self, at: usize) -> Option<u64> {
        self.bytes(at).map(|b| if self.le { u64::from_le_bytes(b) } else { u64::from_be_bytes(b) })
    }
}

/// Renames executable sections whose name `rename` maps, in place: the new
/// names are appended to a copy of the section-name string table placed at the
/// end of the file, and the headers are pointed at it. The .BTF.ext records
/// name their sections with .BTF strings: .BTF gets a copy at the end of the
/// file too, with the new names appended, and those records are pointed at
/// them in place. Nothing else moves, so every other section (relocations,
/// LLVM's own) stays as the compiler wrote it. Returns None when nothing
/// needed renaming.
pub(super) fn rename_sections(data: &[u8], rename: impl Fn(&str) -> Option<String>) -> Result<Option<Vec<u8>>, String> {
    const BAD: &str = "malformed section headers";
    if data.get(4) != Some(&2) {
        return Err("not a 64-bit ELF object".into());
    }
    let le = match data.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Err("unknown byte order".into()),
    };
    let elf = Elf { data, le };
    let shoff = elf.u64(0x28).ok_or(BAD)? as usize;
    let shentsize = elf.u16(0x3a).ok_or(BAD)? as usize;
    let shnum = elf.u16(0x3c).ok_or(BAD)? as usize;
    let shstrndx = elf.u16(0x3e).ok_or(BAD)? as usize;
    if shentsize < 64 || shstrndx >= shnum || shoff.checked_add(shnum * shentsize).is_none_or(|end| end > data.len()) {
        return Err(BAD.into());
    }
    let header = |i: usize| shoff + i * shentsize;
    let str_off = elf.u64(header(shstrndx) + 24).ok_or(BAD)? as usize;
    let str_size = elf.u64(header(shstrndx) + 32).ok_or(BAD)? as usize;
    let strtab = data.get(str_off..str_off.checked_add(str_size).ok_or(BAD)?).ok_or(BAD)?;
    let mut table = strtab.to_vec();
    // New names go after the last one, which must end where it ends now.
    if table.last().is_some_and(|&b| b != 0) {
        table.push(0);
    }
    let mut renamed = Vec::new();
    let (mut btf, mut btf_ext) = (None, None);
    for i in 0..shnum {
        let h = header(i);
        let name_off = elf.u32(h).ok_or(BAD)? as usize;
        let flags = elf.u64(h + 8).ok_or(BAD)?;
        // A name ends with a NUL inside the table (as libelf requires): one
        // that runs to its end would run on into the names added below.
        let name_bytes = strtab.get(name_off..).unwrap_or_default();
        let end = name_bytes.iter().position(|&b| b == 0).ok_or_else(|| {
            format!("section {i}'s name (at {name_off}) does not end inside the section-name table ({str_size} bytes)")
        })?;
        let name = String::from_utf8_lossy(&name_bytes[..end]);
        match &*name {
            ".BTF" => btf = Some(h),
            ".BTF.ext" => btf_ext = Some(h),
            _ => {}
        }
        if flags & SHF_EXECINSTR != 0
            && let Some(new) = rename(&name)
        {
            renamed.push((h, table.len() as u32, name.into_owned(), new.clone()));
            table.extend_from_slice(new.as_bytes());
            table.push(0);
        }
    }
    if renamed.is_empty() {
        return Ok(None);
    }
    let mut out = data.to_vec();
    let put = |out: &mut Vec<u8>, at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
    let put_u64 =
        |out: &mut Vec<u8>, at: usize, v: u64| put(out, at, &if le { v.to_le_bytes() } else { v.to_be_bytes() });
    // Moves section `h` to a new copy of its contents at the end of the file.
    let relocate = |out: &mut Vec<u8>, h: usize, contents: &[u8]| {
        out.resize(out.len().next_multiple_of(8), 0);
        let at = out.len() as u64;
        out.extend_from_slice(contents);
        put_u64(out, h + 24, at);
        put_u64(out, h + 32, contents.len() as u64);
    };
    for (h, off, ..) in &renamed {
        put(&mut out, *h, &if le { off.to_le_bytes() } else { off.to_be_bytes() });
    }
    relocate(&mut out, header(shstrndx), &table);
    // .BTF.ext names the sections its function, line and CO-RE records belong
    // to by strings of .BTF: those must name the renamed sections too.
    if let (Some(btf), Some(ext)) = (btf, btf_ext) {
        let names: Vec<(&str, &str)> = renamed.iter().map(|(_, _, old, new)| (old.as_str(), new.as_str())).collect();
        let section = |h: usize| -> Option<(usize, usize)> {
            let (off, size) = (elf.u64(h + 24)? as usize, elf.u64(h + 32)? as usize);
            data.get(off..off.checked_add(size)?)?;
            Some((off, size))
        };
        let (btf_off, btf_size) = section(btf).ok_or(BAD)?;
        let (ext_off, ext_size) = section(ext).ok_or(BAD)?;
        if let Some((new_btf, moved)) = btf_with_names(&elf, btf_off, btf_size, &names) {
            relocate(&mut out, btf, &new_btf);
            retarget_btf_ext(&elf, &mut out, ext_off, ext_size, &moved);
        }
    }
    Ok(Some(out))
}

/// String offsets in .BTF that move: (old, new).
type Moves = Vec<(u32, u32)>;

/// A copy of the .BTF blob at `off` with the `(old, new)` names' new strings
/// appended to its string table, and the string offsets that move (old
/// offset, new offset). None when the blob is not laid out as compilers
/// write it (strings last) or holds none of the old names.
fn btf_with_names(elf: &Elf<'_>, off: usize, size: usize, names: &[(&str, &str)]) -> Option<(Vec<u8>, Moves)> {
    let blob = elf.data.get(off..off + size)?;
    let hdr_len = elf.u32(off + 4)? as usize;
    let (str_off, str_len) = (elf.u32(off + 16)? as usize, elf.u32(off + 20)? as usize);
    if elf.u16(off)? != 0xeb9f || hdr_len.checked_add(str_off)?.checked_add(str_len)? != size {
        return None;
    }
    let strings = &blob[hdr_len + str_off..];
    let mut out = blob.to_vec();
    let mut moved = Vec::new();
    let mut at = 0;
    for s in strings.split(|&b| b == 0) {
        if let Some((_, new)) = names.iter().find(|(old, _)| old.as_bytes() == s) {
            moved.push((at as u32, (out.len() - hdr_len - str_off) as u32));
            out.extend_from_slice(new.as_bytes());
            out.push(0);
        }
        at += s.len() + 1;
    }
    if moved.is_empty() {
        return None;
    }
    let len = (out.len() - hdr_len - str_off) as u32;
    out[20..24].copy_from_slice(&if elf.le { len.to_le_bytes() } else { len.to_be_bytes() });
    Some((out, moved))
}

/// Points the section names of the .BTF.ext records at `off` (function,
/// line and CO-RE subsections) from old string offsets to new ones, in place.
fn retarget_btf_ext(elf: &Elf<'_>, out: &mut [u8], off: usize, size: usize, moved: &[(u32, u32)]) {
    let Some(hdr_len) = elf.u32(off + 4).map(|n| n as usize) else { return };
    // (offset, length) pairs after the 8-byte preamble: func_info, line_info,
    // and core_relo when the header is long enough to hold it.
    let subsections = if hdr_len >= 32 { 3 } else { 2 };
    for i in 0..subsections {
        let (Some(sub_off), Some(sub_len)) = (elf.u32(off + 8 + 8 * i), elf.u32(off + 12 + 8 * i)) else { return };
        let start = off + hdr_len + sub_off as usize;
        let end = (start + sub_len as usize).min(off + size);
        let Some(rec_size) = elf.u32(start).map(|n| n as usize) else { continue };
        let mut at = start + 4;
        while at + 8 <= end {
            let (Some(name), Some(count)) = (elf.u32(at), elf.u32(at + 4)) else { break };
            if let Some((_, new)) = moved.iter().find(|(old, _)| *old == name) {
                out[at..at + 4].copy_from_slice(&if elf.le { new.to_le_bytes() } else { new.to_be_bytes() });
            }
            at += 8 + count as usize * rec_size;
        }
    }
}

/// Checks that `data` is a BPF ELF object and renames libbpf-style sched_cls
/// sections so aya's parser accepts them.
pub fn normalize_object<'a>(path: &str, data: &'a [u8]) -> Result<Cow<'a, [u8]>, ProgramError> {
    let not_bpf = |why: String| ProgramError::NotBpf { path: path.into(), why };
    if data.len() < 64 || &data[..4] != b"\x7fELF" {
        return Err(not_bpf("no ELF header".into()));
    }
    let machine =
        if data[5] == 2 { u16::from_be_bytes([data[18], data[19]]) } else { u16::from_le_bytes([data[18], data[19]]) };
    if machine != EM_BPF {
        return Err(not_bpf("not built for the BPF target (clang -target bpf, or aya's bpfel-unknown-none)".into()));
    }
    match rename_sections(data, classifier_alias).map_err(not_bpf)? {
        Some(renamed) => Ok(Cow::Owned(renamed)),
        None => Ok(Cow::Borrowed(data)),
    }
}

/// aya's parse of an object, as an error message when it fails. aya_obj
/// panics on some malformed objects (an unwrap on a .BTF.ext record naming a
/// string .BTF does not have, found by `cargo xtask fuzz`): a user's bad file
/// gets an error, not a crash.
pub fn parse_object(data: &[u8]) -> Result<aya_obj::Object, String> {
    match guarded(|| aya_obj::Object::parse(data)) {
        Ok(parsed) => parsed.map_err(|e| format!("aya cannot parse it: {}", error_chain(&e))),
        Err(panic) => Err(format!("aya's parser fails on it, a malformed object ({panic})")),
    }
}

/// Runs `f`; a panic in it becomes an error carrying the panic's message,
/// and is not reported on standard error. For third-party code fed with
/// untrusted input; unwinding is on in every profile.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    use std::{cell::Cell, sync::Once};
    thread_local! {
        static QUIET: Cell<bool> = const { Cell::new(false) };
    }
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    })
}

/// [`guarded`] for aya's work on a user's object after its parse: a panic
/// becomes the message a malformed object gets.
pub(crate) fn guarded_aya<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    guarded(f).map_err(|panic| format!("aya fails on the object, a malformed one ({panic})"))
}

/// The programs an object holds: (function, section kind, is sched_cls).
pub fn inspect(path: &str, data: &[u8]) -> Result<Vec<(String, String, bool)>, ProgramError> {
    let obj = parse_object(data).map_err(|why| ProgramError::NotBpf { path: path.into(), why })?;
    let mut out: Vec<(String, String, bool)> = obj
        .programs
        .iter()
        .map(|(name, p)| {
            let sched_cls = matches!(p.section, ProgramSection::SchedClassifier);
            let kind = if sched_cls { "sched_cls".to_string() } else { section_kind(&p.section) };
            (name.clone(), kind, sched_cls)
        })
        .collect();
    out.sort();
    Ok(out)
}

pub(super) fn section_kind(s: &ProgramSection) -> String {
    let dbg = format!("{s:?}");
    let head = dbg.split([' ', '{', '(']).next().unwrap_or(&dbg);
    head.to_lowercase()
}

/// Picks the function to load from an object, or explains why none fits.
pub fn pick_function(
    path: &str,
    progs: &[(String, String, bool)],
    wanted: Option<&str>,
) -> Result<String, ProgramError> {
    let classifiers: Vec<&str> = progs.iter().filter(|p| p.2).map(|p| p.0.as_str()).collect();
    match wanted {
        Some(f) => match progs.iter().find(|p| p.0 == f) {
            Some((_, _, true)) => Ok(f.into()),
            Some((_, kind, false)) => {
                Err(ProgramError::WrongType { path: path.into(), function: f.into(), kind: kind.clone() })
            }
            None => Err(ProgramError::NoFunction {
                path: path.into(),
                function: f.into(),
                available: if classifiers.is_empty() { "none".into() } else { classifiers.join(", ") },
            }),
        },
        None => match classifiers.as_slice() {
            [one] => Ok((*one).into()),
            [] => Err(ProgramError::NoClassifier {
                path: path.into(),
                available: progs.iter().map(|p| format!("{} ({})", p.0, p.1)).collect::<Vec<_>>().join(", "),
            }),
            many => Err(ProgramError::Ambiguous { path: path.into(), available: many.join(", ") }),
        },
    }
}

#[cfg(test)]
mod fuzz_regressions {
    use super::*;

    /// Found by `cargo xtask fuzz`: a .BTF.ext record naming a string past
    /// the end of .BTF's strings made aya_obj unwrap a None.
    #[test]
    fn a_malformed_object_aya_panics_on_is_an_error() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/regressions/object/btf-ext-string-out-of-range");
        let data = std::fs::read(path).unwrap();
        let normalized = normalize_object("bad.o", &data).unwrap();
        match inspect("bad.o", &normalized) {
            Err(ProgramError::NotBpf { why, .. }) => assert!(why.contains("malformed"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
