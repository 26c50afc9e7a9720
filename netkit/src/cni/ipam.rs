//! Delegation to the IPAM plugin, as the protocol describes it: the binary
//! found in `CNI_PATH`, run with the plugin's own environment (only
//! `CNI_COMMAND` may differ) and the whole network configuration on
//! standard input; its standard error goes to ours; a failure's error
//! object is passed on as the plugin gave it.

use std::{
    io::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
};

use super::{CniError, Code, Env, Verb, result::CniResult};

/// Finds `kind` in the `CNI_PATH` directories.
pub fn find(kind: &str, env: &Env) -> Result<PathBuf, CniError> {
    let dirs: Vec<&str> = env.path.split(':').filter(|d| !d.is_empty()).collect();
    dirs.iter().map(|d| PathBuf::from(d).join(kind)).find(|p| p.is_file()).ok_or_else(|| {
        CniError::new(
            Code::InvalidConfig,
            format!("IPAM plugin `{kind}` not found"),
            if dirs.is_empty() {
                "CNI_PATH is empty: set it to the directories holding the plugins (usually /opt/cni/bin)".to_string()
            } else {
                format!("no `{kind}` in CNI_PATH ({}); install it there or fix `ipam.type`", dirs.join(":"))
            },
        )
    })
}

/// Runs the IPAM plugin with `command` and returns its result (ADD) or
/// nothing (the other commands).
pub fn exec(kind: &str, command: Verb, env: &Env, stdin: &[u8]) -> Result<Option<CniResult>, CniError> {
    let exe = find(kind, env)?;
    let mut child = Command::new(&exe)
        .env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CniError::new(Code::Io, format!("cannot run IPAM plugin {}", exe.display()), e.to_string()))?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin that exits without reading its input is judged by its answer.
        let _ = input.write_all(stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CniError::new(Code::Io, format!("waiting for IPAM plugin {}", exe.display()), e.to_string()))?;
    if !out.status.success() {
        let mut e = serde_json::from_slice::<CniError>(&out.stdout).unwrap_or_else(|_| {
            CniError::new(
                Code::Plugin,
                format!("IPAM plugin `{kind}` failed ({})", out.status),
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            )
        });
        if !e.msg.contains(kind) {
            e.msg = format!("IPAM plugin `{kind}` ({command}): {}", e.msg);
        }
        return Err(e);
    }
    if command != Verb::Add {
        return Ok(None);
    }
    serde_json::from_slice(&out.stdout).map(Some).map_err(|e| {
        CniError::new(
            Code::Decode,
            format!("IPAM plugin `{kind}` answered something that is not a result"),
            e.to_string(),
        )
    })
}
