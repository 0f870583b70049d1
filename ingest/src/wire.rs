//! gRPC ingest: validation of `vigil.v1.Reading` messages with the same policy as MQTT.

use vigil_proto::raw_batch::ReadingRef;

use crate::reading::Reading;
use crate::reject::Rejection;
use crate::topic::validate_patient_id;
use crate::validate::{Candidate, Validator};

impl Validator {
    /// Validates a protobuf reading. Proto3 defaults stand for "absent": `unit` empty means
    /// canonical, `ts_ms` 0 means receive time, `device_id` empty and `seq` 0 mean none.
    /// (`v1::Reading` converts with `ReadingRef::from`.)
    pub fn from_proto<'a>(&self, r: ReadingRef<'a>, now_ms: i64) -> Result<Reading<'a>, Rejection> {
        validate_patient_id(r.patient_id)?;
        let candidate = Candidate {
            metric: r.metric,
            value: r.value,
            unit: Some(r.unit),
            ts_ms: (r.ts_ms != 0).then_some(Some(r.ts_ms)),
            device_id: Some(r.device_id),
            seq: (r.seq != 0).then_some(r.seq),
        };
        self.validate(r.patient_id, candidate, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::Metric;
    use crate::reject::RejectReason;
    use vigil_proto::v1;

    #[test]
    fn proto_defaults_mean_absent() {
        let v = Validator::default();
        let r = v1::Reading {
            patient_id: "p1".into(),
            metric: "2339-0".into(),
            value: 90.08,
            unit: "mg/dL".into(),
            ..Default::default()
        };
        let got = v.from_proto((&r).into(), 5_000).unwrap();
        assert_eq!(got.metric, Metric::Glucose);
        assert!((got.value - 5.0).abs() < 1e-9);
        assert_eq!(got.ts_ms, 5_000);
        assert_eq!((got.device_id, got.seq), (None, None));
    }

    #[test]
    fn proto_rejections() {
        let v = Validator::default();
        let mut r = v1::Reading {
            metric: "heart_rate".into(),
            value: 70.0,
            ..Default::default()
        };
        assert_eq!(
            v.from_proto((&r).into(), 5_000).unwrap_err().reason,
            RejectReason::BadTopic
        );
        r.patient_id = "p1".into();
        r.value = f64::NAN;
        assert_eq!(
            v.from_proto((&r).into(), 5_000).unwrap_err().reason,
            RejectReason::Implausible
        );
    }
}
