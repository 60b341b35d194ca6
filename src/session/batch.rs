//! Taking in what a client has sent in batches: every message that has already arrived is
//! handled before the replies are written out together, up to a cap that keeps one busy
//! client from holding the thread.

use std::future::poll_fn;
use std::task::Poll;

use tokio_tungstenite::tungstenite::Message;

use super::end::End;
use super::{Received, Session};

/// How many messages that have already arrived are handled before the replies are flushed
/// together. Batching saves a system call per message when a client pipelines; the cap keeps
/// one busy client from delaying its own replies for long.
pub(super) const BATCH: usize = 64;

/// Payload bytes a batch handles at most. A batch also ends here, so that a client sending
/// large messages as fast as they are answered gives up the thread after this much, as one
/// sending small ones does after [`BATCH`]. Without it such a client was served for as long
/// as its data kept arriving: the read-ahead buffer takes 64 KiB per socket read, and tokio's
/// cooperative budget counts socket reads, so a task could echo up to 8 MiB before the
/// runtime made it yield, while the other connections waited.
const BATCH_BYTES: usize = 256 * 1024;

/// Where reading stood when a batch ended, so the loop knows whether to read again before
/// the next wake-up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum BatchEnd {
    /// The socket was found empty with this task's waker registered, and nothing has
    /// waited since: it need not be read again until it wakes the task (a read attempt
    /// costs as much as a fifth of an echoed message).
    Drained,
    /// The batch stopped at its cap (and has let the other connections' tasks run), or a
    /// write had to wait: more may have arrived.
    MayHaveMore,
}

impl Session<'_> {
    /// Handles `first` and the messages that have already arrived after it, up to
    /// [`BATCH`], passing each data message to `handle` and queueing the reply it returns;
    /// then writes out what was queued, once for the whole batch. Waits for room for a reply
    /// only when an earlier one is still backed up (a `handle` that never replies never
    /// waits), and for the final write only with [`AfterBatch::WaitForRoom`].
    ///
    /// One flat function rather than a read step and a flush step awaited in turn: each
    /// nested `async fn` would be a state of its own inside the session's future, which
    /// every idle connection carries.
    pub(super) async fn receive_batch(
        &mut self,
        first: Received,
        mut handle: impl FnMut(Message) -> Option<Message>,
        after: AfterBatch,
    ) -> Result<BatchEnd, End> {
        let mut next = first;
        let mut handled = 0;
        let mut bytes = 0;
        let mut at_cap = false;
        let batch_end = loop {
            if let Some(message) = self.classify(next)? {
                bytes += message.len();
                if let Some(reply) = handle(message) {
                    if self.socket.is_backed_up() {
                        self.deliver(reply).await?;
                    } else {
                        self.send_now(reply)?;
                    }
                }
            }
            handled += 1;
            if handled == BATCH || bytes >= BATCH_BYTES {
                at_cap = true;
                break BatchEnd::MayHaveMore;
            }
            match self.socket.next_if_ready().await {
                Some(received) => next = received,
                None => break BatchEnd::Drained,
            }
        };
        match poll_fn(|context| Poll::Ready(self.socket.poll_flush(context))).await {
            Poll::Ready(flushed) => {
                flushed.map_err(End::from_error)?;
                if at_cap {
                    // Others' turn before this client's next batch: see `BATCH_BYTES`.
                    requeue().await;
                }
                Ok(batch_end)
            }
            Poll::Pending if after == AfterBatch::WaitForRoom => {
                self.flush().await?;
                Ok(BatchEnd::MayHaveMore)
            }
            Poll::Pending => Ok(BatchEnd::MayHaveMore),
        }
    }
}

/// Gives up the thread, going to the back of the worker's run queue at once.
///
/// Not `tokio::task::yield_now`, which parks the task until the worker has next polled its
/// sockets and then queues it behind every connection that poll woke. With 64 clients
/// pipelining 64 KiB messages, that left a few neighbouring connections served every other
/// round (half the answers of the rest, p99 1.6x the TCP ceiling's). Queued at once, with
/// the worker polling readiness often (`workers::EVENT_INTERVAL`), every connection got the
/// same number of answers to within 1%.
fn requeue() -> impl Future<Output = ()> {
    let mut requeued = false;
    poll_fn(move |context| {
        if requeued {
            return Poll::Ready(());
        }
        requeued = true;
        context.waker().wake_by_ref();
        Poll::Pending
    })
}

/// What [`Session::receive_batch`] does when the socket cannot take the batch's writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterBatch {
    /// Wait (under the write deadline): echo replies must go out before more is read.
    WaitForRoom,
    /// Leave them queued: broadcast keeps reading while its writes wait.
    LeaveQueued,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::counting_waker::CountingWaker;
    use std::pin::pin;
    use std::task::Context;

    /// The task is queued again by the yield itself, inside a runtime too: tokio's
    /// `yield_now` would leave the waker with the runtime until its next readiness poll.
    #[tokio::test]
    async fn requeue_wakes_the_task_at_once_then_completes() {
        let (counter, waker) = CountingWaker::new();
        let mut context = Context::from_waker(&waker);
        let mut yielding = pin!(requeue());
        assert!(yielding.as_mut().poll(&mut context).is_pending());
        assert_eq!(counter.wakes(), 1, "woken before returning");
        assert!(yielding.as_mut().poll(&mut context).is_ready());
    }
}
