//! Planning one pair: how the pair the spec names differs from the one on
//! the node, attributes the kernel fixes at creation apart from those that
//! change live.

use super::*;

pub(super) fn describe_pair(p: &PairSpec) -> String {
    let mut parts = Vec::new();
    if p.kind == PairKind::Veth {
        parts.push("veth".to_string());
    }
    if let Some(peer) = &p.peer {
        parts.push(format!("peer {peer}"));
    }
    if let Some(ns) = &p.peer_netns {
        parts.push(format!("in {ns}"));
    }
    if let Some(m) = p.settings.mode {
        parts.push(format!("mode {m}"));
    }
    parts.join(", ")
}

/// The spec's fixed attributes that differ from the live pair, in words.
pub(super) fn fixed_differences(want: &PairSpec, ends: &Ends) -> Vec<String> {
    let mut out = Vec::new();
    let nk = ends.primary.netkit.clone().unwrap_or_default().settings;
    let mut differs = |what: &str, want: Option<String>, have: Option<String>| {
        if let Some(w) = want
            && Some(&w) != have.as_ref()
        {
            out.push(format!("{what} is {} (the spec says {w})", have.unwrap_or_else(|| "unknown".into())));
        }
    };
    match PairKind::of(&ends.primary) {
        Some(kind) if kind == want.kind => {}
        Some(kind) => {
            out.push(format!("kind is {kind} (the spec says {})", want.kind));
            return out;
        }
        None => {
            out.push(format!("{} is not a {} device", ends.primary.name, want.kind));
            return out;
        }
    }
    differs("mode", want.settings.mode.map(|m| m.to_string()), nk.mode.map(|m| m.to_string()));
    differs(
        "pairing",
        want.settings.pairing.map(|p| p.to_string()),
        Some(nk.pairing.unwrap_or(crate::netlink::links::Pairing::Pair).to_string()),
    );
    differs("scrub", want.settings.scrub.map(|s| s.to_string()), nk.scrub.map(|s| s.to_string()));
    differs("peer.scrub", want.settings.peer_scrub.map(|s| s.to_string()), nk.peer_scrub.map(|s| s.to_string()));
    differs("headroom", want.settings.headroom.map(|v| v.to_string()), nk.headroom.map(|v| v.to_string()));
    differs("tailroom", want.settings.tailroom.map(|v| v.to_string()), nk.tailroom.map(|v| v.to_string()));
    let q = |v: Option<u32>| v.map(|v| v.to_string());
    differs("primary.numrxqueues", q(want.attrs.queues.num_rx_queues), q(ends.primary.queues.num_rx_queues));
    differs("primary.numtxqueues", q(want.attrs.queues.num_tx_queues), q(ends.primary.queues.num_tx_queues));
    if let Some(peer) = &ends.peer {
        differs("peer.name", want.peer.clone(), Some(peer.name.clone()));
        differs("peer.numrxqueues", q(want.peer_attrs.queues.num_rx_queues), q(peer.queues.num_rx_queues));
        differs("peer.numtxqueues", q(want.peer_attrs.queues.num_tx_queues), q(peer.queues.num_tx_queues));
    }
    // The peer's namespace is not fixed: a peer elsewhere is moved back.
    out
}

/// The calling thread's own namespace, as a path that names it.
pub(super) const HERE: &str = "/proc/thread-self/ns/net";

pub(super) fn namespace_words(ns: &Option<netns::NetnsRef>) -> String {
    ns.as_ref().map(|n| n.to_string()).unwrap_or_else(|| "this namespace".into())
}

/// When the peer is in another namespace than the spec gives it (another
/// tool moved it): where it is, in words, and the move back. Namespaces are
/// compared by identity, not by name.
pub(super) fn peer_elsewhere(want: &PairSpec, ends: &Ends) -> Option<(String, PeerMove)> {
    if ends.peer_unreachable || ends.peer.is_none() {
        return None;
    }
    let here = ends.peer_netns.as_ref().map(|n| netns::identity(&n.path));
    let want_ns = want.peer_netns.as_ref().map(|n| netns::identity(&n.path()));
    let same = match (here, want_ns) {
        (None, None) => true,
        (Some(a), Some(b)) => a == b,
        (None, Some(b)) => netns::identity(std::path::Path::new(HERE)) == b,
        (Some(_), None) => false,
    };
    if same {
        return None;
    }
    let now = ends.peer_netns.as_ref().map(|n| n.name.clone()).unwrap_or_else(|| "this namespace".into());
    let path = |p: &std::path::Path| netns::NetnsRef::Path(p.to_path_buf());
    let to = want.peer_netns.clone().unwrap_or_else(|| path(std::path::Path::new(HERE)));
    let from = ends.peer_netns.as_ref().map_or_else(|| path(std::path::Path::new(HERE)), |n| path(&n.path));
    let was_up = ends.peer.as_ref().is_some_and(|p| p.up);
    Some((now, PeerMove { to, from, was_up }))
}

/// The spec's live attributes that differ: the change to make, the MTU, up.
pub(super) fn live_differences(want: &PairSpec, ends: &Ends) -> (PairChange, Option<u32>, bool, Vec<String>) {
    let nk = ends.primary.netkit.clone().unwrap_or_default().settings;
    let mut what = Vec::new();
    let mut change = PairChange::default();
    if let Some(p) = want.settings.policy
        && nk.policy != Some(p)
    {
        change.policy = Some(p);
        what.push(format!("primary.policy {p}"));
    }
    if let Some(p) = want.settings.peer_policy
        && nk.peer_policy != Some(p)
    {
        change.peer_policy = Some(p);
        what.push(format!("peer.policy {p}"));
    }
    change.this = end_change(&want.attrs, &ends.primary, "primary", &mut what);
    if let Some(peer) = &ends.peer {
        change.peer = end_change(&want.peer_attrs, peer, "peer", &mut what);
    }
    let mtu =
        want.mtu.filter(|m| Some(*m) != ends.primary.mtu || ends.peer.as_ref().is_some_and(|p| p.mtu != Some(*m)));
    if let Some(m) = mtu {
        what.push(format!("mtu {m}"));
    }
    let up = want.up && (!ends.primary.up || ends.peer.as_ref().is_some_and(|p| !p.up));
    if up {
        what.push("up".into());
    }
    (change, mtu, up, what)
}

pub(super) fn end_change(want: &EndAttrs, have: &Link, end: &str, what: &mut Vec<String>) -> EndAttrs {
    let mut out = EndAttrs::default();
    if let Some(mac) = want.address
        && have.mac().as_deref() != Some(mac.to_string().as_str())
    {
        out.address = Some(mac);
        what.push(format!("{end}.address {mac}"));
    }
    let (w, h) = (&want.offload, &have.offload);
    let mut o = Offload::default();
    for (name, want, have, slot) in [
        ("gso_max_size", w.gso_max_size, h.gso_max_size, &mut o.gso_max_size),
        ("gso_ipv4_max_size", w.gso_ipv4_max_size, h.gso_ipv4_max_size, &mut o.gso_ipv4_max_size),
        ("gro_max_size", w.gro_max_size, h.gro_max_size, &mut o.gro_max_size),
        ("gro_ipv4_max_size", w.gro_ipv4_max_size, h.gro_ipv4_max_size, &mut o.gro_ipv4_max_size),
        ("gso_max_segs", w.gso_max_segs, h.gso_max_segs, &mut o.gso_max_segs),
    ] {
        if let Some(v) = want
            && have != Some(v)
        {
            *slot = Some(v);
            what.push(format!("{end}.{name} {v}"));
        }
    }
    out.offload = o;
    out
}

/// A spec that recreates the pair as it is now (to undo its deletion).
pub(crate) fn spec_of(ends: &Ends) -> PairSpec {
    let nk = ends.primary.netkit.clone().unwrap_or_default().settings;
    let end = |l: &Link| EndAttrs {
        address: l.address.as_deref().and_then(|a| <[u8; 6]>::try_from(a).ok()).map(Mac),
        offload: Offload::default(),
        queues: Default::default(),
    };
    let kind = PairKind::of(&ends.primary).unwrap_or_default();
    // veth carries Ethernet frames, as netkit does in L2 mode: its MACs are kept.
    let l2 = kind == PairKind::Veth || nk.mode == Some(crate::netlink::links::Mode::L2);
    PairSpec {
        name: ends.primary.name.clone(),
        kind,
        peer: ends.peer.as_ref().map(|p| p.name.clone()),
        settings: PairSettings { pairing: None, ..nk },
        mtu: ends.primary.mtu,
        peer_netns: ends.peer_netns.as_ref().map(|n| netns::NetnsRef::Path(n.path.clone())),
        up: ends.primary.up,
        attrs: if l2 { end(&ends.primary) } else { EndAttrs::default() },
        peer_attrs: match &ends.peer {
            Some(p) if l2 => end(p),
            _ => EndAttrs::default(),
        },
    }
}
