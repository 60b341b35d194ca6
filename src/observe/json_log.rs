//! Log lines as JSON objects (`--log-format json`), for log shippers: one object per line
//! with `ts`, `level`, `target`, `msg`, and the record's structured fields (`peer`, `room`,
//! `path`, `code`) where it has them.
//!
//! serde_json does the escaping, so a string a client controls (a close reason, a path)
//! can neither break the line nor add a field.

use log::kv::{self, VisitSource};
use serde_json::{Map, Value};

/// One log record as a line of JSON (without the newline). `timestamp` is the time the
/// logger stamped it with.
pub fn json_log_line(record: &log::Record<'_>, timestamp: &str) -> String {
    let mut object = Map::new();
    object.insert("ts".into(), timestamp.into());
    object.insert("level".into(), record.level().as_str().into());
    object.insert("target".into(), record.target().into());
    object.insert("msg".into(), record.args().to_string().into());
    let _ = record.key_values().visit(&mut Fields(&mut object));
    Value::Object(object).to_string()
}

/// Adds a record's key-value pairs to the object, without replacing the fixed fields.
struct Fields<'a>(&'a mut Map<String, Value>);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let value = match value.to_u64() {
            Some(number) => Value::from(number),
            None => Value::from(value.to_string()),
        };
        self.0.entry(key.as_str()).or_insert(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(args: std::fmt::Arguments<'_>, fields: &[(&str, kv::Value<'_>)]) -> Value {
        let record = log::Record::builder()
            .args(args)
            .level(log::Level::Info)
            .target("wsecho::test")
            .key_values(&fields)
            .build();
        let text = json_log_line(&record, "2026-11-23T00:00:00.000000Z");
        assert!(!text.contains('\n'), "one line: {text}");
        serde_json::from_str(&text).expect("valid JSON")
    }

    #[test]
    fn hostile_text_stays_inside_its_string() {
        let reason = "bye\"}\n{\"level\":\"ERROR\",\u{1}\u{7f}";
        let parsed = line(
            format_args!("peer 127.0.0.1:1 disconnected (1000 {reason})"),
            &[
                ("peer", kv::Value::from("127.0.0.1:1")),
                ("code", kv::Value::from(1000u16)),
            ],
        );
        assert_eq!(parsed["level"], "INFO");
        assert_eq!(parsed["target"], "wsecho::test");
        assert_eq!(
            parsed["msg"],
            format!("peer 127.0.0.1:1 disconnected (1000 {reason})")
        );
        assert_eq!(parsed["peer"], "127.0.0.1:1");
        assert_eq!(parsed["code"], 1000);
        assert_eq!(parsed.as_object().unwrap().len(), 6);
    }

    #[test]
    fn a_field_cannot_replace_the_fixed_ones() {
        let parsed = line(
            format_args!("hello"),
            &[("level", kv::Value::from("ERROR"))],
        );
        assert_eq!(parsed["level"], "INFO");
    }
}
