//! User ELF objects: checks that they are BPF objects, the libbpf section
//! names renamed in place to the one aya 0.14 parses (every other byte kept),
//! and which sched_cls function of an object to load.

use super::*;

/// Section names of libbpf's conventions that aya does not parse, mapped to
/// the `classifier` name it does. The rest of the object is untouched.
pub(super) fn classifier_alias(name: &str) -> Option<String> {
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
/// end of the file, and the headers are pointed at it. Nothing else moves, so
/// every other section (BTF, relocations, LLVM's own) stays as the compiler
/// wrote it. Returns None when nothing needed renaming.
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
    let mut renamed = Vec::new();
    for i in 0..shnum {
        let h = header(i);
        let name_off = elf.u32(h).ok_or(BAD)? as usize;
        let flags = elf.u64(h + 8).ok_or(BAD)?;
        let name_bytes = strtab.get(name_off..).ok_or(BAD)?;
        let name =
            String::from_utf8_lossy(&name_bytes[..name_bytes.iter().position(|&b| b == 0).unwrap_or(name_bytes.len())]);
        if flags & SHF_EXECINSTR != 0
            && let Some(new) = rename(&name)
        {
            renamed.push((h, table.len() as u32));
            table.extend_from_slice(new.as_bytes());
            table.push(0);
        }
    }
    if renamed.is_empty() {
        return Ok(None);
    }
    let mut out = data.to_vec();
    out.resize(out.len().next_multiple_of(8), 0);
    let new_off = out.len() as u64;
    out.extend_from_slice(&table);
    let put = |out: &mut Vec<u8>, at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
    for (h, off) in renamed {
        put(&mut out, h, &if le { off.to_le_bytes() } else { off.to_be_bytes() });
    }
    let sh = header(shstrndx);
    put(&mut out, sh + 24, &if le { new_off.to_le_bytes() } else { new_off.to_be_bytes() });
    let size = table.len() as u64;
    put(&mut out, sh + 32, &if le { size.to_le_bytes() } else { size.to_be_bytes() });
    Ok(Some(out))
}

/// Checks that `data` is a BPF ELF object and renames libbpf-style sched_cls
/// sections so aya's parser accepts them.
pub(crate) fn normalize_object<'a>(path: &str, data: &'a [u8]) -> Result<Cow<'a, [u8]>, ProgramError> {
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

/// The programs an object holds: (function, section kind, is sched_cls).
pub(crate) fn inspect(path: &str, data: &[u8]) -> Result<Vec<(String, String, bool)>, ProgramError> {
    let obj = aya_obj::Object::parse(data)
        .map_err(|e| ProgramError::NotBpf { path: path.into(), why: format!("aya cannot parse it: {e}") })?;
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
pub(super) fn pick_function(
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
