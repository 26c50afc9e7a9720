//! Loading: a spec prepared without the kernel (checked, object bytes and
//! function picked), then loaded (by `lean` when the object needs no kernel
//! BTF, else by aya) or opened by id or pin; verifier
//! refusals come back with the end of the log.

use super::*;

/// How to prepare a program before it loads.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Read-only globals to set (name, little-endian bytes of the value).
    pub globals: Vec<(String, Vec<u8>)>,
    /// Where maps the object declares as pinned (by name) are pinned.
    pub map_pin_dir: Option<PathBuf>,
}

/// A program in the kernel, ready to attach.
pub struct Loaded {
    /// Our own fd for the program.
    pub fd: OwnedFd,
    /// The kernel's information about the program.
    pub info: ProgInfo,
    /// The aya object it came from, when aya loaded it in this process (an
    /// object with CO-RE relocations, pinned maps or other map kinds); its
    /// maps and log buffer live as long as this does, or as long as the
    /// program. `None` for objects loaded without aya (every bundled one),
    /// whose maps live as long as the program.
    pub ebpf: Option<Ebpf>,
}

impl Loaded {
    /// The program's id.
    pub fn id(&self) -> u32 {
        self.info.id
    }

    /// "program 42 (pass)", for messages.
    pub(crate) fn describe(&self) -> String {
        format!("program {} ({})", self.info.id, self.info.name())
    }
}

/// The kind of bpf object behind an fd (from the name of its anonymous
/// inode: one readlink of /proc/self/fd/N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjKind {
    Prog,
    Link,
    Map,
    Other,
}

pub(crate) fn object_kind(fd: std::os::fd::BorrowedFd<'_>) -> ObjKind {
    use std::os::fd::AsRawFd as _;
    let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default();
    // The kernel names them "bpf_link", "bpf-prog" and "bpf-map".
    match target.to_str().and_then(|t| t.strip_prefix("anon_inode:")) {
        Some("bpf_link" | "bpf-link") => ObjKind::Link,
        Some("bpf-prog" | "bpf_prog") => ObjKind::Prog,
        Some("bpf-map" | "bpf_map") => ObjKind::Map,
        _ => ObjKind::Other,
    }
}

/// An object ready for aya: its bytes (sections renamed as needed) and the
/// function to load.
pub struct Prepared {
    pub(crate) object: Cow<'static, [u8]>,
    pub(crate) function: String,
}

/// Everything about a spec that can be checked without the kernel: the
/// bundled name exists, the file is a BPF object holding that sched_cls
/// function. `None` for programs already in the kernel (id:, pinned:).
pub fn prepare(spec: &ProgSpec) -> Result<Option<Prepared>, ProgramError> {
    match spec {
        ProgSpec::Bundled(name) => {
            let b = Bundled::find(name)?;
            Ok(Some(Prepared { object: Cow::Borrowed(b.object()?), function: b.function.to_string() }))
        }
        ProgSpec::File { path, function } => {
            let shown = path.display().to_string();
            let data = std::fs::read(path).map_err(|cause| ProgramError::Read { path: path.clone(), cause })?;
            let data = normalize_object(&shown, &data)?.into_owned();
            let progs = inspect(&shown, &data)?;
            let function = pick_function(&shown, &progs, function.as_deref())?;
            Ok(Some(Prepared { object: Cow::Owned(data), function }))
        }
        ProgSpec::Id(_) | ProgSpec::Pinned(_) => Ok(None),
    }
}

/// Helpers the kernel honours only when the program runs at tc ingress
/// (`skb_do_redirect` drops a peer redirect anywhere else, netkit's
/// transmit path and tcx egress included).
const INGRESS_ONLY: &[(u32, &str)] =
    &[(aya_obj::generated::bpf_func_id::BPF_FUNC_redirect_peer as u32, "bpf_redirect_peer")];

/// Refuses `spec` for a hook that is not tc ingress when its code calls a
/// helper that works only there. The code read is the program's function
/// and the object's subprograms (a call through one counts). Programs
/// already in the kernel (`id:`, `pinned:`) are not read: their
/// instructions as the kernel keeps them no longer name helpers.
pub fn check_hook(spec: &ProgSpec, hook: crate::mprog::Hook) -> Result<(), ProgramError> {
    if hook == crate::mprog::Hook::Ingress {
        return Ok(());
    }
    let Some(p) = prepare(spec)? else { return Ok(()) };
    let obj =
        super::elf::parse_object(&p.object).map_err(|why| ProgramError::Load { function: p.function.clone(), why })?;
    let Some(program) = obj.programs.get(&p.function) else { return Ok(()) };
    let entries: std::collections::HashSet<(usize, u64)> = obj.programs.values().map(|p| p.function_key()).collect();
    let code = obj
        .functions
        .iter()
        .filter(|(key, _)| **key == program.function_key() || !entries.contains(*key))
        .flat_map(|(_, f)| f.instructions.iter());
    // A helper call: BPF_JMP | BPF_CALL with src_reg 0 and the helper's number.
    const CALL: u8 = 0x85;
    for insn in code {
        if insn.code == CALL
            && insn.src_reg() == 0
            && let Some((_, helper)) = INGRESS_ONLY.iter().find(|(id, _)| insn.imm as u32 == *id)
        {
            return Err(ProgramError::IngressOnly { program: spec.to_string(), helper, hook: hook.to_string() });
        }
    }
    Ok(())
}

fn check_type(fd: OwnedFd, what: String) -> Result<Loaded, ProgramError> {
    let (info, _) = bpf::prog_info(fd.as_fd())
        .map_err(|cause| ProgramError::Kernel { what: format!("reading program {what}"), cause })?;
    if info.type_ != bpf::BPF_PROG_TYPE_SCHED_CLS {
        return Err(ProgramError::WrongLoadedType { what, kind: info.type_ });
    }
    Ok(Loaded { fd, info, ebpf: None })
}

/// Loads (or opens) the program `spec` names. Bundled names and files load
/// a fresh instance every time.
pub fn load(spec: &ProgSpec, opts: &LoadOptions) -> Result<Loaded, ProgramError> {
    match spec {
        ProgSpec::Id(id) => {
            let fd = bpf::prog_fd_by_id(*id).map_err(|e| match e.errno() {
                Some(libc::ENOENT) => ProgramError::NoSuchId(*id),
                _ => ProgramError::Kernel { what: format!("opening program {id}"), cause: e },
            })?;
            check_type(fd, format!("id:{id}"))
        }
        ProgSpec::Pinned(path) => {
            let fd = bpf::obj_get(path)
                .map_err(|e| ProgramError::NotPinnedProg(path.display().to_string(), e.io_error.to_string()))?;
            if object_kind(fd.as_fd()) != ObjKind::Prog {
                return Err(ProgramError::NotPinnedProg(
                    path.display().to_string(),
                    "it is pinned, but not a program".into(),
                ));
            }
            check_type(fd, format!("pinned:{}", path.display()))
        }
        ProgSpec::Bundled(_) | ProgSpec::File { .. } => {
            let p = prepare(spec)?.expect("bundled and file specs prepare an object");
            load_object(&p, opts)
        }
    }
}

/// Loads the prepared sched_cls program: here when the object needs no
/// kernel BTF (the bundled ones never do), else with aya.
pub(crate) fn load_object(p: &Prepared, opts: &LoadOptions) -> Result<Loaded, ProgramError> {
    let (data, function) = (&p.object, p.function.as_str());
    let load_err = |why: String| ProgramError::Load { function: function.into(), why };
    let obj = elf::parse_object(data).map_err(load_err)?;
    if lean::needs_aya(&obj).is_none() {
        return lean::load(obj, function, &opts.globals);
    }
    let refused = |e: &(dyn std::error::Error + 'static)| match verifier_refusal(e) {
        Some((io_error, log)) => verifier_error(function, io_error, &log),
        None => load_err(error_chain(e)),
    };
    // aya reads the kernel's BTF here, for CO-RE relocations.
    let mut loader = EbpfLoader::new();
    for (name, value) in &opts.globals {
        loader.override_global(name.as_str(), value.as_slice(), true);
    }
    // Pins of maps the object declares pinned go to this tool's layout,
    // whose directory must exist.
    if let Some(dir) = &opts.map_pin_dir
        && dir.parent().and_then(Path::parent).is_some_and(crate::os::probe::is_bpffs)
    {
        let _ = std::fs::create_dir_all(dir);
        loader.default_map_pin_directory(dir);
    }
    let mut ebpf = elf::guarded_aya(|| loader.load(data)).map_err(load_err)?.map_err(|e| refused(&e))?;
    let prog: &mut SchedClassifier = ebpf
        .program_mut(function)
        .ok_or_else(|| load_err("not in the object".into()))?
        .try_into()
        .map_err(|e| load_err(error_chain(&e)))?;
    prog.load().map_err(|e| refused(&e))?;
    let fd = prog
        .fd()
        .map_err(|e| load_err(error_chain(&e)))?
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| load_err(e.to_string()))?;
    let (info, _) = bpf::prog_info(fd.as_fd()).map_err(|e| load_err(e.to_string()))?;
    Ok(Loaded { fd, info, ebpf: Some(ebpf) })
}

/// The refusal of `function` by the verifier, with the end of its log.
pub(super) fn verifier_error(function: &str, io_error: std::io::Error, log: &str) -> ProgramError {
    let lines: Vec<&str> = log.lines().collect();
    let keep = lines.len().min(VERIFIER_TAIL_LINES);
    ProgramError::Verifier {
        function: function.into(),
        io_error,
        log_tail: lines[lines.len() - keep..].join("\n"),
        omitted: lines.len() - keep,
    }
}

/// How many lines of a verifier log a refusal shows: the verifier states
/// its reason at the end.
const VERIFIER_TAIL_LINES: usize = 30;

/// The errno and verifier log of a program load the kernel refused, found in
/// aya's typed error anywhere in the chain.
fn verifier_refusal(e: &(dyn std::error::Error + 'static)) -> Option<(std::io::Error, String)> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(aya::programs::ProgramError::LoadError { io_error, verifier_log }) = err.downcast_ref() {
            let errno =
                io_error.raw_os_error().map_or_else(|| io_error.kind().into(), std::io::Error::from_raw_os_error);
            return Some((errno, verifier_log.to_string()));
        }
        cur = err.source();
    }
    None
}
