//! The commands on one attachment (a container id and interface name in a
//! network): ADD, DEL, CHECK, and the network-wide GC and STATUS.
//!
//! Each attachment has a record (`<stateDir>/<network>/<id>/<ifname>/`:
//! what was made, and the apply engine's ownership record) written before
//! anything is made, and its links pinned under
//! `<bpffs>/netkit/cni/<network>/<id>/<ifname>/`. Removing an attachment
//! (DEL, GC, a failed ADD) is one function that tolerates every piece being
//! gone already.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::fail::*;
use super::network::finish;
use super::{CniError, Code, Env, Verb, config::NetConf, ipam, result::CniResult};
use crate::{
    apply::{Engine, PlanOptions, state::Wait},
    netlink::{
        Netlink,
        device::DeviceError,
        links::{PairKind, Policy},
    },
    os::{
        netns::NetnsRef,
        probe::{self, Feature},
        rcu,
    },
};

/// What an attachment made, recorded before it is made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Record {
    pub(super) network: String,
    #[serde(rename = "containerID")]
    pub(super) container_id: String,
    pub(super) ifname: String,
    pub(super) netns: String,
    /// The host side's name.
    pub(super) host: String,
    /// What the IPAM plugin allocated, recorded as soon as it answers, so
    /// an ADD retried after the plugin was killed uses it again (IPAM
    /// plugins refuse a second allocation for one container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) allocated: Option<CniResult>,
}

/// Where one attachment keeps its record and its pins.
pub(super) struct Place {
    pub(super) state: PathBuf,
    pub(super) pins: PathBuf,
}

impl Place {
    pub(super) fn of(conf: &NetConf, id: &str, ifname: &str) -> Self {
        Self {
            state: conf.state_dir.join(&conf.name).join(id).join(ifname),
            pins: conf.bpffs.join("netkit/cni").join(&conf.name).join(id).join(ifname),
        }
    }

    pub(super) fn record_file(&self) -> PathBuf {
        self.state.join("attachment.json")
    }

    pub(super) fn engine<'a>(&self, nl: &'a Netlink) -> Engine<'a> {
        Engine::new(nl, self.pins.clone(), Some(self.state.join("apply.json")))
    }

    pub(super) fn load(&self) -> Result<Option<Record>, CniError> {
        match fs::read(self.record_file()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                CniError::new(
                    Code::Decode,
                    format!("the attachment record {} is damaged", self.record_file().display()),
                    format!("{e}; remove the directory {} by hand", self.state.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("reading", &self.record_file(), e)),
        }
    }

    pub(super) fn save(&self, record: &Record) -> Result<(), CniError> {
        fs::create_dir_all(&self.state).map_err(|e| io_error("creating", &self.state, e))?;
        let tmp = self.state.join("attachment.json.tmp");
        let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        fs::write(&tmp, bytes).map_err(|e| io_error("writing", &tmp, e))?;
        fs::rename(&tmp, self.record_file()).map_err(|e| io_error("writing", &self.record_file(), e))
    }
}

/// A runtime and an rtnetlink connection of this namespace driven by it
/// (the commands run outside any other runtime: `cni::run`).
pub(super) fn connect() -> Result<(tokio::runtime::Runtime, Netlink), CniError> {
    let rt = crate::runtime::new().map_err(|e| CniError::new(Code::Io, "starting the async runtime", e.to_string()))?;
    let nl = rt.block_on(async { Netlink::connect() }).map_err(layer_error("opening rtnetlink"))?;
    Ok((rt, nl))
}

/// The host side's name: `nk` and 13 hex digits of a hash of the container
/// id and interface name (stable, 15 bytes); `salt` picks another when a
/// device already has the first.
pub fn host_name(id: &str, ifname: &str, salt: u32) -> String {
    let digest = Sha256::digest(format!("{id}/{ifname}/{salt}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("nk{}", &hex[..13])
}

pub(super) async fn free_host_name(nl: &Netlink, id: &str, ifname: &str) -> Result<String, CniError> {
    for salt in 0..16 {
        let name = host_name(id, ifname, salt);
        if nl.link_by_name(&name).map_err(layer_error("reading the host's devices"))?.is_none() {
            return Ok(name);
        }
    }
    Err(CniError::new(
        Code::Plugin,
        "no free host-side name",
        format!("16 candidate names for container {id} interface {ifname} are all taken by other devices"),
    ))
}

/// Puts back what a plugin killed while it expedited grace periods left
/// (every ADD and DEL does this first; see [`crate::os::rcu`]), said on
/// standard error, which runtimes log.
fn recover_rcu() {
    if let Some(line) = rcu::recover_line(Path::new(rcu::DEFAULT_DIR)) {
        eprintln!("netkit-cni: {line}");
    }
}

fn rcu_error(e: rcu::RcuError) -> CniError {
    CniError::new(Code::Plugin, "expediting RCU grace periods", crate::os::errno::error_chain(&e))
}

/// ADD: the pair, the addresses, the chains, then the traffic. An ADD for
/// an attachment whose pair still exists (the runtime retrying after the
/// plugin was killed) takes over what is there as it is, when it is as
/// configured, and completes the rest.
pub fn add(env: &Env, conf: &NetConf) -> Result<CniResult, CniError> {
    recover_rcu();
    let place = Place::of(conf, &env.container_id, &env.ifname);
    let (rt, nl) = connect()?;
    let netns = NetnsRef::Path(env.netns.clone().into());
    if let Err(e) = netns.open() {
        return Err(CniError::new(
            Code::UnknownContainer,
            format!("the container's network namespace {} cannot be opened", env.netns),
            e.to_string(),
        ));
    }
    let already = |why: String| {
        CniError::new(
            Code::Plugin,
            format!("container {} already has {} on network {}", env.container_id, env.ifname, conf.name),
            format!("{why}; DEL the attachment before adding it again"),
        )
    };
    if conf.auto {
        // The runtime keeps the plugin's standard error in its log.
        eprintln!(
            "netkit-cni: kind auto: container {} gets a {} pair (this kernel, {}, {})",
            env.container_id,
            conf.kind,
            probe::kernel_release(),
            if conf.kind == PairKind::Netkit { "has netkit" } else { "has no netkit" }
        );
    }
    let mut resumed = None;
    if let Some(old) = place.load()? {
        match nl.link_by_name(&old.host).map_err(layer_error("reading the host's devices"))? {
            Some(_) if old.netns != env.netns => {
                return Err(already(format!("its host side is {}, with its peer in {}", old.host, old.netns)));
            }
            Some(link) => resumed = Some((old, link)),
            None => {
                // A record whose pair is gone: an attachment that died with
                // its namespace and was never deleted. Clear what is left of
                // it first, its address included.
                remove(&rt, &nl, &place, Some(&old));
                ipam::exec(&conf.ipam.kind, Verb::Del, env, &conf.raw)?;
            }
        }
    }
    let resuming = resumed.is_some();
    let (mut record, peer_policy) = match resumed {
        // The peer keeps letting traffic through if the killed ADD got
        // that far.
        Some((old, link)) => {
            let now = link.netkit.as_ref().and_then(|n| n.settings.peer_policy);
            (old, if now == Some(conf.policy) { conf.policy } else { Policy::Drop })
        }
        None => {
            let host = rt.block_on(free_host_name(&nl, &env.container_id, &env.ifname))?;
            let record = Record {
                network: conf.name.clone(),
                container_id: env.container_id.clone(),
                ifname: env.ifname.clone(),
                netns: env.netns.clone(),
                host,
                allocated: None,
            };
            (record, Policy::Drop)
        }
    };
    let host = record.host.clone();

    // Planned before anything is made: a program that cannot be read, a
    // name taken inside the container, is refused with nothing to undo.
    let spec = conf.spec(&host, &env.ifname, Path::new(&env.netns), peer_policy)?;
    fs::create_dir_all(&place.pins).map_err(|e| io_error("creating", &place.pins, e))?;
    let engine = place.engine(&nl);
    // The runtime never runs two operations on one container at once (CNI
    // spec): the lock is free unless that promise is broken.
    let writer = engine.lock(Wait::For(std::time::Duration::ZERO), |_| {}).map_err(|e| {
        CniError::new(
            Code::TryAgain,
            format!("container {} is being changed by another call", env.container_id),
            crate::os::errno::error_chain(&e),
        )
    })?;
    let plan = match rt.block_on(engine.plan(&spec, PlanOptions { adopt: resuming, ..PlanOptions::default() })) {
        Ok(plan) => plan,
        // What a killed ADD left is taken over only as configured; anything
        // else stays as it is for the runtime's DEL.
        Err(e) if resuming => {
            return Err(already(format!(
                "its host side is {host}, not as configured: {}",
                crate::os::errno::error_chain(&e)
            )));
        }
        Err(e) => {
            remove(&rt, &nl, &place, None);
            return Err(apply_error("the attachment cannot be made", e));
        }
    };
    if !resuming {
        place.save(&record)?;
    }

    let made = (|| {
        let allocated = match record.allocated.clone() {
            Some(allocated) => allocated,
            None => {
                if resuming {
                    // Killed before the allocation was recorded: release
                    // whatever the IPAM plugin holds for the container.
                    ipam::exec(&conf.ipam.kind, Verb::Del, env, &conf.raw)?;
                }
                let allocated = ipam::exec(&conf.ipam.kind, Verb::Add, env, &conf.raw)?.unwrap_or_default();
                record.allocated = Some(allocated.clone());
                place.save(&record)?;
                allocated
            }
        };
        fault("ipam")?;
        let expedited = if conf.expedite && !plan.is_empty() {
            Some(rcu::Expedited::start(Path::new(rcu::DEFAULT_DIR)).map_err(rcu_error)?)
        } else {
            None
        };
        let applied = engine.apply(&plan, 1, &writer);
        // Put back in any case; one that fails stays recorded for the next call.
        if let Some(Err(e)) = expedited.map(rcu::Expedited::finish) {
            eprintln!("netkit-cni: warning: {}", crate::os::errno::error_chain(&e));
        }
        applied.map_err(|e| apply_error("creating the pair and its chains", e))?;
        fault("pair")?;
        rt.block_on(finish(&nl, conf, env, &host, allocated, resuming))
    })();
    match made {
        Ok(result) => Ok(result),
        Err(mut e) => {
            let problems = remove(&rt, &nl, &place, Some(&record));
            let released = ipam::exec(&conf.ipam.kind, Verb::Del, env, &conf.raw);
            e.details += "; everything this ADD made was removed";
            if let Err(r) = released {
                e.details += &format!(" except the IP allocation ({r})");
            }
            for p in problems {
                e.details += &format!("; could not remove {p}");
            }
            Err(e)
        }
    }
}

/// Removes what an attachment made, whatever is left of it: the pair (the
/// kernel detaches its links), the pins, the record. Returns what could not
/// be removed.
pub(super) fn remove(
    rt: &tokio::runtime::Runtime,
    nl: &Netlink,
    place: &Place,
    record: Option<&Record>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(r) = record {
        // The pod's namespace, known: deleting the pair need not walk them all.
        nl.remember_namespace(&crate::os::netns::NetnsRef::Path(r.netns.clone().into()));
        match rt.block_on(nl.delete_pair(&r.host)) {
            Ok(_) | Err(DeviceError::NotFound { .. }) => {}
            Err(e) => problems.push(format!("the pair {}: {}", r.host, crate::os::errno::error_chain(&e))),
        }
        if let Err(e) = fault("del-pair") {
            problems.push(e.msg);
        }
    }
    for dir in [&place.pins, &place.state] {
        match fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => problems.push(format!("{}: {e}", dir.display())),
        }
        // The container's directory goes when it is empty. (The network's
        // stays: another ADD may be creating its container's under it.)
        if let Some(container) = dir.parent() {
            let _ = fs::remove_dir(container);
        }
    }
    problems
}

/// DEL: tolerant of every piece being gone.
pub fn del(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    recover_rcu();
    let place = Place::of(conf, &env.container_id, &env.ifname);
    let record = place.load()?;
    let (rt, nl) = connect()?;
    let problems = remove(&rt, &nl, &place, record.as_ref());
    ipam::exec(&conf.ipam.kind, Verb::Del, env, &conf.raw)?;
    if !problems.is_empty() {
        return Err(CniError::new(
            Code::TryAgain,
            format!("DEL of container {} left something behind", env.container_id),
            problems.join("; "),
        ));
    }
    Ok(())
}

/// GC: every attachment of this network not in `cni.dev/valid-attachments`
/// is removed; then the IPAM plugin collects its own.
pub fn gc(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let valid = conf.valid_set();
    let is_valid = |id: &str, ifname: &str| {
        valid.contains(&super::config::Attachment { container_id: id.into(), ifname: ifname.into() })
    };
    let (rt, nl) = connect()?;
    let mut problems = Vec::new();
    // Records first (they name the pairs), then pins without a record.
    let mut stale = std::collections::BTreeSet::new();
    for root in [conf.state_dir.join(&conf.name), conf.bpffs.join("netkit/cni").join(&conf.name)] {
        for (id, ifname) in attachments_under(&root) {
            if is_valid(&id, &ifname) {
                continue;
            }
            let place = Place::of(conf, &id, &ifname);
            let record = place.load().unwrap_or(None);
            problems.extend(remove(&rt, &nl, &place, record.as_ref()));
            stale.insert((id, ifname));
        }
    }
    // The IPAM plugin collects its own. One older than CNI 1.1.0 has no GC:
    // the allocations of the attachments removed here are released one by
    // one, as their DELs would have.
    match ipam::speaks_1_1(&conf.ipam.kind, env) {
        Ok(true) => {
            if let Err(e) = ipam::exec(&conf.ipam.kind, Verb::Gc, env, &conf.raw) {
                problems.push(e.to_string());
            }
        }
        Ok(false) => {
            for (container_id, ifname) in stale {
                let one = Env { container_id, ifname, netns: String::new(), ..env.clone() };
                if let Err(e) = ipam::exec(&conf.ipam.kind, Verb::Del, &one, &conf.raw) {
                    problems.push(e.to_string());
                }
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            Code::Plugin,
            format!("GC of network {} left something behind", conf.name),
            problems.join("; "),
        ))
    }
}

/// The `<id>/<ifname>` directories under `root`.
pub(super) fn attachments_under(root: &Path) -> Vec<(String, String)> {
    let names = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for id in names(root) {
        for ifname in names(&root.join(&id)) {
            out.push((id.clone(), ifname));
        }
    }
    out
}

/// STATUS: can ADD work here?
pub fn status(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let mut missing = Vec::new();
    // veth (or auto, which falls back to it) needs no netkit.
    match probe::probe(Feature::Netkit) {
        _ if conf.kind == PairKind::Veth || conf.auto => {}
        probe::Support::Supported => {}
        probe::Support::Unsupported => missing.push(format!(
            "this kernel ({}) has no netkit: needs {}",
            probe::kernel_release(),
            Feature::Netkit.requirement()
        )),
        probe::Support::Unknown(why) => missing.push(format!("netkit could not be probed: {why}")),
    }
    if !probe::is_bpffs(&conf.bpffs) {
        missing.push(format!("no bpffs at {0}: mount one with `mount -t bpf bpf {0}`", conf.bpffs.display()));
    }
    // An IPAM plugin older than CNI 1.1.0 has no STATUS: found and
    // answering VERSION is all it can say.
    match ipam::speaks_1_1(&conf.ipam.kind, env) {
        Ok(true) => {
            if let Err(e) = ipam::exec(&conf.ipam.kind, Verb::Status, env, &conf.raw) {
                missing.push(e.to_string());
            }
        }
        Ok(false) => {}
        Err(e) => missing.push(e.to_string()),
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(Code::NotAvailable, "netkit-cni cannot add pods here", missing.join("; ")))
    }
}
