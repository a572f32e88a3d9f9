//! Reading logs written by the children: whole files re-read on each poll
//! (they are small), JSON lines from voice-ua, tails for failure messages.

use std::path::Path;

use serde_json::Value;

/// The file's content so far, empty if it does not exist yet.
pub fn read(path: &Path) -> String {
    std::fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
}

/// The last `n` lines of a file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = read(path);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out =
        format!("--- {} (last {} of {} lines) ---\n", path.display(), lines.len() - start, lines.len());
    for line in &lines[start..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The lines of a file that parse as JSON objects (one tracing event each).
pub fn json_lines(path: &Path) -> Vec<Value> {
    read(path)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .filter(Value::is_object)
        .collect()
}

/// A tracing-subscriber JSON event's message: `fields.message`, or the top
/// level `message` when the subscriber flattens events.
pub fn message(event: &Value) -> Option<&str> {
    event.pointer("/fields/message").or_else(|| event.get("message")).and_then(Value::as_str)
}

/// The event's level ("INFO", "ERROR", ...).
pub fn level(event: &Value) -> Option<&str> {
    event.get("level").and_then(Value::as_str)
}

/// A structured field of the event (`fields.<name>`, or top level).
pub fn field<'a>(event: &'a Value, name: &str) -> Option<&'a Value> {
    event.get("fields").and_then(|fields| fields.get(name)).or_else(|| event.get(name))
}

/// A numeric field, accepting a JSON number or a string of digits.
pub fn field_u64(event: &Value, name: &str) -> Option<u64> {
    match field(event, name)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_and_flattened_events() {
        let nested: Value = serde_json::from_str(
            r#"{"timestamp":"t","level":"INFO","fields":{"message":"registered","expires":20,"contact":"<sip:9000@127.0.0.1:5070>"},"target":"voice_ua"}"#,
        )
        .expect("valid JSON");
        assert_eq!(message(&nested), Some("registered"));
        assert_eq!(level(&nested), Some("INFO"));
        assert_eq!(field_u64(&nested, "expires"), Some(20));
        let flat: Value = serde_json::from_str(
            r#"{"level":"ERROR","message":"PBX rejected the password for 9000@x","expires":"60"}"#,
        )
        .expect("valid JSON");
        assert_eq!(message(&flat), Some("PBX rejected the password for 9000@x"));
        assert_eq!(field_u64(&flat, "expires"), Some(60));
    }
}
