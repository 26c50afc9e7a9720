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

/// Runs `cmd` (a `netkit -n NS --bpffs DIR` command) with `args`.
pub fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args).output().expect("netkit runs")
}

pub fn ok(cmd: Command, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(o.status.success(), "netkit {args:?} failed ({}):\n{}{}", o.status, stdout(&o), stderr(&o));
    stdout(&o)
}
