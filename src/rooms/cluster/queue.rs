//! Which rooms the reader has yet to read: those the news named (first, so that a room with
//! fresh messages never waits behind one catching up) and those a read left with more to
//! read (after, in turn).

use std::collections::{HashSet, VecDeque};

#[derive(Default)]
pub(super) struct ReadQueue {
    order: VecDeque<String>,
    queued: HashSet<String>,
}

impl ReadQueue {
    /// A room with news: read before the rooms still catching up.
    pub(super) fn named(&mut self, room: String) {
        if self.queued.insert(room.clone()) {
            self.order.push_front(room);
        }
    }

    /// A room left with more to read: read after the others.
    pub(super) fn behind(&mut self, room: String) {
        if self.queued.insert(room.clone()) {
            self.order.push_back(room);
        }
    }

    /// Up to `most` rooms, first in line first, for which `wanted` holds; the others are
    /// forgotten.
    pub(super) fn take(&mut self, most: usize, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let mut taken = Vec::new();
        while taken.len() < most
            && let Some(room) = self.order.pop_front()
        {
            self.queued.remove(&room);
            if wanted(&room) {
                taken.push(room);
            }
        }
        taken
    }

    /// Puts rooms taken but not read back at the front, in their order.
    pub(super) fn put_back(&mut self, rooms: Vec<String>) {
        for room in rooms.into_iter().rev() {
            self.named(room);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_with_news_go_before_rooms_catching_up_and_each_is_queued_once() {
        let mut queue = ReadQueue::default();
        queue.behind("/big".into());
        queue.named("/chat".into());
        queue.named("/chat".into());
        queue.behind("/other".into());
        assert_eq!(queue.take(2, |_| true), ["/chat", "/big"]);
        queue.behind("/big".into());
        assert_eq!(queue.take(10, |room| room != "/other"), ["/big"]);
        assert!(queue.is_empty());
        queue.put_back(vec!["/a".into(), "/b".into()]);
        assert_eq!(queue.take(10, |_| true), ["/a", "/b"]);
    }
}
