//! A bound on how fast clients can make the log grow (`--client-log-rate`).
//!
//! Every line about one client carries its `peer`: it connected, joined, left, was refused,
//! asked for a page. A storm of short connections would otherwise write four lines each,
//! as fast as it can connect, filling the disk or drowning the lines that matter. Lines with
//! a `peer` go through a token bucket (a burst of [`BURST_SECONDS`] seconds' worth, then the
//! rate); those left out are counted, and a line a second says how many. Lines about the
//! server itself are never held back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use log::{Level, Log, Metadata, Record};

/// How many seconds' worth of lines a quiet log may write at once.
pub const BURST_SECONDS: u32 = 10;

/// How often the count of lines left out is written.
const SUMMARY_EVERY: Duration = Duration::from_secs(1);

/// A logger that passes lines about clients to `inner` at a bounded rate.
pub struct RateLimited<L> {
    inner: L,
    /// Lines about clients a second; 0: no limit.
    rate: u32,
    bucket: Mutex<Bucket>,
    left_out: AtomicU64,
}

struct Bucket {
    tokens: f64,
    filled_at: Instant,
}

impl<L: Log + 'static> RateLimited<L> {
    pub fn new(inner: L, rate: u32) -> Self {
        RateLimited {
            inner,
            rate,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(rate) * f64::from(BURST_SECONDS),
                filled_at: Instant::now(),
            }),
            left_out: AtomicU64::new(0),
        }
    }

    /// Whether a line about a client may be written now.
    fn take_token(&self) -> bool {
        let rate = f64::from(self.rate);
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(bucket.filled_at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(rate * f64::from(BURST_SECONDS));
        bucket.filled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Writes how many lines were left out since the last time, if any.
    fn summarise(&self) {
        let count = self.left_out.swap(0, Ordering::Relaxed);
        if count == 0 {
            return;
        }
        self.inner.log(
            &Record::builder()
                .level(Level::Warn)
                .target(module_path!())
                .module_path_static(Some(module_path!()))
                .args(format_args!(
                    "left out {count} line(s) about clients: more than {} a second \
                     (--client-log-rate)",
                    self.rate
                ))
                .build(),
        );
        self.inner.flush();
    }
}

impl<L: Log + 'static> Log for RateLimited<L> {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !self.inner.enabled(record.metadata()) {
            return;
        }
        let about_a_client = record.key_values().get("peer".into()).is_some();
        if self.rate == 0 || !about_a_client || self.take_token() {
            self.inner.log(record);
            return;
        }
        self.left_out.fetch_add(1, Ordering::Relaxed);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Installs `logger` for the process, with a thread that writes the summaries (it sleeps
/// while nothing is left out).
pub fn install<L: Log + 'static>(logger: RateLimited<L>, level: log::LevelFilter) {
    let logger: &'static RateLimited<L> = Box::leak(Box::new(logger));
    if log::set_logger(logger).is_err() {
        return;
    }
    log::set_max_level(level);
    if logger.rate == 0 {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("log-summaries".into())
        .spawn(move || {
            loop {
                std::thread::sleep(SUMMARY_EVERY);
                logger.summarise();
            }
        });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<String>>>);

    impl Log for Lines {
        fn enabled(&self, _: &Metadata) -> bool {
            true
        }
        fn log(&self, record: &Record) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
        fn flush(&self) {}
    }

    fn line(logger: &impl Log, peer: Option<&str>) {
        let fields = [("peer", log::kv::Value::from(peer.unwrap_or_default()))];
        let fields: &[(&str, log::kv::Value)] = if peer.is_some() { &fields } else { &[] };
        logger.log(
            &Record::builder()
                .level(Level::Info)
                .args(format_args!("a line"))
                .key_values(&fields)
                .build(),
        );
    }

    #[test]
    fn lines_about_clients_past_the_burst_are_counted_and_the_servers_own_always_pass() {
        let lines = Lines::default();
        let logger = RateLimited::new(lines.clone(), 2);
        for _ in 0..100 {
            line(&logger, Some("127.0.0.1:1"));
        }
        line(&logger, None);
        // The burst (ten seconds' worth) and the server's own line; the rest counted.
        assert_eq!(lines.0.lock().unwrap().len(), 21);
        logger.summarise();
        let written = lines.0.lock().unwrap();
        assert_eq!(written.len(), 22);
        assert!(
            written[21].starts_with("left out 80 line(s)"),
            "{}",
            written[21]
        );
    }

    #[test]
    fn a_rate_of_zero_leaves_nothing_out() {
        let lines = Lines::default();
        let logger = RateLimited::new(lines.clone(), 0);
        for _ in 0..1000 {
            line(&logger, Some("127.0.0.1:1"));
        }
        assert_eq!(lines.0.lock().unwrap().len(), 1000);
    }
}
