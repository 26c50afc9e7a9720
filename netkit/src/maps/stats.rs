//! What the programs on hooks have counted: packets and bytes of `counter`,
//! hits per rule of `firewall`, redirects of `redirect-peer`, packets seen by
//! `log` and `order`, and the kernel's run count and run time of every program
//! (kept only while BPF run-time statistics are on).

use std::os::fd::OwnedFd;

use aya::maps::{MapData, PerCpuArray};
use netkit_common::counter::Counters;
use serde::Serialize;

use crate::{
    bpf,
    hooks::HookView,
    maps::{
        ProgMaps,
        firewall::{Firewall, RuleView},
        redirect::{Redirect, RedirectStats},
    },
};

/// One program's numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProgStats {
    /// Its position in the chain, from 1.
    pub position: usize,
    /// The program's id.
    pub prog_id: u32,
    /// The program's name.
    pub name: String,
    pub(crate) link_id: Option<u32>,
    /// From the kernel; only counted while run-time statistics are on.
    pub run_cnt: u64,
    /// From the kernel: total run time in ns while run-time statistics are on.
    pub run_time_ns: u64,
    /// Packets counted by the program (bundled `counter` only).
    pub packets: Option<u64>,
    /// Bytes counted by the program (bundled `counter` only).
    pub bytes: Option<u64>,
    /// The rules and their hits (bundled `firewall` only).
    pub firewall: Option<Vec<RuleView>>,
    /// The redirect counters (bundled `redirect-peer` only).
    pub redirect: Option<RedirectStats>,
}

/// One hook's programs' numbers.
#[derive(Debug, Clone, Serialize)]
pub struct HookStats {
    /// The device's name.
    pub ifname: String,
    pub(crate) ifindex: u32,
    /// The hook.
    pub hook: crate::mprog::Hook,
    /// Whether kernel BPF run-time statistics are on now.
    pub run_time_stats: bool,
    /// The programs in chain order.
    pub programs: Vec<ProgStats>,
}

/// Whether kernel BPF run-time statistics are on (sysctl or an enable fd).
pub fn run_time_stats_on() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|s| s.trim() != "0")
}

/// Turns kernel BPF run-time statistics on for as long as the fd lives.
pub fn enable() -> Result<OwnedFd, aya::sys::SyscallError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
}

/// The numbers of one program.
pub(crate) fn program(prog_id: u32) -> ProgStats {
    let mut s = ProgStats { prog_id, ..Default::default() };
    if let Some(info) = bpf::prog_info_by_id(prog_id) {
        s.name = info.name();
        s.run_cnt = info.run_cnt;
        s.run_time_ns = info.run_time_ns;
    }
    let Ok(maps) = ProgMaps::open(prog_id) else { return s };
    if maps.has("COUNTERS")
        && let Ok(map) = maps.get("COUNTERS")
        && let Ok(arr) = PerCpuArray::<MapData, Counters>::try_from(map)
        && let Ok(values) = arr.get(&0, 0)
    {
        s.packets = Some(values.iter().map(|c| c.packets).sum());
        s.bytes = Some(values.iter().map(|c| c.bytes).sum());
    }
    if maps.has("FW_HITS") {
        s.firewall = Firewall::with(maps.clone()).list().ok();
    }
    if maps.has("REDIR_STATS") {
        s.redirect = Redirect::open(prog_id).and_then(|r| r.stats()).ok();
    }
    if maps.has("LOG_SEEN") {
        s.packets = maps.per_cpu_u64("LOG_SEEN", 0).ok();
    }
    s
}

/// The numbers of every program on the queried hooks. `enabled`: this process
/// holds run-time statistics on (the sysctl does not show that).
pub fn hooks(views: &[HookView], enabled: bool) -> Vec<HookStats> {
    let on = enabled || run_time_stats_on();
    views
        .iter()
        .map(|v| HookStats {
            ifname: v.ifname.clone(),
            ifindex: v.ifindex,
            hook: v.hook,
            run_time_stats: on,
            programs: v
                .programs
                .iter()
                .map(|p| ProgStats { position: p.position, link_id: p.link_id, ..program(p.prog_id) })
                .collect(),
        })
        .collect()
}
