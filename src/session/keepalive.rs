//! The keepalive clock: when to ping a silent client, and when to give up on it.
//!
//! Hearing from the client only records the time; the timer itself is re-armed only when it
//! fires, so a busy connection does not touch the timer wheel per message.

use std::time::Duration;

use tokio::time::Instant;

/// Pings a client that has been silent for `interval`, and gives up on it when a further
/// `timeout` passes with nothing heard.
#[derive(Clone, Copy)]
pub(crate) struct Keepalive {
    interval: Duration,
    timeout: Duration,
    last_heard: Instant,
    /// When the outstanding ping was sent, if one is.
    pinged_at: Option<Instant>,
}

/// What the keepalive timer firing means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tick {
    /// The client has been silent for a whole interval: ping it.
    Ping,
    /// The client did not answer the ping in time.
    Expired,
    /// The client was heard from meanwhile: nothing to do yet.
    Wait,
}

/// Where the timer is parked when pings are off: far enough never to fire, near enough
/// that adding it to now cannot overflow.
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

impl Keepalive {
    /// A clock that starts as if the client had just been heard from. An `interval` of zero
    /// turns pings off.
    pub(crate) fn new(interval: Duration, timeout: Duration) -> Self {
        Keepalive {
            interval,
            timeout,
            last_heard: Instant::now(),
            pinged_at: None,
        }
    }

    /// Records that the client sent something (anything counts as being alive).
    pub(crate) fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// Whether nothing has been heard from the client for at least `quiet`.
    pub(crate) fn silent_for(&self, quiet: Duration) -> bool {
        self.last_heard.elapsed() >= quiet
    }

    /// When the timer should next fire.
    pub(crate) fn deadline(&self) -> Instant {
        if self.interval.is_zero() {
            return Instant::now() + NEVER;
        }
        match self.pinged_at {
            Some(pinged_at) if self.last_heard < pinged_at => pinged_at + self.timeout,
            _ => self.last_heard + self.interval,
        }
    }

    /// Decides what the timer firing now means, and records a ping as sent when it says so.
    pub(crate) fn on_timer(&mut self) -> Tick {
        let now = Instant::now();
        if let Some(pinged_at) = self.pinged_at {
            if self.last_heard < pinged_at {
                return if now >= pinged_at + self.timeout {
                    Tick::Expired
                } else {
                    Tick::Wait
                };
            }
            self.pinged_at = None;
        }
        if self.interval.is_zero() || now < self.last_heard + self.interval {
            return Tick::Wait;
        }
        self.pinged_at = Some(now);
        Tick::Ping
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const INTERVAL: Duration = Duration::from_secs(20);
    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_pinged_after_the_interval_then_expires_after_the_timeout() {
        let mut clock = Keepalive::new(INTERVAL, TIMEOUT);
        let start = Instant::now();
        assert_eq!(clock.deadline(), start + INTERVAL);
        advance(INTERVAL).await;
        assert_eq!(clock.on_timer(), Tick::Ping);
        assert_eq!(clock.deadline(), start + INTERVAL + TIMEOUT);
        advance(TIMEOUT - Duration::from_millis(1)).await;
        assert_eq!(clock.on_timer(), Tick::Wait);
        advance(Duration::from_millis(1)).await;
        assert_eq!(clock.on_timer(), Tick::Expired);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_that_fires_early_waits() {
        let mut clock = Keepalive::new(INTERVAL, TIMEOUT);
        advance(INTERVAL / 2).await;
        assert_eq!(clock.on_timer(), Tick::Wait);
    }

    #[tokio::test(start_paused = true)]
    async fn hearing_from_the_client_pushes_the_ping_back() {
        let mut clock = Keepalive::new(INTERVAL, TIMEOUT);
        advance(INTERVAL / 2).await;
        clock.heard();
        let heard = Instant::now();
        advance(INTERVAL / 2).await;
        assert_eq!(clock.on_timer(), Tick::Wait);
        assert_eq!(clock.deadline(), heard + INTERVAL);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_to_the_ping_cancels_the_expiry_and_starts_a_new_interval() {
        let mut clock = Keepalive::new(INTERVAL, TIMEOUT);
        advance(INTERVAL).await;
        assert_eq!(clock.on_timer(), Tick::Ping);
        advance(Duration::from_secs(1)).await;
        clock.heard();
        let answered = Instant::now();
        assert_eq!(clock.deadline(), answered + INTERVAL);
        advance(TIMEOUT).await;
        assert_eq!(clock.on_timer(), Tick::Wait, "the ping was answered");
        advance(INTERVAL - TIMEOUT).await;
        assert_eq!(
            clock.on_timer(),
            Tick::Ping,
            "silent again for a whole interval"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_interval_of_zero_never_pings() {
        let mut clock = Keepalive::new(Duration::ZERO, TIMEOUT);
        assert!(clock.deadline() > Instant::now() + Duration::from_secs(3600));
        advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.on_timer(), Tick::Wait);
    }
}
