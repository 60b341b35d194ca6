//! What the server shows of itself: the counters and gauges `/metrics` reports, log lines as
//! JSON (`--log-format json`), and the snapshot types `/stats` is made from.
//!
//! Everything here is written to by the layers above and depends on nothing but the
//! configuration, so that any of them can report without depending on another.

pub(crate) mod escape;
pub(crate) mod json_log;
pub(crate) mod log_rate;
pub(crate) mod logger;
pub(crate) mod metrics;
pub(crate) mod stats;
