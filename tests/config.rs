//! The flag value parsers and the defaults users get.

use std::time::Duration;

use wsecho::{Config, Mode, parse_seconds, parse_size};

#[test]
fn sizes_take_plain_bytes_and_binary_suffixes() {
    assert_eq!(parse_size("65536"), Ok(65536));
    assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
    assert_eq!(parse_size("64MiB"), Ok(64 << 20));
    assert_eq!(parse_size("1 gib"), Ok(1 << 30));
    assert_eq!(parse_size("2M"), Ok(2 << 20));
    assert!(parse_size("lots").is_err());
    assert!(parse_size("12XB").is_err());
    assert!(parse_size("99999999999999999999GiB").is_err());
}

#[test]
fn durations_take_fractional_seconds_within_reason() {
    assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_seconds("20"), Ok(Duration::from_secs(20)));
    assert!(parse_seconds("-1").is_err());
    assert!(parse_seconds("soon").is_err());
    assert!(parse_seconds("1e19").is_err());
}

#[test]
fn defaults_match_the_documented_ones() {
    let config = Config::default();
    assert_eq!(config.mode, Mode::Echo);
    assert_eq!(config.welcome, "Welcome to the WebSocket server!");
    assert_eq!(config.max_message_size, 64 << 20);
    assert_eq!(config.handshake_timeout, Duration::from_secs(10));
    assert_eq!(config.ping_interval, Duration::from_secs(20));
    assert_eq!(config.ping_timeout, Duration::from_secs(20));
    assert_eq!(config.close_timeout, Duration::from_secs(3));
    assert_eq!(config.max_connections, 10_000);
    assert!(config.allowed_origins.is_empty());
    assert_eq!(config.max_queue, 1024);
}
