//! Which bundled program a running one is, and with which settings: how
//! `export` names a program this library loaded, and how adoption checks
//! that a running program is the one a spec entry asks for.
//!
//! A running program is a bundled one when its name is the bundled
//! function's and its tag is the one the same kernel gives the bundled
//! object. The tag is the kernel's hash of the instructions as loaded, with
//! the map references left out, so it names the object's code whatever its
//! maps and settings; the bundled object is loaded once per process (and
//! released) to ask for it. Its settings are read back from its `.rodata`
//! maps: each setting's global is decoded, and the rest of the data must be
//! the object's own.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::Mutex,
};

use aya_obj::EbpfSectionKind;

use super::*;

/// A running program recognised as a bundled one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The bundled program's name (`firewall`).
    pub name: &'static str,
    /// Its settings as `KEY=VALUE`, those that differ from the object's
    /// own values, in the order the program declares them.
    pub set: Vec<String>,
}

/// The bundled program that `prog_id` runs, with its settings; None when it
/// runs no bundled program of this build (another object, or another
/// version of it).
pub fn identify(prog_id: u32) -> Result<Option<Identity>, ProgramError> {
    let fd = bpf::prog_fd_by_id(prog_id)
        .map_err(|cause| ProgramError::Kernel { what: format!("opening program {prog_id}"), cause })?;
    let (info, _) = bpf::prog_info(fd.as_fd())
        .map_err(|cause| ProgramError::Kernel { what: format!("reading program {prog_id}"), cause })?;
    let Some(b) = BUNDLED.iter().find(|b| b.function == info.name()) else { return Ok(None) };
    if info.type_ != bpf::BPF_PROG_TYPE_SCHED_CLS || info.tag != bundled_tag(b)? {
        return Ok(None);
    }
    let running = running_rodata(prog_id)?;
    let own = rodata(b, &[])?;
    let mut set = Vec::new();
    let mut globals = Vec::new();
    for s in b.settings {
        let (map, offset, len) = place_of(b, s)?;
        let (Some(now), Some(was)) = (running.get(&map), own.get(&map)) else { return Ok(None) };
        let (Some(value), Some(default)) = (now.get(offset..offset + len), was.get(offset..offset + len)) else {
            return Ok(None);
        };
        if value != default {
            let Some(text) = s.kind.show(value) else { return Ok(None) };
            set.push(format!("{}={text}", s.key));
            globals.push((s.global.to_string(), value.to_vec()));
        }
    }
    // Nothing else differs from what a load with these settings writes.
    let expected = rodata(b, &globals)?;
    Ok((expected.iter().all(|(name, data)| running.get(name) == Some(data))).then_some(Identity { name: b.name, set }))
}

/// Whether `prog_id` runs the program `spec` loads with `set`: None when
/// it does, else the difference in words. Bundled programs and object
/// files can be compared.
pub(crate) fn differs(prog_id: u32, spec: &ProgSpec, set: &[String], maps_dir: &Path) -> Option<String> {
    let name = match spec {
        ProgSpec::Bundled(name) => name,
        ProgSpec::File { .. } => {
            return differs_from_file(prog_id, spec, set, maps_dir).unwrap_or_else(|e| Some(error_chain(&e)));
        }
        ProgSpec::Id(_) | ProgSpec::Pinned(_) => {
            return Some(format!("{spec} is a program, not an object: only bundled programs and files are recognised"));
        }
    };
    let compare = || -> Result<Option<String>, ProgramError> {
        let b = Bundled::find(name)?;
        let Some(found) = identify(prog_id)? else {
            let name = bpf::prog_info_by_id(prog_id).map(|i| i.name()).unwrap_or_default();
            return Ok(Some(format!("program {prog_id} ({name}) is not a bundled program of this build")));
        };
        if found.name != b.name {
            return Ok(Some(format!("program {prog_id} runs {}, not {}", found.name, b.name)));
        }
        let expected = rodata(b, &globals(spec, set)?)?;
        let running = running_rodata(prog_id)?;
        if expected.iter().all(|(map, data)| running.get(map) == Some(data)) {
            return Ok(None);
        }
        let shown = |set: &[String]| if set.is_empty() { "no settings".to_string() } else { set.join(" ") };
        Ok(Some(format!("program {prog_id} runs {} with {}; the spec sets {}", b.name, shown(&found.set), shown(set))))
    };
    compare().unwrap_or_else(|e| Some(error_chain(&e)))
}

/// Whether `prog_id` runs what `spec` (an object file) loads with `set`:
/// the same function, the same code as the kernel tags it, and the same
/// read-only data. The file is loaded afresh (and released) to ask, its
/// pinned maps taken from `maps_dir` as the loads of this tool pin them.
fn differs_from_file(
    prog_id: u32,
    spec: &ProgSpec,
    set: &[String],
    maps_dir: &Path,
) -> Result<Option<String>, ProgramError> {
    let running = bpf::prog_info_by_id(prog_id).ok_or(ProgramError::NoSuchId(prog_id))?;
    let fresh = load_to_compare(spec, super::globals(spec, set)?, maps_dir)?;
    let name = running.name();
    if name != fresh.info.name() {
        return Ok(Some(format!("program {prog_id} runs {name}, not {spec}'s {}", fresh.info.name())));
    }
    if running.tag != fresh.info.tag {
        return Ok(Some(format!("program {prog_id} ({name}) is not the code {spec} holds now")));
    }
    if running_rodata(prog_id)? != running_rodata(fresh.id())? {
        let with = if set.is_empty() { "its own".to_string() } else { set.join(" ") };
        return Ok(Some(format!("program {prog_id} runs {spec} with other read-only data than {with} settings give")));
    }
    Ok(None)
}

/// Loads `spec` to compare it with a running program. A pinned map the
/// object declares is the one in `maps_dir` when there is one; one this
/// load had to pin is unpinned again, so comparing leaves nothing behind.
fn load_to_compare(spec: &ProgSpec, globals: Vec<(String, Vec<u8>)>, maps_dir: &Path) -> Result<Loaded, ProgramError> {
    let names = || -> HashSet<std::ffi::OsString> {
        std::fs::read_dir(maps_dir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default()
    };
    let (existed, before) = (maps_dir.exists(), names());
    let loaded = load(spec, &LoadOptions { globals, map_pin_dir: Some(maps_dir.into()) });
    for made in names().difference(&before) {
        let _ = std::fs::remove_file(maps_dir.join(made));
    }
    if !existed {
        let _ = std::fs::remove_dir(maps_dir);
    }
    loaded
}

/// The function of the object at `path` that `prog_id` runs unchanged
/// (loaded without settings), as a spec names it: `file:PATH` when the
/// object holds one classifier, else `file:PATH:FUNCTION`. None when it
/// runs none of them.
pub fn file_match(prog_id: u32, path: &Path, maps_dir: &Path) -> Result<Option<ProgSpec>, ProgramError> {
    let running = bpf::prog_info_by_id(prog_id).ok_or(ProgramError::NoSuchId(prog_id))?;
    let shown = path.display().to_string();
    let data = std::fs::read(path).map_err(|cause| ProgramError::Read { path: path.into(), cause })?;
    let data = elf::normalize_object(&shown, &data)?;
    let classifiers: Vec<String> = elf::inspect(&shown, &data)?.into_iter().filter(|p| p.2).map(|p| p.0).collect();
    for function in &classifiers {
        if kernel_name(function) != running.name() {
            continue;
        }
        let spec = ProgSpec::File { path: path.into(), function: (classifiers.len() > 1).then(|| function.clone()) };
        if differs_from_file(prog_id, &spec, &[], maps_dir)?.is_none() {
            return Ok(Some(spec));
        }
    }
    Ok(None)
}

impl SettingKind {
    /// A setting's value as `--set` writes it.
    fn show(self, value: &[u8]) -> Option<String> {
        match self {
            Self::Count => Some(u32::from_ne_bytes(value.try_into().ok()?).to_string()),
            Self::Action => match value {
                [netkit_common::firewall::ACTION_ALLOW] => Some("allow".into()),
                [netkit_common::firewall::ACTION_DENY] => Some("deny".into()),
                _ => None,
            },
        }
    }

    /// The size of its global.
    fn size(self) -> usize {
        match self {
            Self::Count => 4,
            Self::Action => 1,
        }
    }
}

/// The tag this kernel gives the bundled object `b`, asked once per process.
fn bundled_tag(b: &'static Bundled) -> Result<[u8; 8], ProgramError> {
    static TAGS: Mutex<Option<HashMap<&'static str, [u8; 8]>>> = Mutex::new(None);
    if let Some(tag) = TAGS.lock().unwrap().as_ref().and_then(|t| t.get(b.name)) {
        return Ok(*tag);
    }
    let loaded = load(&ProgSpec::Bundled(b.name.into()), &LoadOptions::default())?;
    let tag = loaded.info.tag;
    TAGS.lock().unwrap().get_or_insert_with(HashMap::new).insert(b.name, tag);
    Ok(tag)
}

/// The read-only data of `b` loaded with `globals`, by map name as the
/// kernel keeps it (at most 15 bytes).
fn rodata(b: &Bundled, globals: &[(String, Vec<u8>)]) -> Result<HashMap<String, Vec<u8>>, ProgramError> {
    let load_err = |why: String| ProgramError::Load { function: b.function.into(), why };
    let mut obj = elf::parse_object(b.object()?).map_err(load_err)?;
    lean::patch(&mut obj, globals).map_err(load_err)?;
    Ok(obj
        .maps
        .iter()
        .filter(|(_, m)| m.section_kind() == EbpfSectionKind::Rodata)
        .map(|(name, m)| (kernel_name(name), m.data().to_vec()))
        .collect())
}

/// Where the global of setting `s` sits: its map, offset and size, found by
/// writing it twice with different bytes (the same code that sets it).
fn place_of(b: &Bundled, s: &bundled::Setting) -> Result<(String, usize, usize), ProgramError> {
    let len = s.kind.size();
    let a = rodata(b, &[(s.global.to_string(), vec![0x00; len])])?;
    let z = rodata(b, &[(s.global.to_string(), vec![0xff; len])])?;
    for (map, data) in &a {
        if let Some(other) = z.get(map)
            && let Some(offset) = data.iter().zip(other).position(|(x, y)| x != y)
        {
            return Ok((map.clone(), offset, len));
        }
    }
    Err(ProgramError::Load { function: b.function.into(), why: format!("no global {} in the object", s.global) })
}

/// The read-only maps of a running program, by name.
fn running_rodata(prog_id: u32) -> Result<HashMap<String, Vec<u8>>, ProgramError> {
    let maps = bpf::prog_maps(prog_id)
        .map_err(|cause| ProgramError::Kernel { what: format!("reading the maps of program {prog_id}"), cause })?;
    let mut out = HashMap::new();
    for (info, fd) in maps {
        if info.type_ != aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_ARRAY as u32
            || info.max_entries != 1
            || !info.name().contains(".rodata")
        {
            continue;
        }
        let mut value = vec![0u8; info.value_size as usize];
        if bpf::map_lookup(fd.as_fd(), &0u32.to_ne_bytes(), &mut value).is_ok() {
            out.insert(info.name(), value);
        }
    }
    Ok(out)
}

/// A map's name as the kernel keeps it.
fn kernel_name(name: &str) -> String {
    name.bytes().take(15).map(char::from).collect()
}
