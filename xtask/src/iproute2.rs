//! Tools from Debian's bookworm-backports, linked against the host's
//! bookworm libraries, downloaded once through the private apt
//! configuration and cached: a full iproute2 `ip` for the guest, the tests'
//! independent witness of device facts (`ip -d -j link show`; busybox's `ip`
//! knows no netkit, and the host's iproute2 6.1 neither), which the guest
//! gets with the shared libraries it links, at their host paths; and a
//! bpftool that knows tcx and netkit, for the scale bench.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{kernels::PrivateApt, util};

/// Where the guest finds it (the tests read `NETKIT_TEST_IP`).
pub const GUEST_PATH: &str = "/opt/iproute2/ip";

/// The cached `ip` binary, downloaded on first use.
pub fn ip() -> Result<PathBuf> {
    backports_binary("iproute2", "bin/ip", "for the guest")
}

/// bpftool from bookworm-backports (7.5: it lists tcx and netkit attachments
/// in `net show`, which bookworm's 7.1 does not), the scale bench's
/// counterpart of `query` and `link list --all`; cached like `ip`.
pub fn bpftool() -> Result<PathBuf> {
    backports_binary("bpftool", "usr/sbin/bpftool", "for the scale bench")
}

/// `path` out of `package`'s bookworm-backports build, downloaded once
/// through the private apt configuration into the cache.
fn backports_binary(package: &str, path: &str, why: &str) -> Result<PathBuf> {
    let dir = util::cache_dir().join(package);
    let name = Path::new(path).file_name().expect("a file name");
    let exe = dir.join("bin").join(name);
    if exe.is_file() {
        return Ok(exe);
    }
    let scratch = dir.with_extension("download");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let apt = PrivateApt::new()?;
    let source = format!("{package}/bookworm-backports");
    println!("{package}: downloading {source} {why}");
    let deb = match apt.download(&source, &scratch) {
        Ok(deb) => deb,
        Err(_) => {
            apt.update()?;
            apt.download(&source, &scratch)?
        }
    };
    let unpacked = scratch.join("root");
    util::output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))
        .with_context(|| format!("unpacking {package} (dpkg-deb)"))?;
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("bin"))?;
    fs::copy(unpacked.join(path), &exe).with_context(|| format!("the {package} package holds no {path}"))?;
    let _ = fs::remove_dir_all(&scratch);
    Ok(exe)
}

/// The shared libraries `exe` loads (the dynamic loader included), by the
/// paths the loader finds them at here, from `ldd`.
pub fn libraries(exe: &Path) -> Result<Vec<PathBuf>> {
    let out = util::output(Command::new("ldd").arg(exe)).context("ldd (package libc-bin)")?;
    let libs: Vec<PathBuf> = out
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => l,
            };
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    if libs.is_empty() {
        bail!("ldd names no library for {}: {out}", exe.display());
    }
    Ok(libs)
}
