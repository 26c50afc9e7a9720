//! Programs: the eBPF objects bundled into the binary (built from netkit-ebpf
//! by the build script), user ELF objects (aya- or clang-built), programs
//! already loaded (by id) or pinned, and loading any of them into the kernel
//! (`bundled` and `elf` hold the first two; loading is here).

mod bundled;
mod elf;

pub use bundled::BUNDLED;
pub(crate) use bundled::Bundled;
#[cfg(test)]
use bundled::STUB_BUILD;
pub use bundled::SettingKind;
use bundled::bundled_names;
pub use bundled::globals;
pub(crate) use elf::inspect;
pub(crate) use elf::normalize_object;
use elf::pick_function;

use std::{
    borrow::Cow,
    os::fd::{AsFd as _, OwnedFd},
    path::{Path, PathBuf},
    str::FromStr,
};

use aya::{Ebpf, EbpfLoader, include_bytes_aligned, programs::SchedClassifier};
use aya_obj::ProgramSection;

use crate::bpf::{self, ProgInfo};

/// Why a program could not be found, read, checked or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// This binary was built without the bundled programs.
    #[error(
        "this netkit binary was built with NETKIT_SKIP_EBPF=1 and carries no eBPF programs; rebuild it without that variable (cargo build -p netkit-cli)"
    )]
    StubBuild,
    /// No bundled program has that name (the name, then the bundled names).
    #[error("no bundled program named `{0}` (bundled: {1}); for your own object use file:PATH[:FUNCTION]")]
    Unknown(String, String),
    /// The text is no program spec (the text, then the bundled names).
    #[error("`{0}` is not a program: use a bundled name ({1}), file:PATH[:FUNCTION], id:N or pinned:PATH")]
    BadSpec(String, String),
    /// The object file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The path as given.
        path: PathBuf,
        /// What the system call answered.
        #[source]
        cause: std::io::Error,
    },
    /// The file is not a BPF ELF object.
    #[error("{path} is not a BPF ELF object: {why}")]
    NotBpf {
        /// The path as given.
        path: String,
        /// Why, in words.
        why: String,
    },
    /// The object has no program of that name.
    #[error("{path} holds no program `{function}`; its sched_cls programs are: {available}")]
    NoFunction {
        /// The path as given.
        path: String,
        /// The function (program) name.
        function: String,
        /// The sched_cls functions the object has, comma-separated.
        available: String,
    },
    /// The object has several classifiers and none was named.
    #[error("{path} holds several sched_cls programs ({available}); pick one with file:{path}:FUNCTION")]
    Ambiguous {
        /// The path as given.
        path: String,
        /// The sched_cls functions the object has, comma-separated.
        available: String,
    },
    /// The object has no classifier.
    #[error("{path} holds no sched_cls program (tc, tcx or netkit); it has: {available}")]
    NoClassifier {
        /// The path as given.
        path: String,
        /// The sched_cls functions the object has, comma-separated.
        available: String,
    },
    /// The named function is a program of another type.
    #[error(
        "`{function}` in {path} is a {kind} program; only sched_cls programs (SEC tcx/*, netkit/*, tc, classifier) attach to tcx and netkit hooks"
    )]
    WrongType {
        /// The path as given.
        path: String,
        /// The function (program) name.
        function: String,
        /// The type it has instead.
        kind: String,
    },
    /// A program already in the kernel is of another type than sched_cls.
    #[error("program {what} is a program of type {kind}; only sched_cls programs attach to tcx and netkit hooks")]
    WrongLoadedType {
        /// What was being done or opened.
        what: String,
        /// The type it has instead.
        kind: u32,
    },
    /// No loaded program has that id.
    #[error("no loaded program with id {0}")]
    NoSuchId(u32),
    /// The path is not a pinned program (the path, then why).
    #[error("{0} is not a pinned program: {1}")]
    NotPinnedProg(String, String),
    /// aya refused to load the program for a reason other than the verifier.
    #[error("loading `{function}` failed: {why}")]
    Load {
        /// The function (program) name.
        function: String,
        /// Why, in words.
        why: String,
    },
    /// The kernel's verifier refused the program; the end of its log says why.
    #[error(
        "the kernel's verifier refused `{function}` ({io_error}); the end of its log{}:\n{log_tail}",
        if *omitted > 0 { format!(" ({omitted} earlier lines left out)") } else { String::new() }
    )]
    Verifier {
        /// The function (program) name.
        function: String,
        /// The error the load call returned.
        io_error: std::io::Error,
        /// The last lines of the verifier log.
        log_tail: String,
        /// How many earlier log lines were left out.
        omitted: usize,
    },
    /// A `--set` value is wrong (the message says which and why).
    #[error("{0}")]
    Setting(String),
    /// Opening or reading a loaded program failed.
    #[error("{what}")]
    Kernel {
        /// What was being done, e.g. "opening program 42".
        what: String,
        /// What the bpf call answered.
        #[source]
        cause: bpf::SyscallError,
    },
}

/// Where a program comes from, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgSpec {
    /// A program bundled with this tool, by name.
    Bundled(String),
    /// A sched_cls program in an object file; the function may be left out when there is one.
    File {
        /// The path as given.
        path: PathBuf,
        /// The function (program) name.
        function: Option<String>,
    },
    /// A program already in the kernel, by id.
    Id(u32),
    /// A program pinned on a bpffs.
    Pinned(PathBuf),
}

impl FromStr for ProgSpec {
    type Err = ProgramError;

    fn from_str(s: &str) -> Result<Self, ProgramError> {
        if let Some(rest) = s.strip_prefix("file:") {
            if rest.is_empty() {
                return Err(ProgramError::BadSpec(s.into(), bundled_names()));
            }
            // PATH may itself contain ':'; an existing file wins.
            if Path::new(rest).is_file() {
                return Ok(Self::File { path: rest.into(), function: None });
            }
            return Ok(match rest.rsplit_once(':') {
                Some((path, func)) if !path.is_empty() && !func.is_empty() && !func.contains('/') => {
                    Self::File { path: path.into(), function: Some(func.into()) }
                }
                _ => Self::File { path: rest.into(), function: None },
            });
        }
        if let Some(id) = s.strip_prefix("id:") {
            return id.parse().map(Self::Id).map_err(|_| ProgramError::BadSpec(s.into(), bundled_names()));
        }
        if let Some(path) = s.strip_prefix("pinned:") {
            if path.is_empty() {
                return Err(ProgramError::BadSpec(s.into(), bundled_names()));
            }
            return Ok(Self::Pinned(path.into()));
        }
        if s.contains(':') || s.contains('/') || s.is_empty() {
            return Err(ProgramError::BadSpec(s.into(), bundled_names()));
        }
        Bundled::find(s)?;
        Ok(Self::Bundled(s.into()))
    }
}

impl std::fmt::Display for ProgSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bundled(n) => f.write_str(n),
            Self::File { path, function: Some(func) } => write!(f, "file:{}:{func}", path.display()),
            Self::File { path, function: None } => write!(f, "file:{}", path.display()),
            Self::Id(id) => write!(f, "id:{id}"),
            Self::Pinned(p) => write!(f, "pinned:{}", p.display()),
        }
    }
}

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
    /// The aya object it came from, when this process loaded it (its maps and
    /// log buffer live as long as this does, or as long as the program).
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

/// The kind of bpf object behind an fd (from /proc/self/fdinfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjKind {
    Prog,
    Link,
    Map,
    Other,
}

pub(crate) fn object_kind(fd: std::os::fd::BorrowedFd<'_>) -> ObjKind {
    use std::os::fd::AsRawFd as _;
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap_or_default();
    if text.contains("\nlink_type:") || text.starts_with("link_type:") {
        ObjKind::Link
    } else if text.contains("\nprog_type:") {
        ObjKind::Prog
    } else if text.contains("\nmap_type:") {
        ObjKind::Map
    } else {
        ObjKind::Other
    }
}

/// An object ready for aya: its bytes (sections renamed as needed) and the
/// function to load.
pub struct Prepared {
    pub(crate) object: Cow<'static, [u8]>,
    pub(crate) function: String,
    /// Whether CO-RE relocations may need the kernel's BTF. The bundled
    /// programs use none, and parsing /sys/kernel/btf/vmlinux is most of
    /// the cost of a load; user objects get it.
    pub(crate) kernel_btf: bool,
}

/// Everything about a spec that can be checked without the kernel: the
/// bundled name exists, the file is a BPF object holding that sched_cls
/// function. `None` for programs already in the kernel (id:, pinned:).
pub fn prepare(spec: &ProgSpec) -> Result<Option<Prepared>, ProgramError> {
    match spec {
        ProgSpec::Bundled(name) => {
            let b = Bundled::find(name)?;
            Ok(Some(Prepared {
                object: Cow::Borrowed(b.object()?),
                function: b.function.to_string(),
                kernel_btf: false,
            }))
        }
        ProgSpec::File { path, function } => {
            let shown = path.display().to_string();
            let data = std::fs::read(path).map_err(|cause| ProgramError::Read { path: path.clone(), cause })?;
            let data = normalize_object(&shown, &data)?.into_owned();
            let progs = inspect(&shown, &data)?;
            let function = pick_function(&shown, &progs, function.as_deref())?;
            Ok(Some(Prepared { object: Cow::Owned(data), function, kernel_btf: true }))
        }
        ProgSpec::Id(_) | ProgSpec::Pinned(_) => Ok(None),
    }
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

/// Loads the prepared sched_cls program with aya.
pub(crate) fn load_object(p: &Prepared, opts: &LoadOptions) -> Result<Loaded, ProgramError> {
    let (data, function) = (&p.object, p.function.as_str());
    let load_err = |why: String| ProgramError::Load { function: function.into(), why };
    let refused = |e: &(dyn std::error::Error + 'static)| match verifier_refusal(e) {
        Some((io_error, log)) => {
            let lines: Vec<&str> = log.lines().collect();
            let keep = lines.len().min(VERIFIER_TAIL_LINES);
            ProgramError::Verifier {
                function: function.into(),
                io_error,
                log_tail: lines[lines.len() - keep..].join("\n"),
                omitted: lines.len() - keep,
            }
        }
        None => load_err(error_chain(e)),
    };
    let mut loader = EbpfLoader::new();
    if !p.kernel_btf {
        loader.btf(None);
    }
    for (name, value) in &opts.globals {
        loader.override_global(name.as_str(), value.as_slice(), true);
    }
    // Only user objects may declare pinned maps (the bundled ones do not):
    // those pins go to this tool's layout, whose directory must exist.
    if p.kernel_btf
        && let Some(dir) = &opts.map_pin_dir
        && dir.parent().and_then(Path::parent).is_some_and(crate::os::probe::is_bpffs)
    {
        let _ = std::fs::create_dir_all(dir);
        loader.default_map_pin_directory(dir);
    }
    let mut ebpf = loader.load(data).map_err(|e| refused(&e))?;
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

/// An error with its sources, on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += &format!(": {c}");
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_is_refused_never_loaded() {
        let b = Bundled { name: "x", function: "x", summary: "", hooks: "", settings: &[], object: &[] };
        assert!(matches!(b.object(), Err(ProgramError::StubBuild)));
    }

    #[test]
    fn bundled_objects_are_bpf_elf_files_with_their_program() {
        if STUB_BUILD {
            return;
        }
        for b in BUNDLED {
            let obj = b.object().unwrap();
            let progs = inspect(b.name, &normalize_object(b.name, obj).unwrap()).unwrap();
            assert!(progs.iter().any(|p| p.0 == b.function && p.2), "{}: {progs:?}", b.name);
        }
    }

    #[test]
    fn specs_parse_and_bad_ones_say_what_is_allowed() {
        assert_eq!("pass".parse::<ProgSpec>().unwrap(), ProgSpec::Bundled("pass".into()));
        assert_eq!("id:42".parse::<ProgSpec>().unwrap(), ProgSpec::Id(42));
        assert_eq!("pinned:/sys/fs/bpf/p".parse::<ProgSpec>().unwrap(), ProgSpec::Pinned("/sys/fs/bpf/p".into()));
        assert_eq!(
            "file:/nonexistent/x.o:f".parse::<ProgSpec>().unwrap(),
            ProgSpec::File { path: "/nonexistent/x.o".into(), function: Some("f".into()) }
        );
        assert_eq!(
            "file:/nonexistent/x.o".parse::<ProgSpec>().unwrap(),
            ProgSpec::File { path: "/nonexistent/x.o".into(), function: None }
        );
        for bad in ["id:x", "id:", "file:", "pinned:", "nope", "a/b", ""] {
            let e = bad.parse::<ProgSpec>().unwrap_err().to_string();
            assert!(e.contains("pass"), "{bad}: {e}");
        }
    }

    #[test]
    fn settings_are_checked_before_loading() {
        let fw = ProgSpec::Bundled("firewall".into());
        assert_eq!(globals(&fw, &["default=deny".into()]).unwrap(), vec![("DEFAULT_ACTION".into(), vec![2u8])]);
        assert!(globals(&fw, &["default=maybe".into()]).unwrap_err().to_string().contains("allow or deny"));
        assert!(globals(&fw, &["sample=3".into()]).unwrap_err().to_string().contains("knows default"));
        let log = ProgSpec::Bundled("log".into());
        assert_eq!(globals(&log, &["sample=100".into()]).unwrap()[0].1, 100u32.to_ne_bytes().to_vec());
        assert!(globals(&log, &["sample=0".into()]).is_err());
        assert!(
            globals(&ProgSpec::Bundled("pass".into()), &["x=1".into()])
                .unwrap_err()
                .to_string()
                .contains("no settings")
        );
        let file = ProgSpec::File { path: "/x.o".into(), function: None };
        assert_eq!(
            globals(&file, &["LIMIT:u16=7".into()]).unwrap(),
            vec![("LIMIT".into(), 7u16.to_ne_bytes().to_vec())]
        );
        assert!(globals(&file, &["LIMIT:u8=300".into()]).is_err());
        assert!(globals(&ProgSpec::Id(3), &["a=1".into()]).is_err());
        assert!(globals(&file, &["novalue".into()]).unwrap_err().to_string().contains("KEY=VALUE"));
    }

    #[test]
    fn non_bpf_files_are_refused() {
        let e = normalize_object("x", b"hello world, not an elf").unwrap_err().to_string();
        assert!(e.contains("not a BPF ELF object"), "{e}");
        let me = std::fs::read("/proc/self/exe").unwrap();
        let e = normalize_object("exe", &me).unwrap_err().to_string();
        assert!(e.contains("BPF target"), "{e}");
    }

    #[test]
    fn picking_functions() {
        let progs = vec![
            ("a".to_string(), "sched_cls".to_string(), true),
            ("b".to_string(), "sched_cls".to_string(), true),
            ("x".to_string(), "xdp".to_string(), false),
        ];
        assert_eq!(pick_function("o", &progs, Some("a")).unwrap(), "a");
        assert!(pick_function("o", &progs, None).unwrap_err().to_string().contains("a, b"));
        let e = pick_function("o", &progs, Some("x")).unwrap_err().to_string();
        assert!(e.contains("xdp program"), "{e}");
        let e = pick_function("o", &progs, Some("zz")).unwrap_err().to_string();
        assert!(e.contains("holds no program `zz`") && e.contains("a, b"), "{e}");
        let only_xdp = vec![("x".to_string(), "xdp".to_string(), false)];
        assert!(pick_function("o", &only_xdp, None).unwrap_err().to_string().contains("no sched_cls"));
    }
}
