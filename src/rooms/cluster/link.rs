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
        let mut backoff = Duration::from_millis(50);
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
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
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

/// Runs `command`, giving up after [`COMMAND_TIMEOUT`]; the error, for the log, names the
/// command when Redis did not answer.
pub(super) async fn query<T: redis::FromRedisValue>(
    command: &redis::Cmd,
    connection: &mut MultiplexedConnection,
) -> Result<T, String> {
    match tokio::time::timeout(COMMAND_TIMEOUT, command.query_async(connection)).await {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(_) => {
            let name = match command.args_iter().next() {
                Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).into_owned(),
                _ => "a command".to_owned(),
            };
            Err(format!("no answer to {name}"))
        }
    }
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
}
