//! Builds the bundled eBPF programs (netkit-ebpf) with the nightly toolchain and
//! bpf-linker, in a target directory of their own, and leaves one object per
//! program in OUT_DIR for `include_bytes_aligned!`.
//!
//! Without the `bundled` feature, or with `NETKIT_SKIP_EBPF=1` (for `cargo
//! check`/`clippy` on a machine without the eBPF toolchain), nothing is built:
//! empty placeholder objects are written and the `netkit_ebpf_stub` cfg is
//! set, so loading a bundled program is refused with a clear message instead
//! of handing the kernel empty bytes.

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};

/// Every `[[bin]]` of netkit-ebpf; one object each.
const PROGRAMS: &[&str] = &["pass", "drop", "next", "order", "counter", "firewall", "redirect-peer", "log"];

fn main() -> anyhow::Result<()> {
    println!("cargo::rustc-check-cfg=cfg(netkit_ebpf_stub)");
    println!("cargo:rerun-if-env-changed=NETKIT_SKIP_EBPF");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);

    let skip = env::var("NETKIT_SKIP_EBPF").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        println!(
            "cargo:warning=NETKIT_SKIP_EBPF is set: bundled eBPF programs are NOT built; this build of netkit cannot load them"
        );
    }
    #[cfg(feature = "bundled")]
    if !skip {
        return build(&out_dir);
    }
    println!("cargo:rustc-cfg=netkit_ebpf_stub");
    for name in PROGRAMS {
        fs::write(out_dir.join(name), b"").with_context(|| format!("writing stub for {name}"))?;
    }
    Ok(())
}

#[cfg(feature = "bundled")]
fn build(out_dir: &std::path::Path) -> anyhow::Result<()> {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or_else(|| anyhow!("CARGO_MANIFEST_DIR not set"))?);
    let ebpf_dir = manifest_dir.join("../netkit-ebpf");
    let ebpf_dir = ebpf_dir.to_str().ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package { name: "netkit-ebpf", root_dir: ebpf_dir, ..Default::default() }],
        aya_build::Toolchain::default(),
    )
    .context("building the eBPF programs failed (needs the nightly toolchain with rust-src and bpf-linker: run `cargo xtask setup`, or set NETKIT_SKIP_EBPF=1 to only check the code)")?;

    for name in PROGRAMS {
        let object = out_dir.join(name);
        let len = fs::metadata(&object)
            .with_context(|| format!("eBPF object {} missing after the build", object.display()))?
            .len();
        if len == 0 {
            return Err(anyhow!("eBPF object {} is empty", object.display()));
        }
    }
    Ok(())
}
