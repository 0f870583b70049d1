//! A simulated ward: patients with plausible baseline vitals and noise, some following a
//! deterioration scenario that crosses the built-in rules' thresholds and then recovers.

use vigil_ingest::Metric;

/// How a deteriorating patient deteriorates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Heart rate climbs past 120/min.
    Tachycardia,
    /// SpO2 sinks below 92 % while breathing quickens.
    Hypoxia,
    /// Blood pressure climbs past 180/120 mmHg.
    HypertensiveCrisis,
    /// Glucose falls below 3.9, then 3.0 mmol/L.
    Hypoglycaemia,
    /// Fever with rising heart and breathing rates.
    Sepsis,
}

const SCENARIOS: [Scenario; 5] = [
    Scenario::Hypoxia,
    Scenario::Tachycardia,
    Scenario::HypertensiveCrisis,
    Scenario::Hypoglycaemia,
    Scenario::Sepsis,
];

/// One deterioration-and-recovery cycle, seconds.
const CYCLE_S: f64 = 300.0;

/// A simulated patient.
pub struct SimPatient {
    pub id: String,
    scenario: Option<Scenario>,
    /// Where in the cycle this patient starts, seconds.
    phase_s: f64,
    base: [f64; Metric::COUNT],
    rng: fastrand::Rng,
    seq: u64,
}

impl SimPatient {
    /// Patient `index` of a ward; the first `deteriorating` follow scenarios.
    pub fn new(id: String, index: usize, deteriorating: bool, seed: u64) -> SimPatient {
        let mut rng =
            fastrand::Rng::with_seed(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut base = [0.0; Metric::COUNT];
        base[Metric::HeartRate.index()] = 62.0 + rng.f64() * 25.0;
        base[Metric::Spo2.index()] = 95.5 + rng.f64() * 3.0;
        base[Metric::RespRate.index()] = 12.0 + rng.f64() * 6.0;
        base[Metric::SystolicBp.index()] = 110.0 + rng.f64() * 30.0;
        base[Metric::DiastolicBp.index()] = 68.0 + rng.f64() * 16.0;
        base[Metric::Temperature.index()] = 36.3 + rng.f64() * 0.8;
        base[Metric::Glucose.index()] = 5.0 + rng.f64() * 2.5;
        base[Metric::Weight.index()] = 55.0 + rng.f64() * 45.0;
        SimPatient {
            id,
            scenario: deteriorating.then(|| SCENARIOS[index % SCENARIOS.len()]),
            // Stagger deteriorating patients so their alerts do not all fire at once; the
            // first ones start well into their deterioration.
            phase_s: 90.0 + (index as f64 * 37.0) % 120.0,
            base,
            rng,
            seq: 0,
        }
    }

    #[cfg(test)]
    pub fn scenario(&self) -> Option<Scenario> {
        self.scenario
    }

    /// Severity of the deterioration, 0 (well) to 1 (fully deteriorated), at time `t_s`.
    fn severity(&self, t_s: f64) -> f64 {
        if self.scenario.is_none() {
            return 0.0;
        }
        let p = (t_s + self.phase_s).rem_euclid(CYCLE_S);
        match p {
            p if p < 30.0 => p / 30.0,
            p if p < 200.0 => 1.0,
            p if p < 230.0 => 1.0 - (p - 200.0) / 30.0,
            _ => 0.0,
        }
    }

    /// The vitals at `t_s` seconds of simulated time (relative to the start).
    pub fn vitals(&mut self, t_s: f64) -> Vec<(Metric, f64)> {
        let s = self.severity(t_s);
        let mut v = self.base;
        use Metric::*;
        match self.scenario {
            Some(Scenario::Tachycardia) => v[HeartRate.index()] += s * 58.0,
            Some(Scenario::Hypoxia) => {
                v[Spo2.index()] -= s * 10.0;
                v[RespRate.index()] += s * 6.0;
                v[HeartRate.index()] += s * 15.0;
            }
            Some(Scenario::HypertensiveCrisis) => {
                v[SystolicBp.index()] += s * 70.0;
                v[DiastolicBp.index()] += s * 42.0;
            }
            Some(Scenario::Hypoglycaemia) => v[Glucose.index()] -= s * (v[Glucose.index()] - 2.6),
            Some(Scenario::Sepsis) => {
                v[Temperature.index()] += s * 2.4;
                v[HeartRate.index()] += s * 30.0;
                v[RespRate.index()] += s * 12.0;
            }
            None => {}
        }
        let metrics = [
            HeartRate,
            Spo2,
            RespRate,
            SystolicBp,
            DiastolicBp,
            Temperature,
            Glucose,
        ];
        metrics
            .iter()
            .map(|&m| {
                let noise = (self.rng.f64() + self.rng.f64() - 1.0) * noise_amplitude(m);
                let (lo, hi) = m.plausible_range();
                (m, round(m, (v[m.index()] + noise).clamp(lo, hi)))
            })
            .collect()
    }

    /// A JSON payload with one reading of each vital taken at `ts_ms`, as a hub device
    /// would publish it on `vitals/{id}`.
    pub fn payload(&mut self, t_s: f64, ts_ms: i64) -> Vec<u8> {
        let readings: Vec<serde_json::Value> = self
            .vitals(t_s)
            .into_iter()
            .map(|(m, value)| {
                self.seq += 1;
                serde_json::json!({
                    "metric": m.name(),
                    "value": value,
                    "ts": ts_ms,
                    "device": format!("{}-hub", self.id),
                    "seq": self.seq,
                })
            })
            .collect();
        serde_json::to_vec(&readings).expect("JSON values always serialize")
    }
}

fn noise_amplitude(m: Metric) -> f64 {
    match m {
        Metric::HeartRate => 3.0,
        Metric::Spo2 => 0.8,
        Metric::RespRate => 1.0,
        Metric::SystolicBp | Metric::DiastolicBp => 4.0,
        Metric::Temperature => 0.1,
        Metric::Glucose => 0.2,
        _ => 0.0,
    }
}

fn round(m: Metric, v: f64) -> f64 {
    match m {
        Metric::Temperature | Metric::Glucose | Metric::Weight => (v * 10.0).round() / 10.0,
        _ => v.round(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_patients_stay_plausible_and_normal() {
        let mut p = SimPatient::new("p".into(), 3, false, 1);
        for t in 0..600 {
            for (m, v) in p.vitals(t as f64) {
                assert!(m.is_plausible(v), "{m} {v}");
            }
        }
        let hr = p.vitals(0.0)[0].1;
        assert!((50.0..110.0).contains(&hr));
    }

    #[test]
    fn deteriorating_patients_cross_thresholds_and_recover() {
        let mut p = SimPatient::new("p".into(), 0, true, 1);
        assert_eq!(p.scenario(), Some(Scenario::Hypoxia));
        let spo2 = |p: &mut SimPatient, t: f64| {
            p.vitals(t)
                .iter()
                .find(|(m, _)| *m == Metric::Spo2)
                .unwrap()
                .1
        };
        let worst = (0..300)
            .map(|t| spo2(&mut p, t as f64))
            .fold(f64::MAX, f64::min);
        let best = (0..300)
            .map(|t| spo2(&mut p, t as f64))
            .fold(f64::MIN, f64::max);
        assert!(worst < 91.0 && best > 94.0, "{worst} {best}");
    }

    #[test]
    fn payload_is_an_array_of_readings() {
        let mut p = SimPatient::new("ward-01".into(), 0, false, 1);
        let v: serde_json::Value = serde_json::from_slice(&p.payload(0.0, 1000)).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 7);
        assert_eq!(v[0]["device"], "ward-01-hub");
        assert_eq!(v[6]["seq"], 7);
    }
}
