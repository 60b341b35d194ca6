//! A broadcast message is charged once, however many members' queues hold it: its payload
//! travels in a `Bytes` whose owner gives the charge back when the last copy is dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::{ALLOWANCE, MemoryBudget};
use crate::sync::lock::lock;

impl MemoryBudget {
    /// Charges a broadcast message to the budget once, however many members' queues hold it,
    /// until the last of them has written it out: the payload is handed on in a `Bytes` that
    /// gives the charge back when its last clone is dropped. Small messages are left as they
    /// are (the allowance covers them).
    pub(crate) fn charge_shared(self: &Arc<Self>, message: Message) -> Message {
        if message.len() <= ALLOWANCE {
            return message;
        }
        let charged = |payload: Bytes| {
            self.held.fetch_add(payload.len(), Ordering::Relaxed);
            Bytes::from_owner(SharedCharge {
                payload,
                budget: Arc::clone(self),
            })
        };
        match message {
            Message::Binary(payload) => Message::Binary(charged(payload)),
            Message::Text(text) => {
                let payload = charged(Bytes::from(text));
                // SAFETY: the bytes are those of `text`, which was valid UTF-8.
                Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(payload) })
            }
            other => other,
        }
    }

    /// Gives back the charge of a broadcast message that every member has written out.
    pub(super) fn give_back(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
        let mut state = lock(&self.state);
        state.last_progress = Instant::now();
        for entry in &state.waiting {
            entry.waker.wake_by_ref();
        }
    }
}

/// A broadcast message's payload, charged to the budget until the last copy is dropped.
struct SharedCharge {
    payload: Bytes,
    budget: Arc<MemoryBudget>,
}

impl AsRef<[u8]> for SharedCharge {
    fn as_ref(&self) -> &[u8] {
        &self.payload
    }
}

impl Drop for SharedCharge {
    fn drop(&mut self) {
        self.budget.give_back(self.payload.len());
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{MIB, budget};
    use super::*;

    #[test]
    fn a_broadcast_message_is_charged_once_until_its_last_copy_is_gone() {
        let budget = budget(64 * MIB);
        let text = "ü".repeat(MIB / 2);
        let charged = budget.charge_shared(Message::text(text.clone()));
        let copies: Vec<Message> = (0..200).map(|_| charged.clone()).collect();
        assert_eq!(budget.usage().held, text.len());
        assert_eq!(charged.to_text().unwrap(), text);
        drop(charged);
        assert_eq!(budget.usage().held, text.len(), "copies are still queued");
        drop(copies);
        assert_eq!(budget.usage().held, 0);
        let small = budget.charge_shared(Message::binary(vec![1u8; 100]));
        assert_eq!(budget.usage().held, 0, "small messages are not charged");
        drop(small);
    }
}
