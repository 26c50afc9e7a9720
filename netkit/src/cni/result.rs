//! The protocol's result objects: what ADD prints, what a delegated IPAM
//! plugin answers, and the `prevResult` a runtime hands back for chaining,
//! CHECK and DEL. Keys this plugin does not know are kept as they came, so
//! a result passed through keeps what other plugins put in it.

use std::{collections::BTreeMap, net::IpAddr};

use serde::{Deserialize, Serialize};

/// One interface of a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its hardware address, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Its MTU (CNI 1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The namespace path for an interface inside the container; absent on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Other keys, kept.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// An address in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cidr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) =
            s.split_once('/').ok_or_else(|| format!("`{s}` is not in CIDR notation (ADDRESS/PREFIX)"))?;
        let addr: IpAddr = addr.parse().map_err(|_| format!("`{s}`: `{addr}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?;
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    /// The whole family's default destination (0.0.0.0/0 or ::/0).
    pub fn default_of(v4: bool) -> Self {
        if v4 {
            Self { addr: IpAddr::from([0u8; 4]), prefix: 0 }
        } else {
            Self { addr: IpAddr::from([0u16; 8]), prefix: 0 }
        }
    }

    /// The address alone, as a host route's destination.
    pub fn host(addr: IpAddr) -> Self {
        Self { addr, prefix: if addr.is_ipv4() { 32 } else { 128 } }
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One address of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address and prefix.
    pub address: Cidr,
    /// The subnet's gateway, when the IPAM plugin names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The index into `interfaces` of the interface it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// Other keys, kept.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// One route of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The destination.
    pub dst: Cidr,
    /// The next hop, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Other keys (mtu, priority, table, scope...), kept.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A success result (ADD), or a delegated IPAM plugin's abbreviated one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// The protocol version.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Interfaces made by the attachment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings (passed through as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_print_back() {
        for s in ["10.22.0.2/24", "0.0.0.0/0", "fd00::5/64"] {
            assert_eq!(s.parse::<Cidr>().unwrap().to_string(), s);
        }
        for bad in ["10.0.0.1", "10.0.0.1/33", "x/8", "fd00::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_of_a_result_are_kept() {
        let text = r#"{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/x","socketPath":"/s"}],
            "ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1"}],"routes":[{"dst":"0.0.0.0/0","priority":5}]}"#;
        let r: CniResult = serde_json::from_str(text).unwrap();
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["interfaces"][0]["socketPath"], "/s");
        assert_eq!(back["routes"][0]["priority"], 5);
        assert_eq!(back["ips"][0]["gateway"], "10.0.0.1");
    }
}
