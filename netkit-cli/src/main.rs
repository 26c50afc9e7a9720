use std::{io, process::ExitCode};

use clap::{CommandFactory as _, Parser as _};

use crate::cli::Cli;

mod cli;
mod commands;
mod render;

fn main() -> ExitCode {
    // A shell asking for completions (COMPLETE=SHELL, set by the script
    // `netkit completions SHELL` prints) is answered here, and the process ends.
    clap_complete::CompleteEnv::with_factory(Cli::command).complete();
    let cli = Cli::parse();
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
