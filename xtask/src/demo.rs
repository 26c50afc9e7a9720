//! `cargo xtask demo`: the main job, in a VM on the newest kernel.

use std::{process::ExitCode, time::Duration};

use anyhow::Result;

use crate::{build, kernels, kernels::KernelSpec, setup, vm::Guest};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Kernel to boot: a series (6.12, 6.18), `latest`, or a kernel image path.
    #[arg(long, default_value = "latest")]
    pub kernel: KernelSpec,
}

const SCRIPT: &str = r#"
set -e
say() { printf '\n### %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
say "What this kernel supports"
run netkit probe
"#;

pub fn run(opts: &Options) -> Result<ExitCode> {
    setup::run(&setup::Options::default())?;
    let kernel = kernels::resolve(&opts.kernel, false)?;
    let bins = build::guest_binaries(false)?;
    let outcome = Guest::new(&kernel, &bins)?.script(SCRIPT).timeout(Duration::from_secs(600)).boot(&mut |_| {})?;
    if outcome.exit_code != 0 {
        anyhow::bail!("the demo failed in the guest (exit code {})", outcome.exit_code);
    }
    println!("demo: done (kernel {}, {})", outcome.kernel_release, outcome.accel);
    Ok(ExitCode::SUCCESS)
}
