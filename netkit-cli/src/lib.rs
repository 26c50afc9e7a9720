//! netkit: create netkit device pairs and manage BPF programs on tcx and
//! netkit hooks through links and the kernel's multi-program API.

pub mod app;
pub mod attach;
pub mod cli;
pub mod commands;
pub mod firewall;
pub mod mprog;
pub mod netlink;
pub mod netns;
pub mod output;
pub mod owners;
pub mod pins;
pub mod probe;
pub mod progmaps;
pub mod programs;
pub mod redirect;
pub mod refs;
pub mod run;
pub mod stats;
