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
    net::IpAddr,
    path::{Path, PathBuf},
};

use futures::TryStreamExt as _;
use netlink_packet_route::{
    address::{AddressAttribute, AddressFlags},
    route::{RouteAddress, RouteAttribute, RouteScope},
};
use rtnetlink::RouteMessageBuilder;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{
    CniError, Code, Env, Verb,
    config::NetConf,
    ipam,
    result::{Cidr, CniResult, Interface, IpConfig, Route},
};
use crate::{
    apply::{ApplyError, Engine, PlanOptions, state::Wait},
    netlink::{
        Netlink, NetlinkError,
        device::{DeviceError, PairChange},
        links::{Link, Mode, Policy},
    },
    os::{
        netns::NetnsRef,
        probe::{self, Feature},
    },
};

/// What an attachment made, recorded before it is made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    network: String,
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
    netns: String,
    /// The host side's name.
    host: String,
}

/// Where one attachment keeps its record and its pins.
struct Place {
    state: PathBuf,
    pins: PathBuf,
}

impl Place {
    fn of(conf: &NetConf, id: &str, ifname: &str) -> Self {
        Self {
            state: conf.state_dir.join(&conf.name).join(id).join(ifname),
            pins: conf.bpffs.join("netkit/cni").join(&conf.name).join(id).join(ifname),
        }
    }

    fn record_file(&self) -> PathBuf {
        self.state.join("attachment.json")
    }

    fn engine<'a>(&self, nl: &'a Netlink) -> Engine<'a> {
        Engine::new(nl, self.pins.clone(), Some(self.state.join("apply.json")))
    }

    fn load(&self) -> Result<Option<Record>, CniError> {
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

    fn save(&self, record: &Record) -> Result<(), CniError> {
        fs::create_dir_all(&self.state).map_err(|e| io_error("creating", &self.state, e))?;
        let tmp = self.state.join("attachment.json.tmp");
        let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        fs::write(&tmp, bytes).map_err(|e| io_error("writing", &tmp, e))?;
        fs::rename(&tmp, self.record_file()).map_err(|e| io_error("writing", &self.record_file(), e))
    }
}

fn io_error(what: &str, path: &Path, e: io::Error) -> CniError {
    CniError::new(Code::Io, format!("{what} {}", path.display()), e.to_string())
}

/// A runtime and an rtnetlink connection of this namespace driven by it
/// (the commands run outside any other runtime: `cni::run`).
fn connect() -> Result<(tokio::runtime::Runtime, Netlink), CniError> {
    let rt = crate::runtime::new().map_err(|e| CniError::new(Code::Io, "starting the async runtime", e.to_string()))?;
    let nl = rt.block_on(async { Netlink::connect() }).map_err(nl_error("opening rtnetlink"))?;
    Ok((rt, nl))
}

fn nl_error(what: &str) -> impl Fn(NetlinkError) -> CniError + '_ {
    move |e| CniError::new(Code::Plugin, what.to_string(), e.to_string())
}

fn device_error(what: &str) -> impl Fn(DeviceError) -> CniError + '_ {
    move |e| CniError::new(Code::Plugin, what.to_string(), e.to_string())
}

/// Plan-time failures are the configuration's; later ones the node's.
fn apply_error(what: &str, e: ApplyError) -> CniError {
    let code = match &e {
        ApplyError::Spec(_) | ApplyError::Blocked(_) | ApplyError::Program(_) => Code::InvalidConfig,
        e if e.node_changed() => Code::TryAgain,
        _ => Code::Plugin,
    };
    CniError::new(code, what.to_string(), crate::programs::error_chain(&e))
}

/// A step of an ADD or DEL, through the fault seam (`crate::fault`).
fn fault(step: &str) -> Result<(), CniError> {
    crate::fault::check(crate::fault::Scope::Cni, step)
        .map_err(|e| CniError::new(Code::Plugin, format!("failure injected at {step}"), e.to_string()))
}

/// The host side's name: `nk` and 13 hex digits of a hash of the container
/// id and interface name (stable, 15 bytes); `salt` picks another when a
/// device already has the first.
pub fn host_name(id: &str, ifname: &str, salt: u32) -> String {
    let digest = Sha256::digest(format!("{id}/{ifname}/{salt}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("nk{}", &hex[..13])
}

async fn free_host_name(nl: &Netlink, id: &str, ifname: &str) -> Result<String, CniError> {
    for salt in 0..16 {
        let name = host_name(id, ifname, salt);
        if nl.link_by_name(&name).map_err(nl_error("reading the host's devices"))?.is_none() {
            return Ok(name);
        }
    }
    Err(CniError::new(
        Code::Plugin,
        "no free host-side name",
        format!("16 candidate names for container {id} interface {ifname} are all taken by other devices"),
    ))
}

/// ADD: the pair, the addresses, the chains, then the traffic.
pub fn add(env: &Env, conf: &NetConf) -> Result<CniResult, CniError> {
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
    if let Some(old) = place.load()? {
        if nl.link_by_name(&old.host).ok().flatten().is_some() {
            return Err(CniError::new(
                Code::Plugin,
                format!("container {} already has {} on network {}", env.container_id, env.ifname, conf.name),
                format!("its host side is {}; DEL the attachment before adding it again", old.host),
            ));
        }
        // A record whose pair is gone: an attachment that died with its
        // namespace and was never deleted. Clear what is left of it first,
        // its address included.
        remove(&rt, &nl, &place, Some(&old));
        ipam::exec(&conf.ipam.kind, Verb::Del, env, &conf.raw)?;
    }
    let host = rt.block_on(free_host_name(&nl, &env.container_id, &env.ifname))?;
    let record = Record {
        network: conf.name.clone(),
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
        netns: env.netns.clone(),
        host: host.clone(),
    };

    // Planned before anything is made: a program that cannot be read, a
    // name taken inside the container, is refused with nothing to undo.
    let spec = conf.spec(&host, &env.ifname, Path::new(&env.netns), Policy::Drop)?;
    fs::create_dir_all(&place.pins).map_err(|e| io_error("creating", &place.pins, e))?;
    let engine = place.engine(&nl);
    // The runtime never runs two operations on one container at once (CNI
    // spec): the lock is free unless that promise is broken.
    let writer = engine.lock(Wait::For(std::time::Duration::ZERO), |_| {}).map_err(|e| {
        CniError::new(
            Code::TryAgain,
            format!("container {} is being changed by another call", env.container_id),
            e.to_string(),
        )
    })?;
    let plan = match rt.block_on(engine.plan(&spec, PlanOptions::default())) {
        Ok(plan) => plan,
        Err(e) => {
            remove(&rt, &nl, &place, None);
            return Err(apply_error("the attachment cannot be made", e));
        }
    };
    place.save(&record)?;

    let made = (|| {
        let allocated = ipam::exec(&conf.ipam.kind, Verb::Add, env, &conf.raw)?.unwrap_or_default();
        fault("ipam")?;
        engine.apply(&plan, 1, &writer).map_err(|e| apply_error("creating the pair and its chains", e))?;
        fault("pair")?;
        rt.block_on(finish(&nl, conf, env, &host, allocated))
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

/// Addresses and routes, the host's route back, then the peer's policy.
async fn finish(
    nl: &Netlink,
    conf: &NetConf,
    env: &Env,
    host: &str,
    allocated: CniResult,
) -> Result<CniResult, CniError> {
    let netns = NetnsRef::Path(env.netns.clone().into());
    let pod = Netlink::connect_to(&netns).map_err(nl_error("reaching the container's namespace"))?;
    let pod_link = pod
        .link_by_name(&env.ifname)
        .map_err(nl_error("reading the container's devices"))?
        .ok_or_else(|| CniError::new(Code::Plugin, format!("{} is not in the container", env.ifname), ""))?;
    let host_link = nl
        .link_by_name(host)
        .map_err(nl_error("reading the host's devices"))?
        .ok_or_else(|| CniError::new(Code::Plugin, format!("{host} is gone"), ""))?;

    for ip in &allocated.ips {
        let mut req = pod.handle.address().add(pod_link.index, ip.address.addr, ip.address.prefix);
        if ip.address.addr.is_ipv6() {
            // No duplicate detection: the pair has one peer, and a tentative
            // address would keep the pod silent for a second.
            req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        req.execute()
            .await
            .map_err(|e| NetlinkError::from_rtnetlink(format!("adding {} to {}", ip.address, env.ifname), e))
            .map_err(nl_error("configuring the container's address"))?;
    }
    fault("address")?;

    // The pod's routes all leave through its device: the IPAM plugin's,
    // and a default route for each family it has an address of.
    let mut routes: Vec<Route> = Vec::new();
    let mut wanted: Vec<Cidr> = allocated.routes.iter().map(|r| r.dst).collect();
    for v4 in [true, false] {
        if allocated.ips.iter().any(|ip| ip.address.addr.is_ipv4() == v4) && !wanted.contains(&Cidr::default_of(v4)) {
            wanted.push(Cidr::default_of(v4));
        }
    }
    for dst in wanted {
        let msg = device_route(dst, pod_link.index)?;
        let added = pod.handle.route().add(msg).execute().await;
        match added.map_err(|e| NetlinkError::from_rtnetlink(format!("adding the route to {dst}"), e)) {
            Ok(()) => routes.push(Route { dst, gw: None, other: Default::default() }),
            // Another network of the pod owns the default route: keep it.
            Err(e) if dst.prefix == 0 && e.errno() == Some(libc::EEXIST) => {}
            Err(e) => return Err(nl_error("configuring the container's routes")(e)),
        }
    }
    fault("route")?;

    for ip in &allocated.ips {
        let dst = Cidr::host(ip.address.addr);
        let msg = device_route(dst, host_link.index)?;
        nl.handle
            .route()
            .add(msg)
            .execute()
            .await
            .map_err(|e| NetlinkError::from_rtnetlink(format!("adding the route to {dst} through {host}"), e))
            .map_err(nl_error("configuring the host's route to the pod"))?;
    }
    forwarding(&allocated, conf.mode, host)?;

    fault("policy")?;
    if conf.policy != Policy::Drop {
        let change = PairChange { peer_policy: Some(conf.policy), ..PairChange::default() };
        nl.set(host, &change).await.map_err(device_error("letting the pod's traffic through"))?;
    }

    let host_link = nl.link_by_name(host).ok().flatten().unwrap_or(host_link);
    let pod_link = pod.link_by_name(&env.ifname).ok().flatten().unwrap_or(pod_link);
    Ok(result(conf, env, &host_link, &pod_link, allocated, routes))
}

/// A route to `dst` through device `index`, on the link (no next hop).
fn device_route(dst: Cidr, index: u32) -> Result<netlink_packet_route::route::RouteMessage, CniError> {
    Ok(RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst.addr, dst.prefix)
        .map_err(|e| CniError::new(Code::Plugin, format!("route to {dst}"), e.to_string()))?
        .output_interface(index)
        .scope(RouteScope::Link)
        .build())
}

/// The host forwards between pods; in L2 mode its side answers the pod's
/// neighbour requests for every address it routes (proxy ARP).
fn forwarding(allocated: &CniResult, mode: Mode, host: &str) -> Result<(), CniError> {
    let mut knobs = Vec::new();
    if allocated.ips.iter().any(|ip| ip.address.addr.is_ipv4()) {
        knobs.push("/proc/sys/net/ipv4/ip_forward".to_string());
        if mode == Mode::L2 {
            knobs.push(format!("/proc/sys/net/ipv4/conf/{host}/proxy_arp"));
        }
    }
    if allocated.ips.iter().any(|ip| ip.address.addr.is_ipv6()) {
        knobs.push("/proc/sys/net/ipv6/conf/all/forwarding".to_string());
    }
    for knob in knobs {
        if fs::read_to_string(&knob).is_ok_and(|v| v.trim() == "1") {
            continue;
        }
        fs::write(&knob, "1").map_err(|e| io_error("setting to 1", Path::new(&knob), e))?;
    }
    Ok(())
}

/// The result: what came before (chaining), then the host side and the
/// pod side, the addresses on the pod side, the routes made.
fn result(conf: &NetConf, env: &Env, host: &Link, pod: &Link, allocated: CniResult, routes: Vec<Route>) -> CniResult {
    let mut out = conf.prev_result.clone().unwrap_or_default();
    out.cni_version = conf.cni_version.clone();
    let mtu = |l: &Link| if conf.cni_version == "1.0.0" { None } else { l.mtu };
    // An L3 pair's ends carry an all-zero address: no MAC to report.
    let mac = |l: &Link| l.mac().filter(|m| m != "00:00:00:00:00:00");
    out.interfaces.push(Interface { name: host.name.clone(), mac: mac(host), mtu: mtu(host), ..Interface::default() });
    out.interfaces.push(Interface {
        name: pod.name.clone(),
        mac: mac(pod),
        mtu: mtu(pod),
        sandbox: Some(env.netns.clone()),
        ..Interface::default()
    });
    let index = out.interfaces.len() - 1;
    for ip in allocated.ips {
        // No gateway: the pod's routes go through its device, not a next hop.
        out.ips.push(IpConfig { address: ip.address, gateway: None, interface: Some(index), other: ip.other });
    }
    out.routes.extend(routes);
    if allocated.dns.is_some() {
        out.dns = allocated.dns;
    }
    out
}

/// Removes what an attachment made, whatever is left of it: the pair (the
/// kernel detaches its links), the pins, the record. Returns what could not
/// be removed.
fn remove(rt: &tokio::runtime::Runtime, nl: &Netlink, place: &Place, record: Option<&Record>) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(r) = record {
        match rt.block_on(nl.delete_pair(&r.host)) {
            Ok(_) | Err(DeviceError::NotFound { .. }) => {}
            Err(e) => problems.push(format!("the pair {}: {e}", r.host)),
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

/// CHECK: the attachment as ADD made it, against `prevResult` and the
/// configuration; every difference named.
pub fn check(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let place = Place::of(conf, &env.container_id, &env.ifname);
    let Some(record) = place.load()? else {
        return Err(CniError::new(
            Code::CheckFailed,
            format!("container {} has no {} on network {}", env.container_id, env.ifname, conf.name),
            format!("no attachment record at {}", place.record_file().display()),
        ));
    };
    let Some(prev) = &conf.prev_result else {
        return Err(CniError::new(
            Code::InvalidConfig,
            "CHECK needs prevResult",
            "the runtime must pass the result of the ADD as prevResult",
        ));
    };
    let (rt, nl) = connect()?;
    let mut differences = rt.block_on(differences(&nl, env, &record, prev));
    let spec = conf.spec(&record.host, &env.ifname, Path::new(&env.netns), conf.policy)?;
    match rt.block_on(place.engine(&nl).plan(&spec, PlanOptions::default())) {
        Ok(plan) => {
            differences.extend(plan.steps.iter().map(|s| format!("{} {} ({})", s.action.name(), s.object, s.detail)))
        }
        Err(e) => differences.push(crate::programs::error_chain(&e)),
    }
    if let Err(e) = ipam::exec(&conf.ipam.kind, Verb::Check, env, &conf.raw) {
        differences.push(e.to_string());
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            Code::CheckFailed,
            format!("container {} on network {} is not as ADD made it", env.container_id, conf.name),
            differences.join("; "),
        ))
    }
}

async fn differences(nl: &Netlink, env: &Env, record: &Record, prev: &CniResult) -> Vec<String> {
    let mut out = Vec::new();
    let pod_index =
        prev.interfaces.iter().position(|i| i.name == env.ifname && i.sandbox.as_deref() == Some(&env.netns));
    if !prev.interfaces.iter().any(|i| i.name == record.host && i.sandbox.is_none()) {
        out.push(format!("prevResult lists no host interface {}", record.host));
    }
    if pod_index.is_none() {
        out.push(format!("prevResult lists no interface {} in {}", env.ifname, env.netns));
    }
    let host = match nl.link_by_name(&record.host) {
        Ok(Some(l)) if l.is_netkit() => Some(l),
        Ok(Some(l)) => {
            out.push(format!("{} is a {} device, not netkit", record.host, l.kind.unwrap_or_default()));
            None
        }
        _ => {
            out.push(format!("the host side {} is missing", record.host));
            None
        }
    };
    let pod = match Netlink::connect_to(&NetnsRef::Path(env.netns.clone().into())) {
        Ok(pod) => pod,
        Err(e) => {
            out.push(format!("the container's namespace {}: {e}", env.netns));
            return out;
        }
    };
    let Some(pod_link) = pod.link_by_name(&env.ifname).ok().flatten() else {
        out.push(format!("{} is missing in {}", env.ifname, env.netns));
        return out;
    };
    let ours = prev.ips.iter().filter(|ip| ip.interface == pod_index && pod_index.is_some());
    let have = addresses(&pod, pod_link.index).await;
    let pod_routes = route_dsts(&pod, None).await;
    let host_routes = match &host {
        Some(h) => route_dsts(nl, Some(h.index)).await,
        None => Vec::new(),
    };
    for ip in ours {
        if !have.contains(&ip.address) {
            out.push(format!("{} does not have {}", env.ifname, ip.address));
        }
        if host.is_some() && !host_routes.contains(&Cidr::host(ip.address.addr)) {
            out.push(format!("the host has no route to {} through {}", ip.address.addr, record.host));
        }
    }
    for r in &prev.routes {
        if !pod_routes.contains(&r.dst) {
            out.push(format!("the container has no route to {}", r.dst));
        }
    }
    out
}

async fn addresses(nl: &Netlink, index: u32) -> Vec<Cidr> {
    let mut out = Vec::new();
    let mut stream = nl.handle.address().get().set_link_index_filter(index).execute();
    while let Ok(Some(msg)) = stream.try_next().await {
        for attr in &msg.attributes {
            if let AddressAttribute::Address(addr) = attr {
                out.push(Cidr { addr: *addr, prefix: msg.header.prefix_len });
            }
        }
    }
    out
}

/// The destinations of the main table's routes (through `oif` when given).
async fn route_dsts(nl: &Netlink, oif: Option<u32>) -> Vec<Cidr> {
    let mut out = Vec::new();
    for v4 in [true, false] {
        let msg = if v4 {
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()
        } else {
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build()
        };
        let mut stream = nl.handle.route().get(msg).execute();
        while let Ok(Some(route)) = stream.try_next().await {
            let mut dst = Cidr::default_of(v4);
            dst.prefix = route.header.destination_prefix_length;
            let mut through = None;
            for attr in &route.attributes {
                match attr {
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => dst.addr = IpAddr::V4(*a),
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => dst.addr = IpAddr::V6(*a),
                    RouteAttribute::Oif(i) => through = Some(*i),
                    _ => {}
                }
            }
            if oif.is_none() || oif == through {
                out.push(dst);
            }
        }
    }
    out
}

/// GC: every attachment of this network not in `cni.dev/valid-attachments`
/// is removed; then the IPAM plugin collects its own.
pub fn gc(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let valid = conf.valid_set();
    let is_valid = |id: &str, ifname: &str| valid.iter().any(|a| a.container_id == id && a.ifname == ifname);
    let (rt, nl) = connect()?;
    let mut problems = Vec::new();
    // Records first (they name the pairs), then pins without a record.
    for root in [conf.state_dir.join(&conf.name), conf.bpffs.join("netkit/cni").join(&conf.name)] {
        for (id, ifname) in attachments_under(&root) {
            if is_valid(&id, &ifname) {
                continue;
            }
            let place = Place::of(conf, &id, &ifname);
            let record = place.load().unwrap_or(None);
            problems.extend(remove(&rt, &nl, &place, record.as_ref()));
        }
    }
    if let Err(e) = ipam::exec(&conf.ipam.kind, Verb::Gc, env, &conf.raw) {
        problems.push(e.to_string());
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
fn attachments_under(root: &Path) -> Vec<(String, String)> {
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
    match probe::probe(Feature::Netkit) {
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
    if let Err(e) = ipam::exec(&conf.ipam.kind, Verb::Status, env, &conf.raw) {
        missing.push(e.to_string());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(Code::NotAvailable, "netkit-cni cannot add pods here", missing.join("; ")))
    }
}
