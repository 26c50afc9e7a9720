use std::{io, process::ExitCode};

use clap::Parser as _;
use netkit::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match netkit::app::run(&cli, &mut io::stdout().lock(), &mut io::stderr().lock()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
