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

/// The CNI versions the IPAM plugin speaks, from its VERSION answer.
pub fn versions(kind: &str, env: &Env) -> Result<Vec<String>, CniError> {
    #[derive(serde::Deserialize)]
    struct Versions {
        #[serde(rename = "supportedVersions", default)]
        supported: Vec<String>,
    }
    let out = run(kind, Verb::Version, env, br#"{"cniVersion":"1.1.0"}"#)?;
    let v: Versions = serde_json::from_slice(&out).map_err(|e| {
        CniError::new(
            Code::Decode,
            format!("IPAM plugin `{kind}` answered VERSION with something that is not a version list"),
            e.to_string(),
        )
    })?;
    Ok(v.supported)
}

/// Whether the IPAM plugin speaks CNI 1.1.0, which brought GC and STATUS.
/// Older plugins (the reference plugins before 1.2, as Debian 12 ships
/// them) fail on either, so neither is passed on to them.
pub fn speaks_1_1(kind: &str, env: &Env) -> Result<bool, CniError> {
    Ok(versions(kind, env)?.iter().any(|v| v == "1.1.0"))
}

/// Runs the IPAM plugin with `command` and returns its result (ADD) or
/// nothing (the other commands). A plugin that refuses the configuration's
/// CNI version (1.1.0) but speaks 1.0.0 is given it again as 1.0.0: ADD,
/// DEL and CHECK and their results are the same in both.
pub fn exec(kind: &str, command: Verb, env: &Env, stdin: &[u8]) -> Result<Option<CniResult>, CniError> {
    let out = match run(kind, command, env, stdin) {
        Err(e) if e.code == Code::IncompatibleVersion as u32 => match as_1_0(stdin) {
            Some(older) if versions(kind, env)?.iter().any(|v| v == "1.0.0") => run(kind, command, env, &older)?,
            _ => return Err(e),
        },
        other => other?,
    };
    if command != Verb::Add {
        return Ok(None);
    }
    serde_json::from_slice(&out).map(Some).map_err(|e| {
        CniError::new(
            Code::Decode,
            format!("IPAM plugin `{kind}` answered something that is not a result"),
            e.to_string(),
        )
    })
}

/// A 1.1.0 configuration as 1.0.0, or None when it is not 1.1.0.
fn as_1_0(stdin: &[u8]) -> Option<Vec<u8>> {
    let mut conf: serde_json::Value = serde_json::from_slice(stdin).ok()?;
    if conf.get("cniVersion")?.as_str()? != "1.1.0" {
        return None;
    }
    conf["cniVersion"] = "1.0.0".into();
    serde_json::to_vec(&conf).ok()
}

/// Runs the IPAM plugin with `command` and returns its standard output,
/// or its error object when it fails.
fn run(kind: &str, command: Verb, env: &Env, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let exe = find(kind, env)?;
    // The runtime's environment, with the command and the attachment this
    // call is about (GC releases attachments one by one).
    let mut child = Command::new(&exe)
        .env("CNI_COMMAND", command.as_str())
        .env("CNI_CONTAINERID", &env.container_id)
        .env("CNI_IFNAME", &env.ifname)
        .env("CNI_NETNS", &env.netns)
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
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1_1_0_configuration_is_given_again_as_1_0_0_and_only_that() {
        let older = as_1_0(br#"{"cniVersion":"1.1.0","name":"pods","ipam":{"type":"host-local"}}"#).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&older).unwrap();
        assert_eq!(v, serde_json::json!({"cniVersion": "1.0.0", "name": "pods", "ipam": {"type": "host-local"}}));
        assert_eq!(as_1_0(br#"{"cniVersion":"1.0.0"}"#), None, "a 1.0.0 refusal is the plugin's to say");
        assert_eq!(as_1_0(b"not json"), None);
    }
}
