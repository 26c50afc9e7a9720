//! Debian cloud kernels for the VM tests: resolved by series (newest 6.12.x,
//! newest 6.18.x, newest overall) from Debian's archive under a private apt
//! configuration (the machine's apt sources stay untouched), downloaded once
//! and cached.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    str::FromStr,
};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::util::{self, cache_dir};

/// Which kernel to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// The newest release of a series such as "6.12".
    Series(String),
    /// The newest release Debian has.
    Latest,
    /// A vmlinuz/bzImage on disk.
    Path(PathBuf),
}

/// The matrix `cargo xtask test` runs.
pub const MATRIX: &[&str] = &["6.12", "6.18", "latest"];

impl FromStr for KernelSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        if s == "latest" {
            return Ok(Self::Latest);
        }
        let is_series =
            s.split('.').count() == 2 && s.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if is_series {
            return Ok(Self::Series(s.into()));
        }
        let path = PathBuf::from(s);
        if path.is_file() {
            return Ok(Self::Path(path));
        }
        Err(anyhow!("--kernel {s}: expected a series such as 6.12 or 6.18, `latest`, or the path of a kernel image"))
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Series(s) => f.write_str(s),
            Self::Latest => f.write_str("latest"),
            Self::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// Debian's version string, e.g. "6.12.95+deb12".
    pub version: String,
    pub vmlinuz: PathBuf,
}

const SOURCES: &str = "\
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
";

/// A private apt configuration: its own sources, lists and cache.
pub(crate) struct PrivateApt {
    root: PathBuf,
}

impl PrivateApt {
    pub(crate) fn new() -> Result<Self> {
        let root = cache_dir().join("apt");
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(root.join(sub)).with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        fs::write(root.join("sources.list"), SOURCES)?;
        Ok(Self { root })
    }

    fn options(&self) -> Vec<String> {
        let r = self.root.display();
        [
            format!("Dir::Etc::SourceList={r}/sources.list"),
            "Dir::Etc::SourceParts=/dev/null".into(),
            format!("Dir::State::Lists={r}/lists"),
            format!("Dir::Cache={r}/cache"),
            "Dir::State::status=/dev/null".into(),
            "APT::Architecture=amd64".into(),
            "APT::Sandbox::User=root".into(),
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
            "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".into(),
            "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".into(),
            "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(self.options());
        cmd
    }

    pub(crate) fn update(&self) -> Result<()> {
        println!("apt: refreshing the package lists of bookworm, bookworm-backports, trixie-backports and sid");
        util::output(self.command("apt-get").args(["-q", "update"]))
            .context("apt-get update (private configuration) failed")?;
        Ok(())
    }

    /// Every cloud kernel package name in the lists.
    fn kernel_packages(&self) -> Result<Vec<String>> {
        let dump = util::output(self.command("apt-cache").arg("dumpavail"))?;
        Ok(dump
            .lines()
            .filter_map(|l| l.strip_prefix("Package: "))
            .filter(|p| {
                (p.starts_with("linux-image-") || p.starts_with("linux-binary-"))
                    && (p.ends_with("-cloud-amd64") || p.ends_with("-cloud-amd64-unsigned"))
            })
            .map(str::to_string)
            .collect())
    }

    /// Downloads `packages` (refreshing the lists once if one is not
    /// found) and unpacks them into `into`.
    pub(crate) fn unpack(packages: &[&str], into: &Path) -> Result<()> {
        let scratch = into.with_extension("download");
        let _ = fs::remove_dir_all(&scratch);
        let apt = Self::new()?;
        let mut refreshed = false;
        for package in packages {
            let dir = scratch.join(package.replace('/', "_"));
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            println!("apt: downloading {package}");
            let deb = match apt.download(package, &dir) {
                Ok(deb) => deb,
                Err(_) if !refreshed => {
                    refreshed = true;
                    apt.update()?;
                    apt.download(package, &dir)?
                }
                Err(e) => return Err(e),
            };
            util::output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(into))
                .with_context(|| format!("unpacking {package} (dpkg-deb)"))?;
        }
        let _ = fs::remove_dir_all(&scratch);
        Ok(())
    }

    pub(crate) fn download(&self, package: &str, dir: &Path) -> Result<PathBuf> {
        util::output(self.command("apt-get").current_dir(dir).args(["-q", "download", package]))?;
        fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .ok_or_else(|| anyhow!("apt-get download {package} left no .deb in {}", dir.display()))
    }
}

/// "6.12.95+deb12" out of a package name, with its numeric release.
fn version_of(package: &str) -> Option<(String, (u32, u32, u32))> {
    let rest = package.strip_prefix("linux-image-").or_else(|| package.strip_prefix("linux-binary-"))?;
    let version = rest.strip_suffix("-unsigned").unwrap_or(rest).strip_suffix("-cloud-amd64")?;
    let release = version.split('+').next()?;
    let mut nums = release.split('.').map(|n| n.parse::<u32>());
    let triple = (nums.next()?.ok()?, nums.next()?.ok()?, nums.next().unwrap_or(Ok(0)).ok()?);
    Some((version.to_string(), triple))
}

/// Versions available for `spec`, newest first.
fn candidates(packages: &[String], spec: &KernelSpec) -> Vec<String> {
    let mut versions: Vec<(String, (u32, u32, u32))> = packages.iter().filter_map(|p| version_of(p)).collect();
    versions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    versions.dedup_by(|a, b| a.0 == b.0);
    versions
        .into_iter()
        .filter(|(_, (major, minor, _))| match spec {
            KernelSpec::Series(s) => *s == format!("{major}.{minor}"),
            KernelSpec::Latest => true,
            KernelSpec::Path(_) => false,
        })
        .map(|(v, _)| v)
        .collect()
}

/// The package holding the vmlinuz of `version`: from 6.19 Debian ships the
/// image in `linux-binary-*` and `linux-image-*` is a stub.
fn packages_for(packages: &[String], version: &str) -> Vec<String> {
    [
        format!("linux-binary-{version}-cloud-amd64"),
        format!("linux-image-{version}-cloud-amd64-unsigned"),
        format!("linux-image-{version}-cloud-amd64"),
    ]
    .into_iter()
    .filter(|p| packages.contains(p))
    .collect()
}

fn extract_vmlinuz(deb: &Path, into: &Path) -> Result<Option<PathBuf>> {
    let scratch = into.with_extension("extract");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    // "Not found in archive" only means this package has no image.
    extract(deb, &scratch, &["*vmlinuz*".into()])?;
    let found = walk(&scratch).into_iter().find(|p| {
        p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz"))
            && p.metadata().is_ok_and(|m| m.len() > 1_000_000)
    });
    let result = match found {
        Some(path) => {
            fs::rename(&path, into)?;
            Some(into.to_path_buf())
        }
        None => None,
    };
    let _ = fs::remove_dir_all(&scratch);
    Ok(result)
}

/// Unpacks the files of `deb` matching the tar wildcards `patterns` under
/// `into`; patterns that match nothing are not an error.
pub(crate) fn extract(deb: &Path, into: &Path, patterns: &[String]) -> Result<()> {
    fs::create_dir_all(into)?;
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb")?;
    Command::new("tar")
        .arg("-C")
        .arg(into)
        .args(["-x", "--wildcards"])
        .args(patterns)
        .stdin(dpkg.stdout.take().ok_or_else(|| anyhow!("no pipe from dpkg-deb"))?)
        .stderr(Stdio::null())
        .status()
        .context("running tar")?;
    dpkg.wait()?;
    Ok(())
}

pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Resolves `spec` to a kernel on disk, downloading it when it is not cached.
/// With `refresh`, the series is resolved again against Debian's lists.
pub fn resolve(spec: &KernelSpec, refresh: bool) -> Result<Kernel> {
    if let KernelSpec::Path(path) = spec {
        return Ok(Kernel { version: path.display().to_string(), vmlinuz: path.clone() });
    }
    let dir = cache_dir().join("kernels");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pointer = dir.join(format!("{spec}.version"));
    if !refresh && let Ok(version) = fs::read_to_string(&pointer) {
        let version = version.trim().to_string();
        let vmlinuz = dir.join(&version).join("vmlinuz");
        if vmlinuz.is_file() {
            return Ok(Kernel { version, vmlinuz });
        }
    }

    let apt = PrivateApt::new()?;
    apt.update()?;
    let packages = apt.kernel_packages()?;
    let versions = candidates(&packages, spec);
    if versions.is_empty() {
        bail!(
            "Debian's archive lists no cloud kernel for {spec} (searched bookworm-backports, trixie-backports and sid)"
        );
    }
    for version in &versions {
        let target = dir.join(version).join("vmlinuz");
        if target.is_file() {
            fs::write(&pointer, version)?;
            println!("kernels: {spec} resolves to {version} (cached)");
            return Ok(Kernel { version: version.clone(), vmlinuz: target });
        }
        for package in packages_for(&packages, version) {
            let scratch = dir.join(format!("{version}.download"));
            let _ = fs::remove_dir_all(&scratch);
            fs::create_dir_all(&scratch)?;
            println!("kernels: {spec} resolves to {version}; downloading {package}");
            let got = apt.download(&package, &scratch).and_then(|deb| {
                fs::create_dir_all(target.parent().expect("has parent"))?;
                extract_vmlinuz(&deb, &target)
            });
            let _ = fs::remove_dir_all(&scratch);
            match got {
                Ok(Some(vmlinuz)) => {
                    fs::write(&pointer, version)?;
                    return Ok(Kernel { version: version.clone(), vmlinuz });
                }
                // Only a package the archive no longer serves is a reason to
                // try the next one; a package without an image is not.
                Ok(None) if package.starts_with("linux-image-") && package.ends_with("-cloud-amd64") => {
                    println!("kernels: {package} holds no vmlinuz; trying the next package")
                }
                Ok(None) => bail!("{package} holds no vmlinuz"),
                Err(e) => println!("kernels: downloading {package} failed ({e:#}); trying the next one"),
            }
        }
    }
    bail!("no kernel for {spec} could be downloaded (tried {})", versions.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_the_newest_of_a_series() {
        let pkgs = names(&[
            "linux-image-6.12.9+deb12-cloud-amd64",
            "linux-image-6.12.95+deb12-cloud-amd64-unsigned",
            "linux-image-6.12.95+deb12-cloud-amd64",
            "linux-image-6.18.15+deb13-cloud-amd64",
            "linux-binary-7.2.13+deb14-cloud-amd64",
            "linux-binary-7.3.4+deb13-cloud-amd64",
            "linux-image-7.3.4+deb13-cloud-amd64",
        ]);
        assert_eq!(candidates(&pkgs, &KernelSpec::Series("6.12".into()))[0], "6.12.95+deb12");
        assert_eq!(candidates(&pkgs, &KernelSpec::Series("6.12".into())).len(), 2);
        assert_eq!(candidates(&pkgs, &KernelSpec::Latest)[0], "7.3.4+deb13");
        assert_eq!(
            packages_for(&pkgs, "7.3.4+deb13"),
            names(&["linux-binary-7.3.4+deb13-cloud-amd64", "linux-image-7.3.4+deb13-cloud-amd64"])
        );
        assert_eq!(packages_for(&pkgs, "6.12.95+deb12")[0], "linux-image-6.12.95+deb12-cloud-amd64-unsigned");
    }

    #[test]
    fn parses_specs() {
        assert_eq!("6.12".parse::<KernelSpec>().unwrap(), KernelSpec::Series("6.12".into()));
        assert_eq!("latest".parse::<KernelSpec>().unwrap(), KernelSpec::Latest);
        assert!("6.x".parse::<KernelSpec>().is_err());
    }
}
