//! Text as Go writes it: `time.RFC3339Nano` in UTC and `encoding/json`
//! strings (go `src/time/format.go`, `src/encoding/json/encode.go`
//! `appendString` with HTML escaping on, as `json.Marshal` and
//! `json.Encoder` do by default).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// RFC3339Nano: trailing zeros of the fraction trimmed, none at all for
/// whole seconds.
pub(super) fn rfc3339nano(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub(super) fn go_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(super) fn go_str_list(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        go_str(out, s);
    }
    out.push(']');
}

/// A `map[string]string`: keys sorted, as Go marshals maps.
pub(super) fn go_map(out: &mut String, map: &BTreeMap<String, String>) {
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        go_str(out, k);
        out.push(':');
        go_str(out, v);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339nano_trims_the_fraction() {
        assert_eq!(rfc3339nano(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339nano(1_795_703_280, 951_078_436),
            "2026-11-26T14:28:00.951078436Z"
        );
        assert_eq!(
            rfc3339nano(1_709_164_800, 120_000_000),
            "2024-02-29T00:00:00.12Z"
        );
    }

    #[test]
    fn json_strings_are_html_safe() {
        let mut s = String::new();
        go_str(&mut s, "a<b>&\"\\\n\u{1}");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\u0001""#);
    }
}
