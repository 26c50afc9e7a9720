//! What `device add` asks for, checked before any netlink call: names, MTU,
//! namespaces, and the optional netkit attributes against what the running
//! kernel supports (probed on a throw-away pair, not by version number).

use super::*;

/// The upstream release that brought an option, for messages. Support itself
/// is probed (distribution kernels backport these).
pub(super) const SCRUB_SINCE: (u32, u32) = (6, 13);
pub(super) const ROOM_SINCE: (u32, u32) = (6, 14);
pub(super) const PAIRING_SINCE: (u32, u32) = (7, 1);

/// ETH_MIN_MTU and netkit's max_mtu (ETH_MAX_MTU).
pub(super) const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

/// A pair to create: netkit (the default) or veth.
#[derive(Debug, Clone, Default)]
pub struct PairSpec {
    /// The primary's name (for veth: the end made here, the host's).
    pub name: String,
    /// Netkit or veth. A veth pair takes no netkit setting (`settings`
    /// stays empty).
    pub kind: PairKind,
    /// The peer's name. When absent: the first free `nk<N>` (`veth<N>` for
    /// veth; never the primary's own name) for a peer created beside the
    /// primary; the kernel's pick, also `nk<N>` (`veth<N>`), for a peer
    /// created in another namespace.
    pub peer: Option<String>,
    /// What to ask for; `None` leaves the kernel's default.
    pub settings: PairSettings,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// Create the peer directly inside this namespace.
    pub peer_netns: Option<netns::NetnsRef>,
    /// Bring both ends up after creating them.
    pub up: bool,
    /// The primary's own MAC, offload limits and queues.
    pub attrs: EndAttrs,
    /// The peer's own MAC, offload limits and queues.
    pub peer_attrs: EndAttrs,
}

impl PairSpec {
    /// Everything that can be checked without changing anything: names, MTU,
    /// namespaces, and whether the running kernel knows each requested option
    /// (`support`, from [`probe_attributes`]).
    pub(crate) fn validate(&self, support: &AttrSupport) -> Result<(), DeviceError> {
        self.check_request()?;
        if let Some(ns) = &self.peer_netns {
            ns.open()?;
        }
        self.check_support(support)
    }

    /// Whether the kernel described by `support` knows each requested option.
    pub(crate) fn check_support(&self, support: &AttrSupport) -> Result<(), DeviceError> {
        let gates = [
            ("--scrub", self.settings.scrub.is_some(), support.scrub, SCRUB_SINCE),
            ("--peer-scrub", self.settings.peer_scrub.is_some(), support.scrub, SCRUB_SINCE),
            ("--headroom", self.settings.headroom.is_some(), support.headroom, ROOM_SINCE),
            ("--tailroom", self.settings.tailroom.is_some(), support.tailroom, ROOM_SINCE),
            ("--pairing single", self.is_single(), support.pairing, PAIRING_SINCE),
        ];
        for (option, wanted, supported, since) in gates {
            if wanted && !supported {
                return Err(DeviceError::TooOld { option, since, release: support.release.clone() });
            }
        }
        Ok(())
    }

    /// What can be checked from the request alone: names, MTU, the
    /// single-device rules, each end's values.
    pub(crate) fn check_request(&self) -> Result<(), DeviceError> {
        ifname::check(&self.name).map_err(DeviceError::Invalid)?;
        if let Some(peer) = &self.peer {
            ifname::check(peer).map_err(|e| DeviceError::Invalid(format!("--peer: {e}")))?;
            if *peer == self.name && self.peer_netns.is_none() {
                return Err(DeviceError::Invalid(format!(
                    "the peer cannot have the primary's name `{peer}` in the same network namespace"
                )));
            }
        }
        if let Some(mtu) = self.mtu
            && !MTU_RANGE.contains(&mtu)
        {
            return Err(DeviceError::Invalid(format!(
                "--mtu {mtu}: must be between {} and {}",
                MTU_RANGE.start(),
                MTU_RANGE.end()
            )));
        }
        if self.kind == PairKind::Veth {
            self.check_veth()?;
        }
        if self.is_single() {
            self.check_single()?;
        }
        // veth carries Ethernet frames, as netkit does in L2 mode.
        let l2 = self.kind == PairKind::Veth || self.settings.mode == Some(Mode::L2);
        self.attrs.check(false, l2).map_err(DeviceError::Invalid)?;
        self.peer_attrs.check(true, l2).map_err(DeviceError::Invalid)?;
        Ok(())
    }

    /// [`PairSpec::validate`] against what the running kernel supports,
    /// probing it only when an optional attribute is asked for.
    pub(crate) async fn validate_for_kernel(&self) -> Result<(), DeviceError> {
        let support = if self.wants_optional_attributes() { probe_attributes().await } else { AttrSupport::assumed() };
        self.validate(&support)
    }

    pub(super) fn is_single(&self) -> bool {
        self.settings.pairing == Some(Pairing::Single)
    }

    /// A single device has no peer, and the kernel keeps its policy at pass.
    pub(super) fn check_single(&self) -> Result<(), DeviceError> {
        let peer_options = [
            ("--peer", self.peer.is_some()),
            ("--peer-netns", self.peer_netns.is_some()),
            ("--peer-policy", self.settings.peer_policy.is_some()),
            ("--peer-scrub", self.settings.peer_scrub.is_some()),
            ("--peer-address, --peer-gso-*, --peer-gro-* and --peer-num*queues", !self.peer_attrs.is_empty()),
        ];
        if let Some((option, _)) = peer_options.iter().find(|(_, given)| *given) {
            return Err(DeviceError::Invalid(format!(
                "{option} does not apply to --pairing single: a single netkit device has no peer (leave out --pairing for a pair)"
            )));
        }
        if self.settings.scrub.is_some() {
            // The kernel answers EOPNOTSUPP: scrubbing happens when a packet
            // crosses from one end of a pair to the other.
            return Err(DeviceError::Invalid(
                "--scrub does not apply to --pairing single: scrubbing happens where a pair crosses namespaces, and a single device has no peer"
                    .into(),
            ));
        }
        if self.settings.policy == Some(Policy::Drop) {
            return Err(DeviceError::Invalid(
                "--policy drop does not apply to --pairing single: the kernel keeps a single netkit device's policy at pass"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The netkit settings a veth pair does not have are refused by name.
    fn check_veth(&self) -> Result<(), DeviceError> {
        let s = &self.settings;
        let netkit_only = [
            ("--mode", s.mode.is_some(), "a veth pair always carries Ethernet frames (netkit's l2)"),
            (
                "--policy",
                s.policy.is_some(),
                "a veth pair has no default verdict: with no program on tcx, packets pass",
            ),
            (
                "--peer-policy",
                s.peer_policy.is_some(),
                "a veth pair has no default verdict: with no program on tcx, packets pass",
            ),
            ("--scrub", s.scrub.is_some(), "veth always scrubs a packet that crosses namespaces"),
            ("--peer-scrub", s.peer_scrub.is_some(), "veth always scrubs a packet that crosses namespaces"),
            ("--headroom", s.headroom.is_some(), "veth reserves no extra room"),
            ("--tailroom", s.tailroom.is_some(), "veth reserves no extra room"),
            ("--pairing", s.pairing.is_some(), "a veth device always has a peer"),
        ];
        match netkit_only.iter().find(|(_, given, _)| *given) {
            Some((option, _, why)) => Err(DeviceError::Invalid(format!(
                "{option} is a netkit setting and does not apply to --kind veth ({why}): leave it out, or make a netkit pair; nothing was created"
            ))),
            None => Ok(()),
        }
    }

    pub(super) fn wants_tx_queues(&self) -> bool {
        [self.attrs.queues.num_tx_queues, self.peer_attrs.queues.num_tx_queues].into_iter().flatten().any(|n| n > 1)
    }

    /// Whether the request needs the kernel probed for netkit attributes
    /// (never for veth, which refuses them all).
    pub(super) fn wants_optional_attributes(&self) -> bool {
        self.kind == PairKind::Netkit
            && (self.is_single()
                || self.settings.scrub.is_some()
                || self.settings.peer_scrub.is_some()
                || self.settings.headroom.is_some()
                || self.settings.tailroom.is_some())
    }

    /// The peer's half of the request: its name, MTU, namespace and attributes.
    fn peer_message(&self, peer_ns: Option<&std::os::fd::OwnedFd>) -> LinkMessage {
        use std::os::fd::AsRawFd as _;
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new();
        if let Some(name) = &self.peer {
            peer = peer.name(name.clone());
        }
        if let Some(mtu) = self.mtu {
            peer = peer.mtu(mtu);
        }
        if let Some(fd) = peer_ns {
            peer = peer.setns_by_fd(fd.as_raw_fd());
        }
        for attr in self.peer_attrs.attributes() {
            peer = peer.append_extra_attribute(attr);
        }
        peer.build()
    }

    pub(super) fn message(&self, peer_ns: Option<&std::os::fd::OwnedFd>) -> LinkMessage {
        if self.kind == PairKind::Veth {
            let mut primary =
                LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth).name(self.name.clone());
            if let Some(mtu) = self.mtu {
                primary = primary.mtu(mtu);
            }
            for attr in self.attrs.attributes() {
                primary = primary.append_extra_attribute(attr);
            }
            return primary.set_info_data(InfoData::Veth(InfoVeth::Peer(self.peer_message(peer_ns)))).build();
        }
        let mut data = vec![InfoNetkit::Mode(self.settings.mode.unwrap_or(Mode::L3).to_nl())];
        if self.is_single() {
            data.push(Pairing::Single.to_nl());
        } else {
            data.push(InfoNetkit::Peer(self.peer_message(peer_ns)));
        }
        data.extend(self.settings.policy.map(|p| InfoNetkit::Policy(p.to_nl())));
        data.extend(self.settings.peer_policy.map(|p| InfoNetkit::PeerPolicy(p.to_nl())));
        data.extend(self.settings.scrub.map(|s| InfoNetkit::Scrub(s.to_nl())));
        data.extend(self.settings.peer_scrub.map(|s| InfoNetkit::PeerScrub(s.to_nl())));
        data.extend(self.settings.headroom.map(InfoNetkit::Headroom));
        data.extend(self.settings.tailroom.map(InfoNetkit::Tailroom));
        let mut primary =
            LinkMessageBuilder::<LinkNetkit>::new_with_info_kind(InfoKind::Netkit).name(self.name.clone());
        if let Some(mtu) = self.mtu {
            primary = primary.mtu(mtu);
        }
        for attr in self.attrs.attributes() {
            primary = primary.append_extra_attribute(attr);
        }
        primary.set_info_data(InfoData::Netkit(data)).build()
    }
}

/// Which optional netkit attributes the running kernel knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttrSupport {
    pub(crate) release: String,
    pub(crate) scrub: bool,
    pub(crate) headroom: bool,
    pub(crate) tailroom: bool,
    pub(crate) pairing: bool,
}

impl AttrSupport {
    /// Used when no optional attribute is requested: nothing to check.
    pub(super) fn assumed() -> Self {
        Self { release: probe::kernel_release(), scrub: true, headroom: true, tailroom: true, pairing: true }
    }

    /// A kernel with every attribute this tool knows, for planning against
    /// a synthetic node.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn newest() -> Self {
        Self { release: "newest".into(), scrub: true, headroom: true, tailroom: true, pairing: true }
    }

    /// From a dump of a netkit device: the kernel reports every attribute it knows.
    pub(crate) fn from_dump(release: String, nk: &NetkitAttrs) -> Self {
        Self {
            release,
            scrub: nk.settings.scrub.is_some(),
            headroom: nk.settings.headroom.is_some(),
            tailroom: nk.settings.tailroom.is_some(),
            pairing: nk.settings.pairing.is_some(),
        }
    }
}

/// Probes which optional attributes the kernel knows: a plain pair is created
/// inside a private network namespace that exists only for this probe, and
/// its dump shows the attributes the kernel fills in. The namespace (and the
/// pair) vanish when the probe's thread ends, so nothing is left anywhere.
/// Kernels silently ignore attributes they do not know, so asking is the
/// only way to find out before creating the real pair. The caller's task
/// waits for the probe's thread without blocking its runtime.
pub(crate) async fn probe_attributes() -> AttrSupport {
    let release = probe::kernel_release();
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        let probe = || -> Option<NetkitAttrs> {
            // SAFETY: unshare affects only this short-lived thread.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return None;
            }
            crate::runtime::new().ok()?.block_on(async {
                let nl = Netlink::connect().ok()?;
                let spec = PairSpec { name: "nkprobe0".into(), peer: Some("nkprobe1".into()), ..Default::default() };
                nl.handle.link().add(spec.message(None)).execute().await.ok()?;
                nl.link_by_name("nkprobe0").ok().flatten()?.netkit
            })
        };
        let _ = tx.send(probe());
    });
    match rx.await.ok().flatten() {
        Some(nk) => AttrSupport::from_dump(release, &nk),
        // Without the rights to probe, fall back to the upstream versions.
        None => {
            let have = probe::parse_release(&release).unwrap_or((0, 0));
            AttrSupport {
                scrub: have >= SCRUB_SINCE,
                headroom: have >= ROOM_SINCE,
                tailroom: have >= ROOM_SINCE,
                pairing: have >= PAIRING_SINCE,
                release,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::links::Scrub;

    fn spec(name: &str) -> PairSpec {
        PairSpec { name: name.into(), ..Default::default() }
    }

    fn all() -> AttrSupport {
        AttrSupport { release: "7.3.4".into(), scrub: true, headroom: true, tailroom: true, pairing: true }
    }

    #[test]
    fn names_are_checked_before_anything_else() {
        assert!(matches!(spec("").validate(&all()), Err(DeviceError::Invalid(_))));
        assert!(matches!(spec("waytoolongname16").validate(&all()), Err(DeviceError::Invalid(_))));
        let s = PairSpec { peer: Some("a/b".into()), ..spec("nk0") };
        assert!(s.validate(&all()).unwrap_err().to_string().contains("--peer"));
        let s = PairSpec { peer: Some("nk0".into()), ..spec("nk0") };
        assert!(s.validate(&all()).unwrap_err().to_string().contains("same network namespace"));
    }

    #[test]
    fn options_the_kernel_lacks_are_refused_naming_the_version() {
        let old =
            AttrSupport { release: "6.12.1".into(), scrub: true, headroom: false, tailroom: false, pairing: false };
        let s = PairSpec { settings: PairSettings { headroom: Some(64), ..Default::default() }, ..spec("nk0") };
        let e = s.validate(&old).unwrap_err().to_string();
        assert!(e.contains("does not support --headroom (it came with Linux 6.14)"), "{e}");
        assert!(e.contains("nothing was created"), "{e}");
        let s = PairSpec { settings: PairSettings { tailroom: Some(1), ..Default::default() }, ..spec("nk0") };
        assert!(s.validate(&old).is_err());
        let s = PairSpec { settings: PairSettings { scrub: Some(Scrub::None), ..Default::default() }, ..spec("nk0") };
        assert!(s.validate(&old).is_ok(), "scrub is supported by this (backported) kernel");
        let older = AttrSupport { scrub: false, ..old };
        assert!(s.validate(&older).unwrap_err().to_string().contains("--scrub"));
        let s = PairSpec {
            settings: PairSettings { headroom: Some(64), tailroom: Some(64), ..Default::default() },
            ..spec("nk0")
        };
        assert!(s.validate(&all()).is_ok());
    }

    #[test]
    fn mtu_range_and_missing_netns() {
        let s = PairSpec { mtu: Some(67), ..spec("nk0") };
        assert!(s.validate(&all()).unwrap_err().to_string().contains("between 68 and 65535"));
        let s = PairSpec { mtu: Some(65536), ..spec("nk0") };
        assert!(s.validate(&all()).is_err());
        let s = PairSpec { peer_netns: Some(netns::NetnsRef::Name("netkit-no-such-ns".into())), ..spec("nk0") };
        assert!(s.validate(&all()).unwrap_err().to_string().contains("does not exist"));
    }

    #[test]
    fn support_is_read_from_what_the_dump_reports() {
        let nk = NetkitAttrs {
            settings: PairSettings { scrub: Some(Scrub::Default), ..Default::default() },
            ..Default::default()
        };
        let s = AttrSupport::from_dump("6.12.95".into(), &nk);
        assert!(s.scrub && !s.headroom && !s.tailroom);
    }
}
