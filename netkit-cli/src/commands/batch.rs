//! `netkit --batch FILE`: many commands in one process, one per line, the
//! way `ip -batch` and `bpftool batch file` take them. Each line is split
//! like a shell would split it (quotes, backslashes; no expansion), parsed
//! exactly as the words after `netkit` on a command line, and run; its `-n`
//! lasts for that line only.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::ExitCode,
};

use anyhow::{Context as _, Result, bail};
use clap::Parser as _;

use crate::cli::Cli;

/// One line's words, or None for a blank line or a comment.
fn words(line: &str) -> Result<Option<Vec<String>>> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    match shlex::split(trimmed) {
        Some(w) => Ok(Some(w)),
        None => bail!("unbalanced quotes or a trailing backslash"),
    }
}

/// Parses and runs one line; a failure comes back as its message.
fn run_line(outer: &Cli, words: Vec<String>, out: &mut impl Write, err: &mut impl Write) -> Result<ExitCode> {
    let mut argv = vec!["netkit".to_string()];
    // The file's own --bpffs and -j are the default for its lines.
    if outer.json {
        argv.push("--json".into());
    }
    argv.push(format!("--bpffs={}", outer.bpffs.display()));
    argv.extend(words);
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        // --help and --version on a line print and count as success.
        Err(e) if !e.use_stderr() => {
            write!(out, "{e}")?;
            return Ok(ExitCode::SUCCESS);
        }
        // clap's first line says what is wrong; its usage lines would
        // drown the line number.
        Err(e) => {
            let text = e.to_string();
            bail!("{}", text.lines().next().unwrap_or_default().trim_start_matches("error: "))
        }
    };
    if cli.batch.is_some() {
        bail!("--batch cannot be nested inside a batch file");
    }
    let _visit = outer.netns.as_ref().map(netkit::os::netns::Visit::enter).transpose()?;
    super::run(&cli, out, err)
}

/// Runs every line of `file` (`-`: standard input).
pub fn run(cli: &Cli, file: &Path, out: &mut impl Write, err: &mut impl Write) -> Result<ExitCode> {
    let reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("opening batch file {}", file.display()))?;
        Box::new(BufReader::new(f))
    };
    let shown = if file == Path::new("-") { "standard input".to_string() } else { file.display().to_string() };
    let mut failed = 0usize;
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("reading line {n} of {shown}"))?;
        let result = words(&line).and_then(|w| match w {
            Some(w) => run_line(cli, w, out, err).map(Some),
            None => Ok(None),
        });
        let failure = match result {
            Ok(None) => continue,
            Ok(Some(code)) if code == ExitCode::SUCCESS => continue,
            // A command that reports by its exit status (probe) has printed why.
            Ok(Some(_)) => "it exited with a failure status".to_string(),
            Err(e) => format!("{e:#}"),
        };
        out.flush()?;
        failed += 1;
        if !cli.force {
            bail!("{shown} line {n}: {failure} (`{}`); the lines after it were not run", line.trim());
        }
        writeln!(err, "error: {shown} line {n}: {failure} (`{}`)", line.trim())?;
    }
    if failed > 0 {
        writeln!(err, "{failed} line(s) of {shown} failed")?;
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_like_a_shell_and_comments_are_skipped() {
        assert_eq!(words("  # a comment").unwrap(), None);
        assert_eq!(words("").unwrap(), None);
        assert_eq!(
            words(r#"firewall add nk0 peer "src 10.0.0.2" deny"#).unwrap().unwrap(),
            ["firewall", "add", "nk0", "peer", "src 10.0.0.2", "deny"]
        );
        assert!(words("attach 'nk0 ingress").unwrap_err().to_string().contains("unbalanced"));
    }
}
