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
//! # Concurrency
//!
//! One rule. Whatever talks to rtnetlink's connection is an `async fn` and
//! runs on the caller's Tokio runtime, of either flavour, with I/O enabled
//! ([`netlink::Netlink::connect`] spawns the connection's task on it, and
//! outside a runtime returns [`netlink::NetlinkError::NoRuntime`]).
//! Everything else is a plain function that returns when its work is done:
//! bpf(2) and link reads ([`netlink::Netlink::links`] and the lookups by
//! name and index, on a socket of their own), pins, maps, programs, and the
//! two entry points that schedule their own work, [`apply::Engine::apply`]
//! (chain changes spread over threads) and [`cni::run`] (one CNI command).
//! Those two start their runtimes on threads of their own when called from
//! inside one, so none of them panics because of where it is called from
//! (a runtime built without I/O is the one misuse Tokio itself reports by
//! panicking, on the first connection).
//! A plain function blocks its thread, as any system call does: from async
//! code, call a long one (apply, a CNI command) through
//! `tokio::task::spawn_blocking`.
//!
//! `netkit/examples/pair_and_chain.rs` creates a pair and attaches an
//! ordered chain through this API.

#![warn(missing_docs)]

pub mod apply;
pub mod bpf;
pub mod cni;
mod fault;

/// The internal entry points the fuzz checks (`fuzz/checks`) call, with
/// the `fuzzing` feature only. Not an interface.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::{
        apply::plan_on_empty,
        cni::attach::host_name,
        programs::{
            elf::{classifier_alias, inspect, normalize_object, parse_object, pick_function},
            lean::needs_aya,
        },
    };

    /// `rule` written into the firewall map's entry format and read back.
    pub fn rule_through_entry(rule: &crate::maps::firewall::Rule) -> crate::maps::firewall::Rule {
        crate::maps::firewall::Rule::from_entry(&rule.entry())
    }
}
pub mod hooks;
pub mod maps;
pub mod mprog;
pub mod netlink;
pub mod os;
pub mod pins;
pub mod programs;
mod runtime;
