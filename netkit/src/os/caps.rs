//! The capabilities of this process that matter to the tool, read from
//! /proc/self/status, for checks and for messages that name what is missing.

use std::fs;

use serde::Serialize;

/// Capabilities that matter to this tool.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Capabilities {
    /// CAP_BPF: load programs, create maps.
    pub cap_bpf: bool,
    /// CAP_NET_ADMIN: attach to network hooks, create devices.
    pub cap_net_admin: bool,
    /// CAP_SYS_ADMIN: enter other network namespaces, and BPF on kernels without CAP_BPF.
    pub cap_sys_admin: bool,
    pub(crate) cap_perfmon: bool,
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

impl Capabilities {
    /// The effective set of this process.
    pub(crate) fn effective() -> Self {
        let eff = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(0);
        let has = |cap: u32| eff & (1u64 << cap) != 0;
        Self {
            cap_bpf: has(CAP_BPF),
            cap_net_admin: has(CAP_NET_ADMIN),
            cap_sys_admin: has(CAP_SYS_ADMIN),
            cap_perfmon: has(CAP_PERFMON),
        }
    }

    /// Loading programs and creating links: CAP_BPF (or CAP_SYS_ADMIN on its own).
    pub(crate) fn can_bpf(&self) -> bool {
        self.cap_bpf || self.cap_sys_admin
    }

    /// The capabilities an attach or device change is missing, for messages.
    pub(crate) fn missing_for_attach(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if !self.can_bpf() {
            missing.push("CAP_BPF");
        }
        if !self.cap_net_admin {
            missing.push("CAP_NET_ADMIN");
        }
        missing
    }
}
