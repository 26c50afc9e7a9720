//! `cargo xtask vm`: boots a Debian cloud kernel under qemu with an initramfs
//! holding busybox, a static `netkit` and (for the test suite) the test
//! binaries, runs a command as root in the guest and reports its exit code.
//! A panic, a hang or a guest that never reports is a failure, never a pass.

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    sync::{OnceLock, mpsc},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::{
    build, kernels,
    kernels::{Kernel, KernelSpec},
    setup, util,
};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Kernel to boot: a series (6.12, 6.18), `latest`, or a kernel image path.
    #[arg(long, default_value = "latest")]
    pub kernel: KernelSpec,
    /// Seconds before a silent or stuck guest counts as hung.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Resolve the kernel series again against Debian's archive.
    #[arg(long)]
    pub refresh: bool,
    /// Also ship the integration test binaries (as /guest/tests/NAME), to run
    /// one suite or one test: `-- /guest/tests/netkit_hooks peer`.
    #[arg(long)]
    pub tests: bool,
    /// Also ship this file as /guest/NAME (repeatable), e.g. another build
    /// of netkit to compare: `--file old=/tmp/netkit`.
    #[arg(long = "file", value_name = "NAME=PATH")]
    pub files: Vec<String>,
    /// The command to run in the guest (after `--`), e.g. `netkit probe --json`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(opts: &Options) -> Result<ExitCode> {
    setup::run(&setup::Options::default())?;
    let kernel = kernels::resolve(&opts.kernel, opts.refresh)?;
    let bins = build::guest_binaries(opts.tests)?;
    let mut guest = Guest::new(&kernel, &bins)?;
    for file in &opts.files {
        let (name, path) = file.split_once('=').ok_or_else(|| anyhow!("--file {file}: write NAME=PATH"))?;
        guest = guest.with_file(name, Path::new(path))?;
    }
    let guest = guest.script(&shell_join(&opts.command)).timeout(Duration::from_secs(opts.timeout));
    let outcome = guest.boot(&mut |_| {})?;
    println!("vm: guest command exited with {} (kernel {}, {})", outcome.exit_code, kernel.version, outcome.accel);
    Ok(ExitCode::from(outcome.exit_code.clamp(0, 255) as u8))
}

/// Quotes `args` for the guest's sh.
pub fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How the guest was run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Kvm => "KVM",
            Self::Tcg => "TCG (software emulation)",
        })
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub exit_code: i32,
    pub accel: Accel,
    pub kernel_release: String,
}

const BOOTED: &str = "NETKIT-VM-BOOTED ";
const EXIT: &str = "NETKIT-VM-EXIT=";
const PANIC: &str = "Kernel panic - not syncing";

const INIT: &str = r#"#!/bin/sh
/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/bin:/sbin HOME=/root TERM=dumb NETKIT_BIN=/bin/netkit NETKIT_IN_VM=1 NETKIT_TEST_C_DIR=/guest/c NETKIT_TEST_IP=/opt/iproute2/ip NETKIT_TEST_CNI_PATH=/opt/cni/bin NETKIT_TEST_CNI_RUNTIME=/bin/cni-runtime NETKIT_TEST_CNI_BOOKWORM=/opt/cni/bookworm NETKIT_TEST_PROMTOOL=/opt/promtool/promtool
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mkdir -p /run/netns /root /var/run
ip link set lo up
for m in /lib/modules/*.ko; do [ -e "$m" ] && { insmod "$m" || echo "netkit-vm: insmod $m failed"; }; done
echo "NETKIT-VM-BOOTED $(uname -r)"
cd /guest
sh /guest/cmd
echo "NETKIT-VM-EXIT=$?"
sync
poweroff -f
"#;

/// One boot of a kernel with an initramfs and a command.
pub struct Guest {
    kernel: Kernel,
    staging: PathBuf,
    timeout: Duration,
}

impl Guest {
    /// Stages an initramfs with busybox, `netkit` and the test binaries.
    pub fn new(kernel: &Kernel, bins: &build::GuestBinaries) -> Result<Self> {
        let staging = util::target_dir().join("vm").join(format!("initramfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        for dir in ["bin", "sbin", "dev", "proc", "sys", "tmp", "run", "guest/tests", "guest/examples", "etc"] {
            fs::create_dir_all(staging.join(dir))?;
        }
        fs::copy("/bin/busybox", staging.join("bin/busybox"))
            .context("copying /bin/busybox (package busybox-static)")?;
        std::os::unix::fs::symlink("busybox", staging.join("bin/sh"))?;
        copy_stripped(&bins.netkit, &staging.join("bin/netkit"))?;
        for (name, exe) in &bins.tests {
            copy_stripped(exe, &staging.join("guest/tests").join(name))?;
        }
        for (name, exe) in &bins.examples {
            copy_stripped(exe, &staging.join("guest/examples").join(name))?;
        }
        fs::create_dir_all(staging.join("guest/c"))?;
        for obj in &bins.c_objects {
            fs::copy(obj, staging.join("guest/c").join(obj.file_name().expect("a file name")))?;
        }
        fs::create_dir_all(staging.join("lib/modules"))?;
        for module in crate::modules::for_kernel(kernel)? {
            let name = module.file_name().expect("a module file name");
            fs::copy(&module, staging.join("lib/modules").join(name))?;
        }
        if let Some(ip) = &bins.ip {
            copy_glibc(ip, &staging, crate::iproute2::GUEST_PATH)?;
        }
        if let Some(cni) = &bins.cni {
            let bin = staging.join(crate::cni::GUEST_CNI_BIN.trim_start_matches('/'));
            fs::create_dir_all(&bin)?;
            copy_stripped(&cni.plugin, &bin.join("netkit-cni"))?;
            for entry in fs::read_dir(&cni.reference)?.flatten() {
                fs::copy(entry.path(), bin.join(entry.file_name()))?;
            }
            // The reference plugins are glibc programs, as `ip` is.
            copy_libraries(&cni.reference.join("host-local"), &staging)?;
            copy_stripped(&cni.runtime, &staging.join(crate::cni::GUEST_RUNTIME.trim_start_matches('/')))?;
            let old = staging.join(crate::cni::GUEST_BOOKWORM.trim_start_matches('/'));
            fs::create_dir_all(&old)?;
            fs::copy(&cni.bookworm_host_local, old.join("host-local"))?;
        }
        if let Some(promtool) = &bins.promtool {
            copy_glibc(promtool, &staging, "/opt/promtool/promtool")?;
        }
        write_exec(&staging.join("init"), INIT)?;
        fs::write(staging.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
        Ok(Self { kernel: kernel.clone(), staging, timeout: Duration::from_secs(600) })
    }

    /// Adds a file under /guest in the initramfs.
    pub fn with_file(self, name: &str, from: &Path) -> Result<Self> {
        copy_stripped(from, &self.staging.join("guest").join(name))?;
        Ok(self)
    }

    /// Adds a glibc program at `guest_path`, with its libraries.
    pub fn with_glibc(self, from: &Path, guest_path: &str) -> Result<Self> {
        copy_glibc(from, &self.staging, guest_path)?;
        Ok(self)
    }

    pub fn script(self, script: &str) -> Self {
        write_exec(&self.staging.join("guest/cmd"), &format!("{script}\n")).expect("staging dir is writable");
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn initramfs(&self) -> Result<PathBuf> {
        let out = self.staging.with_extension("cpio");
        let file = fs::File::create(&out)?;
        let list = Command::new("sh")
            .arg("-c")
            .arg("find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0")
            .current_dir(&self.staging)
            .stdout(file)
            .status()
            .context("running cpio (package cpio)")?;
        if !list.success() {
            bail!("building the initramfs with cpio failed");
        }
        Ok(out)
    }

    /// Boots the guest, streaming its console to stdout and handing every line
    /// to `on_line`. Returns the guest command's exit code.
    pub fn boot(&self, on_line: &mut dyn FnMut(&str)) -> Result<Outcome> {
        let initramfs = self.initramfs()?;
        let accel = accel(&self.kernel, &initramfs);
        println!("vm: booting {} ({}) with {accel}", self.kernel.version, self.kernel.vmlinuz.display());
        let mut child = qemu(&self.kernel, &initramfs, accel)?;
        let result = watch(&mut child, self.timeout, true, on_line);
        let _ = child.kill();
        let _ = child.wait();
        let _ = fs::remove_file(&initramfs);
        let watched = result?;
        match watched {
            Watched::Exited { code, release } => Ok(Outcome { exit_code: code, accel, kernel_release: release }),
            Watched::Panicked => bail!("the guest kernel panicked (kernel {})", self.kernel.version),
            Watched::Hung { last } => bail!(
                "the guest hung: no result within {}s (kernel {}; last line: {last:?})",
                self.timeout.as_secs(),
                self.kernel.version
            ),
            Watched::Silent { last } => {
                bail!(
                    "the guest stopped without reporting a result (kernel {}; last line: {last:?})",
                    self.kernel.version
                )
            }
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.staging);
    }
}

/// A glibc program in the busybox guest, at `guest_path`: its libraries go
/// where the loader looks for them, the same paths as here.
fn copy_glibc(exe: &Path, staging: &Path, guest_path: &str) -> Result<()> {
    copy_libraries(exe, staging)?;
    let to = staging.join(guest_path.trim_start_matches('/'));
    fs::create_dir_all(to.parent().expect("has a parent"))?;
    fs::copy(exe, &to).with_context(|| format!("copying {}", exe.display()))?;
    Ok(())
}

/// The shared libraries of glibc program `exe`, at the paths its loader
/// looks in, inside `staging`.
fn copy_libraries(exe: &Path, staging: &Path) -> Result<()> {
    for lib in crate::iproute2::libraries(exe)? {
        let to = staging.join(lib.strip_prefix("/").expect("ldd paths are absolute"));
        fs::create_dir_all(to.parent().expect("a library path has a parent"))?;
        fs::copy(&lib, &to).with_context(|| format!("copying {}", lib.display()))?;
    }
    Ok(())
}

fn write_exec(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Copies a binary without its debug info (the initramfs lives in guest RAM).
fn copy_stripped(from: &Path, to: &Path) -> Result<()> {
    // Files that are not ELF (scripts, data) are copied as they are.
    let status = Command::new("strip").arg("--strip-debug").arg("-o").arg(to).arg(from).stderr(Stdio::null()).status();
    if !status.is_ok_and(|s| s.success()) {
        fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(())
}

fn qemu(kernel: &Kernel, initramfs: &Path, accel: Accel) -> Result<Child> {
    let mut cmd = Command::new("qemu-system-x86_64");
    match accel {
        Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => cmd.args(["-accel", "tcg", "-cpu", "max"]),
    };
    cmd.args(["-smp", "2", "-m", "1536", "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", "console=ttyS0 rdinit=/init panic=-1 oops=panic quiet loglevel=4"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().context("starting qemu-system-x86_64 (package qemu-system-x86; run `cargo xtask setup`)")
}

enum Watched {
    Exited { code: i32, release: String },
    Panicked,
    Hung { last: String },
    Silent { last: String },
}

/// Reads the guest console until the exit marker, a panic, EOF or `timeout`.
fn watch(child: &mut Child, timeout: Duration, echo: bool, on_line: &mut dyn FnMut(&str)) -> Result<Watched> {
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no qemu stdout"))?;
    let stderr = child.stderr.take().ok_or_else(|| anyhow!("no qemu stderr"))?;
    let tx2 = tx.clone();
    thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx2.send(format!("qemu: {line}")).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    let mut release = String::new();
    let mut panicked = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(if panicked { left.min(Duration::from_secs(10)) } else { left }) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) if panicked => return Ok(Watched::Panicked),
            Err(mpsc::RecvTimeoutError::Timeout) => return Ok(Watched::Hung { last }),
            Err(mpsc::RecvTimeoutError::Disconnected) if panicked => return Ok(Watched::Panicked),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(Watched::Silent { last }),
        };
        if echo {
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
        on_line(&line);
        if let Some(r) = line.strip_prefix(BOOTED) {
            release = r.trim().to_string();
        }
        if let Some(code) = line.strip_prefix(EXIT) {
            let code = code.trim().parse().unwrap_or(255);
            return Ok(Watched::Exited { code, release });
        }
        if line.contains(PANIC) {
            panicked = true;
        }
        if !line.trim().is_empty() {
            last = line;
        }
    }
}

/// KVM when it really boots a guest here, else TCG. Probed once per run with a
/// short timeout: on some hosts /dev/kvm exists but guests die at once.
fn accel(kernel: &Kernel, initramfs: &Path) -> Accel {
    static ACCEL: OnceLock<Accel> = OnceLock::new();
    *ACCEL.get_or_init(|| {
        if fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
            println!("vm: /dev/kvm is not usable; using TCG");
            return Accel::Tcg;
        }
        let Ok(mut child) = qemu(kernel, initramfs, Accel::Kvm) else {
            return Accel::Tcg;
        };
        // The probe initramfs runs the real command; only watch for the boot
        // marker, then stop it.
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take();
        thread::spawn(move || {
            if let Some(stdout) = stdout {
                for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
                    let line = String::from_utf8_lossy(&line).to_string();
                    let booted = line.starts_with(BOOTED);
                    let failed = line.contains("KVM internal error") || line.contains(PANIC);
                    if booted || failed {
                        let _ = tx.send(booted);
                        return;
                    }
                }
            }
            let _ = tx.send(false);
        });
        let ok = rx.recv_timeout(Duration::from_secs(20)).unwrap_or(false);
        let _ = child.kill();
        let _ = child.wait();
        if ok {
            Accel::Kvm
        } else {
            println!("vm: KVM did not boot a guest here; using TCG");
            Accel::Tcg
        }
    })
}
