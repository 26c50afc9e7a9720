//! The commands a node's scripts run most, `query` and `device list`, read
//! without building clap's command tree: a process per command, and clap's
//! tree is much of what such a process does before it asks the kernel
//! anything (see `cargo xtask bench --only startup`). Only the plain forms
//! are read here: the words of the command, `-j`/`--json`, `-n NETNS`,
//! `--bpffs DIR`, and `--all` after `device list`. Anything else (another
//! command, another option or spelling, help, a repeated option, a value
//! that does not parse, NETKIT_BPFFS in the environment) gives None, and
//! clap reads the line as always; the tests hold both readers to the same
//! result.

use std::{ffi::OsString, path::PathBuf};

use super::{Cli, Command, DeviceCommand, HOOKS};

/// The command line `args` (program name first), when it has a plain form.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Option<Cli> {
    let (mut netns, mut json, mut bpffs, mut all) = (None, false, None, false);
    let mut words: Vec<String> = Vec::new();
    let mut args = args.into_iter().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.into_string().ok()?;
        match arg.as_str() {
            "-j" | "--json" if !json => json = true,
            "-n" | "--netns" if netns.is_none() => netns = Some(value(&mut args)?.parse().ok()?),
            "--bpffs" if bpffs.is_none() => bpffs = Some(PathBuf::from(value(&mut args)?)),
            "--all" if words == ["device", "list"] && !all => all = true,
            a if a.is_empty() || a.starts_with('-') => return None,
            _ => words.push(arg),
        }
    }
    let bpffs = match bpffs {
        Some(dir) => dir,
        None if std::env::var_os("NETKIT_BPFFS").is_some() => return None,
        None => PathBuf::from("/sys/fs/bpf"),
    };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let hook = |name: &str| HOOKS.0.iter().find(|h| h.1 == name).map(|h| h.0);
    let command = match words[..] {
        ["query"] => Command::Query { dev: None, hook: None },
        ["query", dev] => Command::Query { dev: Some(dev.into()), hook: None },
        ["query", dev, h] => Command::Query { dev: Some(dev.into()), hook: Some(hook(h)?) },
        ["device", "list"] => Command::Device(DeviceCommand::List { all }),
        _ => return None,
    };
    Some(Cli { netns, json, bpffs, batch: None, force: false, command: Some(command) })
}

/// An option's value; None for a word clap would take for an option.
fn value(args: &mut impl Iterator<Item = OsString>) -> Option<String> {
    args.next().and_then(|v| v.into_string().ok()).filter(|v| !v.is_empty() && !v.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        std::iter::once("netkit").chain(line.split(' ').filter(|w| !w.is_empty())).map(OsString::from).collect()
    }

    /// Where the fast reader answers, clap reads the same.
    fn same(line: &str) -> bool {
        let Some(fast) = parse(args(line)) else { return false };
        let clap = Cli::try_parse_from(args(line)).unwrap_or_else(|e| panic!("{line}: clap refuses it: {e}"));
        assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{line}");
        true
    }

    #[test]
    fn the_plain_forms_read_as_clap_reads_them() {
        for line in [
            "query",
            "query pod0",
            "query pod0 ingress",
            "query pod0 peer -j",
            "-j query pod0 primary",
            "--bpffs /tmp/b query pod0 egress",
            "query pod0 egress --bpffs /tmp/b --json",
            "-n pod1 query eth0 ingress",
            "--netns /proc/1/ns/net query",
            "query help",
            "device list",
            "device list --all",
            "-j device list --all",
            "device list -n pid:1 --all -j",
        ] {
            assert!(same(line), "{line}: not read fast");
        }
    }

    #[test]
    fn anything_else_is_left_to_clap() {
        for line in [
            "",
            "query pod0 sideways",
            "query pod0 ingress extra",
            "query --help",
            "query -h",
            "query pod0 ingress -jj",
            "-j -j query",
            "--json=true query",
            "--netns=pod1 query",
            "-n -j query",
            "--bpffs",
            "device --all list",
            "device list --all --all",
            "device show pod0",
            "device",
            "attach pod0 ingress counter",
            "-b lines.txt",
            "--version",
            "query -- -pod0",
        ] {
            assert!(!same(line), "{line}: read fast");
        }
    }
}
