//! Developer tasks: `cargo xtask setup | vm | test | demo | bench | man | fuzz`.
//! Each subcommand is a module with its `Options` and `run()`.

mod bench;
mod build;
mod cni;
mod demo;
mod fuzz;
mod iproute2;
mod kernels;
mod man;
mod modules;
mod setup;
mod test;
mod util;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Set-up, VM tests, demo and benchmarks for netkit")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install everything the build and the VM tests need (idempotent).
    Setup(setup::Options),
    /// Boot a Debian kernel under qemu and run a command in it as root.
    Vm(vm::Options),
    /// Run every check and test: fmt, clippy, unit, host, VM per kernel.
    Test(test::Options),
    /// The main job, in a VM: netkit pairs, ordered programs, queries.
    Demo(demo::Options),
    /// Benchmarks: control plane against bare bpf() calls, bundled programs
    /// against C twins, chains, and netkit pairs in the VM.
    Bench(bench::Options),
    /// Write the manual pages (netkit(8) and one per subcommand) into a directory.
    Man(man::Options),
    /// Run the fuzz targets in fuzz/ (cargo fuzz), each for --time seconds.
    Fuzz(fuzz::Options),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup(o) => setup::run(&o).map(|()| ExitCode::SUCCESS),
        Command::Vm(o) => vm::run(&o),
        Command::Test(o) => test::run(&o),
        Command::Demo(o) => demo::run(&o),
        Command::Bench(o) => bench::run(&o),
        Command::Man(o) => man::run(&o),
        Command::Fuzz(o) => fuzz::run(&o),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
