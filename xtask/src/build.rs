//! Builds what goes into a VM: the static (musl) `netkit` binary and, for the
//! test suite, the integration test binaries.

use std::{path::PathBuf, process::Stdio};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::util::cargo;

pub const MUSL: &str = "x86_64-unknown-linux-musl";

/// Static binaries for the guest.
#[derive(Debug, Clone)]
pub struct GuestBinaries {
    pub netkit: PathBuf,
    /// (test target name, executable)
    pub tests: Vec<(String, PathBuf)>,
    /// (example name, executable): the library driven without the CLI.
    pub examples: Vec<(String, PathBuf)>,
    /// BPF objects built from C (tests/c), for the tests that load them.
    pub c_objects: Vec<PathBuf>,
    /// A full iproute2 `ip`, the tests' witness of device facts.
    pub ip: Option<PathBuf>,
    /// The CNI plugin, the reference plugins and the libcni runtime.
    pub cni: Option<CniParts>,
    /// Debian's promtool, which checks the metrics tests' output.
    pub promtool: Option<PathBuf>,
}

/// What the CNI tests need in the guest.
#[derive(Debug, Clone)]
pub struct CniParts {
    /// `netkit-cni`, static.
    pub plugin: PathBuf,
    /// The reference plugins' directory.
    pub reference: PathBuf,
    /// The libcni runtime, static.
    pub runtime: PathBuf,
    /// Debian 12's host-local (CNI up to 1.0.0).
    pub bookworm_host_local: PathBuf,
}

/// Where the C test programs are built.
pub fn c_objects_dir() -> PathBuf {
    crate::util::target_dir().join("bpf-c")
}

/// Builds every netkit-cli/tests/c/*.c with Debian's clang for the BPF target.
pub fn c_objects() -> Result<Vec<PathBuf>> {
    let src = crate::util::workspace_root().join("netkit-cli/tests/c");
    let out = c_objects_dir();
    std::fs::create_dir_all(&out)?;
    let mut built = Vec::new();
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&src)
        .with_context(|| format!("reading {}", src.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort();
    for c in sources {
        let obj = out.join(c.with_extension("o").file_name().expect("a file name"));
        let fresh = obj.metadata().and_then(|o| o.modified()).ok() > c.metadata().and_then(|s| s.modified()).ok();
        if !fresh {
            crate::util::run(
                std::process::Command::new(CLANG)
                    .args(["-O2", "-g", "-Wall", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c"])
                    .arg(&c)
                    .arg("-o")
                    .arg(&obj),
            )
            .with_context(|| format!("building {} with {CLANG} (package clang-22)", c.display()))?;
        }
        built.push(obj);
    }
    Ok(built)
}

/// Debian's clang, which builds the C test and benchmark programs.
pub const CLANG: &str = "clang-22";

/// Builds `netkit` for musl and, with `tests`, every integration test and
/// test of netkit-cli and example of netkit (not run; their paths are collected from cargo's
/// JSON messages) and the C test objects.
pub fn guest_binaries(tests: bool) -> Result<GuestBinaries> {
    println!("build: netkit and netkit-cni for {MUSL}");
    crate::util::run(cargo().args([
        "build",
        "-p",
        "netkit-cli",
        "--bin",
        "netkit",
        "--bin",
        "netkit-cni",
        "--target",
        MUSL,
    ]))?;
    let netkit = crate::util::target_dir().join(MUSL).join("debug/netkit");
    if !netkit.is_file() {
        bail!("cargo built no {}", netkit.display());
    }
    if !tests {
        return Ok(GuestBinaries {
            netkit,
            tests: Vec::new(),
            examples: Vec::new(),
            c_objects: Vec::new(),
            ip: None,
            cni: None,
            promtool: None,
        });
    }
    println!("build: integration tests and examples for {MUSL}");
    let found = artifacts(&["test", "-p", "netkit-cli", "--tests", "--no-run"], "test")?;
    let examples = artifacts(&["build", "-p", "netkit", "--examples"], "example")?;
    let cni = CniParts {
        plugin: netkit.with_file_name("netkit-cni"),
        reference: crate::cni::plugins()?,
        runtime: crate::cni::runtime()?,
        bookworm_host_local: crate::cni::bookworm_host_local()?,
    };
    Ok(GuestBinaries {
        netkit,
        tests: found,
        examples,
        c_objects: c_objects()?,
        ip: Some(crate::iproute2::ip()?),
        cni: Some(cni),
        promtool: Some(crate::cni::promtool()?),
    })
}

/// Runs `cargo ARGS` for the musl target and returns the (name, executable)
/// of every artifact of target kind `kind` it built.
fn artifacts(args: &[&str], kind: &str) -> Result<Vec<(String, PathBuf)>> {
    let out = cargo()
        .args(args)
        .args(["--message-format=json", "--target", MUSL])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("cargo {} for {MUSL} failed", args.join(" "));
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let kinds = msg["target"]["kind"].as_array().cloned().unwrap_or_default();
        if !kinds.iter().any(|k| k == kind) {
            continue;
        }
        let name = msg["target"]["name"].as_str().ok_or_else(|| anyhow!("{kind} artifact without a name"))?;
        let Some(exe) = msg["executable"].as_str() else { continue };
        found.push((name.to_string(), PathBuf::from(exe)));
    }
    found.sort();
    Ok(found)
}
