//! Addresses and routes of a namespace's devices: what a CNI ADD gives a pod
//! and its host side, and what CHECK reads back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt as _;
use netlink_packet_route::{
    address::{AddressAttribute, AddressFlags},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope},
};
use rtnetlink::RouteMessageBuilder;

use super::{Netlink, NetlinkError};

/// A route of the main table: its destination and the device it leaves by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteView {
    /// The destination's address.
    pub dst: IpAddr,
    /// The destination's prefix length.
    pub prefix: u8,
    /// The output device's ifindex, when the route names one.
    pub oif: Option<u32>,
}

impl Netlink {
    /// Adds `addr/prefix` to device `index`. An IPv6 address skips duplicate
    /// detection: the device's only neighbour is its pair's other end, and a
    /// tentative address would keep it silent for a second.
    pub async fn add_address(&self, index: u32, addr: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
        let mut req = self.handle.address().add(index, addr, prefix);
        if addr.is_ipv6() {
            req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        req.execute().await.map_err(|e| NetlinkError::from_rtnetlink(format!("adding {addr}/{prefix}"), e))
    }

    /// The addresses of device `index`, with their prefix lengths.
    pub async fn addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8)>, NetlinkError> {
        let mut out = Vec::new();
        let mut stream = self.handle.address().get().set_link_index_filter(index).execute();
        while let Some(msg) =
            stream.try_next().await.map_err(|e| NetlinkError::from_rtnetlink("listing addresses", e))?
        {
            for attr in &msg.attributes {
                if let AddressAttribute::Address(addr) = attr {
                    out.push((*addr, msg.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// Adds a route to `dst/prefix` through device `index`, on the link (no
    /// next hop).
    pub async fn add_device_route(&self, dst: IpAddr, prefix: u8, index: u32) -> Result<(), NetlinkError> {
        let op = || format!("adding the route to {dst}/{prefix}");
        let msg: RouteMessage = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst, prefix)
            .map_err(|e| NetlinkError::Invalid { op: op(), why: e.to_string() })?
            .output_interface(index)
            .scope(RouteScope::Link)
            .build();
        self.handle.route().add(msg).execute().await.map_err(|e| NetlinkError::from_rtnetlink(op(), e))
    }

    /// The routes of the main table, both families.
    pub async fn routes(&self) -> Result<Vec<RouteView>, NetlinkError> {
        let mut out = Vec::new();
        for v4 in [true, false] {
            let (msg, any) = if v4 {
                (RouteMessageBuilder::<Ipv4Addr>::new().build(), IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            } else {
                (RouteMessageBuilder::<Ipv6Addr>::new().build(), IpAddr::V6(Ipv6Addr::UNSPECIFIED))
            };
            let mut stream = self.handle.route().get(msg).execute();
            while let Some(route) =
                stream.try_next().await.map_err(|e| NetlinkError::from_rtnetlink("listing routes", e))?
            {
                let mut view = RouteView { dst: any, prefix: route.header.destination_prefix_length, oif: None };
                for attr in &route.attributes {
                    match attr {
                        RouteAttribute::Destination(RouteAddress::Inet(a)) => view.dst = IpAddr::V4(*a),
                        RouteAttribute::Destination(RouteAddress::Inet6(a)) => view.dst = IpAddr::V6(*a),
                        RouteAttribute::Oif(i) => view.oif = Some(*i),
                        _ => {}
                    }
                }
                out.push(view);
            }
        }
        Ok(out)
    }
}
