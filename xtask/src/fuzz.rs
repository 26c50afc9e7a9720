//! `cargo xtask fuzz [--time S] [--target NAME]...`: runs the cargo fuzz
//! targets in fuzz/ (libFuzzer with AddressSanitizer, debug assertions on),
//! each for S seconds, from a corpus kept in target/fuzz/corpus/NAME and
//! seeded with real inputs: the bundled eBPF objects and the C test objects
//! (object), and fuzz/seeds/NAME (README examples, test specs, the example
//! conflist), with a dictionary of each grammar's words (fuzz/dicts). An
//! input that breaks a target is left in
//! target/fuzz/artifacts/NAME; fuzz/regressions/NAME is where it goes once
//! fixed, so the unit tests run it from then on.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{build, setup, util};

/// The targets, as fuzz/Cargo.toml names them.
pub const TARGETS: &[&str] = &["object", "rule", "reference", "spec", "cni"];

/// The bundled programs' object names (the netkit library's build script).
const BUNDLED: &[&str] = &["pass", "drop", "next", "order", "counter", "firewall", "redirect-peer", "log"];

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Seconds per target.
    #[arg(long, value_name = "S", default_value_t = 600)]
    pub time: u64,
    /// Only this target (repeatable): object, rule, reference, spec, cni.
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
}

/// What one target's run found.
pub struct Outcome {
    pub target: String,
    pub runs: u64,
    /// libFuzzer's coverage counters and features at the end.
    pub cov: u64,
    pub features: u64,
    pub corpus: u64,
    pub seconds: f64,
    /// The input that broke the target, and why (the end of its report).
    pub failure: Option<(PathBuf, String)>,
}

pub fn run(opts: &Options) -> Result<ExitCode> {
    setup::run(&setup::Options::default())?;
    let targets: Vec<&str> = if opts.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        for t in &opts.targets {
            if !TARGETS.contains(&t.as_str()) {
                bail!("no fuzz target `{t}`; the targets are {}", TARGETS.join(", "));
            }
        }
        opts.targets.iter().map(String::as_str).collect()
    };
    let outcomes = fuzz(&targets, opts.time)?;
    println!("\n| target | runs | coverage (cov / ft) | corpus | seconds | result |");
    println!("|---|---:|---:|---:|---:|---|");
    for o in &outcomes {
        let result = match &o.failure {
            None => "no failure".to_string(),
            Some((path, _)) => format!("FAILED: {}", path.display()),
        };
        println!(
            "| {} | {} | {} / {} | {} | {:.0} | {result} |",
            o.target, o.runs, o.cov, o.features, o.corpus, o.seconds
        );
    }
    Ok(if outcomes.iter().all(|o| o.failure.is_none()) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn fuzz_target_dir() -> PathBuf {
    util::target_dir().join("fuzz-build")
}

/// `cargo +nightly fuzz SUBCOMMAND` from the workspace root.
fn cargo_fuzz(subcommand: &str) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(util::workspace_root()).args(["+nightly", "fuzz", subcommand]);
    cmd
}

/// Builds every target, seeds the corpora and runs each target for
/// `seconds`.
pub fn fuzz(targets: &[&str], seconds: u64) -> Result<Vec<Outcome>> {
    util::run(cargo_fuzz("build").arg("--target-dir").arg(fuzz_target_dir())).context("building the fuzz targets")?;
    let mut outcomes = Vec::new();
    for target in targets {
        let corpus = seed(target)?;
        outcomes.push(run_target(target, &corpus, seconds)?);
    }
    Ok(outcomes)
}

/// The corpus of `target`, with the seeds copied in.
fn seed(target: &str) -> Result<PathBuf> {
    let corpus = util::target_dir().join("fuzz/corpus").join(target);
    fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let mut seeds: Vec<PathBuf> = Vec::new();
    if let Ok(dir) = fs::read_dir(util::workspace_root().join("fuzz/seeds").join(target)) {
        seeds.extend(dir.flatten().map(|e| e.path()));
    }
    if target == "object" {
        seeds.extend(build::c_objects().context("building the C test objects")?);
        seeds.extend(bundled_objects()?);
    }
    for s in seeds {
        let name = s.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        fs::copy(&s, corpus.join(format!("seed-{name}"))).with_context(|| format!("copying {}", s.display()))?;
    }
    Ok(corpus)
}

/// The bundled eBPF objects the fuzz build's netkit library embedded.
fn bundled_objects() -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut dirs = vec![fuzz_target_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            // The library's build directory, netkit-HASH, holds them in out/.
            let library = name.strip_prefix("netkit-").is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
            if library && path.join("out").is_dir() {
                for b in BUNDLED {
                    let object = path.join("out").join(b);
                    if fs::metadata(&object).is_ok_and(|m| m.len() > 0) {
                        found.push(object);
                    }
                }
            } else if !library {
                dirs.push(path);
            }
        }
    }
    if found.is_empty() {
        bail!("no bundled eBPF objects under {}", fuzz_target_dir().display());
    }
    // One copy of each name (several builds may be there).
    found.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).and_then(|m| m.modified()).ok()));
    let mut seen = std::collections::BTreeSet::new();
    found.retain(|p| seen.insert(p.file_name().map(|n| n.to_owned())));
    Ok(found)
}

fn run_target(target: &str, corpus: &Path, seconds: u64) -> Result<Outcome> {
    let artifacts = util::target_dir().join("fuzz/artifacts").join(target);
    fs::create_dir_all(&artifacts)?;
    println!("\n=== fuzz {target}: {seconds} s from {}", corpus.display());
    let start = Instant::now();
    let mut cmd = cargo_fuzz("run");
    cmd.arg("--target-dir").arg(fuzz_target_dir()).arg(target).arg(corpus).arg("--");
    cmd.arg(format!("-max_total_time={seconds}"));
    // The words of the target's grammar, for libFuzzer's mutations.
    let dict = util::workspace_root().join("fuzz/dicts").join(format!("{target}.dict"));
    if dict.is_file() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    let mut child = cmd
        // A single input running longer than this is a hang.
        .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"])
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running fuzz target {target}"))?;
    // libFuzzer reports on stderr: its periodic lines are shown as they
    // come, everything is kept for the summary.
    let mut log = Vec::new();
    for line in BufReader::new(child.stderr.take().expect("piped")).lines().map_while(Result::ok) {
        if line.contains("pulse") || line.contains("DONE") || line.starts_with("Done ") {
            eprintln!("{line}");
        }
        log.push(line);
    }
    let status = child.wait()?;
    let seconds = start.elapsed().as_secs_f64();
    let mut o = Outcome { target: target.into(), runs: 0, cov: 0, features: 0, corpus: 0, seconds, failure: None };
    for line in &log {
        // "#123456	DONE   cov: 1234 ft: 5678 corp: 90/12Kb ..." and the
        // final stats "stat::number_of_executed_units: N".
        if let Some(rest) = line.strip_prefix("stat::number_of_executed_units:") {
            o.runs = rest.trim().parse().unwrap_or(0);
        }
        if line.starts_with('#') {
            let field = |key: &str| {
                line.split_whitespace().skip_while(|w| *w != key).nth(1).and_then(|v| v.split('/').next()?.parse().ok())
            };
            o.cov = field("cov:").unwrap_or(o.cov);
            o.features = field("ft:").unwrap_or(o.features);
            o.corpus = field("corp:").unwrap_or(o.corpus);
        }
    }
    if !status.success() {
        let artifact = log
            .iter()
            .find_map(|l| l.split("Test unit written to ").nth(1).map(|p| PathBuf::from(p.trim())))
            .unwrap_or_else(|| artifacts.clone());
        // The report: from the panic or sanitizer message on, without the
        // deeper stack frames.
        let from = log
            .iter()
            .position(|l| {
                l.contains("panicked at")
                    || l.contains("ERROR:")
                    || l.contains("deadly signal")
                    || l.contains("timeout")
            })
            .unwrap_or(log.len().saturating_sub(40));
        let mut frames = 0;
        let why: Vec<&str> = log[from..]
            .iter()
            .filter(|l| {
                let frame = l.trim_start().starts_with('#') && l.starts_with("    ");
                frames += usize::from(frame);
                !frame || frames <= 20
            })
            .map(String::as_str)
            .collect();
        let why = why.join("\n");
        eprintln!("{why}");
        o.failure = Some((artifact, why));
    }
    println!(
        "=== fuzz {target}: {} runs, cov {} ft {}, corpus {}, {:.0} s{}",
        o.runs,
        o.cov,
        o.features,
        o.corpus,
        o.seconds,
        if o.failure.is_some() { ", FAILED" } else { "" }
    );
    Ok(o)
}
