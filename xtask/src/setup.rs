//! `cargo xtask setup`: installs what the build and the VM tests need, one
//! line per step, skipping what is present. Idempotent; `demo`, `test`, `vm`
//! and `bench` run it first.

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::util::{self, is_root, succeeds};

#[derive(Debug, Default, clap::Args)]
pub struct Options {
    /// Report what is missing without installing anything.
    #[arg(long)]
    pub check: bool,
}

/// Debian packages from the default sources: LLVM 22 for bpf-linker, clang for
/// the C test programs and benchmarks (with libbpf's headers), busybox and cpio
/// for the VM initramfs, iproute2 for the host tests; bash-completion, zsh and
/// fish to check the completion scripts, man-db and groff-base to render the
/// manual pages, gcc and libc6-dev for the static C floor of the start-up
/// benchmark, musl-tools for the C of mimalloc in the static musl binaries,
/// bpftool as the other tool that detaches what apply made in the drift tests.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "clang-22",
    "libbpf-dev",
    "busybox-static",
    "cpio",
    "iproute2",
    "bash-completion",
    "zsh",
    "fish",
    "man-db",
    "groff-base",
    "gcc",
    "libc6-dev",
    "musl-tools",
    "bpftool",
];

/// qemu comes from bookworm-backports on bookworm (the machine's qemu-utils is
/// from there and bookworm's own qemu-system-x86 conflicts with it).
const QEMU_PACKAGE: &str = "qemu-system-x86";
const BACKPORTS_SOURCE: &str = "/etc/apt/sources.list.d/netkit-bookworm-backports.sources";

const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const CARGO_FUZZ_VERSION: &str = "0.13.2";

fn say(piece: &str, state: &str) {
    println!("setup: {piece:<32} {state}");
}

fn apt_installed(pkg: &str) -> bool {
    util::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_ok_and(|s| s.trim() == "install ok installed")
}

fn codename() -> String {
    fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VERSION_CODENAME=")).map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default()
}

fn backports_listed() -> bool {
    let mut texts = vec![fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".list") || name.ends_with(".sources") {
                texts.push(fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
    }
    texts.iter().any(|t| t.lines().any(|l| !l.trim_start().starts_with('#') && l.contains("bookworm-backports")))
}

fn need_root(piece: &str, command: &str) -> anyhow::Error {
    anyhow::anyhow!("{piece} is missing and installing it needs root; run as root: {command}")
}

/// Runs `apt-get update` at most once, and only when something is installed.
#[derive(Default)]
struct Apt {
    updated: bool,
}

impl Apt {
    fn update(&mut self) -> Result<()> {
        if !self.updated {
            apt_get(&["update"]).context("apt-get update failed")?;
            self.updated = true;
        }
        Ok(())
    }
}

fn apt_get(args: &[&str]) -> Result<()> {
    util::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-y", "-q", "-o", "Dpkg::Use-Pty=0"])
            .args(args),
    )
}

pub fn run(opts: &Options) -> Result<()> {
    let mut missing = Vec::new();
    let mut apt = Apt::default();

    // Debian packages from the default sources.
    let absent: Vec<&str> = APT_PACKAGES.iter().copied().filter(|p| !apt_installed(p)).collect();
    if absent.is_empty() {
        say("debian packages", "present");
    } else {
        let command = format!("apt-get install -y {}", absent.join(" "));
        if opts.check {
            say("debian packages", &format!("missing: {}", absent.join(" ")));
            missing.push(command);
        } else if !is_root() {
            return Err(need_root(&absent.join(", "), &command));
        } else {
            say("debian packages", &format!("installing {}", absent.join(" ")));
            apt.update()?;
            let mut args = vec!["install", "--no-install-recommends"];
            args.extend(&absent);
            apt_get(&args).with_context(|| format!("installing {} failed; try: {command}", absent.join(" ")))?;
            say("debian packages", "installed");
        }
    }

    // qemu, from backports on bookworm.
    if apt_installed(QEMU_PACKAGE) {
        say(QEMU_PACKAGE, "present");
    } else {
        let bookworm = codename() == "bookworm";
        let command = if bookworm {
            format!("add bookworm-backports to apt sources, then apt-get install -t bookworm-backports {QEMU_PACKAGE}")
        } else {
            format!("apt-get install {QEMU_PACKAGE}")
        };
        if opts.check {
            say(QEMU_PACKAGE, "missing");
            missing.push(command);
        } else if !is_root() {
            return Err(need_root(QEMU_PACKAGE, &command));
        } else {
            if bookworm && !backports_listed() {
                say("apt source bookworm-backports", &format!("adding {BACKPORTS_SOURCE}"));
                fs::write(
                    BACKPORTS_SOURCE,
                    "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
                )
                .with_context(|| format!("writing {BACKPORTS_SOURCE}"))?;
                apt.updated = false;
            }
            say(QEMU_PACKAGE, "installing");
            apt.update()?;
            let mut args = vec!["install", "--no-install-recommends"];
            if bookworm {
                args.extend(["-t", "bookworm-backports"]);
            }
            args.push(QEMU_PACKAGE);
            apt_get(&args).with_context(|| format!("installing {QEMU_PACKAGE} failed; try: {command}"))?;
            say(QEMU_PACKAGE, "installed");
        }
    }

    // Rust: the nightly's rust-src (eBPF build-std) and the musl target (VM binaries).
    rustup_step(
        opts,
        &mut missing,
        "nightly rust-src",
        &["component", "list", "--toolchain", "nightly", "--installed"],
        "rust-src",
        &["component", "add", "rust-src", "--toolchain", "nightly"],
    )?;
    rustup_step(
        opts,
        &mut missing,
        "target x86_64-unknown-linux-musl",
        &["target", "list", "--installed"],
        "x86_64-unknown-linux-musl",
        &["target", "add", "x86_64-unknown-linux-musl"],
    )?;

    // bpf-linker, built against Debian's LLVM 22.
    if !opts.check && !Path::new(LLVM_PREFIX).join("lib").exists() && !tool_present(&["bpf-linker"], BPF_LINKER_VERSION)
    {
        bail!("bpf-linker needs LLVM 22 at {LLVM_PREFIX} (package llvm-22-dev)");
    }
    cargo_install(
        opts,
        &mut missing,
        CargoTool {
            name: "bpf-linker",
            version: BPF_LINKER_VERSION,
            run: &["bpf-linker"],
            env: &[("LLVM_PREFIX", LLVM_PREFIX)],
            args: &["--no-default-features", "--features", "llvm-22"],
            took: "about 2 minutes",
        },
    )?;
    // cargo-fuzz, for the fuzz targets in fuzz/ (cargo xtask fuzz, and the
    // test suite's short pass of each).
    cargo_install(
        opts,
        &mut missing,
        CargoTool {
            name: "cargo-fuzz",
            version: CARGO_FUZZ_VERSION,
            run: &["cargo", "fuzz"],
            env: &[],
            args: &[],
            took: "about a minute",
        },
    )?;

    // The CNI tests' reference plugins and runtime (cached downloads; the
    // runtime is built with the Go toolchain it downloads), and promtool.
    if opts.check {
        say("cni plugins, runtime, promtool", "fetched on first use");
    } else {
        let plugins = crate::cni::plugins().context("fetching the CNI reference plugins")?;
        say("cni reference plugins", &plugins.display().to_string());
        let old = crate::cni::bookworm_host_local().context("fetching Debian 12's host-local")?;
        say("host-local of Debian 12", &old.display().to_string());
        let runtime = crate::cni::runtime().context("building the CNI runtime")?;
        say("cni runtime (libcni)", &runtime.display().to_string());
        let promtool = crate::cni::promtool().context("fetching promtool")?;
        say("promtool", &promtool.display().to_string());
    }

    if !missing.is_empty() {
        bail!("missing pieces; install them with:\n  {}", missing.join("\n  "));
    }
    Ok(())
}

/// A tool installed with `cargo install --locked`.
struct CargoTool<'a> {
    name: &'a str,
    version: &'a str,
    /// How to run it (`--version` is appended).
    run: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
    args: &'a [&'a str],
    took: &'a str,
}

/// Whether `run --version` names `version`.
fn tool_present(run: &[&str], version: &str) -> bool {
    util::output(Command::new(run[0]).args(&run[1..]).arg("--version")).is_ok_and(|v| v.contains(version))
}

fn cargo_install(opts: &Options, missing: &mut Vec<String>, tool: CargoTool<'_>) -> Result<()> {
    if tool_present(tool.run, tool.version) {
        say(tool.name, "present");
        return Ok(());
    }
    let env: String = tool.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    let command = format!(
        "{env}cargo install {} --version {} --locked{}",
        tool.name,
        tool.version,
        tool.args.iter().map(|a| format!(" {a}")).collect::<String>()
    );
    if opts.check {
        say(tool.name, "missing");
        missing.push(command);
        return Ok(());
    }
    say(tool.name, &format!("building {} ({})", tool.version, tool.took));
    let mut cmd = Command::new("cargo");
    cmd.envs(tool.env.iter().copied())
        .args(["install", tool.name, "--version", tool.version, "--locked"])
        .args(tool.args);
    util::run(&mut cmd).with_context(|| format!("installing {} failed; try: {command}", tool.name))?;
    say(tool.name, "installed");
    Ok(())
}

fn rustup_step(
    opts: &Options,
    missing: &mut Vec<String>,
    piece: &str,
    list: &[&str],
    wanted: &str,
    add: &[&str],
) -> Result<()> {
    let present = util::output(Command::new("rustup").args(list))
        .is_ok_and(|out| out.lines().any(|l| l.trim().starts_with(wanted)));
    if present {
        say(piece, "present");
        return Ok(());
    }
    let command = format!("rustup {}", add.join(" "));
    if opts.check {
        say(piece, "missing");
        missing.push(command);
        return Ok(());
    }
    if !succeeds(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])) && piece.starts_with("nightly")
    {
        bail!("the nightly toolchain is missing; install it with: rustup toolchain install nightly");
    }
    say(piece, "installing");
    util::run(Command::new("rustup").args(add))
        .with_context(|| format!("installing {piece} failed; try: {command}"))?;
    say(piece, "installed");
    Ok(())
}
