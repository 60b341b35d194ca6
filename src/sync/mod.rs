//! Coordination that every layer may use and that knows nothing of WebSocket: the shutdown
//! signal and the wait for every task to finish, and locking shared maps.

#[cfg(test)]
pub(crate) mod counting_waker;
pub(crate) mod lock;
pub(crate) mod shutdown;
