//! Programs: the eBPF objects bundled into the binary (built from netkit-ebpf
//! by the build script), user ELF objects (aya- or clang-built), programs
//! already loaded (by id) or pinned, and loading any of them into the kernel
//! (`bundled` and `elf` hold the first two, `load` the loading).

mod bundled;
pub(crate) mod elf;
mod identity;
pub(crate) mod lean;
mod load;

use crate::os::errno::error_chain;
pub use bundled::BUNDLED;
pub(crate) use bundled::Bundled;
#[cfg(test)]
use bundled::STUB_BUILD;
pub use bundled::SettingKind;
use bundled::bundled_names;
pub use bundled::globals;
pub(crate) use elf::inspect;
pub(crate) use elf::normalize_object;
pub(crate) use elf::pick_function;
pub(crate) use identity::differs;
pub use identity::{Identity, file_match, identify};
#[doc(hidden)]
pub use lean::{Image, image};
use load::verifier_error;
pub use load::{LoadOptions, Loaded, Prepared, check_hook, load, prepare};
pub(crate) use load::{ObjKind, object_kind};

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
#[non_exhaustive]
pub enum ProgramError {
    /// This build of the library carries no bundled programs.
    #[error(
        "this build of netkit carries no bundled eBPF programs (built without the `bundled` feature or with NETKIT_SKIP_EBPF=1): rebuild with the feature and without that variable, or name your own object with file:PATH[:FUNCTION]"
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
    /// The program calls a helper the kernel honours only at tc ingress,
    /// and the hook is another: every packet it redirects would be dropped.
    #[error(
        "{program} calls {helper}, which the kernel honours only at tc ingress: on the {hook} hook every packet it redirects is dropped; attach it on the tcx ingress of the device the packets arrive on (the uplink, or a host-side device)"
    )]
    IngressOnly {
        /// The program as given.
        program: String,
        /// The helper's name.
        helper: &'static str,
        /// The hook it was meant for.
        hook: String,
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
