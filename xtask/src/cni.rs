//! Tools the tests run against, from Debian's packages through the private
//! apt configuration, cached. For the CNI tests: the reference plugins
//! (`containernetworking-plugins` from sid, 1.9.1: CNI 1.1.0 with STATUS
//! and GC), and a CNI runtime: `xtask/cni-runtime/main.go`, a small driver
//! of libcni (the library containerd, CRI-O and podman execute plugins
//! with), built with Debian's Go from bookworm-backports against
//! `golang-github-appc-cni-dev` from sid. Static, so the busybox guest
//! runs it as it is. Debian 12's own host-local (reference plugins 1.1.1,
//! CNI up to 1.0.0), for the tests of an IPAM plugin older than 1.1.0.
//! For the metrics tests: promtool.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{kernels::PrivateApt, util};

/// Where the guest has the plugins (CNI_PATH) and the runtime.
pub const GUEST_CNI_BIN: &str = "/opt/cni/bin";
pub const GUEST_RUNTIME: &str = "/bin/cni-runtime";
/// Where the guest has Debian 12's host-local, alone.
pub const GUEST_BOOKWORM: &str = "/opt/cni/bookworm";

const PLUGINS: &str = "containernetworking-plugins/sid";
const BOOKWORM_PLUGINS: &str = "containernetworking-plugins/bookworm";
const GO: &[&str] = &["golang-1.23-go/bookworm-backports", "golang-1.23-src/bookworm-backports"];
const LIBCNI: &str = "golang-github-appc-cni-dev/sid";

/// The directory of the reference plugins (host-local, tuning, ...).
pub fn plugins() -> Result<PathBuf> {
    let root = util::cache_dir().join("cni-plugins");
    let bin = root.join("usr/lib/cni");
    if bin.join("host-local").is_file() && bin.join("tuning").is_file() {
        return Ok(bin);
    }
    let _ = fs::remove_dir_all(&root);
    PrivateApt::unpack(&[PLUGINS], &root)?;
    if !bin.join("host-local").is_file() {
        bail!("{PLUGINS} holds no usr/lib/cni/host-local");
    }
    Ok(bin)
}

/// Debian 12's host-local.
pub fn bookworm_host_local() -> Result<PathBuf> {
    let root = util::cache_dir().join("cni-plugins-bookworm");
    let exe = root.join("usr/lib/cni/host-local");
    if exe.is_file() {
        return Ok(exe);
    }
    let _ = fs::remove_dir_all(&root);
    PrivateApt::unpack(&[BOOKWORM_PLUGINS], &root)?;
    if !exe.is_file() {
        bail!("{BOOKWORM_PLUGINS} holds no usr/lib/cni/host-local");
    }
    Ok(exe)
}

/// The libcni runtime, built when its source is newer than the binary.
pub fn runtime() -> Result<PathBuf> {
    let root = util::cache_dir().join("cni-runtime");
    let toolchain = root.join("toolchain");
    let goroot = toolchain.join("usr/lib/go-1.23");
    let gocode = toolchain.join("usr/share/gocode");
    if !goroot.join("bin/go").is_file() || !gocode.join("src/github.com/containernetworking/cni/libcni").is_dir() {
        let _ = fs::remove_dir_all(&toolchain);
        let mut all: Vec<&str> = GO.to_vec();
        all.push(LIBCNI);
        PrivateApt::unpack(&all, &toolchain)?;
    }
    let source = util::workspace_root().join("xtask/cni-runtime/main.go");
    let exe = root.join("cni-runtime");
    let fresh = exe.metadata().and_then(|m| m.modified()).ok() > source.metadata().and_then(|m| m.modified()).ok();
    if fresh {
        return Ok(exe);
    }
    // GOPATH mode: libcni from the Debian package, our driver beside it.
    let gopath = root.join("gopath");
    let pkg = gopath.join("src/netkit/cni-runtime");
    fs::create_dir_all(&pkg)?;
    fs::copy(&source, pkg.join("main.go")).with_context(|| format!("copying {}", source.display()))?;
    println!("cni: building the libcni runtime with Debian's Go 1.23");
    util::run(
        Command::new(goroot.join("bin/go"))
            .args(["build", "-o"])
            .arg(&exe)
            .arg("netkit/cni-runtime")
            .env("GOROOT", &goroot)
            .env("GOPATH", format!("{}:{}", gopath.display(), gocode.display()))
            .env("GO111MODULE", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "")
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", root.join("gocache")),
    )
    .context("building xtask/cni-runtime with Go")?;
    Ok(exe)
}

/// promtool, from Debian's `promtool` package (sid; bookworm ships it inside
/// `prometheus`), for the metrics tests: `promtool check metrics`.
pub fn promtool() -> Result<PathBuf> {
    let root = util::cache_dir().join("promtool");
    let exe = root.join("usr/bin/promtool");
    if exe.is_file() {
        return Ok(exe);
    }
    let _ = fs::remove_dir_all(&root);
    PrivateApt::unpack(&["promtool/sid"], &root)?;
    if !exe.is_file() {
        bail!("promtool/sid holds no usr/bin/promtool");
    }
    Ok(exe)
}
