//! The process's limit on open files, which caps how many clients can connect at all.
//!
//! The only `unsafe` FFI in the crate lives here: std has no wrapper for `getrlimit` and
//! `setrlimit`.

use std::io;

use log::warn;

/// Descriptors kept free for listeners, logs and the like beyond one per client.
const HEADROOM: u64 = 64;

/// Raises this process's soft limit on open files to its hard limit, so the connection limit
/// and not the default soft limit (often 1024) decides how many clients fit, and returns the
/// limit now in force. Logs a warning when `max_connections` cannot fit in it.
pub fn raise_open_files_limit(max_connections: usize) -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct passed by pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        } else {
            warn!(
                "cannot raise the open-files limit: {}",
                io::Error::last_os_error()
            );
        }
    }
    let open_files: u64 = limit.rlim_cur;
    if open_files < max_connections as u64 + HEADROOM {
        warn!(
            "the open-files limit ({open_files}) is below --max-connections ({max_connections}) plus \
             headroom; clients beyond about {} will fail to connect",
            open_files.saturating_sub(HEADROOM)
        );
    }
    Ok(open_files)
}
