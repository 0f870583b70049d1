//! What the load generator sends: readings of stable patients (every value inside the
//! built-in rules' normal bands, so the load itself raises no alerts and the journal's
//! fsyncs are the probes' only), as MQTT JSON payloads or gRPC messages.

use std::io::Write;

use vigil_proto::v1;

/// The nine metrics a home-monitoring patient sends, with a normal range each.
pub const METRICS: [(&str, f64, f64); 9] = [
    ("heart_rate", 62.0, 88.0),
    ("spo2", 96.0, 99.0),
    ("resp_rate", 12.0, 19.0),
    ("systolic_bp", 115.0, 135.0),
    ("diastolic_bp", 70.0, 84.0),
    ("temperature", 36.4, 37.4),
    ("weight", 78.0, 79.0),
    ("glucose", 5.0, 7.0),
    ("consciousness", 0.0, 0.0),
];

/// Pre-formatted values per metric (formatting floats per message would cost the
/// generator more than the server spends decoding them).
pub struct ValueTable {
    values: Vec<[String; 16]>,
}

impl Default for ValueTable {
    fn default() -> ValueTable {
        let values = METRICS
            .iter()
            .map(|&(_, lo, hi)| {
                std::array::from_fn(|i| {
                    let v = lo + (hi - lo) * i as f64 / 15.0;
                    format!("{:.1}", v)
                })
            })
            .collect();
        ValueTable { values }
    }
}

impl ValueTable {
    /// A value of metric `m` (index into `METRICS`), varied by `n`.
    pub fn text(&self, m: usize, n: u64) -> &str {
        &self.values[m][(n.wrapping_mul(0x9e37_79b9) >> 7) as usize % 16]
    }

    pub fn value(&self, m: usize, n: u64) -> f64 {
        self.text(m, n).parse().expect("formatted by us")
    }
}

/// Appends reading number `n` of a patient as one JSON object.
pub fn put_reading_json(out: &mut Vec<u8>, table: &ValueTable, n: u64, ts_ms: i64) {
    let m = (n % METRICS.len() as u64) as usize;
    let _ = write!(
        out,
        r#"{{"metric":"{}","value":{},"ts":{}}}"#,
        METRICS[m].0,
        table.text(m, n),
        ts_ms
    );
}

/// A payload of `count` readings of one patient starting at reading `n`: one object
/// when `count` is 1, else an array.
pub fn put_payload(out: &mut Vec<u8>, table: &ValueTable, n: u64, count: usize, ts_ms: i64) {
    out.clear();
    if count == 1 {
        put_reading_json(out, table, n, ts_ms);
        return;
    }
    out.push(b'[');
    for i in 0..count as u64 {
        if i > 0 {
            out.push(b',');
        }
        put_reading_json(out, table, n + i, ts_ms);
    }
    out.push(b']');
}

/// A gRPC reading.
pub fn grpc_reading(table: &ValueTable, patient: &str, n: u64, ts_ms: i64) -> v1::Reading {
    let m = (n % METRICS.len() as u64) as usize;
    v1::Reading {
        patient_id: patient.to_string(),
        metric: METRICS[m].0.to_string(),
        value: table.value(m, n),
        ts_ms,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_valid_json_in_range() {
        let t = ValueTable::default();
        let mut out = Vec::new();
        for n in 0..40 {
            put_payload(&mut out, &t, n, 1, 1_700_000_000_000);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let m = METRICS.iter().find(|m| m.0 == v["metric"]).unwrap();
            let x = v["value"].as_f64().unwrap();
            assert!(x >= m.1 - 0.05 && x <= m.2 + 0.05, "{v}");
        }
        put_payload(&mut out, &t, 3, 7, 1);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 7);
    }
}
