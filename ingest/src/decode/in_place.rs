//! The fast path for an array of readings: each element is decoded straight into its place
//! in the caller's buffer, its strings borrowed from the payload, so a reading is neither
//! moved nor copied after it is parsed. It takes only what it reads exactly as the
//! element-by-element path would (an object of reading fields); anything else (an error,
//! a nested `readings` envelope, a reading written as an array) leaves the buffer as it
//! was and sends the payload to that path, which says what is wrong with each element.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::WireReading;
use crate::timestamp;

/// Appends every element of the JSON array `payload` to `out` and returns true, or leaves
/// `out` as it was and returns false.
pub(super) fn decode_array<'a>(payload: &'a [u8], out: &mut Vec<WireReading<'a>>) -> bool {
    let start = out.len();
    // One reservation: a reading is one object, so there are at most as many as braces.
    let objects = payload.iter().filter(|&&b| b == b'{').count();
    out.reserve(objects.min(MAX_RESERVE));
    let mut de = serde_json::Deserializer::from_slice(payload);
    let decoded = Array(out)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .is_ok();
    if !decoded {
        out.truncate(start);
    }
    decoded
}

/// Readings reserved for up front, however many braces a payload holds (the broker bounds
/// a payload's size; past this the buffer grows as elements come).
const MAX_RESERVE: usize = 1024;

struct Array<'v, 'a>(&'v mut Vec<WireReading<'a>>);

impl<'de> DeserializeSeed<'de> for Array<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Array<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of readings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Element(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// One element: a default reading pushed, then its fields written in place.
struct Element<'v, 'a>(&'v mut Vec<WireReading<'a>>);

impl<'de> DeserializeSeed<'de> for Element<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.push(WireReading::default());
        let slot = self.0.last_mut().expect("pushed above");
        d.deserialize_map(Fields(slot))
    }
}

struct Fields<'v, 'a>(&'v mut WireReading<'a>);

impl<'de> Visitor<'de> for Fields<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a reading object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let r = self.0;
        let mut seen = 0u8;
        while let Some(key) = map.next_key::<Key>()? {
            if key != Key::Other {
                let bit = 1 << key as u8;
                if seen & bit != 0 {
                    return Err(de::Error::duplicate_field(key.name()));
                }
                seen |= bit;
            }
            match key {
                Key::Metric => r.metric = map.next_value::<Option<Text>>()?.map(|t| t.0),
                Key::Value => r.value = map.next_value()?,
                Key::Unit => r.unit = map.next_value::<Option<Text>>()?.map(|t| t.0),
                Key::Ts => r.ts = map.next_value_seed(Ts)?,
                Key::Device => r.device = map.next_value::<Option<Text>>()?.map(|t| t.0),
                Key::Seq => r.seq = map.next_value()?,
                // Not a reading: the element-by-element path refuses it with a reason.
                Key::Readings => return Err(de::Error::custom("nested envelope")),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A field name of [`WireReading`]; any other is skipped, as the derived decoder does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Metric,
    Value,
    Unit,
    Ts,
    Device,
    Seq,
    Readings,
    Other,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::Metric => "metric",
            Key::Value => "value",
            Key::Unit => "unit",
            Key::Ts => "ts",
            Key::Device => "device",
            Key::Seq => "seq",
            Key::Readings => "readings",
            Key::Other => "",
        }
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "metric" => Key::Metric,
                    "value" => Key::Value,
                    "unit" => Key::Unit,
                    "ts" => Key::Ts,
                    "device" => Key::Device,
                    "seq" => Key::Seq,
                    "readings" => Key::Readings,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// A string field, borrowed from the payload unless it had escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text<'de>, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

/// `ts`, read as the derived decoder reads it.
struct Ts;

impl<'de> DeserializeSeed<'de> for Ts {
    type Value = Option<timestamp::RawTimestamp<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        timestamp::deserialize_raw(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the derived decoder makes of the same array, element by element.
    fn derived(payload: &[u8]) -> Option<Vec<WireReading<'_>>> {
        serde_json::from_slice::<Vec<WireReading<'_>>>(payload)
            .ok()
            .filter(|v| v.iter().all(|r| r.readings.is_none()))
    }

    fn fast(payload: &[u8]) -> Option<Vec<WireReading<'_>>> {
        let mut out = vec![WireReading::default()];
        let taken = decode_array(payload, &mut out);
        let first = out.remove(0);
        assert_eq!(first, WireReading::default(), "what was there stays");
        if !taken {
            assert!(out.is_empty(), "a refused payload leaves nothing behind");
        }
        taken.then_some(out)
    }

    #[test]
    fn takes_what_the_derived_decoder_takes_and_nothing_else() {
        let cases: &[&[u8]] = &[
            br#"[{"metric":"heart_rate","value":72,"unit":"/min","ts":1763892000123,"device":"cuff-17","seq":42}]"#,
            br#"[{"metric":"spo2","value":97.5,"ts":"2025-11-23T10:00:00Z"},{"value":1e2,"x":[1,{"y":2}],"metric":null}]"#,
            br#"[{"metric":"heart\u005frate","value":70,"device":"a\"b","ts":null,"seq":null}]"#,
            br#"[{"m\u0065tric":"spo2","value":97}]"#,
            br#"[{"metric":"spo2","metric":"spo2","value":97}]"#,
            br#"[{"metric":"spo2","value":null,"value":1}]"#,
            br#"[{"metric":"spo2","value":"97"}]"#,
            br#"[{"metric":"spo2","value":97,"seq":-1}]"#,
            br#"[{"metric":"spo2","value":97,"seq":1.5}]"#,
            br#"[{"metric":"spo2","value":97,"ts":true}]"#,
            br#"[{"metric":7,"value":97}]"#,
            br#"[["spo2",97]]"#,
            br#"[{"readings":[]}]"#,
            br#"[{"readings":null,"metric":"spo2","value":97}]"#,
            br#"[{"metric":"spo2","value":97}] x"#,
            br#"[{"metric":"spo2","value":97},]"#,
            br#"[]"#,
            br#" [ {} , {} ] "#,
            br#"[7]"#,
            b"[{\"metric\":\"h\xffr\",\"value\":1}]",
        ];
        for &payload in cases {
            let (fast, derived) = (fast(payload), derived(payload));
            let text = String::from_utf8_lossy(payload);
            match (&fast, &derived) {
                (Some(f), Some(d)) => assert_eq!(f, d, "{text}"),
                (Some(_), None) => {
                    panic!("the fast path took what the derived one refuses: {text}")
                }
                // Refusing more is allowed (the payload goes the slow way); these are the
                // forms it leaves to that path on purpose.
                (None, Some(_)) => assert!(
                    text.contains('[') && (text.contains("[[") || text.contains("readings")),
                    "{text}"
                ),
                (None, None) => {}
            }
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let payload = br#"[{"metric":"spo2","value":97,"device":"ox-1","unit":"%"}]"#;
        let got = fast(payload).expect("well-formed");
        for field in [&got[0].metric, &got[0].device, &got[0].unit] {
            assert!(matches!(field, Some(Cow::Borrowed(_))), "{field:?}");
        }
        let escaped = fast(br#"[{"metric":"sp\u006f2","value":97}]"#).expect("well-formed");
        assert_eq!(escaped[0].metric.as_deref(), Some("spo2"));
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_derived_decoder_on_generated_arrays(
            elements in proptest::collection::vec(
                proptest::collection::vec(
                    (
                        proptest::sample::select(vec!["metric", "value", "unit", "ts", "device", "seq", "other"]),
                        proptest::sample::select(vec!["\"spo2\"", "97", "-3", "1.5", "null", "\"2025-11-23T10:00:00Z\"", "\"a\\u0062\"", "[1]", "{}", "true"]),
                    ),
                    0..6,
                ),
                0..4,
            )
        ) {
            let body: Vec<String> = elements
                .iter()
                .map(|fields| {
                    let fields: Vec<String> =
                        fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                })
                .collect();
            let payload = format!("[{}]", body.join(","));
            let (fast, derived) = (fast(payload.as_bytes()), derived(payload.as_bytes()));
            proptest::prop_assert_eq!(fast, derived, "{}", payload);
        }
    }
}
