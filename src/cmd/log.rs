//! Log lines on stderr: human text by default, one JSON object per event with
//! `--log-format json`, errors only with `--quiet`.

use crate::cli::LogFormat;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::sync::OnceLock;

struct Settings {
    format: LogFormat,
    quiet: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

pub fn init(format: LogFormat, quiet: bool) {
    let _ = SETTINGS.set(Settings { format, quiet });
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One event: `event` is a stable dotted name (`prune.done`), `message` the
/// human line, `fields` extra machine-readable data for the JSON form.
pub fn event(level: Level, event: &str, message: &str, fields: Value) {
    let s = SETTINGS.get();
    let quiet = s.is_some_and(|s| s.quiet);
    if quiet && level != Level::Error {
        return;
    }
    let word = match level {
        Level::Info => "info",
        Level::Warn => "warning",
        Level::Error => "error",
    };
    let line = match s.map_or(LogFormat::Text, |s| s.format) {
        LogFormat::Text => match level {
            Level::Info => format!("dockgc: {message}"),
            _ => format!("dockgc: {word}: {message}"),
        },
        LogFormat::Json => {
            let mut obj = Map::new();
            obj.insert("time".into(), json!(jiff::Timestamp::now().to_string()));
            obj.insert("level".into(), json!(word));
            obj.insert("event".into(), json!(event));
            obj.insert("message".into(), json!(message));
            if let Value::Object(f) = fields {
                obj.extend(f);
            }
            Value::Object(obj).to_string()
        }
    };
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

pub fn info(name: &str, message: &str, fields: Value) {
    event(Level::Info, name, message, fields);
}

pub fn warn(name: &str, message: &str, fields: Value) {
    event(Level::Warn, name, message, fields);
}

pub fn error(name: &str, message: &str) {
    event(Level::Error, name, message, Value::Null);
}
