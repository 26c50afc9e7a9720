//! The programs bundled into the library (built from netkit-ebpf by the
//! build script, with the `bundled` feature): their names, hooks and `--set` settings, and how settings become
//! the load-time globals of an object.

use super::*;

/// A program that ships inside the library.
#[derive(Debug, Clone, Copy)]
pub struct Bundled {
    pub name: &'static str,
    /// The program (function) name in the object; BPF names have no '-'.
    pub function: &'static str,
    pub summary: &'static str,
    /// Which hooks the program suits.
    pub hooks: &'static str,
    /// What `--set KEY=VALUE` configures before it loads.
    pub settings: &'static [Setting],
    pub(super) object: &'static [u8],
}

/// A load-time setting of a bundled program: a read-only global.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub(crate) global: &'static str,
    pub(crate) kind: SettingKind,
    pub help: &'static str,
}

/// The type of a bundled program's setting, which decides how its value is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    /// A u32 of at least 1.
    Count,
    /// allow or deny, as a u8 (firewall actions).
    Action,
}

macro_rules! bundled {
    ($name:literal, $function:literal, $hooks:literal, $summary:literal, $settings:expr) => {
        Bundled {
            name: $name,
            function: $function,
            summary: $summary,
            hooks: $hooks,
            settings: $settings,
            object: include_bytes_aligned!(concat!(env!("OUT_DIR"), "/", $name)),
        }
    };
}

/// Every bundled program, in the order `netkit prog list` shows them.
pub const BUNDLED: &[Bundled] = &[
    bundled!("pass", "pass", "any", "lets every packet through and ends the chain (TCX_PASS)", &[]),
    bundled!("drop", "drop", "any", "drops every packet and ends the chain (TCX_DROP)", &[]),
    bundled!("next", "next", "any", "does nothing and hands the packet to the next program (TCX_NEXT)", &[]),
    bundled!(
        "counter",
        "counter",
        "any",
        "counts packets and bytes per CPU, then TCX_NEXT (netkit stats shows them)",
        &[]
    ),
    bundled!(
        "firewall",
        "firewall",
        "any; peer for what a pod sends, primary for what it receives",
        "allows (TCX_NEXT) or denies (TCX_DROP) IPv4/IPv6 by CIDR, protocol and destination port; rules change live with netkit firewall; hits per rule",
        &[Setting {
            key: "default",
            global: "DEFAULT_ACTION",
            kind: SettingKind::Action,
            help: "allow or deny packets no rule matches (default: allow)",
        }]
    ),
    bundled!(
        "redirect-peer",
        "redirect_peer",
        "ingress of a host-side device",
        "sends packets for known destination IPs straight into a netkit pair's peer (bpf_redirect_peer), the rest TCX_NEXT; entries change live with netkit redirect",
        &[]
    ),
    bundled!(
        "log",
        "log",
        "any",
        "logs protocol, addresses, ports and length of every SAMPLE-th packet (aya-log; follow with netkit logs), then TCX_NEXT",
        &[Setting {
            key: "sample",
            global: "SAMPLE",
            kind: SettingKind::Count,
            help: "log one packet in N per CPU (default: 1, every packet)"
        }]
    ),
    bundled!(
        "order",
        "order",
        "any",
        "records its position in the chain for each packet (counts in skb->mark) and returns TCX_NEXT; for checking the order programs run in",
        &[]
    ),
];

/// Turns `--set KEY=VALUE` options into read-only global values for `spec`,
/// checking keys and values before anything loads. Bundled programs know
/// their keys; for user objects KEY is the global's symbol, optionally typed
/// as NAME:u8|u16|u32|u64|i32|i64 (default u32).
pub fn globals(spec: &ProgSpec, sets: &[String]) -> Result<Vec<(String, Vec<u8>)>, ProgramError> {
    let mut out = Vec::new();
    for set in sets {
        let (key, value) = set
            .split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| ProgramError::Setting(format!("--set {set}: expected KEY=VALUE")))?;
        match spec {
            ProgSpec::Bundled(name) => {
                let b = Bundled::find(name)?;
                let s = b.settings.iter().find(|s| s.key == key).ok_or_else(|| {
                    let known: Vec<&str> = b.settings.iter().map(|s| s.key).collect();
                    ProgramError::Setting(if known.is_empty() {
                        format!("--set {key}: the bundled program {name} has no settings")
                    } else {
                        format!("--set {key}: {name} knows {}", known.join(", "))
                    })
                })?;
                let bytes = match s.kind {
                    SettingKind::Count => match value.parse::<u32>() {
                        Ok(n) if n >= 1 => n.to_ne_bytes().to_vec(),
                        _ => {
                            return Err(ProgramError::Setting(format!(
                                "--set {key}={value}: expected a whole number >= 1"
                            )));
                        }
                    },
                    SettingKind::Action => match value {
                        "allow" => vec![netkit_common::firewall::ACTION_ALLOW],
                        "deny" => vec![netkit_common::firewall::ACTION_DENY],
                        _ => return Err(ProgramError::Setting(format!("--set {key}={value}: expected allow or deny"))),
                    },
                };
                out.push((s.global.to_string(), bytes));
            }
            ProgSpec::File { .. } => {
                let (name, ty) = key.split_once(':').unwrap_or((key, "u32"));
                let bad = || ProgramError::Setting(format!("--set {set}: {value} is not a valid {ty}"));
                let bytes = match ty {
                    "u8" => value.parse::<u8>().map_err(|_| bad())?.to_ne_bytes().to_vec(),
                    "u16" => value.parse::<u16>().map_err(|_| bad())?.to_ne_bytes().to_vec(),
                    "u32" => value.parse::<u32>().map_err(|_| bad())?.to_ne_bytes().to_vec(),
                    "u64" => value.parse::<u64>().map_err(|_| bad())?.to_ne_bytes().to_vec(),
                    "i32" => value.parse::<i32>().map_err(|_| bad())?.to_ne_bytes().to_vec(),
                    "i64" => value.parse::<i64>().map_err(|_| bad())?.to_ne_bytes().to_vec(),
                    other => {
                        return Err(ProgramError::Setting(format!(
                            "--set {key}: unknown type {other} (u8, u16, u32, u64, i32, i64)"
                        )));
                    }
                };
                out.push((name.to_string(), bytes));
            }
            ProgSpec::Id(_) | ProgSpec::Pinned(_) => {
                return Err(ProgramError::Setting(
                    "--set configures a program before it loads; id: and pinned: programs are already loaded".into(),
                ));
            }
        }
    }
    Ok(out)
}

/// Set when the build skipped the eBPF programs (NETKIT_SKIP_EBPF=1).
pub(crate) const STUB_BUILD: bool = cfg!(netkit_ebpf_stub);

pub(super) fn bundled_names() -> String {
    BUNDLED.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
}

impl Bundled {
    pub(crate) fn find(name: &str) -> Result<&'static Self, ProgramError> {
        BUNDLED.iter().find(|b| b.name == name).ok_or_else(|| ProgramError::Unknown(name.into(), bundled_names()))
    }

    /// The ELF object, refusing the empty placeholder of a stub build.
    pub fn object(&self) -> Result<&'static [u8], ProgramError> {
        if STUB_BUILD || self.object.is_empty() {
            return Err(ProgramError::StubBuild);
        }
        Ok(self.object)
    }
}
