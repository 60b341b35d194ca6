//! Faults on demand: what a client asks of its own connection in the URL's query string
//! (`?close=4000&after=3`, `?delay_ms=50`, `?status=503`, ...), for testing how a client
//! copes with a misbehaving server. Parsing and bounds live here, below both the routing
//! that refuses a bad value (`http`) and the session that carries the rest out
//! (`session::scenario`).
//!
//! A query without any of these names gives no scenario at all, so a client that asks for
//! nothing gets the server's ordinary behaviour, to the byte. Names this module does not
//! know are left alone (a client's own cache-buster, `history_notice`).

use std::time::Duration;

mod query;

pub(crate) use query::query_flag;
use query::{decode, flag, pairs};

/// The parameter names that ask for a scenario.
const NAMES: [&str; 16] = [
    "inspect",
    "status",
    "close",
    "reason",
    "after",
    "after_ms",
    "drop_after",
    "drop_after_ms",
    "delay_ms",
    "fragment",
    "ping_ms",
    "ping_report",
    "repeat_ms",
    "message",
    "send_bytes",
    "stall_ms",
];

/// The longest any timer may run: a client cannot make the server keep a timer for longer.
pub(crate) const LONGEST_TIMER: Duration = Duration::from_secs(600);

/// The shortest period of a repeating timer (`ping_ms`, `repeat_ms`): a client cannot make
/// the server send more often than an ordinary fast client would.
pub(crate) const SHORTEST_PERIOD: Duration = Duration::from_millis(10);

/// When something happens: after this many replies, or this long after the welcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// After the client has been sent this many replies (0: right after the welcome).
    Replies(u64),
    /// This long after the welcome.
    Elapsed(Duration),
}

/// Everything one connection asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scenario {
    /// `?inspect`: the handshake described as JSON, before the welcome.
    pub inspect: bool,
    /// `?status=CODE`: refuse the upgrade with this HTTP status.
    pub status: Option<u16>,
    /// `?close=CODE&reason=TEXT&after=N` (or `after_ms=T`): close with this code and reason.
    pub close: Option<(u16, String, Trigger)>,
    /// `?drop_after=N` (or `drop_after_ms=T`): end the TCP connection with no close frame.
    pub drop: Option<Trigger>,
    /// `?delay_ms=T`: each reply this long after its message arrived.
    pub delay: Option<Duration>,
    /// `?fragment=BYTES`: each reply as frames of at most this much payload.
    pub fragment: Option<usize>,
    /// `?ping_ms=T`: a ping this often, with a counter as its payload.
    pub ping_every: Option<Duration>,
    /// `?ping_report=1`: after each answered ping, a text frame with its round-trip time.
    pub ping_report: bool,
    /// `?repeat_ms=T&message=TEXT`: TEXT (or a counter and a timestamp) this often.
    pub repeat: Option<(Duration, Option<String>)>,
    /// `?send_bytes=N`: one binary message of N bytes after the welcome.
    pub send_bytes: Option<usize>,
    /// `?stall_ms=T`: the socket is not read for this long after the welcome.
    pub stall: Option<Duration>,
}

impl Scenario {
    /// Whether the session has anything to do differently (inspect and status are the
    /// handshake's).
    pub(crate) fn shapes_the_session(&self) -> bool {
        *self
            != Scenario {
                inspect: self.inspect,
                status: self.status,
                ..Scenario::default()
            }
    }
}

/// Reads a scenario from a query string. `Ok(None)` when the query names none of the
/// parameters; `Err` with a one-line reason naming the parameter when a value is malformed
/// or out of range. `max_message_size` bounds `send_bytes`.
pub(crate) fn parse(
    query: Option<&str>,
    max_message_size: usize,
) -> Result<Option<Scenario>, String> {
    let pairs: Vec<(&str, &str)> = pairs(query).collect();
    if !pairs.iter().any(|(name, _)| NAMES.contains(name)) {
        return Ok(None);
    }
    let value = |name: &str| -> Option<String> {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| decode(value))
    };
    let mut scenario = Scenario {
        inspect: value("inspect").is_some_and(|value| flag(&value)),
        ping_report: value("ping_report").is_some_and(|value| flag(&value)),
        ..Scenario::default()
    };
    if let Some(status) = value("status") {
        let status: u16 = number("status", &status, 400, 599)?;
        scenario.status = Some(status);
    }
    let trigger = |count_name: &str, time_name: &str| -> Result<Option<Trigger>, String> {
        match (value(count_name), value(time_name)) {
            (Some(_), Some(_)) => Err(format!("give {count_name} or {time_name}, not both")),
            (Some(count), None) => Ok(Some(Trigger::Replies(number(
                count_name,
                &count,
                0,
                1_000_000_000,
            )?))),
            (None, Some(time)) => Ok(Some(Trigger::Elapsed(millis(time_name, &time, 0)?))),
            (None, None) => Ok(None),
        }
    };
    let close_trigger = trigger("after", "after_ms")?;
    match value("close") {
        Some(code) => {
            let code: u16 = number("close", &code, 1000, 4999)?;
            if !may_send(code) {
                return Err(format!(
                    "close: {code} is not a code an endpoint may send (1000-1003, 1007-1014, \
                     3000-4999)"
                ));
            }
            let reason = value("reason").unwrap_or_default();
            if reason.len() > 123 {
                return Err("reason: at most 123 bytes (a close frame's limit)".into());
            }
            let trigger = close_trigger.unwrap_or(Trigger::Replies(0));
            scenario.close = Some((code, reason, trigger));
        }
        None if close_trigger.is_some() || value("reason").is_some() => {
            return Err("after, after_ms and reason go with close=CODE".into());
        }
        None => {}
    }
    scenario.drop = trigger("drop_after", "drop_after_ms")?;
    if let Some(delay) = value("delay_ms") {
        scenario.delay = Some(millis("delay_ms", &delay, 0)?);
    }
    if let Some(size) = value("fragment") {
        scenario.fragment = Some(number("fragment", &size, 1, max_message_size)?);
    }
    if let Some(period) = value("ping_ms") {
        scenario.ping_every = Some(millis("ping_ms", &period, SHORTEST_PERIOD.as_millis())?);
    } else if scenario.ping_report {
        return Err("ping_report goes with ping_ms=T".into());
    }
    match (value("repeat_ms"), value("message")) {
        (Some(period), message) => {
            let period = millis("repeat_ms", &period, SHORTEST_PERIOD.as_millis())?;
            scenario.repeat = Some((period, message));
        }
        (None, Some(_)) => return Err("message goes with repeat_ms=T".into()),
        (None, None) => {}
    }
    if let Some(size) = value("send_bytes") {
        scenario.send_bytes = Some(number("send_bytes", &size, 0, max_message_size)?);
    }
    if let Some(time) = value("stall_ms") {
        scenario.stall = Some(millis("stall_ms", &time, 0)?);
    }
    Ok(Some(scenario))
}

/// Whether an endpoint may send `code` in a close frame (RFC 6455 §7.4).
fn may_send(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A whole number within `low..=high`, or a one-line reason naming `name`.
fn number<T>(name: &str, text: &str, low: T, high: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match text.parse::<T>() {
        Ok(value) if value >= low && value <= high => Ok(value),
        _ => Err(format!(
            "{name}: `{}` is not a whole number from {low} to {high}",
            text.escape_default()
        )),
    }
}

/// Milliseconds from `lowest` to [`LONGEST_TIMER`].
fn millis(name: &str, text: &str, lowest: u128) -> Result<Duration, String> {
    let longest = LONGEST_TIMER.as_millis() as u64;
    let value = number(name, text, lowest as u64, longest)?;
    Ok(Duration::from_millis(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(query: &str) -> Result<Option<Scenario>, String> {
        parse(Some(query), 1 << 20)
    }

    #[test]
    fn a_query_without_scenario_names_is_no_scenario() {
        assert_eq!(parsed(""), Ok(None));
        assert_eq!(parsed("history_notice=1&v=3"), Ok(None));
        assert_eq!(parse(None, 1 << 20), Ok(None));
    }

    #[test]
    fn parameters_compose() {
        let scenario = parsed("fragment=10&delay_ms=50&close=4000&after=3&reason=bye+now")
            .unwrap()
            .unwrap();
        assert_eq!(scenario.fragment, Some(10));
        assert_eq!(scenario.delay, Some(Duration::from_millis(50)));
        assert_eq!(
            scenario.close,
            Some((4000, "bye now".to_owned(), Trigger::Replies(3)))
        );
        assert!(scenario.shapes_the_session());
        let inspect = parsed("inspect").unwrap().unwrap();
        assert!(inspect.inspect && !inspect.shapes_the_session());
    }

    #[test]
    fn a_close_defaults_to_right_after_the_welcome_and_decodes_its_reason() {
        let scenario = parsed("close=1011&reason=%E2%9C%93%20ok").unwrap().unwrap();
        assert_eq!(
            scenario.close,
            Some((1011, "✓ ok".to_owned(), Trigger::Replies(0)))
        );
        let timed = parsed("close=3000&after_ms=250").unwrap().unwrap();
        assert_eq!(
            timed.close.map(|close| close.2),
            Some(Trigger::Elapsed(Duration::from_millis(250)))
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_parameter() {
        for (query, named) in [
            ("status=302", "status"),
            ("status=abc", "status"),
            ("close=1005", "close"),
            ("close=1006", "close"),
            ("close=5000", "close"),
            ("close=4000&after=1&after_ms=5", "after"),
            ("after=3", "close"),
            ("delay_ms=-1", "delay_ms"),
            ("delay_ms=600001", "delay_ms"),
            ("ping_ms=9", "ping_ms"),
            ("repeat_ms=1", "repeat_ms"),
            ("message=hi", "repeat_ms"),
            ("fragment=0", "fragment"),
            ("send_bytes=1048577", "send_bytes"),
            ("stall_ms=x", "stall_ms"),
            ("ping_report=1", "ping_ms"),
        ] {
            let error = parsed(query).expect_err(query);
            assert!(error.contains(named), "{query}: {error}");
            assert_eq!(error.lines().count(), 1, "{error}");
        }
        let long = format!("close=4000&reason={}", "x".repeat(124));
        assert!(parsed(&long).unwrap_err().contains("reason"));
    }
}
