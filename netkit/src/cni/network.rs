//! The pod's network once its pair exists: addresses, routes and
//! forwarding, the result the runtime gets, and the addresses and routes
//! read back for CHECK.

use std::{fs, net::IpAddr, path::Path};

use futures::TryStreamExt as _;
use netlink_packet_route::{
    address::{AddressAttribute, AddressFlags},
    route::{RouteAddress, RouteAttribute, RouteScope},
};
use rtnetlink::RouteMessageBuilder;

use super::attach::*;
use super::{
    CniError, Code, Env,
    config::NetConf,
    result::{Cidr, CniResult, Interface, IpConfig, Route},
};
use crate::{
    netlink::{
        Netlink, NetlinkError,
        device::PairChange,
        links::{Link, Mode, Policy},
    },
    os::netns::NetnsRef,
};

/// Addresses and routes, the host's route back, then the peer's policy.
pub(super) async fn finish(
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
pub(super) fn device_route(dst: Cidr, index: u32) -> Result<netlink_packet_route::route::RouteMessage, CniError> {
    Ok(RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst.addr, dst.prefix)
        .map_err(|e| CniError::new(Code::Plugin, format!("route to {dst}"), e.to_string()))?
        .output_interface(index)
        .scope(RouteScope::Link)
        .build())
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
pub(super) async fn route_dsts(nl: &Netlink, oif: Option<u32>) -> Vec<Cidr> {
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
