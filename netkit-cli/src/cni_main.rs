//! `netkit-cni`: the CNI plugin binary. The protocol lives in the library
//! (`netkit::cni`); this reads the environment and standard input, prints
//! the answer and exits non-zero on failure, as runtimes expect.

use std::{
    io::{Read as _, Write as _},
    process::ExitCode,
};

use netkit::cni::{self, CniError, Code, Env};

/// As for `netkit`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let env = Env::from_process();
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => cni::run(&env, &stdin),
        Err(e) => {
            let err =
                CniError::new(Code::Io, "cannot read the network configuration from standard input", e.to_string())
                    .version(cni::SUPPORTED_VERSIONS[cni::SUPPORTED_VERSIONS.len() - 1]);
            cni::Outcome { stdout: serde_json::to_string(&err).unwrap_or_default(), ok: false }
        }
    };
    let mut out = std::io::stdout().lock();
    if !outcome.stdout.is_empty() {
        let _ = writeln!(out, "{}", outcome.stdout);
    }
    let _ = out.flush();
    if outcome.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
