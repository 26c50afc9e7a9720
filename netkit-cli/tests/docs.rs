//! What an operator installs beside the binary: the completion scripts
//! (checked by the shells themselves, and driven: bash's completion
//! function and fish's `complete -C` ask the binary) and the manual pages
//! (rendered by man and groff with every warning on). The shells and groff
//! come with `cargo xtask setup` on the host; where one is missing (the VM
//! guest has only busybox) its part is skipped, and says so.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::{TestNs, stdout};

fn have(program: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().is_ok_and(|o| o.status.success())
}

/// The directory of the binary under test, to put first on PATH: the
/// scripts call `netkit` by name, as an installed one would be.
fn bin_dir() -> PathBuf {
    common::bin().parent().unwrap().to_path_buf()
}

fn path_env() -> String {
    format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default())
}

fn script(shell: &str) -> PathBuf {
    let text = common::ok(&["completions", shell]);
    let path =
        std::env::temp_dir().join(format!("netkit-completion-{}-{}.{shell}", std::process::id(), common::unique()));
    std::fs::write(&path, text).unwrap();
    path
}

/// The words bash's completion function offers for `line` (completing its
/// last word; an empty last word when the line ends in a space).
fn bash_complete(script: &Path, line: &str, netns: Option<&TestNs>) -> Vec<String> {
    let mut words: Vec<String> = line.split_whitespace().map(String::from).collect();
    if line.ends_with(' ') {
        words.push(String::new());
    }
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        r#"source {script}
spec=$(complete -p netkit) || exit 3
fn=${{spec##*-F }}; fn=${{fn%% *}}
COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}
"$fn" netkit "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script = script.display(),
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.path.display())).arg("bash");
            c
        }
        None => Command::new("bash"),
    };
    let o = cmd.args(["--norc", "-c", &program]).env("PATH", path_env()).output().unwrap();
    assert!(o.status.success(), "bash completion of `{line}` failed: {}", common::stderr(&o));
    stdout(&o).lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

#[test]
fn bash_completes_subcommands_flags_hooks_and_devices() {
    if !have("bash") {
        common::skip("no bash here");
        return;
    }
    let script = script("bash");
    let check = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", common::stderr(&check));

    assert_eq!(bash_complete(&script, "netkit dev", None), ["device"]);
    assert_eq!(bash_complete(&script, "netkit attach lo ingress pass --pi", None), ["--pin"]);
    let hooks = bash_complete(&script, "netkit query lo ", None);
    for hook in ["ingress", "egress", "primary", "peer"] {
        assert!(hooks.iter().any(|h| h == hook), "no {hook} in {hooks:?}");
    }
    // Device names come from the namespace the line names with -n (a
    // dump in that namespace, not this one's sysfs).
    require_root!();
    let ns = TestNs::new("comp");
    ns.ip_ok(&["link", "add", "cmpdev0", "type", "veth", "peer", "name", "cmpdev1"]);
    let line = format!("netkit -n {} attach cmp", ns.name);
    assert_eq!(bash_complete(&script, &line, None), ["cmpdev0", "cmpdev1"]);
    assert!(bash_complete(&script, "netkit attach cmp", None).is_empty(), "a device of another namespace was offered");
    // Without -n: the namespace the shell runs in.
    assert_eq!(bash_complete(&script, "netkit device show cmpdev1", Some(&ns)), ["cmpdev1"]);
    let _ = std::fs::remove_file(script);
}

#[test]
fn zsh_and_fish_scripts_are_valid_and_fish_completes() {
    for (shell, check) in [("zsh", vec!["-n"]), ("fish", vec!["--no-execute"])] {
        if !have(shell) {
            common::skip(&format!("no {shell} here (cargo xtask setup installs it)"));
            continue;
        }
        let script = script(shell);
        let o = Command::new(shell).args(&check).arg(&script).output().unwrap();
        assert!(o.status.success(), "{shell} {check:?}: {}", common::stderr(&o));
        if shell == "fish" {
            let program = format!(
                "source {}; complete -C 'netkit dev'; complete -C 'netkit attach lo ingress pass --pi'",
                script.display()
            );
            let o = Command::new("fish").args(["-c", &program]).env("PATH", path_env()).output().unwrap();
            let text = stdout(&o);
            assert!(text.lines().any(|l| l.starts_with("device\t")), "fish offered no `device`: {text}");
            assert!(text.lines().any(|l| l.starts_with("--pin\t")), "fish offered no `--pin`: {text}");
        }
        let _ = std::fs::remove_file(script);
    }
}

#[test]
fn every_subcommand_has_a_manual_page_that_renders_cleanly() {
    if !have("groff") || !have("man") {
        common::skip("no groff or man here (cargo xtask setup installs them)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("netkit-man-{}-{}", std::process::id(), common::unique()));
    common::ok(&["man", &dir.display().to_string()]);
    let mut pages: Vec<String> =
        std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    pages.sort();
    // One page per command a user can type: every line of `--help`'s
    // command lists, followed down.
    fn commands(prefix: &[&str], out: &mut Vec<String>) {
        let mut args: Vec<&str> = prefix.to_vec();
        args.push("--help");
        let help = common::ok(&args);
        out.push(format!("netkit{}.8", prefix.iter().map(|p| format!("-{p}")).collect::<String>()));
        let list = help.split("Commands:").nth(1).unwrap_or_default();
        let list = list.split("\n\n").next().unwrap_or_default();
        for line in list.lines() {
            let Some(name) = line.split_whitespace().next() else { continue };
            if name == "help" {
                continue;
            }
            let mut sub = prefix.to_vec();
            sub.push(name);
            commands(&sub, out);
        }
    }
    let mut wanted = Vec::new();
    commands(&[], &mut wanted);
    wanted.sort();
    assert_eq!(pages, wanted);
    for page in &pages {
        let path = dir.join(page);
        let groff = Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(&path).output().unwrap();
        assert!(groff.status.success() && groff.stderr.is_empty(), "groff on {page}: {}", common::stderr(&groff));
        let man = Command::new("man").args(["--warnings", "-l"]).arg(&path).env("MANWIDTH", "80").output().unwrap();
        assert!(man.status.success() && man.stderr.is_empty(), "man -l {page}: {}", common::stderr(&man));
        let text = stdout(&man);
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"] {
            assert!(text.contains(section), "{page} has no {section}");
        }
        let leaf = !text.contains("SUBCOMMANDS");
        assert!(!leaf || text.contains("EXAMPLES"), "{page} has no EXAMPLES");
    }
    let _ = std::fs::remove_dir_all(dir);
}
