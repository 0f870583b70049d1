//! The vital-sign metrics Vigil understands: canonical names, LOINC aliases, canonical units
//! and the physiologically plausible range a reading must fall in to be accepted.

use std::fmt;

/// A vital sign. The discriminant is a dense index (`0..Metric::COUNT`) so per-patient state
/// can keep one slot per metric in a fixed array instead of a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    HeartRate = 0,
    Spo2 = 1,
    RespRate = 2,
    SystolicBp = 3,
    DiastolicBp = 4,
    Temperature = 5,
    Weight = 6,
    Glucose = 7,
    Consciousness = 8,
    /// Supplemental oxygen: 1 = on oxygen, 0 = breathing air (NEWS2 "air or oxygen").
    OnOxygen = 9,
}

/// Written as its canonical name (`heart_rate`); read from a name or a LOINC code.
impl serde::Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Metric, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Metric::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown metric '{name}'")))
    }
}

impl Metric {
    /// Number of metrics; the length of per-metric arrays.
    pub const COUNT: usize = 10;

    /// Every metric, in index order.
    pub const ALL: [Metric; Metric::COUNT] = [
        Metric::HeartRate,
        Metric::Spo2,
        Metric::RespRate,
        Metric::SystolicBp,
        Metric::DiastolicBp,
        Metric::Temperature,
        Metric::Weight,
        Metric::Glucose,
        Metric::Consciousness,
        Metric::OnOxygen,
    ];

    /// Dense index of this metric, `0..COUNT`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Resolves a canonical name (`heart_rate`) or a LOINC code (`8867-4`).
    pub fn parse(name: &str) -> Option<Metric> {
        Some(match name {
            "heart_rate" | "8867-4" => Metric::HeartRate,
            "spo2" | "59408-5" | "2708-6" => Metric::Spo2,
            "resp_rate" | "9279-1" => Metric::RespRate,
            "systolic_bp" | "8480-6" => Metric::SystolicBp,
            "diastolic_bp" | "8462-4" => Metric::DiastolicBp,
            "temperature" | "8310-5" => Metric::Temperature,
            "weight" | "29463-7" => Metric::Weight,
            "glucose" | "2339-0" | "15074-8" => Metric::Glucose,
            "consciousness" => Metric::Consciousness,
            "on_oxygen" => Metric::OnOxygen,
            _ => return None,
        })
    }

    /// The canonical name used in alerts, rules and the API.
    pub fn name(self) -> &'static str {
        match self {
            Metric::HeartRate => "heart_rate",
            Metric::Spo2 => "spo2",
            Metric::RespRate => "resp_rate",
            Metric::SystolicBp => "systolic_bp",
            Metric::DiastolicBp => "diastolic_bp",
            Metric::Temperature => "temperature",
            Metric::Weight => "weight",
            Metric::Glucose => "glucose",
            Metric::Consciousness => "consciousness",
            Metric::OnOxygen => "on_oxygen",
        }
    }

    /// A label for people ("Heart rate"), used in generated alert messages.
    pub fn label(self) -> &'static str {
        match self {
            Metric::HeartRate => "Heart rate",
            Metric::Spo2 => "SpO2",
            Metric::RespRate => "Respiratory rate",
            Metric::SystolicBp => "Systolic BP",
            Metric::DiastolicBp => "Diastolic BP",
            Metric::Temperature => "Temperature",
            Metric::Weight => "Weight",
            Metric::Glucose => "Glucose",
            Metric::Consciousness => "Consciousness (ACVPU)",
            Metric::OnOxygen => "Supplemental oxygen",
        }
    }

    /// The UCUM unit every stored value of this metric is in.
    pub fn canonical_unit(self) -> &'static str {
        match self {
            Metric::HeartRate | Metric::RespRate => "/min",
            Metric::Spo2 => "%",
            Metric::SystolicBp | Metric::DiastolicBp => "mm[Hg]",
            Metric::Temperature => "Cel",
            Metric::Weight => "kg",
            Metric::Glucose => "mmol/L",
            Metric::Consciousness => "{ACVPU}",
            Metric::OnOxygen => "{bool}",
        }
    }

    /// Inclusive range of physiologically plausible values in the canonical unit. Readings
    /// outside it are sensor faults or typos, and are rejected as `implausible`.
    pub fn plausible_range(self) -> (f64, f64) {
        match self {
            Metric::HeartRate => (20.0, 300.0),
            Metric::Spo2 => (40.0, 100.0),
            Metric::RespRate => (2.0, 80.0),
            Metric::SystolicBp => (40.0, 300.0),
            Metric::DiastolicBp => (20.0, 200.0),
            Metric::Temperature => (25.0, 45.0),
            Metric::Weight => (1.0, 500.0),
            Metric::Glucose => (0.5, 50.0),
            Metric::Consciousness | Metric::OnOxygen => (0.0, 1.0),
        }
    }

    /// Whether `value` (canonical unit) is plausible. Consciousness and oxygen must be
    /// exactly 0 or 1.
    pub fn is_plausible(self, value: f64) -> bool {
        let (lo, hi) = self.plausible_range();
        let in_range = value.is_finite() && value >= lo && value <= hi;
        match self {
            Metric::Consciousness | Metric::OnOxygen => in_range && value.fract() == 0.0,
            _ => in_range,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_travel_as_their_names() {
        for m in Metric::ALL {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
            assert_eq!(serde_json::from_str::<Metric>(&json).unwrap(), m);
        }
        assert!(serde_json::from_str::<Metric>("\"pulse\"").is_err());
    }

    #[test]
    fn names_and_loinc_codes_resolve() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.name()), Some(m));
        }
        assert_eq!(Metric::parse("8867-4"), Some(Metric::HeartRate));
        assert_eq!(Metric::parse("59408-5"), Some(Metric::Spo2));
        assert_eq!(Metric::parse("2708-6"), Some(Metric::Spo2));
        assert_eq!(Metric::parse("9279-1"), Some(Metric::RespRate));
        assert_eq!(Metric::parse("8480-6"), Some(Metric::SystolicBp));
        assert_eq!(Metric::parse("8462-4"), Some(Metric::DiastolicBp));
        assert_eq!(Metric::parse("8310-5"), Some(Metric::Temperature));
        assert_eq!(Metric::parse("29463-7"), Some(Metric::Weight));
        assert_eq!(Metric::parse("2339-0"), Some(Metric::Glucose));
        assert_eq!(Metric::parse("15074-8"), Some(Metric::Glucose));
        assert_eq!(Metric::parse("Heart_Rate"), None);
        assert_eq!(Metric::parse(""), None);
    }

    #[test]
    fn index_is_dense() {
        for (i, m) in Metric::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
        }
    }

    #[test]
    fn plausibility_bounds_are_inclusive() {
        assert!(Metric::HeartRate.is_plausible(20.0));
        assert!(Metric::HeartRate.is_plausible(300.0));
        assert!(!Metric::HeartRate.is_plausible(19.9));
        assert!(!Metric::HeartRate.is_plausible(f64::NAN));
        assert!(!Metric::HeartRate.is_plausible(f64::INFINITY));
        assert!(Metric::Consciousness.is_plausible(1.0));
        assert!(!Metric::Consciousness.is_plausible(0.5));
    }
}
