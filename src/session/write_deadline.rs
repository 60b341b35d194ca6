//! The deadline on writes: a client that takes nothing it is sent for the ping timeout is
//! dropped rather than left to hold the server's memory.

use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use tokio::time::Sleep;
use tokio_tungstenite::tungstenite;

use super::end::End;

/// Runs a socket write, giving up with [`End::NotReading`] after `limit`. The timer is only
/// created (on the heap, so it takes no room in an idle connection's task) once the write has
/// had to wait: almost every write completes at once, and a timer per message would cost more
/// than the write's own bookkeeping. The write is polled once per wake-up, never twice.
pub(super) async fn with_write_deadline<F>(limit: Duration, write: F) -> Result<(), End>
where
    F: Future<Output = Result<(), tungstenite::Error>>,
{
    let mut write = pin!(write);
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    poll_fn(|context| {
        if let Poll::Ready(outcome) = write.as_mut().poll(context) {
            return Poll::Ready(outcome.map_err(End::from_error));
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(context) {
            Poll::Ready(()) => Poll::Ready(Err(End::NotReading)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
