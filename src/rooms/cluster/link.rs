//! The connections to Redis: connecting with capped backoff, telling the operator once when
//! the link goes down and once when it is back, and commands with a deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use log::{info, warn};
use redis::aio::MultiplexedConnection;

use super::{COMMAND_TIMEOUT, Cluster, MAX_BACKOFF};

impl Cluster {
    /// Connects, retrying with capped backoff; `up` records this connection's state.
    pub(super) async fn connect(&self, up: &AtomicBool) -> MultiplexedConnection {
        let mut backoff = Backoff::new(Duration::from_millis(50));
        loop {
            let attempt = tokio::time::timeout(
                COMMAND_TIMEOUT,
                self.client.get_multiplexed_async_connection(),
            )
            .await;
            match attempt {
                Ok(Ok(connection)) => {
                    up.store(true, Ordering::Relaxed);
                    self.update_connected();
                    return connection;
                }
                Ok(Err(error)) => self.lost(up, &error.to_string()),
                Err(_) => self.lost(up, "no answer"),
            }
            backoff.wait().await;
        }
    }

    /// Records a connection as lost, or an attempt as failed; logged once until the node
    /// is connected again.
    pub(super) fn lost(&self, up: &AtomicBool, why: &str) {
        up.store(false, Ordering::Relaxed);
        if self.connected.swap(false, Ordering::Relaxed) {
            self.reported_down.store(true, Ordering::Relaxed);
            warn!("lost Redis at {}: {why}; retrying", self.shown_url);
        } else if !self.reported_down.swap(true, Ordering::Relaxed) {
            warn!("cannot reach Redis at {}: {why}; retrying", self.shown_url);
        }
    }

    pub(super) fn update_connected(&self) {
        let both = self.writer_up.load(Ordering::Relaxed) && self.reader_up.load(Ordering::Relaxed);
        if both && !self.connected.swap(true, Ordering::Relaxed) {
            self.reported_down.store(false, Ordering::Relaxed);
            info!("connected to Redis at {}", self.shown_url);
        }
    }
}

/// Why a command did not succeed.
#[derive(Debug)]
pub(super) enum QueryError {
    /// Redis answered with an error: it refused this command (out of memory, read-only, a
    /// script or ACL error, still loading). The connection itself is fine, and reconnecting
    /// would only add load to a Redis that is already struggling.
    Refused(String),
    /// No answer within [`COMMAND_TIMEOUT`], or the connection failed: the link is lost.
    Lost(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Refused(why) | QueryError::Lost(why) => f.write_str(why),
        }
    }
}

/// Runs `command`, giving up after [`COMMAND_TIMEOUT`]; the error, for the log, names the
/// command when Redis did not answer.
pub(super) async fn query<T: redis::FromRedisValue>(
    command: &redis::Cmd,
    connection: &mut MultiplexedConnection,
) -> Result<T, QueryError> {
    let name = || match command.args_iter().next() {
        Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).into_owned(),
        _ => "a command".to_owned(),
    };
    answer(command.query_async(connection), COMMAND_TIMEOUT, name).await
}

/// Redis's answer, within `timeout`, sorted into a refusal or a lost link; `name` says what
/// was asked, for the log.
pub(super) async fn answer<T>(
    sent: impl Future<Output = redis::RedisResult<T>>,
    timeout: Duration,
    name: impl FnOnce() -> String,
) -> Result<T, QueryError> {
    match tokio::time::timeout(timeout, sent).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error))
            if matches!(
                error.kind(),
                redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
            ) =>
        {
            Err(QueryError::Refused(error.to_string()))
        }
        Ok(Err(error)) => Err(QueryError::Lost(error.to_string())),
        Err(_) => Err(QueryError::Lost(format!("no answer to {}", name()))),
    }
}

/// How often the same refusal from Redis is logged again, with a count of the others.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Distinct causes of refusal remembered; past it they are counted together.
const MOST_CAUSES: usize = 16;

/// Refusals from Redis as the operator hears of them: the first of each cause at once, then
/// one line per [`REFUSAL_LOG_EVERY`] with how many there were, not one line each.
#[derive(Default)]
pub(super) struct RefusalLog {
    /// Cause (the error's code, such as `OOM`) → when it was last logged, and how many
    /// refusals since then were not.
    causes: std::collections::HashMap<String, (std::time::Instant, u64)>,
}

impl RefusalLog {
    /// Records that Redis refused `what` with `error`; returns whether it was logged.
    pub(super) fn refused(&mut self, what: &str, error: &str) -> bool {
        self.refused_at(what, error, std::time::Instant::now())
    }

    fn refused_at(&mut self, what: &str, error: &str, now: std::time::Instant) -> bool {
        let mut cause: String = error
            .split([' ', ':', '-'])
            .find(|word| !word.is_empty())
            .unwrap_or("error")
            .chars()
            .take(32)
            .collect();
        if self.causes.len() >= MOST_CAUSES && !self.causes.contains_key(&cause) {
            cause = "other".to_owned();
        }
        match self.causes.get_mut(&cause) {
            None => {
                self.causes.insert(cause, (now, 0));
                warn!("Redis refused {what}: {error}");
                true
            }
            Some((logged_at, unlogged)) if now.duration_since(*logged_at) >= REFUSAL_LOG_EVERY => {
                warn!(
                    "Redis refused {what} again: {error} (and {unlogged} more like it in the \
                     last {:?})",
                    now.duration_since(*logged_at)
                );
                *logged_at = now;
                *unlogged = 0;
                true
            }
            Some((_, unlogged)) => {
                *unlogged += 1;
                false
            }
        }
    }
}

/// A wait that doubles from `first` up to [`MAX_BACKOFF`] each time it is taken, jittered.
pub(super) struct Backoff {
    first: Duration,
    next: Duration,
}

impl Backoff {
    pub(super) fn new(first: Duration) -> Self {
        Backoff { first, next: first }
    }

    /// Sleeps the current wait, and doubles the next one.
    pub(super) async fn wait(&mut self) {
        tokio::time::sleep(jittered(self.next)).await;
        self.next = (self.next * 2).min(MAX_BACKOFF);
    }

    /// Something succeeded: the next wait is the first again.
    pub(super) fn reset(&mut self) {
        self.next = self.first;
    }
}

/// `duration` scaled by a random factor from 0.5 to 1.5, so that nodes retrying after the
/// same failure do not all come back at the same moment.
fn jittered(duration: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos()),
    );
    let factor = 0.5 + (hasher.finish() % 1000) as f64 / 1000.0;
    duration.mul_f64(factor)
}

/// `url` with the password, if any, replaced by `***`.
pub(super) fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_left_out_of_the_url_shown() {
        assert_eq!(
            without_password("redis://user:secret@host:6379/2"),
            "redis://user:***@host:6379/2"
        );
        assert_eq!(
            without_password("redis://secret@host:6379"),
            "redis://***@host:6379"
        );
        assert_eq!(
            without_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn a_refusal_is_logged_once_then_counted_until_the_interval_is_over() {
        let mut log = RefusalLog::default();
        let start = std::time::Instant::now();
        let oom = "OOM command not allowed when used memory > 'maxmemory'.";
        assert!(log.refused_at("an append", oom, start));
        for step in 1..1000 {
            assert!(!log.refused_at("an append", oom, start + Duration::from_millis(step)));
        }
        assert!(log.refused_at("an append", "READONLY You can't write", start));
        assert!(log.refused_at("an append", oom, start + REFUSAL_LOG_EVERY));
        for number in 0..100 {
            log.refused_at("x", &format!("E{number} bad"), start);
        }
        assert!(log.causes.len() <= MOST_CAUSES + 1, "causes stay bounded");
    }

    #[test]
    fn jitter_stays_within_half_and_one_and_a_half_times() {
        for _ in 0..100 {
            let waited = jittered(Duration::from_millis(1000));
            assert!((500..=1500).contains(&waited.as_millis()), "{waited:?}");
        }
    }
}
