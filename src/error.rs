//! Why the server could not start: the one line the binary prints before it exits.
//!
//! Every check that can fail before the first client is served (the flags, the TLS material,
//! the Redis URL, the listening sockets, the runtimes) ends in a [`StartError`], so that the
//! binary has one place that prints and exits, and a library caller can tell the kinds apart.

use std::fmt;
use std::io;

/// What stopped the server from starting; its `Display` is the one line `main` prints.
#[derive(Debug)]
pub enum StartError {
    /// Settings that cannot work together, or a value a flag cannot take.
    Config(String),
    /// The certificate or key for TLS.
    Tls(String),
    /// The Redis URL or its CA certificate (`--redis`, `--redis-ca`).
    Redis(String),
    /// A listening socket (the address in use, a name that does not resolve).
    Listen(io::Error),
    /// The runtime that runs the server, or a worker thread.
    Runtime(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(why) | StartError::Tls(why) | StartError::Redis(why) => {
                f.write_str(why)
            }
            StartError::Listen(error) => write!(f, "{error}"),
            StartError::Runtime(error) => write!(f, "cannot start the runtime: {error}"),
        }
    }
}

impl std::error::Error for StartError {}
