//! Helpers shared by the integration tests: the binary under test, root and
//! kernel-feature gates that skip visibly, and throw-away bpffs mounts.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// The `netkit` binary under test: `$NETKIT_BIN` in the VM, else cargo's.
pub fn bin() -> PathBuf {
    std::env::var_os("NETKIT_BIN").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_netkit").into())
}

pub fn netkit() -> Command {
    Command::new(bin())
}

/// Runs `netkit ARGS`, returning the output whatever the exit status.
pub fn run(args: &[&str]) -> Output {
    netkit().args(args).output().expect("netkit runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `netkit ARGS` and panics with its output unless it succeeds.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "netkit {args:?} failed ({}):\n{}{}", o.status, stdout(&o), stderr(&o));
    stdout(&o)
}

/// Runs `netkit ARGS`, expects failure, returns stderr.
pub fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert!(!o.status.success(), "netkit {args:?} should have failed:\n{}{}", stdout(&o), stderr(&o));
    stderr(&o)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Prints a visible SKIP line (counted by `cargo xtask test`).
pub fn skip(why: &str) {
    eprintln!("SKIP: {why}");
}

/// Skips the calling test unless running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::is_root() {
            $crate::common::skip("needs root");
            return;
        }
    };
}

/// A bpffs mounted on a fresh temporary directory, unmounted on drop, so
/// tests never touch /sys/fs/bpf.
pub struct Bpffs {
    pub path: PathBuf,
}

impl Bpffs {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("netkit-test-bpffs-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&path).unwrap();
        let status = Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&path).status().unwrap();
        assert!(status.success(), "mount -t bpf failed");
        Self { path }
    }

    pub fn arg(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A number unique within this process, for names.
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
