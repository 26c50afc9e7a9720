//! A full iproute2 `ip` for the guest, the tests' independent witness of
//! device facts (`ip -d -j link show`): busybox's `ip` knows no netkit, and
//! the host's iproute2 6.1 neither. Debian's bookworm-backports build (6.15,
//! linked against the host's bookworm libraries) is downloaded once through
//! the private apt configuration and cached; the guest gets it with the
//! shared libraries it links, at their host paths.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{kernels::PrivateApt, util};

/// Where the guest finds it (the tests read `NETKIT_TEST_IP`).
pub const GUEST_PATH: &str = "/opt/iproute2/ip";

const PACKAGE: &str = "iproute2/bookworm-backports";

/// The cached `ip` binary, downloaded on first use.
pub fn ip() -> Result<PathBuf> {
    let dir = util::cache_dir().join("iproute2");
    let ip = dir.join("bin/ip");
    if ip.is_file() {
        return Ok(ip);
    }
    let scratch = dir.with_extension("download");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let apt = PrivateApt::new()?;
    println!("iproute2: downloading {PACKAGE} for the guest");
    let deb = match apt.download(PACKAGE, &scratch) {
        Ok(deb) => deb,
        Err(_) => {
            apt.update()?;
            apt.download(PACKAGE, &scratch)?
        }
    };
    let unpacked = scratch.join("root");
    util::output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))
        .context("unpacking iproute2 (dpkg-deb)")?;
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("bin"))?;
    fs::copy(unpacked.join("bin/ip"), &ip).context("the iproute2 package holds no bin/ip")?;
    let _ = fs::remove_dir_all(&scratch);
    Ok(ip)
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
