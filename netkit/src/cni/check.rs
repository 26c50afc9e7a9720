//! CHECK: the attachment as ADD left it, or each difference named.

use std::path::Path;

use super::{
    CniError, Code, Env, Verb,
    config::NetConf,
    ipam,
    result::{Cidr, CniResult},
};
use super::{attach::*, network::*};
use crate::{
    apply::PlanOptions,
    netlink::{Netlink, links::PairKind},
    os::netns::NetnsRef,
};

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
    let mut differences = rt.block_on(differences(&nl, env, &record, prev, conf.kind));
    let spec = conf.spec(&record.host, &env.ifname, Path::new(&env.netns), conf.policy)?;
    // In full: CHECK names every difference, rules and entries written
    // into the pod's maps included, which no query of the hook shows.
    match rt.block_on(place.engine(&nl).plan(&spec, PlanOptions { full: true, ..PlanOptions::default() })) {
        Ok(plan) => {
            differences.extend(plan.steps.iter().map(|s| format!("{} {} ({})", s.action.name(), s.object, s.detail)))
        }
        Err(e) => differences.push(crate::os::errno::error_chain(&e)),
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

pub(super) async fn differences(
    nl: &Netlink,
    env: &Env,
    record: &Record,
    prev: &CniResult,
    kind: PairKind,
) -> Vec<String> {
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
        Ok(Some(l)) if PairKind::of(&l) == Some(kind) => Some(l),
        Ok(Some(l)) => {
            out.push(format!("{} is a {} device, not {kind}", record.host, l.kind.unwrap_or_default()));
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
