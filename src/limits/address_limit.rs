//! The per-address connection limit (`--max-connections-per-ip`): so that one host cannot
//! take every slot of a public server.
//!
//! Addresses are counted by what one host usually holds: an IPv4 address, or an IPv6 /64
//! (a single host or home network gets a whole /64 and can pick any address in it). An
//! IPv4 address mapped into IPv6 counts as the IPv4 address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::sync::lock::lock;

/// What the limit counts connections by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Host {
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl Host {
    fn of(address: IpAddr) -> Host {
        match address {
            IpAddr::V4(v4) => Host::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Host::V4(v4.octets()),
                None => Host::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// How many connections each host holds now, and the most it may hold.
pub(crate) struct AddressLimit {
    /// Most connections per host; 0 turns the limit off.
    max: usize,
    open: Mutex<HashMap<Host, usize>>,
}

/// One connection's place under its host's limit; dropping it frees the place.
pub(crate) struct AddressSlot {
    limit: Arc<AddressLimit>,
    host: Host,
}

impl AddressLimit {
    /// A limit of `max` connections per host; 0 means none.
    pub(crate) fn new(max: usize) -> Self {
        AddressLimit {
            max,
            open: Mutex::default(),
        }
    }

    /// Takes a place for a connection from `address`, or `None` when its host already holds
    /// the most it may. With the limit off every connection gets one (and nothing is
    /// counted).
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Option<AddressSlot>> {
        if self.max == 0 {
            return Some(None);
        }
        let host = Host::of(address);
        let mut open = lock(&self.open);
        let count = open.entry(host).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Some(AddressSlot {
            limit: self.clone(),
            host,
        }))
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.limit.open);
        if let Some(count) = open.get_mut(&self.host) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ipv6_slash_64_is_one_host_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            Host::of(ip("2001:db8:1:2::1")),
            Host::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Host::of(ip("2001:db8:1:2::1")),
            Host::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(Host::of(ip("::ffff:127.0.0.1")), Host::of(ip("127.0.0.1")));
        assert_ne!(Host::of(ip("127.0.0.1")), Host::of(ip("127.0.0.2")));
    }

    #[test]
    fn each_host_gets_max_places_and_a_dropped_one_frees() {
        let limit = Arc::new(AddressLimit::new(2));
        let first = limit.admit(ip("10.0.0.1")).unwrap();
        let _second = limit.admit(ip("10.0.0.1")).unwrap();
        assert!(limit.admit(ip("10.0.0.1")).is_none());
        assert!(
            limit.admit(ip("10.0.0.2")).is_some(),
            "another host is counted apart"
        );
        drop(first);
        assert!(limit.admit(ip("10.0.0.1")).is_some());
    }

    #[test]
    fn a_limit_of_zero_admits_everyone_and_counts_nothing() {
        let limit = Arc::new(AddressLimit::new(0));
        for _ in 0..10 {
            assert!(matches!(limit.admit(ip("10.0.0.1")), Some(None)));
        }
        assert!(lock(&limit.open).is_empty());
    }

    #[test]
    fn the_count_is_forgotten_when_a_hosts_last_connection_leaves() {
        let limit = Arc::new(AddressLimit::new(1));
        let slot = limit.admit(ip("10.0.0.1")).unwrap();
        drop(slot);
        assert!(lock(&limit.open).is_empty());
    }
}
