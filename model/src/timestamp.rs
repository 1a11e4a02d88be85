//! Timestamps: one type, [`UnixMillis`], and one parser for every format Cloudflare emits.
//!
//! Logpush timestamps follow the job's `timestamp_format`: `unixnano` (int64 ns, which an
//! f64 cannot hold), `unix` (seconds), `rfc3339`, `rfc3339ms`, `rfc3339ns`; Workers use
//! epoch milliseconds; some third parties send epoch values as numeric strings. A JSON
//! number is never routed through `f64` here: integers are read as integers and the unit is
//! inferred from the magnitude (seconds < 1e11 < ms < 1e14 < µs < 1e17 < ns), which is
//! unambiguous for any date between 1973 and 5138.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, UTC. The precision of `AccessDecision.time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMillis(pub i64);

/// Why a value is not a timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("timestamp {0:?} is neither an epoch number nor RFC 3339")]
    Unparseable(String),
    #[error("timestamp {0} is out of range")]
    OutOfRange(i128),
    #[error("timestamp is a {0}, expected an integer or a string")]
    WrongType(&'static str),
}

const SECONDS_BELOW: i128 = 100_000_000_000; // 1e11
const MILLIS_BELOW: i128 = 100_000_000_000_000; // 1e14
const MICROS_BELOW: i128 = 100_000_000_000_000_000; // 1e17

impl UnixMillis {
    /// From an epoch integer of unknown unit (s, ms, µs or ns), by magnitude.
    pub fn from_epoch_any(value: i128) -> Result<Self, TimestampError> {
        let magnitude = value.abs();
        let ms = if magnitude < SECONDS_BELOW {
            value * 1000
        } else if magnitude < MILLIS_BELOW {
            value
        } else if magnitude < MICROS_BELOW {
            value.div_euclid(1000)
        } else {
            value.div_euclid(1_000_000)
        };
        i64::try_from(ms).map(UnixMillis).map_err(|_| TimestampError::OutOfRange(value))
    }

    /// From epoch milliseconds (the Workers convention), unit not inferred.
    pub fn from_millis(ms: i64) -> Self {
        UnixMillis(ms)
    }

    /// Parses a string: an epoch integer of any unit, or RFC 3339 with any fraction.
    pub fn parse_str(text: &str) -> Result<Self, TimestampError> {
        let trimmed = text.trim();
        if !trimmed.is_empty()
            && trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'-')
            && let Ok(n) = trimmed.parse::<i128>()
        {
            return Self::from_epoch_any(n);
        }
        let parsed =
            OffsetDateTime::parse(trimmed, &Rfc3339).map_err(|_| TimestampError::Unparseable(truncate(trimmed)))?;
        let ms = parsed.unix_timestamp_nanos().div_euclid(1_000_000);
        i64::try_from(ms).map(UnixMillis).map_err(|_| TimestampError::OutOfRange(ms))
    }

    /// Parses a JSON value as Logpush sends it (integer or string).
    pub fn from_json(value: &serde_json::Value) -> Result<Self, TimestampError> {
        match value {
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Self::from_epoch_any(i128::from(i))
                } else if let Some(u) = n.as_u64() {
                    Self::from_epoch_any(i128::from(u))
                } else {
                    Err(TimestampError::WrongType("fractional number"))
                }
            }
            serde_json::Value::String(s) => Self::parse_str(s),
            serde_json::Value::Null => Err(TimestampError::WrongType("null")),
            serde_json::Value::Bool(_) => Err(TimestampError::WrongType("boolean")),
            serde_json::Value::Array(_) => Err(TimestampError::WrongType("array")),
            serde_json::Value::Object(_) => Err(TimestampError::WrongType("object")),
        }
    }

    /// Whole seconds since the epoch (floor).
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// RFC 3339 with exactly three fractional digits, `Z` suffix.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(dt) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.millisecond()
            ),
            Err(_) => self.0.to_string(),
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// In JSON and TOML an RFC 3339 string; in binary formats (the spool) the i64 itself.
impl Serialize for UnixMillis {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_rfc3339())
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

/// Accepts every Cloudflare form in human-readable formats; the i64 in binary ones.
impl<'de> Deserialize<'de> for UnixMillis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let value = serde_json::Value::deserialize(deserializer)?;
            UnixMillis::from_json(&value).map_err(serde::de::Error::custom)
        } else {
            i64::deserialize(deserializer).map(UnixMillis)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // 2025-03-03T08:31:53.712549374Z in every Logpush format.
    const MS: i64 = 1_740_990_713_712;

    #[test]
    fn every_logpush_format_gives_the_same_instant() {
        assert_eq!(UnixMillis::from_json(&json!(1_740_990_713_712_549_374_u64)).unwrap().0, MS);
        assert_eq!(UnixMillis::from_json(&json!(1_740_990_713)).unwrap().0, MS - 712);
        assert_eq!(UnixMillis::from_json(&json!("1740990713")).unwrap().0, MS - 712);
        assert_eq!(UnixMillis::from_json(&json!(MS)).unwrap().0, MS);
        assert_eq!(UnixMillis::from_json(&json!("2025-03-03T08:31:53Z")).unwrap().0, MS - 712);
        assert_eq!(UnixMillis::from_json(&json!("2025-03-03T08:31:53.712Z")).unwrap().0, MS);
        assert_eq!(UnixMillis::from_json(&json!("2025-03-03T08:31:53.712549374Z")).unwrap().0, MS);
        assert_eq!(UnixMillis::from_json(&json!("2025-03-03T09:31:53.712+01:00")).unwrap().0, MS);
    }

    #[test]
    fn unixnano_is_not_rounded_through_f64() {
        // 1740990713712999999 as f64 is 1740990713713000000: a float path would round up.
        let t = UnixMillis::from_json(&json!(1_740_990_713_712_999_999_u64)).unwrap();
        assert_eq!(t.0, MS);
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        assert!(UnixMillis::from_json(&json!("yesterday")).is_err());
        assert!(UnixMillis::from_json(&json!(1.5)).is_err());
        assert!(UnixMillis::from_json(&json!(null)).is_err());
        assert!(UnixMillis::from_json(&json!(true)).is_err());
    }

    #[test]
    fn renders_rfc3339_millis_and_round_trips() {
        let t = UnixMillis(MS);
        assert_eq!(t.to_rfc3339(), "2025-03-03T08:31:53.712Z");
        let back: UnixMillis = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    proptest::proptest! {
        #[test]
        fn any_string_parses_or_errors_without_panic(s in ".*") {
            let _ = UnixMillis::parse_str(&s);
        }

        #[test]
        fn millis_round_trip_through_rfc3339(ms in 0i64..4_102_444_800_000) {
            let t = UnixMillis(ms);
            proptest::prop_assert_eq!(UnixMillis::parse_str(&t.to_rfc3339()).unwrap(), t);
        }
    }
}
