//! Reading timestamps: Unix epoch milliseconds or RFC 3339 strings (with offset), parsed
//! into epoch milliseconds.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A `ts` exactly as the sender wrote it, before interpretation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RawTimestamp<'a> {
    Number(f64),
    Integer(i64),
    Text(&'a str),
    /// A JSON string with escapes that could not be borrowed; never a valid RFC 3339 text.
    Escaped,
}

impl RawTimestamp<'_> {
    /// Epoch milliseconds, or `None` if this is not a usable timestamp.
    pub fn to_epoch_ms(self) -> Option<i64> {
        match self {
            RawTimestamp::Integer(ms) => Some(ms),
            RawTimestamp::Number(ms) if ms.is_finite() && ms.abs() < 1e15 => Some(ms as i64),
            RawTimestamp::Number(_) | RawTimestamp::Escaped => None,
            RawTimestamp::Text(s) => parse_rfc3339_ms(s),
        }
    }
}

/// Parses an RFC 3339 timestamp (`2025-11-23T10:00:00.123+01:00`) into epoch milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Deserializes a `ts` field that may be a number or a string.
pub fn deserialize_raw<'de, D>(d: D) -> Result<Option<RawTimestamp<'de>>, D::Error>
where
    D: Deserializer<'de>,
{
    struct TsVisitor;
    impl<'de> Visitor<'de> for TsVisitor {
        type Value = Option<RawTimestamp<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("epoch milliseconds or an RFC 3339 string")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(RawTimestamp::Integer(v)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(match i64::try_from(v) {
                Ok(v) => RawTimestamp::Integer(v),
                Err(_) => RawTimestamp::Number(f64::INFINITY),
            }))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(RawTimestamp::Number(v)))
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(RawTimestamp::Text(v)))
        }
        fn visit_str<E: de::Error>(self, _v: &str) -> Result<Self::Value, E> {
            Ok(Some(RawTimestamp::Escaped))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(TsVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_offsets() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(
            parse_rfc3339_ms("1970-01-01T01:00:01.250+01:00"),
            Some(1250)
        );
        assert_eq!(
            parse_rfc3339_ms("2025-11-23T10:00:00.123Z"),
            Some(1_763_892_000_123)
        );
        assert_eq!(parse_rfc3339_ms("2025-11-23 10:00"), None);
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(RawTimestamp::Integer(5).to_epoch_ms(), Some(5));
        assert_eq!(RawTimestamp::Number(5.9).to_epoch_ms(), Some(5));
        assert_eq!(RawTimestamp::Number(f64::NAN).to_epoch_ms(), None);
        assert_eq!(RawTimestamp::Number(1e300).to_epoch_ms(), None);
    }
}
