//! Entries of an attached `redirect-peer` program: destination address ->
//! the netkit pair (its primary's ifindex) whose peer receives the packet.
//! Changed live through the program's maps.

use std::net::IpAddr;

use aya::maps::{HashMap, MapData};
use netkit_common::redirect::{MAX_ENTRIES, STAT_MISSED, STAT_REDIRECTED};
use serde::Serialize;

use crate::maps::{MapsError, ProgMaps, aya_err};

/// Why a redirect entry could not be added, found or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectError {
    /// No entry for that address.
    #[error("no redirect entry for {0}")]
    NoEntry(IpAddr),
    /// The table for the address family is full.
    #[error("the redirect table for {family} is full ({MAX_ENTRIES} entries); nothing was changed")]
    Full {
        /// The address family whose map is full.
        family: &'static str,
    },
    /// The program's maps could not be opened.
    #[error(transparent)]
    Maps(#[from] MapsError),
}

/// One entry, for listing.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The destination address.
    pub ip: IpAddr,
    /// The netkit primary whose peer gets the packets.
    pub ifindex: u32,
    /// The primary's name, when it is in this namespace.
    pub pair: Option<String>,
}

/// Packets the program redirected and packets it passed on.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RedirectStats {
    /// Packets sent to a pod.
    pub redirected: u64,
    /// Packets that matched no entry and went on.
    pub not_matched: u64,
}

/// The live maps of an attached bundled `redirect-peer` program.
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
    /// Opens the maps of the loaded redirect program `prog_id`.
    pub fn open(prog_id: u32) -> Result<Self, RedirectError> {
        Ok(Self { maps: ProgMaps::open(prog_id)? })
    }

    fn table<K: aya::Pod>(&self, name: &'static str) -> Result<HashMap<MapData, K, u32>, RedirectError> {
        Ok(HashMap::try_from(self.maps.get(name)?).map_err(aya_err(name))?)
    }

    fn add_in<K: aya::Pod>(
        &self,
        name: &'static str,
        family: &'static str,
        key: K,
        ifindex: u32,
    ) -> Result<Option<u32>, RedirectError> {
        let mut m = self.table::<K>(name)?;
        let old = m.get(&key, 0).ok();
        m.insert(key, ifindex, 0).map_err(full(family, name))?;
        Ok(old)
    }

    fn delete_in<K: aya::Pod>(&self, name: &'static str, ip: IpAddr, key: K) -> Result<u32, RedirectError> {
        let mut m = self.table::<K>(name)?;
        let old = m.get(&key, 0).map_err(|_| RedirectError::NoEntry(ip))?;
        m.remove(&key).map_err(aya_err(name))?;
        Ok(old)
    }

    fn entries<K: aya::Pod>(&self, name: &'static str, ip: fn(K) -> IpAddr) -> Result<Vec<Entry>, RedirectError> {
        let m = self.table::<K>(name)?;
        m.iter()
            .map(|kv| {
                let (k, ifindex) = kv.map_err(aya_err(name))?;
                Ok(Entry { ip: ip(k), ifindex, pair: None })
            })
            .collect()
    }

    /// Sends packets for `ip` to the peer of the pair with primary `ifindex`;
    /// returns the ifindex it replaced, if any.
    pub fn add(&self, ip: IpAddr, ifindex: u32) -> Result<Option<u32>, RedirectError> {
        match ip {
            IpAddr::V4(a) => self.add_in("REDIR_V4", "IPv4", a.octets(), ifindex),
            IpAddr::V6(a) => self.add_in("REDIR_V6", "IPv6", a.octets(), ifindex),
        }
    }

    /// Removes the entry for `ip`; returns the ifindex it pointed at.
    pub fn delete(&self, ip: IpAddr) -> Result<u32, RedirectError> {
        match ip {
            IpAddr::V4(a) => self.delete_in("REDIR_V4", ip, a.octets()),
            IpAddr::V6(a) => self.delete_in("REDIR_V6", ip, a.octets()),
        }
    }

    /// Every entry (pair names are filled in by the caller).
    pub fn list(&self) -> Result<Vec<Entry>, RedirectError> {
        let mut out = self.entries::<[u8; 4]>("REDIR_V4", IpAddr::from)?;
        out.extend(self.entries::<[u8; 16]>("REDIR_V6", IpAddr::from)?);
        out.sort_by_key(|e| e.ip);
        Ok(out)
    }

    /// The program's counters, summed over CPUs.
    pub fn stats(&self) -> Result<RedirectStats, RedirectError> {
        Ok(RedirectStats {
            redirected: self.maps.per_cpu_u64("REDIR_STATS", STAT_REDIRECTED)?,
            not_matched: self.maps.per_cpu_u64("REDIR_STATS", STAT_MISSED)?,
        })
    }
}
