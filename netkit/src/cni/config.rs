//! The network configuration a runtime hands the plugin on standard input,
//! checked as a whole before anything changes. The netkit keys sit beside
//! the protocol's own (`cniVersion`, `name`, `type`, `ipam`, `prevResult`,
//! ...); `chains` uses the apply spec's chain schema without `device` (the
//! device is the attachment's own pair), so its mistakes are reported with
//! their line and column, as apply reports them.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{CniError, Code, result::CniResult};
use crate::{
    apply::spec::{self, ChainDoc, EndDoc, EntryDoc, PairDoc, Spec, SpecDoc},
    netlink::links::{Mode, PairKind, Policy, Scrub},
    os::probe::{self, Feature},
};

/// The protocol versions this plugin speaks.
pub const SUPPORTED_VERSIONS: &[&str] = &["1.0.0", "1.1.0"];

/// How standard input is named in messages about it.
pub const STDIN_NAME: &str = "network configuration";

/// Keys the protocol defines or a runtime adds; the plugin reads some of
/// them and must tolerate the rest.
const PROTOCOL_KEYS: &[&str] = &[
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "ipam",
    "dns",
    "prevResult",
    "runtimeConfig",
    "args",
    "capabilities",
    "disableCheck",
    "disableGC",
];

/// The keys of this plugin's own.
const NETKIT_KEYS: &[&str] = &[
    "kind",
    "mode",
    "mtu",
    "policy",
    "primaryPolicy",
    "scrub",
    "peerScrub",
    "headroom",
    "tailroom",
    "chains",
    "bpffs",
    "stateDir",
    "expedite",
];

/// A chain on one of the attachment's hooks: the apply spec's chain without
/// its device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConf {
    /// primary, peer (netkit) or ingress, egress (tcx on the host side).
    pub hook: Spanned<String>,
    /// The programs, first to last.
    #[serde(default)]
    pub programs: Vec<EntryDoc>,
}

/// `kind`: the device pods get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindConf {
    Netkit,
    Veth,
    /// netkit when the kernel has it, veth otherwise.
    Auto,
}

/// `ipam`: the delegated plugin's section (the rest is its own business).
#[derive(Debug, Clone, Deserialize)]
pub struct IpamConf {
    /// The IPAM plugin's executable name.
    #[serde(rename = "type")]
    pub kind: String,
}

/// One entry of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attachment {
    /// CNI_CONTAINERID of its ADD.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// CNI_IFNAME of its ADD.
    pub ifname: String,
}

/// The configuration as read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    #[serde(default)]
    cni_version: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    ipam: Option<IpamConf>,
    #[serde(default)]
    kind: Option<KindConf>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    policy: Option<Policy>,
    #[serde(default)]
    primary_policy: Option<Policy>,
    #[serde(default)]
    scrub: Option<Scrub>,
    #[serde(default)]
    peer_scrub: Option<Scrub>,
    #[serde(default)]
    headroom: Option<u16>,
    #[serde(default)]
    tailroom: Option<u16>,
    #[serde(default)]
    chains: Vec<ChainConf>,
    #[serde(default)]
    bpffs: Option<PathBuf>,
    #[serde(default)]
    state_dir: Option<PathBuf>,
    #[serde(default)]
    expedite: bool,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct NetConf {
    /// The protocol version in use.
    pub cni_version: String,
    /// The network's name.
    pub name: String,
    /// The IPAM plugin.
    pub ipam: IpamConf,
    /// The result of the plugins before this one (chaining, CHECK, DEL).
    pub prev_result: Option<CniResult>,
    /// The device pods get: netkit (the default) or veth, `auto` resolved
    /// against this kernel.
    pub kind: PairKind,
    /// The configuration said `auto`.
    pub auto: bool,
    /// l3 (default) or l2; a veth pair is always l2.
    pub mode: Mode,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// The peer's policy once the chain is attached (default pass).
    pub policy: Policy,
    /// The primary's policy (default pass).
    pub primary_policy: Policy,
    /// Scrub settings of the ends.
    pub scrub: Option<Scrub>,
    /// The peer's scrub setting.
    pub peer_scrub: Option<Scrub>,
    /// Extra headroom.
    pub headroom: Option<u16>,
    /// Extra tailroom.
    pub tailroom: Option<u16>,
    /// The chains as written.
    pub chains: Vec<ChainConf>,
    /// The bpffs the links are pinned under.
    pub bpffs: PathBuf,
    /// Where attachments are recorded.
    pub state_dir: PathBuf,
    /// Expedite the kernel's RCU grace periods while an ADD attaches (see
    /// [`crate::os::rcu`]); off unless asked for.
    pub expedite: bool,
    /// GC's still-valid attachments.
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The configuration's bytes, as the delegated plugins get them.
    pub raw: Vec<u8>,
}

/// Reads only the version, for VERSION (which must answer whatever else
/// the input holds).
pub fn version_of(raw: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(raw).ok()?;
    value.get("cniVersion")?.as_str().map(str::to_string)
}

/// Parses and checks standard input. With `chains` false (DEL, GC,
/// STATUS) the chains are not read: removing an attachment must not depend
/// on a configuration edited since its ADD.
pub fn parse(raw: &[u8], chains: bool) -> Result<NetConf, CniError> {
    let text = std::str::from_utf8(raw)
        .map_err(|e| CniError::new(Code::Decode, "the network configuration is not UTF-8", e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        CniError::new(Code::Decode, "the network configuration is not valid JSON", format!("{STDIN_NAME}: {e}"))
    })?;
    let Some(object) = value.as_object() else {
        return Err(CniError::new(Code::Decode, "the network configuration is not a JSON object", text.trim()));
    };
    for (key, value) in object {
        if !PROTOCOL_KEYS.contains(&key.as_str())
            && !NETKIT_KEYS.contains(&key.as_str())
            && !key.starts_with("cni.dev/")
        {
            return Err(CniError::new(
                Code::UnsupportedField,
                format!("unsupported field `{key}` in the network configuration"),
                format!(
                    "`{key}`: {value} is not a key netkit knows; its keys are {}",
                    NETKIT_KEYS.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    let options = serde_saphyr::options! {
        with_snippet: false,
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    let without_chains;
    let text = if chains {
        text
    } else {
        let mut object = object.clone();
        object.remove("chains");
        without_chains = serde_json::Value::Object(object).to_string();
        without_chains.as_str()
    };
    let doc: Doc = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let place = e.location().map(|l| format!("{}:{}: ", l.line(), l.column())).unwrap_or_default();
        let first = e.to_string().lines().next().unwrap_or_default().trim().to_string();
        CniError::new(
            Code::InvalidConfig,
            "the network configuration is not valid",
            format!("{STDIN_NAME}:{place}{first}"),
        )
    })?;

    // Results and attachments come from the runtime, not from a person:
    // read with the plain JSON reader (they keep keys netkit does not know).
    let prev_result = object
        .get("prevResult")
        .map(|v| serde_json::from_value::<CniResult>(v.clone()))
        .transpose()
        .map_err(|e| CniError::new(Code::Decode, "`prevResult` is not a CNI result", e.to_string()))?;
    let valid_attachments = object
        .get("cni.dev/valid-attachments")
        .filter(|v| !v.is_null())
        .map(|v| serde_json::from_value::<Vec<Attachment>>(v.clone()))
        .transpose()
        .map_err(|e| {
            CniError::new(Code::Decode, "`cni.dev/valid-attachments` is not a list of attachments", e.to_string())
        })?;

    let version = doc.cni_version.clone().unwrap_or_default();
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!("netkit does not speak CNI version `{version}`"),
            format!("supported versions: {}; set cniVersion to one of them", SUPPORTED_VERSIONS.join(", ")),
        )
        .version(SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.len() - 1]));
    }
    let name = doc.name.clone().unwrap_or_default();
    if !valid_network_name(&name) {
        return Err(invalid(format!(
            "`name`: `{name}` is not a network name (a letter or digit, then letters, digits, `_`, `.` or `-`)"
        )));
    }
    let ipam = match doc.ipam {
        None => {
            return Err(invalid(
                "`ipam` is missing: netkit-cni has an IPAM plugin address the pod, e.g. \"ipam\": {\"type\": \"host-local\", \"ranges\": [[{\"subnet\": \"10.22.0.0/24\"}]]}".into(),
            ));
        }
        Some(ipam) if !valid_plugin_name(&ipam.kind) => {
            return Err(invalid(format!("`ipam.type`: `{}` is not a plugin name (no `/`, not empty)", ipam.kind)));
        }
        Some(ipam) => ipam,
    };
    let kind = match doc.kind {
        None | Some(KindConf::Netkit) => PairKind::Netkit,
        Some(KindConf::Veth) => PairKind::Veth,
        Some(KindConf::Auto) if probe::probe(Feature::Netkit).is_supported() => PairKind::Netkit,
        Some(KindConf::Auto) => PairKind::Veth,
    };
    if kind == PairKind::Veth && chains {
        let netkit_only = [
            ("mode", doc.mode.is_some()),
            ("policy", doc.policy.is_some()),
            ("primaryPolicy", doc.primary_policy.is_some()),
            ("scrub", doc.scrub.is_some()),
            ("peerScrub", doc.peer_scrub.is_some()),
            ("headroom", doc.headroom.is_some()),
            ("tailroom", doc.tailroom.is_some()),
        ];
        if let Some((key, _)) = netkit_only.iter().find(|(_, given)| *given) {
            let why = if doc.kind == Some(KindConf::Auto) {
                format!("`kind` auto gives veth pairs here (this kernel, {}, has no netkit)", probe::kernel_release())
            } else {
                "`kind` is veth".to_string()
            };
            return Err(invalid(format!(
                "`{key}` is a netkit setting and {why}: a veth pair always carries Ethernet frames, has no default verdicts (it is cut off until its chain is attached by staying down) and no scrub, headroom or tailroom settings; leave `{key}` out"
            )));
        }
    }
    let conf = NetConf {
        cni_version: version,
        name,
        ipam,
        prev_result,
        kind,
        auto: doc.kind == Some(KindConf::Auto),
        mode: if kind == PairKind::Veth { Mode::L2 } else { doc.mode.unwrap_or(Mode::L3) },
        mtu: doc.mtu,
        policy: doc.policy.unwrap_or(Policy::Pass),
        primary_policy: doc.primary_policy.unwrap_or(Policy::Pass),
        scrub: doc.scrub,
        peer_scrub: doc.peer_scrub,
        headroom: doc.headroom,
        tailroom: doc.tailroom,
        chains: doc.chains,
        bpffs: doc.bpffs.unwrap_or_else(|| "/sys/fs/bpf".into()),
        state_dir: doc.state_dir.unwrap_or_else(|| "/run/netkit/cni".into()),
        expedite: doc.expedite,
        valid_attachments,
        raw: raw.to_vec(),
    };
    // The chain schema checked now, with a stand-in device name, so a bad
    // chain is refused before the IPAM plugin allocates anything.
    if chains {
        conf.spec("nk0", "eth0", Path::new("/proc/self/ns/net"), Policy::Drop)?;
    }
    Ok(conf)
}

fn invalid(details: String) -> CniError {
    CniError::new(Code::InvalidConfig, "the network configuration is not valid", details)
}

/// The protocol's rule for network names (they become paths here too).
fn valid_network_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_plugin_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".."
}

impl NetConf {
    /// The apply spec of one attachment: the pair (host side `host`, the
    /// peer `ifname` inside `netns` with `peer_policy`) and the configured
    /// chains on its hooks.
    pub fn spec(&self, host: &str, ifname: &str, netns: &Path, peer_policy: Policy) -> Result<Spec, CniError> {
        let pair = if self.kind == PairKind::Veth {
            // Made down: the pod is cut off until its chain is attached and
            // its network configured, when both ends come up.
            PairDoc {
                name: spec::unplaced(host.to_string()),
                kind: Some(PairKind::Veth),
                mode: None,
                pairing: None,
                headroom: None,
                tailroom: None,
                mtu: self.mtu,
                up: Some(false),
                primary: EndDoc::default(),
                peer: EndDoc {
                    name: Some(ifname.to_string()),
                    netns: Some(netns.display().to_string()),
                    ..EndDoc::default()
                },
            }
        } else {
            self.netkit_pair(host, ifname, netns, peer_policy)
        };
        self.spec_with(pair, host)
    }

    fn netkit_pair(&self, host: &str, ifname: &str, netns: &Path, peer_policy: Policy) -> PairDoc {
        PairDoc {
            name: spec::unplaced(host.to_string()),
            kind: None,
            mode: Some(self.mode),
            pairing: None,
            headroom: self.headroom,
            tailroom: self.tailroom,
            mtu: self.mtu,
            up: Some(true),
            primary: EndDoc { policy: Some(self.primary_policy), scrub: self.scrub, ..EndDoc::default() },
            peer: EndDoc {
                name: Some(ifname.to_string()),
                netns: Some(netns.display().to_string()),
                policy: Some(peer_policy),
                scrub: self.peer_scrub,
                ..EndDoc::default()
            },
        }
    }

    fn spec_with(&self, pair: PairDoc, host: &str) -> Result<Spec, CniError> {
        let chains = self
            .chains
            .iter()
            .map(|c| ChainDoc {
                device: spec::unplaced(host.to_string()),
                hook: c.hook.clone(),
                programs: c.programs.clone(),
            })
            .collect();
        let doc = SpecDoc { pairs: vec![pair], chains };
        spec::validate(STDIN_NAME, &doc).map_err(|e| {
            let details = e
                .mistakes
                .iter()
                .map(|m| {
                    if m.place.line == 0 {
                        format!("{STDIN_NAME}: {}", m.message)
                    } else {
                        format!("{STDIN_NAME}:{}: {}", m.place, m.message)
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            invalid(details)
        })
    }

    /// GC's valid attachments as a set.
    pub fn valid_set(&self) -> BTreeSet<Attachment> {
        self.valid_attachments.iter().flatten().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(extra: &str) -> String {
        format!(
            r#"{{"cniVersion": "1.1.0", "name": "pods", "type": "netkit-cni",
 "ipam": {{"type": "host-local"}}{extra}}}"#
        )
    }

    #[test]
    fn a_good_configuration_reads_with_its_defaults() {
        let c =
            parse(conf(r#", "mtu": 1400, "runtimeConfig": {}, "cni.dev/valid-attachments": null"#).as_bytes(), true)
                .unwrap();
        assert_eq!((c.mode, c.policy, c.mtu), (Mode::L3, Policy::Pass, Some(1400)));
        assert_eq!(c.ipam.kind, "host-local");
        assert!(c.valid_set().is_empty());
    }

    #[test]
    fn a_veth_configuration_takes_no_netkit_setting() {
        let c = parse(conf(r#", "kind": "veth", "mtu": 1400"#).as_bytes(), true).unwrap();
        assert_eq!((c.kind, c.mode, c.auto), (PairKind::Veth, Mode::L2, false));
        let spec = c.spec("nk0", "eth0", Path::new("/proc/self/ns/net"), Policy::Drop).unwrap();
        let pair = &spec.pairs[0].spec;
        assert_eq!(
            (pair.kind, pair.up, pair.settings.peer_policy),
            (PairKind::Veth, false, None),
            "made down, no policy"
        );
        for key in [r#""mode": "l2""#, r#""policy": "pass""#, r#""primaryPolicy": "drop""#, r#""headroom": 64"#] {
            let e = parse(conf(&format!(r#", "kind": "veth", {key}"#)).as_bytes(), true).unwrap_err();
            assert_eq!(e.code, Code::InvalidConfig as u32, "{key}");
            assert!(e.details.contains("is a netkit setting and `kind` is veth"), "{key}: {}", e.details);
        }
        // DEL, GC and STATUS do not refuse what ADD would have.
        assert!(parse(conf(r#", "kind": "veth", "mode": "l2""#).as_bytes(), false).is_ok());
        let auto = parse(conf(r#", "kind": "auto""#).as_bytes(), true).unwrap();
        let has = crate::os::probe::probe(Feature::Netkit).is_supported();
        assert_eq!((auto.kind, auto.auto), (if has { PairKind::Netkit } else { PairKind::Veth }, true));
        assert_eq!(parse(conf(r#", "kind": "tap""#).as_bytes(), true).unwrap_err().code, Code::InvalidConfig as u32);
    }

    #[test]
    fn mistakes_get_the_protocols_codes() {
        let code = |text: &str| parse(text.as_bytes(), true).unwrap_err().code;
        assert_eq!(code("not json"), Code::Decode as u32);
        assert_eq!(code(&conf("").replace("1.1.0", "0.3.1")), Code::IncompatibleVersion as u32);
        assert_eq!(code(&conf(r#", "chain": []"#)), Code::UnsupportedField as u32);
        assert_eq!(code(&conf(r#", "mode": "l4""#)), Code::InvalidConfig as u32);
        assert_eq!(
            code(r#"{"cniVersion": "1.1.0", "name": "pods", "type": "netkit-cni"}"#),
            Code::InvalidConfig as u32
        );
        assert_eq!(code(&conf("").replace("\"pods\"", "\"../x\"")), Code::InvalidConfig as u32);
    }

    #[test]
    fn chain_mistakes_name_their_line_and_column() {
        let text = conf(
            ",\n \"chains\": [{\"hook\": \"peer\", \"programs\": [\n   {\"name\": \"x\", \"program\": \"nope\"}]}]",
        );
        let e = parse(text.as_bytes(), true).unwrap_err();
        // DEL does not read the chains: it works whatever they say.
        assert!(parse(text.as_bytes(), false).is_ok());
        assert!(e.details.starts_with("network configuration:4:"), "{}", e.details);
        assert!(e.details.contains("no bundled program named `nope`"), "{}", e.details);
    }

    #[test]
    fn the_readmes_example_conflist_reads() {
        let list: serde_json::Value =
            serde_json::from_str(include_str!("../../../deploy/cni/10-netkit.conflist")).unwrap();
        // A runtime hands each plugin its entry with the list's version and name.
        let mut plugin = list["plugins"][0].clone();
        plugin["cniVersion"] = list["cniVersion"].clone();
        plugin["name"] = list["name"].clone();
        let c = parse(plugin.to_string().as_bytes(), true).unwrap();
        assert_eq!((c.chains.len(), c.chains[0].programs.len()), (1, 2));
    }
}
