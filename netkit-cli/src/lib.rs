//! netkit: create netkit device pairs and manage BPF programs on tcx and
//! netkit hooks through links and the kernel's multi-program API.
//!
//! Layers, lowest first: `bpf` (raw bpf(2)) and `os`; `mprog` (hooks,
//! anchors, revisions) and `netlink` (devices); `programs`, `pins`; `hooks`
//! (the operations); `maps` (live maps of attached programs); `render`,
//! `cli` and `commands` (the command line). Each imports only from below.

pub mod bpf;
pub mod cli;
pub mod commands;
pub mod hooks;
pub mod maps;
pub mod mprog;
pub mod netlink;
pub mod os;
pub mod pins;
pub mod programs;
pub mod render;
