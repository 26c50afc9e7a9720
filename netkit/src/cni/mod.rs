//! The CNI plugin (`netkit-cni`): pods on netkit pairs for any runtime that
//! speaks the Container Network Interface (CNI 1.0.0 and 1.1.0). A runtime
//! runs the plugin with `CNI_COMMAND` and the other parameters in the
//! environment and the network configuration on standard input; the plugin
//! answers a result or an error object on standard output.
//!
//! ADD creates the pair with its peer directly in the container's
//! namespace and its peer policy at drop, has the IPAM plugin allocate
//! addresses, attaches the configured chains (the apply engine, pinned under
//! a per-attachment directory), sets addresses and routes, and only then
//! lets the pod's traffic through. Every attachment is recorded before
//! anything is made, so DEL, GC and a failed ADD remove exactly what it made.

pub(crate) mod attach;
mod check;
pub mod config;
mod fail;
mod ipam;
mod network;
pub mod result;

use serde::{Deserialize, Serialize};

pub use config::{NetConf, SUPPORTED_VERSIONS};

/// The protocol's well-known error codes, and this plugin's own (100+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1: incompatible CNI version.
    IncompatibleVersion = 1,
    /// 2: unsupported field in the network configuration.
    UnsupportedField = 2,
    /// 3: container unknown or does not exist.
    UnknownContainer = 3,
    /// 4: invalid necessary environment variables.
    InvalidEnv = 4,
    /// 5: I/O failure.
    Io = 5,
    /// 6: failed to decode content.
    Decode = 6,
    /// 7: invalid network configuration.
    InvalidConfig = 7,
    /// 11: try again later.
    TryAgain = 11,
    /// 50: the plugin cannot serve ADD here (STATUS).
    NotAvailable = 50,
    /// 100: the kernel or the node refused a step.
    Plugin = 100,
    /// 101: CHECK found the attachment other than it was made.
    CheckFailed = 101,
}

/// The protocol's error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{msg}: {details}")]
pub struct CniError {
    /// The version in use.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// A well-known code (below 100) or this plugin's own.
    pub code: u32,
    /// What went wrong, short.
    pub msg: String,
    /// The whole story, with what to do.
    #[serde(default)]
    pub details: String,
}

impl CniError {
    /// An error with `code`.
    pub fn new(code: Code, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self { cni_version: String::new(), code: code as u32, msg: msg.into(), details: details.into() }
    }

    /// The same error in protocol version `v`.
    pub fn version(mut self, v: &str) -> Self {
        self.cni_version = v.into();
        self
    }
}

/// The parameters a runtime passes in the environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// CNI_COMMAND, as given (see [`Verb`]).
    pub command: String,
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS.
    pub netns: String,
    /// CNI_IFNAME.
    pub ifname: String,
    /// CNI_ARGS.
    pub args: String,
    /// CNI_PATH.
    pub path: String,
}

impl Env {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        Self {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: var("CNI_ARGS"),
            path: var("CNI_PATH"),
        }
    }

    /// Checks the variables every command but VERSION needs: a valid
    /// container id and interface name, and with `netns` (ADD and CHECK)
    /// the container's network namespace path.
    pub fn require(&self, netns: bool) -> Result<(), CniError> {
        let mut bad = Vec::new();
        if !valid_container_id(&self.container_id) {
            bad.push(format!(
                "CNI_CONTAINERID (`{}`: letters, digits, `_`, `.` and `-`, starting with a letter or digit)",
                self.container_id
            ));
        }
        if let Err(e) = crate::netlink::ifname::check(&self.ifname) {
            bad.push(format!("CNI_IFNAME (`{}`: {e})", self.ifname));
        }
        if netns && !self.netns.starts_with('/') {
            bad.push(format!("CNI_NETNS (`{}`: the path of the container's network namespace)", self.netns));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(CniError::new(
                Code::InvalidEnv,
                format!("invalid environment for {}", self.command),
                format!("set {}", bad.join("; ")),
            ))
        }
    }
}

/// The protocol's rule for container ids (they become paths here).
fn valid_container_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// What the plugin prints and how it exits.
#[derive(Debug)]
pub struct Outcome {
    /// Standard output (a result, a version answer or an error object; may be empty).
    pub stdout: String,
    /// Success or failure.
    pub ok: bool,
}

/// Runs one CNI command: `env` from the environment, `stdin` the network
/// configuration. Never panics on bad input: every failure is an error object.
pub fn run(env: &Env, stdin: &[u8]) -> Outcome {
    let version = config::version_of(stdin);
    let answer = |r: Result<Option<String>, CniError>| match r {
        Ok(out) => Outcome { stdout: out.unwrap_or_default(), ok: true },
        Err(mut e) => {
            if e.cni_version.is_empty() {
                e.cni_version = version
                    .clone()
                    .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
                    .unwrap_or_else(|| SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.len() - 1].into());
            }
            Outcome { stdout: serde_json::to_string(&e).unwrap_or_default(), ok: false }
        }
    };
    match env.command.parse::<Verb>() {
        Ok(Verb::Version) => {
            let v = serde_json::json!({
                "cniVersion": version.clone().unwrap_or_else(|| SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.len() - 1].into()),
                "supportedVersions": SUPPORTED_VERSIONS,
            });
            answer(Ok(Some(v.to_string())))
        }
        // The commands drive netlink on a runtime of their own.
        Ok(verb) => answer(crate::runtime::outside(|| dispatch(verb, env, stdin))),
        Err(e) => answer(Err(e)),
    }
}

/// A CNI command (CNI_COMMAND).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verb {
    /// ADD: attach a container.
    Add,
    /// DEL: detach it (idempotent).
    Del,
    /// CHECK: is it still as ADD left it.
    Check,
    /// GC: drop attachments the runtime no longer knows (CNI 1.1).
    Gc,
    /// STATUS: can the plugin take ADDs (CNI 1.1).
    Status,
    /// VERSION: the versions this plugin speaks.
    Version,
}

impl Verb {
    const ALL: [Self; 6] = [Self::Add, Self::Del, Self::Check, Self::Gc, Self::Status, Self::Version];

    /// The word, as in CNI_COMMAND.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Gc => "GC",
            Self::Status => "STATUS",
            Self::Version => "VERSION",
        }
    }
}

impl std::str::FromStr for Verb {
    type Err = CniError;

    fn from_str(s: &str) -> Result<Self, CniError> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            CniError::new(
                Code::InvalidEnv,
                format!("unknown CNI_COMMAND `{s}`"),
                "CNI_COMMAND is one of ADD, DEL, CHECK, GC, STATUS, VERSION",
            )
        })
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn dispatch(verb: Verb, env: &Env, stdin: &[u8]) -> Result<Option<String>, CniError> {
    let conf = config::parse(stdin, matches!(verb, Verb::Add | Verb::Check))?;
    let v = conf.cni_version.clone();
    if matches!(verb, Verb::Gc | Verb::Status) && v == "1.0.0" {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!("{verb} needs CNI 1.1.0"),
            format!("the configuration says cniVersion {v}; GC and STATUS came with 1.1.0"),
        ));
    }
    let out = match verb {
        Verb::Add => {
            env.require(true)?;
            let result = attach::add(env, &conf)?;
            Some(
                serde_json::to_string(&result)
                    .map_err(|e| CniError::new(Code::Io, "writing the result", e.to_string()))?,
            )
        }
        Verb::Del => {
            env.require(false)?;
            attach::del(env, &conf)?;
            None
        }
        Verb::Check => {
            env.require(true)?;
            check::check(env, &conf)?;
            None
        }
        Verb::Gc => {
            attach::gc(env, &conf)?;
            None
        }
        Verb::Status => {
            attach::status(env, &conf)?;
            None
        }
        // Answered by `run` before any configuration is read.
        Verb::Version => None,
    };
    Ok(out)
}
