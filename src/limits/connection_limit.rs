//! How many clients are served at once (`--max-connections`), and from one address
//! (`--max-connections-per-ip`): the accept loop asks here before any WebSocket work.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::address_limit::{AddressLimit, AddressSlot};

/// Both connection limits, shared by every accept loop.
pub(crate) struct ConnectionLimit {
    /// The most clients served at once.
    max: usize,
    /// One permit per client being served.
    slots: Arc<Semaphore>,
    /// Connections per client address.
    per_address: Arc<AddressLimit>,
}

/// A client's places under both limits; dropping it frees them.
pub(crate) struct Admitted {
    _slot: OwnedSemaphorePermit,
    _address_slot: Option<AddressSlot>,
}

/// Why a client is refused before any WebSocket work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every connection slot is taken: `503`.
    Full,
    /// The client's address holds its share already: `429`.
    Address,
}

impl Refusal {
    /// Why, for the log.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "connection limit reached",
            Refusal::Address => "too many connections from this address",
        }
    }
}

impl ConnectionLimit {
    /// `max` clients at once, `max_per_address` of them from one address (0: no limit).
    pub(crate) fn new(max: usize, max_per_address: usize) -> Self {
        ConnectionLimit {
            max,
            slots: Arc::new(Semaphore::new(max)),
            per_address: Arc::new(AddressLimit::new(max_per_address)),
        }
    }

    /// Takes places for a client from `address`. The per-address limit is asked first, so
    /// that one host over its share cannot take the slots meant for others.
    pub(crate) fn admit(&self, address: IpAddr) -> Result<Admitted, Refusal> {
        let address_slot = self.per_address.admit(address).ok_or(Refusal::Address)?;
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Full)?;
        Ok(Admitted {
            _slot: slot,
            _address_slot: address_slot,
        })
    }

    /// How many clients hold a connection slot now.
    pub(crate) fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_per_client_and_freed_when_dropped() {
        let limit = ConnectionLimit::new(2, 0);
        let local = IpAddr::from([127, 0, 0, 1]);
        let first = limit.admit(local).expect("a slot");
        let second = limit.admit(local).expect("a slot");
        assert_eq!(limit.open(), 2);
        assert_eq!(limit.admit(local).err(), Some(Refusal::Full));
        drop(first);
        assert_eq!(limit.open(), 1);
        assert!(limit.admit(local).is_ok());
        drop(second);
    }

    #[test]
    fn the_address_limit_refuses_before_a_slot_is_taken() {
        let limit = ConnectionLimit::new(10, 1);
        let held = limit.admit(IpAddr::from([10, 0, 0, 1])).expect("a slot");
        assert_eq!(
            limit.admit(IpAddr::from([10, 0, 0, 1])).err(),
            Some(Refusal::Address)
        );
        assert_eq!(limit.open(), 1, "the refused client took no slot");
        assert!(limit.admit(IpAddr::from([10, 0, 0, 2])).is_ok());
        drop(held);
    }
}
