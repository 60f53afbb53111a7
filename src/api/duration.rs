//! Durations in Prometheus syntax (`30s`, `5m`, `1h`, `7d`, `1h30m`), kept as written.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A duration as the policy wrote it. The text is kept because annotation values and
/// BudgetSnapshot window keys use the duration "as written in the policy".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Duration {
    text: String,
    seconds: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {text:?}: {why} (use Prometheus syntax such as 30s, 5m, 1h, 7d)")]
pub struct DurationError {
    text: String,
    why: &'static str,
}

impl Duration {
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let err = |why| DurationError {
            text: text.to_owned(),
            why,
        };
        if text.is_empty() {
            return Err(err("empty"));
        }
        let mut seconds: u64 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err("expected a number"));
            }
            let value: u64 = rest[..digits]
                .parse()
                .map_err(|_| err("number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = match &rest[..unit_len] {
                "ms" => return Err(err("milliseconds are too fine for budgets")),
                "s" => 1,
                "m" => 60,
                "h" => 3_600,
                "d" => 86_400,
                "w" => 7 * 86_400,
                "y" => 365 * 86_400,
                "" => return Err(err("missing unit")),
                _ => return Err(err("unknown unit")),
            };
            rest = &rest[unit_len..];
            seconds = value
                .checked_mul(unit)
                .and_then(|s| seconds.checked_add(s))
                .ok_or_else(|| err("too long"))?;
        }
        if seconds == 0 {
            return Err(err("must be positive"));
        }
        Ok(Duration {
            text: text.to_owned(),
            seconds,
        })
    }

    /// A duration from whole seconds, written in the largest exact unit.
    pub fn from_seconds(seconds: u64) -> Self {
        let text = [(86_400, "d"), (3_600, "h"), (60, "m")]
            .iter()
            .find(|(unit, _)| seconds >= *unit && seconds.is_multiple_of(*unit))
            .map(|(unit, suffix)| format!("{}{suffix}", seconds / unit))
            .unwrap_or_else(|| format!("{seconds}s"));
        Duration { text, seconds }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn seconds(&self) -> u64 {
        self.seconds
    }

    pub fn as_secs_f64(&self) -> f64 {
        self.seconds as f64
    }

    pub fn signed(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(self.seconds as i64)
    }
}

/// Ordered by length first; equal lengths written differently (`60m`, `1h`) by text.
impl Ord for Duration {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.seconds, &self.text).cmp(&(other.seconds, &other.text))
    }
}

impl PartialOrd for Duration {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(s|m|h|d|w|y))+$",
            "description": "Duration in Prometheus syntax, e.g. 30s, 5m, 1h, 7d."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_units_and_compounds() {
        assert_eq!(Duration::parse("30s").unwrap().seconds(), 30);
        assert_eq!(Duration::parse("5m").unwrap().seconds(), 300);
        assert_eq!(Duration::parse("1h30m").unwrap().seconds(), 5_400);
        assert_eq!(Duration::parse("7d").unwrap().seconds(), 604_800);
        assert_eq!(Duration::parse("2w").unwrap().seconds(), 1_209_600);
    }

    #[test]
    fn keeps_the_text_as_written() {
        assert_eq!(Duration::parse("60m").unwrap().as_str(), "60m");
        assert_eq!(Duration::from_seconds(3_600).as_str(), "1h");
        assert_eq!(Duration::from_seconds(90).as_str(), "90s");
    }

    #[test]
    fn rejects_nonsense_with_the_reason() {
        let e = Duration::parse("5 minutes").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid duration \"5 minutes\": missing unit (use Prometheus syntax such as 30s, 5m, 1h, 7d)"
        );
        assert!(Duration::parse("").is_err());
        assert!(Duration::parse("0s").is_err());
        assert!(Duration::parse("5x").is_err());
        assert!(Duration::parse("h").is_err());
        assert!(Duration::parse("99999999999999999999d").is_err());
    }
}
