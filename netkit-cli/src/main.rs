use std::{io, process::ExitCode};

use clap::{CommandFactory as _, FromArgMatches as _};

use crate::cli::Cli;

mod cli;
mod commands;
mod render;

/// mimalloc, built as v2 without transparent huge pages (see the workspace
/// Cargo.toml): musl's own allocator makes a long batch several times
/// slower (`cargo xtask bench --only startup`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The command's runtime: current-thread, on the main thread, so every
/// socket and bpf(2) call stays on the thread that entered the namespace
/// (`-n`). The library's async operations run on it; its plain functions
/// that need threads of their own start them.
fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

fn main() -> ExitCode {
    // A shell asking for completions (COMPLETE=SHELL, set by the script
    // `netkit completions SHELL` prints) is answered here, and the process ends.
    clap_complete::CompleteEnv::with_factory(Cli::command).complete();
    let mut command = Cli::command();
    let matches = command.get_matches_mut();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command).exit());
    // The command tree is large and the process short-lived: the exit
    // frees it at no cost, where dropping it here frees every piece.
    std::mem::forget((command, matches));
    match commands::run(&cli, &mut io::stdout().lock(), &mut io::stderr().lock()) {
        Ok(code) => code,
        // A closed pipe (`netkit query | head`) is the reader's choice, not an error.
        Err(e)
            if e.chain()
                .any(|c| c.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
