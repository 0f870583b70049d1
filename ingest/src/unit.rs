//! Unit normalisation: every value is converted once, on the way in, to its metric's
//! canonical unit, so windows and rules never see anything else.

use crate::metric::Metric;

/// mg/dL per mmol/L of glucose (molar mass 180.16 g/mol).
pub const GLUCOSE_MG_DL_PER_MMOL_L: f64 = 18.016;
/// Kilograms per avoirdupois pound (exact, by definition).
pub const KG_PER_LB: f64 = 0.453_592_37;

/// Converts `value` expressed in `unit` to `metric`'s canonical unit. `None` (or an empty
/// unit) means the canonical unit already. Returns `None` when the unit is not accepted for
/// that metric.
pub fn to_canonical(metric: Metric, value: f64, unit: Option<&str>) -> Option<f64> {
    let unit = match unit {
        None | Some("") => return Some(value),
        Some(u) => u,
    };
    if unit == metric.canonical_unit() {
        return Some(value);
    }
    match (metric, unit) {
        (Metric::HeartRate, "bpm" | "{beats}/min") => Some(value),
        (Metric::RespRate, "{breaths}/min" | "br/min") => Some(value),
        (Metric::SystolicBp | Metric::DiastolicBp, "mmHg") => Some(value),
        (Metric::Temperature, "degC" | "°C") => Some(value),
        (Metric::Temperature, "[degF]" | "degF" | "°F") => Some((value - 32.0) * 5.0 / 9.0),
        (Metric::Weight, "[lb_av]" | "lb") => Some(value * KG_PER_LB),
        (Metric::Weight, "g") => Some(value / 1000.0),
        (Metric::Glucose, "mg/dL") => Some(value / GLUCOSE_MG_DL_PER_MMOL_L),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn canonical_and_absent_units_pass_through() {
        assert_eq!(to_canonical(Metric::HeartRate, 72.0, None), Some(72.0));
        assert_eq!(to_canonical(Metric::HeartRate, 72.0, Some("")), Some(72.0));
        assert_eq!(
            to_canonical(Metric::HeartRate, 72.0, Some("/min")),
            Some(72.0)
        );
        assert_eq!(
            to_canonical(Metric::SystolicBp, 120.0, Some("mmHg")),
            Some(120.0)
        );
        assert_eq!(to_canonical(Metric::Spo2, 97.0, Some("%")), Some(97.0));
    }

    #[test]
    fn conversions_follow_the_contract() {
        assert!(close(
            to_canonical(Metric::Temperature, 98.6, Some("[degF]")).unwrap(),
            37.0
        ));
        assert!(close(
            to_canonical(Metric::Temperature, 212.0, Some("[degF]")).unwrap(),
            100.0
        ));
        assert!(close(
            to_canonical(Metric::Weight, 100.0, Some("[lb_av]")).unwrap(),
            45.359237
        ));
        assert!(close(
            to_canonical(Metric::Glucose, 180.16, Some("mg/dL")).unwrap(),
            10.0
        ));
        assert!(close(
            to_canonical(Metric::Glucose, 18.016, Some("mg/dL")).unwrap(),
            1.0
        ));
    }

    #[test]
    fn unknown_or_mismatched_units_are_refused() {
        assert_eq!(to_canonical(Metric::HeartRate, 72.0, Some("mmHg")), None);
        assert_eq!(to_canonical(Metric::Glucose, 5.0, Some("mg")), None);
        assert_eq!(to_canonical(Metric::Temperature, 37.0, Some("K")), None);
    }
}
