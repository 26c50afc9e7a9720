//! `cargo xtask test`: every check and test, one summary line per stage and
//! per kernel, then `N passed, N failed[, N skipped]` (stages, a skipped stage
//! never counts as passed). Non-zero exit when anything failed.

use std::{
    fs,
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{
    build, kernels,
    kernels::{KernelSpec, MATRIX},
    setup, util,
    util::cargo,
    vm::Guest,
};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Only these kernels in the VM stage (repeatable); default: 6.12, 6.18, latest.
    #[arg(long)]
    pub kernel: Vec<KernelSpec>,
    /// Skip the VM stage.
    #[arg(long)]
    pub no_vm: bool,
    /// Resolve kernel series again against Debian's archive.
    #[arg(long)]
    pub refresh: bool,
    /// Seconds one VM run may take before it counts as hung.
    #[arg(long, default_value_t = 1500)]
    pub vm_timeout: u64,
}

enum Verdict {
    Passed,
    Failed,
    Skipped,
}

/// Seconds per fuzz target in the test suite's short pass.
const FUZZ_SMOKE_SECONDS: u64 = 5;

struct Stage {
    name: String,
    verdict: Verdict,
    detail: String,
    took: Duration,
}

/// Counts read from libtest's `test result:` lines and our SKIP lines.
#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
    skipped: u64,
}

impl Counts {
    fn read_line(&mut self, line: &str) {
        if let Some(rest) = line.trim().strip_prefix("test result: ") {
            for part in rest.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(what), Some(n)) = (words.next(), words.next()) else { continue };
                let Ok(n) = n.parse::<u64>() else { continue };
                match what {
                    "passed" => self.passed += n,
                    "failed" => self.failed += n,
                    "ignored" => self.ignored += n,
                    _ => {}
                }
            }
        }
        if line.contains("SKIP: ") {
            self.skipped += 1;
        }
    }

    fn describe(&self) -> String {
        let mut s = format!("{} tests passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            s += &format!(", {} skipped for this kernel", self.skipped);
        }
        s
    }
}

/// Runs `cmd`, streaming its output, and counts libtest results.
fn run_counting(cmd: &mut Command) -> (bool, Counts) {
    use std::io::{BufRead as _, BufReader};
    let mut counts = Counts::default();
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn();
    let Ok(mut child) = child else {
        eprintln!("cannot start {cmd:?}");
        return (false, counts);
    };
    let stderr = child.stderr.take().expect("piped");
    let err_thread = std::thread::spawn(move || {
        let mut c = Counts::default();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            c.read_line(&line);
        }
        c
    });
    for line in BufReader::new(child.stdout.take().expect("piped")).lines().map_while(Result::ok) {
        println!("{line}");
        counts.read_line(&line);
    }
    let ok = child.wait().is_ok_and(|s| s.success());
    if let Ok(c) = err_thread.join() {
        counts.skipped += c.skipped;
    }
    (ok, counts)
}

fn stage(stages: &mut Vec<Stage>, name: &str, f: impl FnOnce() -> (Verdict, String)) {
    println!("\n=== stage: {name}");
    let start = Instant::now();
    let (verdict, detail) = f();
    let took = start.elapsed();
    let word = match verdict {
        Verdict::Passed => "passed",
        Verdict::Failed => "FAILED",
        Verdict::Skipped => "skipped",
    };
    println!("=== stage: {name}: {word}{}", if detail.is_empty() { String::new() } else { format!(" ({detail})") });
    stages.push(Stage { name: name.into(), verdict, detail, took });
}

fn simple(cmd: &mut Command) -> (Verdict, String) {
    match util::run(cmd) {
        Ok(()) => (Verdict::Passed, String::new()),
        Err(e) => (Verdict::Failed, format!("{e:#}")),
    }
}

fn counted(cmd: &mut Command) -> (Verdict, String) {
    let (ok, counts) = run_counting(cmd);
    let verdict = if ok && counts.failed == 0 { Verdict::Passed } else { Verdict::Failed };
    (verdict, counts.describe())
}

/// Every host crate of the workspace, the fuzz checks included (not a
/// default member: they turn on the library's `fuzzing` feature).
const ALL: &[&str] = &["--workspace", "--exclude", "netkit-ebpf"];

/// Crates a program depending on the library must not pull in: the
/// command line's, the metrics server's, the binaries' allocator.
const NOT_IN_LIBRARY: &[&str] =
    &["clap", "clap_complete", "clap_mangen", "hyper", "hyper-util", "mimalloc", "signal-hook"];

/// The library without its default feature builds, with its example, and
/// needs no BPF toolchain; its dependency tree holds none of the binaries'
/// crates.
fn library_alone() -> (Verdict, String) {
    let bare = ["-p", "netkit", "--no-default-features"];
    let lint = util::run(cargo().args(["clippy", "--all-targets"]).args(bare).args(["--", "-D", "warnings"]));
    let build = || -> Result<()> {
        let path = toolchain_without_bpf_linker()?;
        util::run(cargo().env("PATH", path).env("RUSTUP_TOOLCHAIN", "stable").arg("build").args(bare).arg("--examples"))
    };
    if let Err(e) = lint.and_then(|()| build()) {
        return (Verdict::Failed, format!("{e:#}"));
    }
    let tree = |features: &[&str]| -> Result<Vec<String>> {
        let out = cargo()
            .args(["tree", "-p", "netkit", "-e", "normal,build", "--prefix", "none", "--format", "{p}"])
            .args(features)
            .output()?;
        anyhow::ensure!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.lines().filter_map(|l| l.split(' ').next()).map(String::from).collect())
    };
    let (full, bare) = match (tree(&[]), tree(&["--no-default-features"])) {
        (Ok(f), Ok(b)) => (f, b),
        (Err(e), _) | (_, Err(e)) => return (Verdict::Failed, format!("{e:#}")),
    };
    let mut wrong: Vec<String> = full
        .iter()
        .filter(|n| NOT_IN_LIBRARY.contains(&n.as_str()))
        .map(|n| format!("{n} in the library's tree"))
        .collect();
    wrong.extend(
        bare.iter()
            .filter(|n| ["aya-build", "netkit-ebpf"].contains(&n.as_str()))
            .map(|n| format!("{n} without the bundled feature")),
    );
    wrong.sort();
    wrong.dedup();
    if wrong.is_empty() {
        (Verdict::Passed, format!("{} crates with bundled programs, {} without", unique(&full), unique(&bare)))
    } else {
        (Verdict::Failed, wrong.join(", "))
    }
}

/// A PATH with the stable toolchain's cargo and rustc and the system's
/// tools (the C linker), but not the directory bpf-linker is installed in:
/// the library without its default feature must build there.
fn toolchain_without_bpf_linker() -> Result<std::ffi::OsString> {
    let dir = util::target_dir().join("no-bpf-linker");
    fs::create_dir_all(&dir)?;
    for tool in ["cargo", "rustc", "rustup"] {
        let Some(found) = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
        else {
            anyhow::bail!("{tool} is not on PATH");
        };
        let link = dir.join(tool);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&found, &link)?;
    }
    let mut dirs = vec![dir];
    dirs.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(std::path::PathBuf::from));
    anyhow::ensure!(!dirs.iter().any(|d| d.join("bpf-linker").exists()), "bpf-linker is in a system directory");
    Ok(std::env::join_paths(dirs)?)
}

fn unique(names: &[String]) -> usize {
    names.iter().collect::<std::collections::BTreeSet<_>>().len()
}

/// Integration test targets that need a kernel with netkit run only in the VM.
fn host_test_targets() -> Vec<String> {
    let dir = util::workspace_root().join("netkit-cli/tests");
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".rs")?.to_string();
            (!stem.starts_with("netkit_")).then_some(stem)
        })
        .collect();
    names.sort();
    names
}

/// A CNI_PATH for the host suite (the netkit-cni just built, beside the
/// reference plugins) and the libcni runtime.
fn host_cni() -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let plugins = crate::cni::plugins()?;
    let runtime = crate::cni::runtime()?;
    let dir = util::target_dir().join("cni-host");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    std::os::unix::fs::symlink(util::target_dir().join("debug/netkit-cni"), dir.join("netkit-cni"))?;
    for plugin in ["host-local", "tuning"] {
        std::os::unix::fs::symlink(plugins.join(plugin), dir.join(plugin))?;
    }
    Ok((dir, runtime))
}

/// Why the host integration stage cannot run here, if it cannot.
fn host_skip_reason() -> Option<String> {
    if !util::is_root() {
        return Some("not root: the host tests create network namespaces and attach programs".into());
    }
    let netkit = util::target_dir().join("debug/netkit");
    let probe = util::output(Command::new(&netkit).args(["probe", "--json"]))
        .or_else(|_| {
            // probe exits non-zero when netkit is missing; read its JSON anyway.
            Command::new(&netkit)
                .args(["probe", "--json"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .map_err(anyhow::Error::from)
        })
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&probe).unwrap_or_default();
    if json["tcx"]["state"] != "supported" {
        return Some(format!("this kernel has no tcx ({})", json["tcx"]));
    }
    None
}

const GUEST_SUITE: &str = r#"
failed=0
for t in /guest/tests/*; do
    echo "=== test binary: $(basename "$t")"
    "$t" --test-threads=1 || failed=1
done
for e in /guest/examples/*; do
    [ -x "$e" ] || continue
    echo "=== example: $(basename "$e")"
    "$e" || { echo "example $(basename "$e") FAILED"; failed=1; }
done
exit $failed
"#;

pub fn run(opts: &Options) -> Result<ExitCode> {
    setup::run(&setup::Options::default())?;
    let mut stages = Vec::new();

    stage(&mut stages, "fmt", || simple(cargo().args(["fmt", "--all", "--", "--check"])));
    stage(&mut stages, "clippy", || {
        simple(cargo().args(["clippy", "--all-targets"]).args(ALL).args(["--", "-D", "warnings"]))
    });
    stage(&mut stages, "doc", || {
        // Broken intra-doc links and bad HTML in rustdoc fail the build.
        simple(cargo().env("RUSTDOCFLAGS", "-D warnings").args(["doc", "--no-deps"]).args(ALL))
    });
    stage(&mut stages, "library alone", library_alone);
    stage(&mut stages, "unit tests", || counted(cargo().args(["test", "--lib", "--bins"]).args(ALL)));
    // A short pass of every fuzz target from its seeds and the corpus so far:
    // a parser that now panics on an input it once took shows up here.
    stage(&mut stages, "fuzz smoke", || match crate::fuzz::fuzz(crate::fuzz::TARGETS, FUZZ_SMOKE_SECONDS) {
        Err(e) => (Verdict::Failed, format!("{e:#}")),
        Ok(outcomes) => {
            let failed: Vec<&str> =
                outcomes.iter().filter(|o| o.failure.is_some()).map(|o| o.target.as_str()).collect();
            let runs: u64 = outcomes.iter().map(|o| o.runs).sum();
            let detail = format!("{} targets, {FUZZ_SMOKE_SECONDS} s each, {runs} runs", outcomes.len());
            if failed.is_empty() {
                (Verdict::Passed, detail)
            } else {
                (Verdict::Failed, format!("{detail}; failed: {} (target/fuzz/artifacts)", failed.join(", ")))
            }
        }
    });

    // The host suite needs the real binary built first (it is what it drives).
    stage(&mut stages, "host integration (tcx)", || {
        if let Err(e) = util::run(cargo().args(["build", "-p", "netkit-cli"])) {
            return (Verdict::Failed, format!("{e:#}"));
        }
        if let Some(why) = host_skip_reason() {
            return (Verdict::Skipped, why);
        }
        if let Err(e) = build::c_objects() {
            return (Verdict::Failed, format!("building the C test programs: {e:#}"));
        }
        let mut cmd = cargo();
        cmd.env("NETKIT_TEST_C_DIR", build::c_objects_dir());
        match crate::cni::promtool() {
            Ok(p) => cmd.env("NETKIT_TEST_PROMTOOL", p),
            Err(e) => return (Verdict::Failed, format!("fetching promtool: {e:#}")),
        };
        // The CNI suite for veth pairs runs natively (this kernel has veth).
        match host_cni() {
            Ok((path, runtime)) => cmd.env("NETKIT_TEST_CNI_PATH", path).env("NETKIT_TEST_CNI_RUNTIME", runtime),
            Err(e) => return (Verdict::Failed, format!("setting up the CNI plugins: {e:#}")),
        };
        // --no-fail-fast: a failing test binary must not hide the others' results.
        cmd.args(["test", "-p", "netkit-cli", "--no-fail-fast"]);
        for t in host_test_targets() {
            cmd.args(["--test", &t]);
        }
        cmd.args(["--", "--test-threads=1"]);
        counted(&mut cmd)
    });

    if opts.no_vm {
        stages.push(Stage {
            name: "vm".into(),
            verdict: Verdict::Skipped,
            detail: "--no-vm".into(),
            took: Duration::ZERO,
        });
    } else {
        let specs: Vec<KernelSpec> = if opts.kernel.is_empty() {
            MATRIX.iter().map(|s| s.parse().expect("valid matrix entry")).collect()
        } else {
            opts.kernel.clone()
        };
        let bins = build::guest_binaries(true);
        for spec in specs {
            let name = format!("vm {spec}");
            stage(&mut stages, &name, || {
                let bins = match &bins {
                    Ok(b) => b,
                    Err(e) => return (Verdict::Failed, format!("building the guest binaries failed: {e:#}")),
                };
                let kernel = match kernels::resolve(&spec, opts.refresh) {
                    Ok(k) => k,
                    Err(e) => return (Verdict::Failed, format!("{e:#}")),
                };
                let guest = match Guest::new(&kernel, bins) {
                    Ok(g) => g.script(GUEST_SUITE).timeout(Duration::from_secs(opts.vm_timeout)),
                    Err(e) => return (Verdict::Failed, format!("{e:#}")),
                };
                let mut counts = Counts::default();
                match guest.boot(&mut |line| counts.read_line(line)) {
                    Ok(out) => {
                        let detail = format!("kernel {}, {}, {}", out.kernel_release, out.accel, counts.describe());
                        if out.exit_code == 0 && counts.failed == 0 && counts.passed > 0 {
                            (Verdict::Passed, detail)
                        } else if counts.passed == 0 && counts.failed == 0 {
                            (Verdict::Failed, format!("{detail}; no test ran"))
                        } else {
                            (Verdict::Failed, detail)
                        }
                    }
                    Err(e) => (Verdict::Failed, format!("{e:#}; {}", counts.describe())),
                }
            });
        }
    }

    println!("\n=== summary");
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for s in &stages {
        let word = match s.verdict {
            Verdict::Passed => {
                passed += 1;
                "passed"
            }
            Verdict::Failed => {
                failed += 1;
                "FAILED"
            }
            Verdict::Skipped => {
                skipped += 1;
                "skipped"
            }
        };
        println!("{:<28} {word:<8} {:>6.0}s  {}", s.name, s.took.as_secs_f64(), s.detail);
    }
    if skipped > 0 {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
