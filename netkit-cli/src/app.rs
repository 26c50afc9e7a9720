//! Runs one parsed command: validates, calls the operations, writes output.

use std::{io::Write, process::ExitCode};

use anyhow::Result;

use crate::{
    cli::{Cli, Command},
    output, probe,
};

/// Runs `cli`, writing results to `out` and hints to `err`.
pub fn run(cli: &Cli, out: &mut impl Write, err: &mut impl Write) -> Result<ExitCode> {
    match &cli.command {
        Command::Probe => {
            let report = probe::Report::collect(&cli.bpffs);
            if cli.json {
                output::json(out, &report)?;
            } else {
                output::probe(out, &report)?;
            }
            for hint in &report.hints {
                writeln!(err, "hint: {hint}")?;
            }
            Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
