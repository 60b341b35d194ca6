//! Coordination that every layer may use and that knows nothing of WebSocket: the shutdown
//! signal and the wait for every task to finish, locking shared maps, and a waker that
//! remembers it was woken.

#[cfg(test)]
pub(crate) mod counting_waker;
pub(crate) mod lock;
pub(crate) mod shutdown;
pub(crate) mod wake_flag;
