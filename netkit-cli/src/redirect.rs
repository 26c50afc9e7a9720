//! Entries of an attached `redirect-peer` program: destination address ->
//! the netkit pair (its primary's ifindex) whose peer receives the packet.
//! Changed live through the program's maps.

use std::net::IpAddr;

use aya::maps::{HashMap, MapData};
use netkit_common::redirect::{MAX_ENTRIES, STAT_MISSED, STAT_REDIRECTED};
use serde::Serialize;

use crate::progmaps::{MapsError, ProgMaps, aya_err};

#[derive(Debug, thiserror::Error)]
pub enum RedirectError {
    #[error("no redirect entry for {0}")]
    NoEntry(IpAddr),
    #[error("the redirect table for {family} is full ({MAX_ENTRIES} entries); nothing was changed")]
    Full { family: &'static str },
    #[error(transparent)]
    Maps(#[from] MapsError),
}

/// One entry, for listing.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub ip: IpAddr,
    /// The netkit primary whose peer gets the packets.
    pub ifindex: u32,
    pub pair: Option<String>,
}

/// Packets the program redirected and packets it passed on.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RedirectStats {
    pub redirected: u64,
    pub not_matched: u64,
}

pub struct Redirect {
    maps: ProgMaps,
}

fn full(family: &'static str, name: &'static str) -> impl Fn(aya::maps::MapError) -> RedirectError {
    move |e| {
        if let aya::maps::MapError::SyscallError(s) = &e
            && matches!(s.io_error.raw_os_error(), Some(libc::E2BIG | libc::ENOSPC))
        {
            return RedirectError::Full { family };
        }
        aya_err(name)(e).into()
    }
}

impl Redirect {
    pub fn open(prog_id: u32) -> Result<Self, RedirectError> {
        Ok(Self { maps: ProgMaps::open(prog_id)? })
    }

    /// Sends packets for `ip` to the peer of the pair with primary `ifindex`;
    /// returns the ifindex it replaced, if any.
    pub fn add(&self, ip: IpAddr, ifindex: u32) -> Result<Option<u32>, RedirectError> {
        match ip {
            IpAddr::V4(a) => {
                let mut m: HashMap<MapData, [u8; 4], u32> =
                    HashMap::try_from(self.maps.get("REDIR_V4")?).map_err(aya_err("REDIR_V4"))?;
                let old = m.get(&a.octets(), 0).ok();
                m.insert(a.octets(), ifindex, 0).map_err(full("IPv4", "REDIR_V4"))?;
                Ok(old)
            }
            IpAddr::V6(a) => {
                let mut m: HashMap<MapData, [u8; 16], u32> =
                    HashMap::try_from(self.maps.get("REDIR_V6")?).map_err(aya_err("REDIR_V6"))?;
                let old = m.get(&a.octets(), 0).ok();
                m.insert(a.octets(), ifindex, 0).map_err(full("IPv6", "REDIR_V6"))?;
                Ok(old)
            }
        }
    }

    /// Removes the entry for `ip`; returns the ifindex it pointed at.
    pub fn delete(&self, ip: IpAddr) -> Result<u32, RedirectError> {
        match ip {
            IpAddr::V4(a) => {
                let mut m: HashMap<MapData, [u8; 4], u32> =
                    HashMap::try_from(self.maps.get("REDIR_V4")?).map_err(aya_err("REDIR_V4"))?;
                let old = m.get(&a.octets(), 0).map_err(|_| RedirectError::NoEntry(ip))?;
                m.remove(&a.octets()).map_err(aya_err("REDIR_V4"))?;
                Ok(old)
            }
            IpAddr::V6(a) => {
                let mut m: HashMap<MapData, [u8; 16], u32> =
                    HashMap::try_from(self.maps.get("REDIR_V6")?).map_err(aya_err("REDIR_V6"))?;
                let old = m.get(&a.octets(), 0).map_err(|_| RedirectError::NoEntry(ip))?;
                m.remove(&a.octets()).map_err(aya_err("REDIR_V6"))?;
                Ok(old)
            }
        }
    }

    /// Every entry (pair names are filled in by the caller).
    pub fn list(&self) -> Result<Vec<Entry>, RedirectError> {
        let mut out = Vec::new();
        let v4: HashMap<MapData, [u8; 4], u32> =
            HashMap::try_from(self.maps.get("REDIR_V4")?).map_err(aya_err("REDIR_V4"))?;
        for kv in v4.iter() {
            let (k, v) = kv.map_err(aya_err("REDIR_V4"))?;
            out.push(Entry { ip: IpAddr::from(k), ifindex: v, pair: None });
        }
        let v6: HashMap<MapData, [u8; 16], u32> =
            HashMap::try_from(self.maps.get("REDIR_V6")?).map_err(aya_err("REDIR_V6"))?;
        for kv in v6.iter() {
            let (k, v) = kv.map_err(aya_err("REDIR_V6"))?;
            out.push(Entry { ip: IpAddr::from(k), ifindex: v, pair: None });
        }
        out.sort_by_key(|e| e.ip);
        Ok(out)
    }

    pub fn stats(&self) -> Result<RedirectStats, RedirectError> {
        Ok(RedirectStats {
            redirected: self.maps.per_cpu_u64("REDIR_STATS", STAT_REDIRECTED)?,
            not_matched: self.maps.per_cpu_u64("REDIR_STATS", STAT_MISSED)?,
        })
    }
}
