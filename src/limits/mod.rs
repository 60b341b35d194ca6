//! The server's limits on what clients may take: connection slots overall and per address,
//! the memory budget all clients share, and the process's open-files limit.
//!
//! Each limit is a value the accept loop or a connection holds a piece of (a permit, a slot,
//! an account); dropping the piece gives it back, however the connection ends.

pub(crate) mod address_limit;
pub(crate) mod budget;
pub(crate) mod connection_limit;
pub(crate) mod open_files;
