//! Reading a URL's query string: its `name=value` pairs, `%XX` escapes, and options that are
//! on or off.

/// The `name=value` pairs of a query string, as they stand (not yet decoded).
pub(super) fn pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Whether the query string names the option `name` and turns it on (`name`, `name=1`,
/// `name=true` or `name=yes`), as `?history_notice=1` does.
pub(crate) fn query_flag(query: Option<&str>, name: &str) -> bool {
    pairs(query).any(|(key, value)| key == name && flag(value))
}

/// Whether an option's value turns it on: none at all, `1`, `true` or `yes`.
pub(super) fn flag(value: &str) -> bool {
    matches!(value, "" | "1" | "true" | "yes")
}

/// A query value with `+` as a space and `%XX` escapes decoded; invalid UTF-8 becomes U+FFFD.
pub(super) fn decode(value: &str) -> String {
    let hex = |byte: u8| (byte as char).to_digit(16);
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = match bytes.get(index..index + 3) {
            Some([b'%', high, low]) => hex(*high).zip(hex(*low)),
            _ => None,
        };
        match (escaped, bytes[index]) {
            (Some((high, low)), _) => {
                decoded.push((high * 16 + low) as u8);
                index += 3;
                continue;
            }
            (None, b'+') => decoded.push(b' '),
            (None, byte) => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_flags_are_on_when_named_with_no_value_or_a_true_one() {
        assert!(query_flag(Some("history_notice=1"), "history_notice"));
        assert!(query_flag(Some("a=b&history_notice"), "history_notice"));
        assert!(query_flag(
            Some("history_notice=true&x=1"),
            "history_notice"
        ));
        assert!(!query_flag(Some("history_notice=0"), "history_notice"));
        assert!(!query_flag(Some("history_notices=1"), "history_notice"));
        assert!(!query_flag(None, "history_notice"));
    }

    #[test]
    fn escapes_decode_and_broken_ones_stay_as_they_are() {
        assert_eq!(decode("a%20b+c"), "a b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%FF"), "\u{FFFD}");
    }
}
