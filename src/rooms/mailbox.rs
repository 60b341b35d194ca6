//! A broadcast member's queue: the messages its room delivered that are not yet written.
//!
//! It replaces a bounded `tokio::sync::mpsc` channel, which costs on every delivery a
//! semaphore permit (taken, then given back under the semaphore's lock), a linked-block
//! push and pop, and a wake-up of the receiving task: about a tenth of the server's CPU in a
//! busy room (perf, 10 senders x 100 receivers). Here a delivery is a push under a lock
//! nobody else holds for long, and the member's task is woken only when its queue goes
//! from empty to not empty: it takes everything waiting each time it runs, so a wake-up per
//! message would only repeat the first.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use super::delivery::Delivery;
use crate::sync::lock::lock;

/// Queue capacity (messages) kept by a member that has gone quiet; more is given back
/// ([`Mailbox::shrink_if_empty`]).
const SHRINK_ABOVE: usize = 64;

/// Queue capacity (messages) given back as soon as the queue is empty: a backlog. Below it,
/// an emptied queue keeps what it grew: the batches of a busy room swing past
/// [`SHRINK_ABOVE`] all the time, and giving the memory back each time the queue emptied
/// meant growing it again at the next burst.
const BACKLOG_ABOVE: usize = 4 * SHRINK_ABOVE;

/// One member's queue, shared by its room (which delivers) and its task (which takes).
pub(crate) struct Mailbox {
    state: Mutex<State>,
    capacity: usize,
}

struct State {
    messages: VecDeque<Delivery>,
    /// The member's task, while it waits for a message.
    waiting: Option<Waker>,
}

/// The queue already holds its capacity: the member has fallen behind.
pub(crate) struct Full;

impl Mailbox {
    /// A queue that holds at most `capacity` messages (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Mailbox {
            state: Mutex::new(State {
                messages: VecDeque::new(),
                waiting: None,
            }),
            capacity: capacity.max(1),
        }
    }

    /// Queues `message`, waking the member's task if it was waiting for one.
    pub(crate) fn deliver(&self, message: Delivery) -> Result<(), Full> {
        let waiting = {
            let mut state = lock(&self.state);
            if state.messages.len() >= self.capacity {
                return Err(Full);
            }
            state.messages.push_back(message);
            state.waiting.take()
        };
        if let Some(task) = waiting {
            task.wake();
        }
        Ok(())
    }

    /// The oldest message, or `Pending` with the task's waker left to be woken by the next
    /// delivery.
    pub(crate) fn poll_take(&self, context: &mut Context<'_>) -> Poll<Delivery> {
        let mut state = lock(&self.state);
        match state.messages.pop_front() {
            Some(message) => Poll::Ready(message),
            None => {
                if state.messages.capacity() > BACKLOG_ABOVE {
                    state.messages.shrink_to(SHRINK_ABOVE);
                }
                match &mut state.waiting {
                    Some(waker) => waker.clone_from(context.waker()),
                    None => state.waiting = Some(context.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Queues `messages` for a member that has not started taking yet (a room's history),
    /// whatever the capacity: `--history` is checked against `--max-queue` at start.
    pub(crate) fn preload(&self, messages: impl IntoIterator<Item = Delivery>) {
        lock(&self.state).messages.extend(messages);
    }

    /// Moves up to `limit` of the oldest messages into `taken`, under one lock: a busy
    /// member's task takes its queue a batch at a time rather than locking per message.
    pub(crate) fn take_up_to(&self, limit: usize, taken: &mut VecDeque<Delivery>) {
        let mut state = lock(&self.state);
        if taken.is_empty()
            && state.messages.len() <= limit
            && state.messages.capacity() <= BACKLOG_ABOVE
        {
            // All of it, the usual case: the two queues change places, no message moves.
            std::mem::swap(&mut state.messages, taken);
            return;
        }
        let count = limit.min(state.messages.len());
        taken.extend(state.messages.drain(..count));
    }

    /// Gives back what bursts grew, of this queue if it is empty and of `taken` (the
    /// taker's batch, empty between batches, which [`Mailbox::take_up_to`] trades queues
    /// with): for a quiet moment, such as the member's keepalive timer.
    pub(crate) fn shrink_if_empty(&self, taken: &mut VecDeque<Delivery>) {
        taken.shrink_to(SHRINK_ABOVE);
        let mut state = lock(&self.state);
        if state.messages.is_empty() {
            state.messages.shrink_to(SHRINK_ABOVE);
        }
    }

    /// Puts back, ahead of everything queued since, messages that were taken but could not
    /// be written yet: they wait, and count towards the capacity, as if never taken.
    pub(crate) fn put_back(&self, unsent: &mut VecDeque<Delivery>) {
        if unsent.is_empty() {
            return;
        }
        let mut state = lock(&self.state);
        while let Some(message) = unsent.pop_back() {
            state.messages.push_front(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::counting_waker::CountingWaker;
    use tokio_tungstenite::tungstenite::Message;

    #[test]
    fn messages_come_out_in_order_and_a_full_queue_refuses_more() {
        let mailbox = Mailbox::new(2);
        assert!(mailbox.deliver(text("one")).is_ok());
        assert!(mailbox.deliver(text("two")).is_ok());
        assert!(mailbox.deliver(text("three")).is_err());
        let mut taken = VecDeque::new();
        mailbox.take_up_to(1, &mut taken);
        assert_eq!(taken, [text("one")]);
        assert!(mailbox.deliver(text("three")).is_ok());
        mailbox.take_up_to(5, &mut taken);
        assert_eq!(
            taken,
            ["one", "two", "three"].map(text),
            "a batch takes what is queued, oldest first"
        );
        mailbox.take_up_to(5, &mut taken);
        assert_eq!(taken.len(), 3, "nothing left to take");
    }

    #[test]
    fn messages_put_back_come_out_first_and_count_towards_the_capacity() {
        let mailbox = Mailbox::new(3);
        for letter in ["a", "b", "c"] {
            assert!(mailbox.deliver(text(letter)).is_ok());
        }
        let mut taken = VecDeque::new();
        mailbox.take_up_to(3, &mut taken);
        assert!(mailbox.deliver(text("d")).is_ok());
        taken.pop_front();
        mailbox.put_back(&mut taken);
        assert!(taken.is_empty());
        assert!(
            mailbox.deliver(text("e")).is_err(),
            "b, c (put back) and d fill a queue of 3"
        );
        mailbox.take_up_to(3, &mut taken);
        assert_eq!(taken, ["b", "c", "d"].map(text));
    }

    /// A room's text message.
    fn text(text: &str) -> Delivery {
        Delivery::Whole(Message::text(text))
    }

    /// The capacity of the member's queue and of its batch.
    fn capacities(mailbox: &Mailbox, taken: &VecDeque<Delivery>) -> (usize, usize) {
        (lock(&mailbox.state).messages.capacity(), taken.capacity())
    }

    #[test]
    fn an_emptied_queue_keeps_a_batchs_memory_gives_a_backlogs_back_and_shrinks_when_quiet() {
        let mailbox = Mailbox::new(10_000);
        let mut taken = VecDeque::new();
        let mut context = Context::from_waker(Waker::noop());
        let mut batch = |count: usize, taken: &mut VecDeque<Delivery>| {
            for _ in 0..count {
                assert!(mailbox.deliver(text("m")).is_ok());
            }
            while taken.len() < count {
                mailbox.take_up_to(count, taken);
            }
            assert_eq!(taken.len(), count);
            taken.clear();
            assert!(mailbox.poll_take(&mut context).is_pending());
        };
        batch(3 * SHRINK_ABOVE, &mut taken);
        batch(3 * SHRINK_ABOVE, &mut taken);
        let (queue, batch_queue) = capacities(&mailbox, &taken);
        assert!(
            queue >= 3 * SHRINK_ABOVE && batch_queue >= 3 * SHRINK_ABOVE,
            "ordinary batches keep their memory: {queue} and {batch_queue}"
        );
        batch(10 * BACKLOG_ABOVE, &mut taken);
        assert!(
            capacities(&mailbox, &taken).0 <= BACKLOG_ABOVE,
            "a backlog's is given back"
        );
        mailbox.shrink_if_empty(&mut taken);
        let (queue, batch_queue) = capacities(&mailbox, &taken);
        assert!(queue <= SHRINK_ABOVE && batch_queue <= SHRINK_ABOVE);
    }

    #[test]
    fn a_waiting_task_is_woken_once_per_wait_not_per_message() {
        let mailbox = Mailbox::new(10);
        let (counter, waker) = CountingWaker::new();
        let mut context = Context::from_waker(&waker);
        assert!(mailbox.poll_take(&mut context).is_pending());
        for letter in ["a", "b", "c"] {
            assert!(mailbox.deliver(text(letter)).is_ok());
        }
        assert_eq!(counter.wakes(), 1);
        assert_eq!(mailbox.poll_take(&mut context), Poll::Ready(text("a")));
        // Not waiting any more: nothing to wake.
        assert!(mailbox.deliver(text("d")).is_ok());
        assert_eq!(counter.wakes(), 1);
    }
}
