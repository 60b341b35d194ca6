//! What the budget needs from the system: its default size, the allocator setting that makes
//! freed buffers go back to the system, and the start-up lines that state the limits.

use log::{info, warn};

/// Makes the allocator give every large buffer (a client's message, its copy in a write
/// buffer) back to the system as soon as it is freed, so that the process's memory follows
/// what the budget counts. glibc otherwise raises its threshold for using `mmap` each time
/// a large block is freed (up to 32 MiB), after which messages of several MiB come from
/// the heap, whose freed space is kept: in a test of 200 broadcast members and 8 MiB
/// messages that kept the process 70 MiB above the budget. Call it once, at start, before
/// any threads exist.
pub fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes the allocator's settings; called before other threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// `bytes` in the largest binary unit that keeps it at one or more, e.g. `64 MiB`.
fn format_bytes(bytes: usize) -> String {
    const UNITS: [(&str, usize); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if bytes.is_multiple_of(size) {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

/// The budget to use when `--max-memory` is not given: a quarter of physical memory, at most
/// 4 GiB (at least 64 MiB where the size cannot be read).
pub fn default_limit() -> usize {
    const CAP: usize = 4 << 30;
    // SAFETY: `sysconf` only reads system configuration.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    match (usize::try_from(pages), usize::try_from(page_size)) {
        (Ok(pages), Ok(page_size)) if pages > 0 && page_size > 0 => {
            (pages.saturating_mul(page_size) / 4).min(CAP)
        }
        _ => 64 << 20,
    }
}

/// Logs the budget at start, and warns when `--max-message-size` is over half of it: such
/// a message may never fit while others are in flight. (Connections × message size always
/// exceeds the budget by far with the defaults, which is what the budget is for, so that is
/// not worth a warning.)
pub fn log_limits(limit: usize, max_message_size: usize) {
    info!(
        "memory budget for clients: {} (--max-memory); past it the largest senders are paused",
        format_bytes(limit)
    );
    if max_message_size.saturating_mul(2) > limit {
        warn!(
            "--max-message-size {} is over half the memory budget of {}: a message that \
             large may never fit, and its sender is closed with 1013 when memory is short",
            format_bytes(max_message_size),
            format_bytes(limit)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_logged_in_binary_units() {
        assert_eq!(format_bytes(64 << 20), "64 MiB");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(100), "100 bytes");
    }

    #[test]
    fn the_default_is_a_quarter_of_memory_at_most_4_gib() {
        let limit = default_limit();
        assert!((64 << 20..=4 << 30).contains(&limit), "{limit}");
    }
}
