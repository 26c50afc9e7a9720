//! The pod's network once its pair exists: addresses, routes and
//! forwarding, the result the runtime gets, and the addresses and routes
//! read back for CHECK.

use std::{fs, path::Path};

use super::fail::*;
use super::{
    CniError, Code, Env,
    config::NetConf,
    result::{Cidr, CniResult, Interface, IpConfig, Route},
};
use crate::{
    netlink::{
        Netlink,
        device::PairChange,
        links::{Link, Mode, PairKind, Policy},
    },
    os::netns::NetnsRef,
};

/// Addresses and routes, the host's route back, then the peer's policy.
/// `resuming` (an ADD retried after a killed one): those already made are
/// kept.
pub(super) async fn finish(
    nl: &Netlink,
    conf: &NetConf,
    env: &Env,
    host: &str,
    allocated: CniResult,
    resuming: bool,
) -> Result<CniResult, CniError> {
    let netns = NetnsRef::Path(env.netns.clone().into());
    let pod = Netlink::connect_to(&netns).map_err(layer_error("reaching the container's namespace"))?;
    let pod_link = pod
        .link_by_name(&env.ifname)
        .map_err(layer_error("reading the container's devices"))?
        .ok_or_else(|| CniError::new(Code::Plugin, format!("{} is not in the container", env.ifname), ""))?;
    let host_link = nl
        .link_by_name(host)
        .map_err(layer_error("reading the host's devices"))?
        .ok_or_else(|| CniError::new(Code::Plugin, format!("{host} is gone"), ""))?;
    if conf.kind == PairKind::Veth {
        // A veth pair is made down, so the pod is cut off until its chain
        // is attached (it is now): both ends come up, the pod's first, as
        // its routes need it up.
        fault("up")?;
        nl.set_mtu_state(host, (None, Some(true)), (None, Some(true)))
            .await
            .map_err(layer_error("bringing the pair up"))?;
    }

    // What a killed ADD made already, on these two devices.
    let (had_addresses, had_routes, had_host_routes) = if resuming {
        (
            addresses(&pod, pod_link.index).await,
            route_dsts(&pod, Some(pod_link.index)).await,
            route_dsts(nl, Some(host_link.index)).await,
        )
    } else {
        Default::default()
    };
    for ip in allocated.ips.iter().filter(|ip| !had_addresses.contains(&ip.address)) {
        pod.add_address(pod_link.index, ip.address.addr, ip.address.prefix)
            .await
            .map_err(layer_error("configuring the container's address"))?;
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
        if had_routes.contains(&dst) {
            routes.push(Route { dst, gw: None, other: Default::default() });
            continue;
        }
        match pod.add_device_route(dst.addr, dst.prefix, pod_link.index).await {
            Ok(()) => routes.push(Route { dst, gw: None, other: Default::default() }),
            // Another network of the pod owns the default route: keep it.
            Err(e) if dst.prefix == 0 && e.errno() == Some(libc::EEXIST) => {}
            Err(e) => return Err(layer_error("configuring the container's routes")(e)),
        }
    }
    fault("route")?;

    for ip in &allocated.ips {
        let dst = Cidr::host(ip.address.addr);
        if had_host_routes.contains(&dst) {
            continue;
        }
        nl.add_device_route(dst.addr, dst.prefix, host_link.index)
            .await
            .map_err(layer_error("configuring the host's route to the pod"))?;
    }
    forwarding(&allocated, conf.mode, host)?;

    fault("policy")?;
    if conf.kind == PairKind::Netkit && conf.policy != Policy::Drop {
        let change = PairChange { peer_policy: Some(conf.policy), ..PairChange::default() };
        nl.set(host, &change).await.map_err(layer_error("letting the pod's traffic through"))?;
    }

    let host_link = nl.link_by_name(host).ok().flatten().unwrap_or(host_link);
    let pod_link = pod.link_by_name(&env.ifname).ok().flatten().unwrap_or(pod_link);
    Ok(result(conf, env, &host_link, &pod_link, allocated, routes))
}

/// The host forwards between pods; in L2 mode its side answers the pod's
/// neighbour requests for every address it routes (proxy ARP).
pub(super) fn forwarding(allocated: &CniResult, mode: Mode, host: &str) -> Result<(), CniError> {
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
pub(super) fn result(
    conf: &NetConf,
    env: &Env,
    host: &Link,
    pod: &Link,
    allocated: CniResult,
    routes: Vec<Route>,
) -> CniResult {
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

pub(super) async fn addresses(nl: &Netlink, index: u32) -> Vec<Cidr> {
    let found = nl.addresses(index).await.unwrap_or_default();
    found.into_iter().map(|(addr, prefix)| Cidr { addr, prefix }).collect()
}

/// The destinations of the main table's routes (through `oif` when given).
pub(super) async fn route_dsts(nl: &Netlink, oif: Option<u32>) -> Vec<Cidr> {
    let routes = nl.routes().await.unwrap_or_default();
    routes
        .into_iter()
        .filter(|r| oif.is_none() || oif == r.oif)
        .map(|r| Cidr { addr: r.dst, prefix: r.prefix })
        .collect()
}
