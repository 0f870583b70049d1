//! `vigil.v1.ReadingBatch` as the server decodes it: the strings of all its readings in one
//! buffer, so a batch of 1 000 readings costs a few allocations instead of up to four per
//! reading (prost gives every `string` field its own `String`). Same wire format.

use prost::bytes::{Buf, BufMut};
use prost::encoding::{
    check_wire_type, decode_key, double, encode_key, encode_varint, encoded_len_varint, int64,
    merge_loop, skip_field, string, uint64, DecodeContext, WireType,
};
use prost::DecodeError;

/// A decoded `ReadingBatch`: its readings, borrowed from one text buffer.
#[derive(Debug, Clone, Default)]
pub struct RawBatch {
    /// Every string field of every reading, back to back.
    text: String,
    readings: Vec<Fields>,
    /// Where prost's string decoder writes (and checks) a field before it is appended to
    /// `text`; kept so that its allocation is reused.
    scratch: String,
}

impl PartialEq for RawBatch {
    fn eq(&self, other: &RawBatch) -> bool {
        self.iter().eq(other.iter())
    }
}

/// One `Reading`'s fields; strings as byte ranges of [`RawBatch::text`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Fields {
    patient_id: Span,
    metric: Span,
    value: f64,
    unit: Span,
    ts_ms: i64,
    device_id: Span,
    seq: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Span {
    start: usize,
    end: usize,
}

/// One `vigil.v1.Reading` of a [`RawBatch`], with the same fields and defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadingRef<'a> {
    pub patient_id: &'a str,
    pub metric: &'a str,
    pub value: f64,
    pub unit: &'a str,
    pub ts_ms: i64,
    pub device_id: &'a str,
    pub seq: u64,
}

impl<'a> From<&'a crate::v1::Reading> for ReadingRef<'a> {
    fn from(r: &'a crate::v1::Reading) -> ReadingRef<'a> {
        ReadingRef {
            patient_id: &r.patient_id,
            metric: &r.metric,
            value: r.value,
            unit: &r.unit,
            ts_ms: r.ts_ms,
            device_id: &r.device_id,
            seq: r.seq,
        }
    }
}

impl RawBatch {
    pub fn len(&self) -> usize {
        self.readings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }

    /// The reading at `index`.
    pub fn get(&self, index: usize) -> Option<ReadingRef<'_>> {
        self.readings.get(index).map(|f| self.reading(f))
    }

    /// The readings in batch order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = ReadingRef<'_>> + Clone + '_ {
        self.readings.iter().map(|f| self.reading(f))
    }

    fn reading(&self, f: &Fields) -> ReadingRef<'_> {
        let s = |span: Span| &self.text[span.start..span.end];
        ReadingRef {
            patient_id: s(f.patient_id),
            metric: s(f.metric),
            value: f.value,
            unit: s(f.unit),
            ts_ms: f.ts_ms,
            device_id: s(f.device_id),
            seq: f.seq,
        }
    }

    /// Decodes one length-delimited `Reading` message, with prost's own field decoders, so
    /// that what is accepted or refused (and why) is exactly what `v1::ReadingBatch` does.
    fn read_reading(&mut self, buf: &mut impl Buf, ctx: DecodeContext) -> Result<(), DecodeError> {
        let mut f = Fields::default();
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = merge_loop(&mut f, buf, ctx, |f, buf, ctx| {
            let (tag, wire_type) = decode_key(buf)?;
            let field = match tag {
                1 => &mut f.patient_id,
                2 => &mut f.metric,
                4 => &mut f.unit,
                6 => &mut f.device_id,
                3 => return double::merge(wire_type, &mut f.value, buf, ctx),
                5 => return int64::merge(wire_type, &mut f.ts_ms, buf, ctx),
                7 => return uint64::merge(wire_type, &mut f.seq, buf, ctx),
                _ => return skip_field(wire_type, tag, buf, ctx),
            };
            string::merge(wire_type, &mut scratch, buf, ctx)?;
            let start = self.text.len();
            self.text.push_str(&scratch);
            *field = Span {
                start,
                end: self.text.len(),
            };
            Ok(())
        });
        self.scratch = scratch;
        result?;
        self.readings.push(f);
        Ok(())
    }
}

/// The encoded length of one `Reading` message's fields (proto3: defaults are not sent).
fn reading_len(r: &ReadingRef<'_>) -> usize {
    let string = |s: &str| {
        if s.is_empty() {
            0
        } else {
            1 + encoded_len_varint(s.len() as u64) + s.len()
        }
    };
    let varint = |v: u64| if v == 0 { 0 } else { 1 + encoded_len_varint(v) };
    string(r.patient_id)
        + string(r.metric)
        + if r.value == 0.0 { 0 } else { 9 }
        + string(r.unit)
        + varint(r.ts_ms as u64)
        + string(r.device_id)
        + varint(r.seq)
}

impl prost::Message for RawBatch {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        fn string(tag: u32, s: &str, buf: &mut impl BufMut) {
            if !s.is_empty() {
                encode_key(tag, WireType::LengthDelimited, buf);
                encode_varint(s.len() as u64, buf);
                buf.put_slice(s.as_bytes());
            }
        }
        fn varint(tag: u32, v: u64, buf: &mut impl BufMut) {
            if v != 0 {
                encode_key(tag, WireType::Varint, buf);
                encode_varint(v, buf);
            }
        }
        for r in self.iter() {
            encode_key(1, WireType::LengthDelimited, buf);
            encode_varint(reading_len(&r) as u64, buf);
            string(1, r.patient_id, buf);
            string(2, r.metric, buf);
            if r.value != 0.0 {
                encode_key(3, WireType::SixtyFourBit, buf);
                buf.put_f64_le(r.value);
            }
            string(4, r.unit, buf);
            varint(5, r.ts_ms as u64, buf);
            string(6, r.device_id, buf);
            varint(7, r.seq, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag == 1 {
            check_wire_type(WireType::LengthDelimited, wire_type)?;
            self.read_reading(buf, ctx)
        } else {
            skip_field(wire_type, tag, buf, ctx)
        }
    }

    fn encoded_len(&self) -> usize {
        self.iter()
            .map(|r| {
                let len = reading_len(&r);
                1 + encoded_len_varint(len as u64) + len
            })
            .sum()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.readings.clear();
        self.scratch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;
    use proptest::prelude::*;
    use prost::Message;

    fn reading() -> impl Strategy<Value = v1::Reading> {
        (
            ".{0,12}",
            prop_oneof![
                Just(String::new()),
                Just("heart_rate".to_string()),
                ".{0,6}"
            ],
            prop_oneof![Just(0.0), any::<f64>()],
            ".{0,4}",
            prop_oneof![Just(0i64), any::<i64>()],
            ".{0,8}",
            prop_oneof![Just(0u64), any::<u64>()],
        )
            .prop_map(|(patient_id, metric, value, unit, ts_ms, device_id, seq)| {
                v1::Reading {
                    patient_id,
                    metric,
                    value,
                    unit,
                    ts_ms,
                    device_id,
                    seq,
                }
            })
    }

    fn same(raw: &RawBatch, batch: &v1::ReadingBatch) -> bool {
        raw.len() == batch.readings.len()
            && raw.iter().zip(&batch.readings).all(|(a, b)| {
                a.patient_id == b.patient_id
                    && a.metric == b.metric
                    && a.value.to_bits() == b.value.to_bits()
                    && a.unit == b.unit
                    && a.ts_ms == b.ts_ms
                    && a.device_id == b.device_id
                    && a.seq == b.seq
            })
    }

    proptest! {
        /// Decodes what prost encodes, and encodes what prost decodes, byte for byte.
        #[test]
        fn agrees_with_prost(readings in proptest::collection::vec(reading(), 0..20)) {
            let batch = v1::ReadingBatch { readings };
            let bytes = batch.encode_to_vec();
            let raw = RawBatch::decode(&bytes[..]).unwrap();
            // Compared with prost's decoding, not the input: proto3 does not send -0.0.
            let batch = v1::ReadingBatch::decode(&bytes[..]).unwrap();
            prop_assert!(same(&raw, &batch), "{raw:?} vs {batch:?}");
            prop_assert_eq!(raw.encoded_len(), bytes.len());
            prop_assert_eq!(raw.encode_to_vec(), bytes);
        }

        /// Any bytes: both decoders accept or both refuse, and agree when they accept.
        #[test]
        fn arbitrary_bytes_decode_as_prost_does(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let ours = RawBatch::decode(&bytes[..]);
            let prost = v1::ReadingBatch::decode(&bytes[..]);
            prop_assert_eq!(ours.is_ok(), prost.is_ok(), "{:?} vs {:?}", ours, prost);
            if let (Ok(ours), Ok(prost)) = (ours, prost) {
                prop_assert!(same(&ours, &prost));
            }
        }
    }

    #[test]
    fn unknown_fields_are_skipped_and_bad_strings_refused() {
        // Reading { patient_id: "p", 9: varint 5 } and a top-level field 2 (varint 1).
        let bytes = [0x0a, 0x05, 0x0a, 0x01, b'p', 0x48, 0x05, 0x10, 0x01];
        let raw = RawBatch::decode(&bytes[..]).unwrap();
        assert_eq!(raw.iter().next().unwrap().patient_id, "p");
        // patient_id with an invalid UTF-8 byte.
        let bytes = [0x0a, 0x03, 0x0a, 0x01, 0xff];
        let err = RawBatch::decode(&bytes[..]).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
        assert!(v1::ReadingBatch::decode(&bytes[..]).is_err());
    }
}
