//! netkit: create netkit device pairs and manage BPF programs on tcx and
//! netkit hooks through links and the kernel's multi-program API.
//!
//! This crate is the library under the `netkit` command; the command line
//! itself (clap definitions, commands, text and JSON rendering) lives in the
//! binary and drives only what is public here.
//!
//! Layers, lowest first, each importing only from below:
//! - [`bpf`]: the raw bpf(2) calls aya lacks; [`os`]: namespaces,
//!   capabilities, the kernel probe.
//! - [`mprog`]: hooks, anchors, revisions, the multi-program API;
//!   [`netlink`]: devices and netkit pairs over rtnetlink.
//! - [`programs`]: bundled and user objects, loading; [`pins`]: the bpffs
//!   layout of pinned links.
//! - [`hooks`]: the operations (attach, detach, update, query, the link
//!   inventory), with revision retry and the ownership guard; [`maps`]: the
//!   live maps of attached programs (firewall rules, redirects, counters).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use netkit::{hooks::Hooks, mprog::Hook, netlink::Netlink};
//!
//! let nl = Netlink::connect()?;
//! let hooks = Hooks { nl: &nl, bpffs: "/sys/fs/bpf".into() };
//! for view in hooks.query(Some("eth0"), Some(Hook::Ingress)).await? {
//!     for p in &view.programs {
//!         println!("{}. {} (program {})", p.position, p.name, p.prog_id);
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! `netkit-cli/examples/pair_and_chain.rs` creates a pair and attaches an
//! ordered chain through this API.

#![warn(missing_docs)]

pub mod apply;
pub mod bpf;
pub mod cni;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod hooks;
pub mod maps;
pub mod mprog;
pub mod netlink;
pub mod os;
pub mod pins;
pub mod programs;
