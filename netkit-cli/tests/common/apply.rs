//! Driving `netkit apply`, `diff` and `export` from a test: specs written to
//! files, the ownership record in a private directory, and the state read
//! by the witnesses (BPF_PROG_QUERY, `ip -d -j link show`).
#![allow(dead_code)]

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use super::{stderr, stdout, unique};

/// A spec file and an ownership record, removed on drop.
pub struct Files {
    pub dir: PathBuf,
}

impl Default for Files {
    fn default() -> Self {
        Self::new()
    }
}

impl Files {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("netkit-apply-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    pub fn state(&self) -> String {
        self.dir.join("state.json").display().to_string()
    }

    /// Writes `text` as a spec; returns its path.
    pub fn spec(&self, text: &str) -> String {
        let p = self.dir.join(format!("spec-{}.yaml", unique()));
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    pub fn record(&self) -> serde_json::Value {
        std::fs::read(self.state()).ok().map(|b| serde_json::from_slice(&b).unwrap()).unwrap_or(serde_json::Value::Null)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Files {
    /// `cmd VERB -f SPEC --state STATE EXTRA` (`cmd`: `netkit -n NS --bpffs
    /// DIR`), with `NETKIT_FAULT` set when a fault is asked for.
    pub fn run(&self, mut cmd: Command, verb: &str, spec: &str, extra: &[&str], fault: Option<&str>) -> Output {
        let path = self.spec(spec);
        cmd.args([verb, "-f", &path, "--state", &self.state()]).args(extra);
        if let Some(f) = fault {
            cmd.env("NETKIT_FAULT", f);
        }
        cmd.output().expect("netkit runs")
    }

    /// As [`Files::run`] with `apply`, expecting success; returns stdout.
    pub fn apply(&self, cmd: Command, spec: &str, extra: &[&str]) -> String {
        let o = self.run(cmd, "apply", spec, extra, None);
        assert!(o.status.success(), "apply failed:\n{}{}", stdout(&o), stderr(&o));
        stdout(&o)
    }
}
