//! Kernel modules for the guest, from the same Debian package set as its
//! kernel: the cloud kernels build veth and dummy as modules, and the guest's
//! initramfs carries them (decompressed) and loads them at boot, so tcx tests
//! in the VM use veth as they do on the host. Cached beside the kernel.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, anyhow};

use crate::kernels::{Kernel, PrivateApt, extract, walk};

/// The modules the guest loads, by file name without `.ko`, in load order.
pub const WANTED: &[&str] = &["veth", "dummy"];

/// The guest's modules for `kernel`, downloaded once. A kernel given as an
/// image path has none; a module the package lacks is left out (the guest
/// says which at boot, and tests fall back as they do without it).
pub fn for_kernel(kernel: &Kernel) -> Result<Vec<PathBuf>> {
    let Some(dir) = kernel.vmlinuz.parent().map(|d| d.join("modules")) else { return Ok(Vec::new()) };
    if !kernel.vmlinuz.starts_with(crate::util::cache_dir()) {
        return Ok(Vec::new());
    }
    let done = dir.join("fetched");
    if !done.is_file() {
        fetch(&kernel.version, &dir)?;
        fs::write(&done, "")?;
    }
    Ok(WANTED.iter().map(|m| dir.join(format!("{m}.ko"))).filter(|p| p.is_file()).collect())
}

/// Downloads the package holding the modules of `version` (bookworm keeps
/// them in linux-image, trixie in linux-modules) and unpacks the wanted ones.
fn fetch(version: &str, dir: &Path) -> Result<()> {
    let scratch = dir.with_extension("download");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    let apt = PrivateApt::new()?;
    let packages = [
        format!("linux-modules-{version}-cloud-amd64"),
        format!("linux-image-{version}-cloud-amd64-unsigned"),
        format!("linux-image-{version}-cloud-amd64"),
    ];
    let mut tried = Vec::new();
    for package in &packages {
        let Ok(deb) = apt.download(package, &scratch) else {
            tried.push(package.clone());
            continue;
        };
        println!("modules: {} from {package}", WANTED.join(", "));
        let found = unpack(&deb, &scratch.join("root"), dir);
        let _ = fs::remove_dir_all(&scratch);
        return found;
    }
    let _ = fs::remove_dir_all(&scratch);
    Err(anyhow!("no package with the modules of kernel {version} could be downloaded (tried {})", tried.join(", ")))
}

/// Extracts `drivers/net/<module>.ko*` for each wanted module from `deb` and
/// writes them decompressed into `dir`.
fn unpack(deb: &Path, root: &Path, dir: &Path) -> Result<()> {
    let patterns: Vec<String> = WANTED.iter().map(|m| format!("*/drivers/net/{m}.ko*")).collect();
    extract(deb, root, &patterns)?;
    fs::create_dir_all(dir)?;
    for m in WANTED {
        let prefix = format!("{m}.ko");
        let Some(file) =
            walk(root).into_iter().find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
        else {
            continue;
        };
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let decompress = match name.rsplit('.').next() {
            Some("xz") => Some("xz"),
            Some("zst") => Some("zstd"),
            _ => None,
        };
        let to = dir.join(format!("{m}.ko"));
        match decompress {
            Some(tool) => {
                let out =
                    Command::new(tool).arg("-dc").arg(&file).output().with_context(|| format!("running {tool}"))?;
                anyhow::ensure!(out.status.success(), "{tool} -dc {} failed", file.display());
                fs::write(&to, out.stdout)?;
            }
            None => {
                fs::copy(&file, &to)?;
            }
        }
    }
    Ok(())
}
