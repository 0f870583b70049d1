//! FHIR R4 vital-signs Observations: the elements Vigil needs, read with serde (every other
//! element is ignored, as FHIR asks of a receiver), turned into reading candidates for the
//! [`Validator`](crate::Validator). A problem names the element at fault (a FHIRPath
//! `expression`, e.g. `Observation.valueQuantity.code`) and says what to do.

use serde::Deserialize;

use crate::metric::Metric;
use crate::reject::RejectReason;
use crate::timestamp::parse_rfc3339_ms;

const LOINC: &str = "http://loinc.org";
/// The vital-signs blood-pressure panel: its components are the two readings.
const BP_PANEL: &str = "85354-9";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    pub resource_type: Option<String>,
    pub status: Option<String>,
    pub code: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub effective_date_time: Option<String>,
    pub effective_instant: Option<String>,
    pub effective_period: Option<Period>,
    pub value_quantity: Option<Quantity>,
    pub data_absent_reason: Option<serde_json::Value>,
    #[serde(default)]
    pub component: Vec<Component>,
    pub device: Option<Reference>,
    #[serde(default)]
    pub identifier: Vec<Identifier>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CodeableConcept {
    #[serde(default)]
    pub coding: Vec<Coding>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Coding {
    pub system: Option<String>,
    pub code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Reference {
    pub reference: Option<String>,
    pub identifier: Option<Identifier>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Identifier {
    pub system: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Period {
    pub start: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Quantity {
    pub value: Option<f64>,
    pub unit: Option<String>,
    pub code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    pub code: Option<CodeableConcept>,
    pub value_quantity: Option<Quantity>,
    pub data_absent_reason: Option<serde_json::Value>,
}

/// Why an Observation cannot be used: the reason counted, the FHIR issue type
/// (`invalid`, `required`, `value`, `not-supported`, `business-rule`), the element at fault
/// and a sentence the sender can act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub reason: RejectReason,
    pub code: &'static str,
    pub expression: String,
    pub diagnostics: String,
}

fn problem(
    reason: RejectReason,
    code: &'static str,
    expression: impl Into<String>,
    diagnostics: impl Into<String>,
) -> Problem {
    Problem {
        reason,
        code,
        expression: expression.into(),
        diagnostics: diagnostics.into(),
    }
}

/// One reading an Observation carries, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct FhirReading {
    pub patient_id: String,
    pub metric: Metric,
    pub value: f64,
    /// The UCUM `code`, else the `unit` text.
    pub unit: Option<String>,
    /// Where the value came from (for a problem found later, e.g. an implausible value).
    pub value_expression: String,
    pub ts_ms: i64,
    pub device_id: Option<String>,
    /// From the Observation's identifier: a re-posted Observation is a duplicate.
    pub seq: Option<u64>,
}

/// How patients are named: `Patient/{id}` references, and identifiers of this system.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// `subject.identifier.system` whose `value` is a Vigil patient id (`None`: only
    /// references are read).
    pub patient_identifier_system: Option<String>,
}

/// One entry of a request: an Observation, or why it is not one.
pub type Entry = Result<Observation, Problem>;

/// A problem with the request's structure (answered 400, not 422).
pub fn structure(expression: &str, diagnostics: impl Into<String>) -> Problem {
    problem(
        RejectReason::Malformed,
        "structure",
        expression,
        diagnostics,
    )
}

/// The body of `POST /fhir/Observation`: one Observation, decoded in one pass.
pub fn parse_observation(body: &[u8]) -> Result<Observation, Problem> {
    let text =
        std::str::from_utf8(body).map_err(|_| structure("", "the body is not UTF-8 JSON"))?;
    observation(text)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle<'a> {
    resource_type: Option<&'a str>,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow, default)]
    entry: Option<Vec<BundleEntry<'a>>>,
}

#[derive(Deserialize)]
struct BundleEntry<'a> {
    #[serde(borrow)]
    resource: Option<&'a serde_json::value::RawValue>,
}

/// The body of `POST /fhir`: a `batch` or `transaction` Bundle; whether it is a
/// transaction, and its entries (each an Observation, or why not: one bad entry does not
/// spoil the others).
pub fn parse_bundle(body: &[u8]) -> Result<(bool, Vec<Entry>), Problem> {
    let text =
        std::str::from_utf8(body).map_err(|_| structure("", "the body is not UTF-8 JSON"))?;
    let bundle: Bundle<'_> = serde_json::from_str(text).map_err(|e| {
        structure(
            "",
            format!("the body is not a JSON Bundle: {}", clip(&e.to_string())),
        )
    })?;
    if bundle.resource_type != Some("Bundle") {
        return Err(structure(
            "resourceType",
            "POST /fhir takes a Bundle of type batch or transaction (one Observation: POST \
             /fhir/Observation)",
        ));
    }
    let transaction = match bundle.kind {
        Some("transaction") => true,
        Some("batch") => false,
        other => {
            return Err(problem(
                RejectReason::Malformed,
                "not-supported",
                "Bundle.type",
                format!(
                    "Bundle.type {} is not processed here: send batch or transaction",
                    clip(other.unwrap_or("(none)"))
                ),
            ))
        }
    };
    let entries = bundle
        .entry
        .unwrap_or_default()
        .into_iter()
        .map(|e| match e.resource {
            Some(r) => observation(r.get()),
            None => Err(problem(
                RejectReason::Malformed,
                "required",
                "resource",
                "the entry has no resource",
            )),
        })
        .collect();
    Ok((transaction, entries))
}

/// An Observation from the JSON of a resource (`Err`: it is not one).
fn observation(json: &str) -> Entry {
    let o: Observation = serde_json::from_str(json).map_err(|e| {
        structure(
            "Observation",
            format!("not a valid Observation: {}", clip(&e.to_string())),
        )
    })?;
    match o.resource_type.as_deref() {
        Some("Observation") => Ok(o),
        Some(other) => Err(structure(
            "resourceType",
            format!("expected an Observation, got {}", clip(other)),
        )),
        None => Err(structure(
            "resourceType",
            "not a FHIR resource (no resourceType)",
        )),
    }
}

/// The metric a LOINC code names for FHIR: the metric table's codes and capillary glucose.
pub fn loinc_metric(code: &str) -> Option<Metric> {
    match code {
        // Glucose in capillary blood by glucometer, mmol/L and mg/dL.
        "14743-9" | "41653-7" => Some(Metric::Glucose),
        _ if code.contains('-') => Metric::parse(code),
        _ => None,
    }
}

impl Observation {
    /// The readings of the Observation (two for a blood-pressure panel).
    pub fn readings(&self, mapping: &Mapping) -> Result<Vec<FhirReading>, Problem> {
        if let Some(kind) = self.resource_type.as_deref() {
            if kind != "Observation" {
                return Err(problem(
                    RejectReason::Malformed,
                    "invalid",
                    "resourceType",
                    format!("expected an Observation, got a {}", clip(kind)),
                ));
            }
        }
        self.check_status()?;
        let patient_id = self.patient(mapping)?;
        let ts_ms = self.effective()?;
        let device_id = self
            .device
            .as_ref()
            .and_then(|d| d.reference.as_deref())
            .map(|r| r.rsplit('/').next().unwrap_or(r).to_string())
            .filter(|d| !d.is_empty());
        let seq = self.identifier_seq();
        let codes = codes(self.code.as_ref());
        if codes.contains(&BP_PANEL) {
            return self.panel(&patient_id, ts_ms, device_id, seq);
        }
        let metric = metric_of(&codes, "Observation.code")?;
        let (value, unit) = quantity(
            self.value_quantity.as_ref(),
            self.data_absent_reason.is_some(),
            "Observation",
        )?;
        Ok(vec![FhirReading {
            patient_id,
            metric,
            value,
            unit,
            value_expression: "Observation.valueQuantity".into(),
            ts_ms,
            device_id,
            seq,
        }])
    }

    fn check_status(&self) -> Result<(), Problem> {
        match self.status.as_deref() {
            Some("final" | "amended" | "corrected" | "preliminary") => Ok(()),
            Some(s @ ("entered-in-error" | "cancelled")) => Err(problem(
                RejectReason::Malformed,
                "business-rule",
                "Observation.status",
                format!("an Observation with status {s} is not a measurement to judge"),
            )),
            Some(s) => Err(problem(
                RejectReason::Malformed,
                "not-supported",
                "Observation.status",
                format!(
                    "status {} is not judged: send final, amended, corrected or preliminary",
                    clip(s)
                ),
            )),
            None => Err(problem(
                RejectReason::Malformed,
                "required",
                "Observation.status",
                "status is required (final, amended, corrected or preliminary)",
            )),
        }
    }

    fn patient(&self, mapping: &Mapping) -> Result<String, Problem> {
        let missing = || {
            problem(
                RejectReason::Malformed,
                "required",
                "Observation.subject",
                "subject must reference the patient (Patient/{id})",
            )
        };
        let subject = self.subject.as_ref().ok_or_else(missing)?;
        if let Some(reference) = subject.reference.as_deref() {
            let mut parts = reference.trim_end_matches('/').rsplit('/');
            let (id, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if kind != "Patient" || id.is_empty() {
                return Err(problem(
                    RejectReason::Malformed,
                    "invalid",
                    "Observation.subject.reference",
                    format!(
                        "'{}' is not a Patient reference (Patient/{{id}})",
                        clip(reference)
                    ),
                ));
            }
            return Ok(id.to_string());
        }
        match (&subject.identifier, &mapping.patient_identifier_system) {
            (Some(Identifier { system: Some(s), value: Some(v) }), Some(ours)) if s == ours => {
                Ok(v.clone())
            }
            (Some(_), Some(ours)) => Err(problem(
                RejectReason::Malformed,
                "not-supported",
                "Observation.subject.identifier",
                format!("the patient identifier must be of system {ours}"),
            )),
            (Some(_), None) => Err(problem(
                RejectReason::Malformed,
                "not-supported",
                "Observation.subject.identifier",
                "this server reads Patient/{id} references only (no patient identifier system is configured)",
            )),
            (None, _) => Err(missing()),
        }
    }

    /// `effectiveDateTime`, `effectiveInstant` or `effectivePeriod.start`, with a time
    /// zone.
    fn effective(&self) -> Result<i64, Problem> {
        let (expression, text) =
            match (
                &self.effective_date_time,
                &self.effective_instant,
                self.effective_period
                    .as_ref()
                    .and_then(|p| p.start.as_ref()),
            ) {
                (Some(t), _, _) => ("Observation.effectiveDateTime", t),
                (_, Some(t), _) => ("Observation.effectiveInstant", t),
                (_, _, Some(t)) => ("Observation.effectivePeriod.start", t),
                _ => return Err(problem(
                    RejectReason::BadTimestamp,
                    "required",
                    "Observation.effective[x]",
                    "effectiveDateTime, effectiveInstant or effectivePeriod.start is required: \
                     readings are judged by when they were taken",
                )),
            };
        parse_rfc3339_ms(text).ok_or_else(|| {
            problem(
                RejectReason::BadTimestamp,
                "value",
                expression,
                format!(
                    "'{}' is not a date and time with seconds and a time zone \
                     (e.g. 2026-12-04T07:30:00+08:00)",
                    clip(text)
                ),
            )
        })
    }

    /// A number from the Observation's first identifier (system and value hashed), so a
    /// re-posted Observation is recognised.
    fn identifier_seq(&self) -> Option<u64> {
        let id = self.identifier.iter().find(|i| i.value.is_some())?;
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let system = id.system.as_deref().unwrap_or("");
        for b in system
            .bytes()
            .chain([b'|'])
            .chain(id.value.as_deref()?.bytes())
        {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Some(hash)
    }

    /// The blood-pressure panel: systolic and diastolic components, both at the panel's
    /// time.
    fn panel(
        &self,
        patient_id: &str,
        ts_ms: i64,
        device_id: Option<String>,
        seq: Option<u64>,
    ) -> Result<Vec<FhirReading>, Problem> {
        let mut out = Vec::new();
        for (i, c) in self.component.iter().enumerate() {
            let at = format!("Observation.component[{i}]");
            let codes = codes(c.code.as_ref());
            let Some(metric) = codes.iter().find_map(|code| match *code {
                "8480-6" => Some(Metric::SystolicBp),
                "8462-4" => Some(Metric::DiastolicBp),
                _ => None,
            }) else {
                continue;
            };
            let (value, unit) = quantity(
                c.value_quantity.as_ref(),
                c.data_absent_reason.is_some(),
                &at,
            )?;
            out.push(FhirReading {
                patient_id: patient_id.to_string(),
                metric,
                value,
                unit,
                value_expression: format!("{at}.valueQuantity"),
                ts_ms,
                device_id: device_id.clone(),
                seq,
            });
        }
        if out.is_empty() {
            return Err(problem(
                RejectReason::Malformed,
                "required",
                "Observation.component",
                "a blood-pressure panel (85354-9) needs a systolic (8480-6) or diastolic \
                 (8462-4) component with a valueQuantity",
            ));
        }
        Ok(out)
    }
}

/// The LOINC codes of a concept (codings of other systems are not read).
fn codes(concept: Option<&CodeableConcept>) -> Vec<&str> {
    concept
        .map(|c| {
            c.coding
                .iter()
                .filter(|c| c.system.as_deref() == Some(LOINC))
                .filter_map(|c| c.code.as_deref())
                .collect()
        })
        .unwrap_or_default()
}

fn metric_of(codes: &[&str], expression: &str) -> Result<Metric, Problem> {
    codes.iter().find_map(|c| loinc_metric(c)).ok_or_else(|| {
        problem(
            RejectReason::UnknownMetric,
            "not-supported",
            format!("{expression}.coding"),
            if codes.is_empty() {
                "no LOINC coding (system http://loinc.org) names a vital sign".to_string()
            } else {
                format!(
                    "LOINC {} is not a vital sign this server judges",
                    clip(&codes.join(", "))
                )
            },
        )
    })
}

/// The value and unit of `quantity` (an element of `at`).
fn quantity(
    quantity: Option<&Quantity>,
    absent: bool,
    at: &str,
) -> Result<(f64, Option<String>), Problem> {
    if absent {
        return Err(problem(
            RejectReason::Malformed,
            "value",
            format!("{at}.dataAbsentReason"),
            "the value is absent (dataAbsentReason): there is nothing to judge",
        ));
    }
    let q = quantity.ok_or_else(|| {
        problem(
            RejectReason::Malformed,
            "required",
            format!("{at}.valueQuantity"),
            "a valueQuantity is required",
        )
    })?;
    let value = q.value.ok_or_else(|| {
        problem(
            RejectReason::Malformed,
            "required",
            format!("{at}.valueQuantity.value"),
            "valueQuantity.value is required",
        )
    })?;
    let unit = q.code.clone().or_else(|| q.unit.clone());
    Ok((value, unit))
}

/// At most 64 characters of sender text, for an answer.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Vec<FhirReading>, Problem> {
        let o: Observation = serde_json::from_str(json).unwrap();
        o.readings(&Mapping::default())
    }

    const HEART_RATE: &str = r#"{
      "resourceType": "Observation", "id": "heart-rate", "status": "final",
      "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
      "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
      "subject": {"reference": "Patient/p-1"},
      "effectiveDateTime": "2026-12-04T07:30:00+08:00",
      "valueQuantity": {"value": 44, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
      "device": {"reference": "Device/strap-9"},
      "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"}]
    }"#;

    #[test]
    fn a_heart_rate_observation_is_one_reading_at_its_time() {
        let r = read(HEART_RATE).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].patient_id, "p-1");
        assert_eq!(r[0].metric, Metric::HeartRate);
        assert_eq!(r[0].value, 44.0);
        assert_eq!(r[0].unit.as_deref(), Some("/min"));
        assert_eq!(
            r[0].ts_ms,
            parse_rfc3339_ms("2026-12-03T23:30:00Z").unwrap()
        );
        assert_eq!(r[0].device_id.as_deref(), Some("strap-9"));
        assert!(r[0].seq.is_some());
        let again = read(HEART_RATE).unwrap();
        assert_eq!(
            again[0].seq, r[0].seq,
            "the same identifier, the same number"
        );
    }

    #[test]
    fn a_blood_pressure_panel_is_two_readings_at_the_panel_time() {
        let r = read(
            r#"{"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "subject": {"reference": "https://ehr.example/fhir/Patient/p-2"},
            "effectivePeriod": {"start": "2026-12-04T07:30:00Z"},
            "component": [
              {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 167, "unit": "mmHg", "code": "mm[Hg]"}},
              {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 108, "code": "mm[Hg]"}}
            ]}"#,
        )
        .unwrap();
        let got: Vec<(Metric, f64, &str)> = r
            .iter()
            .map(|x| (x.metric, x.value, x.patient_id.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Metric::SystolicBp, 167.0, "p-2"),
                (Metric::DiastolicBp, 108.0, "p-2")
            ]
        );
        assert_eq!(r[0].ts_ms, r[1].ts_ms);
    }

    #[test]
    fn each_problem_names_its_element() {
        let with = |from: &str, to: &str| read(&HEART_RATE.replace(from, to)).unwrap_err();
        let cases = [
            (
                with(r#""status": "final""#, r#""status": "entered-in-error""#),
                "Observation.status",
            ),
            (
                with(r#""subject": {"reference": "Patient/p-1"},"#, ""),
                "Observation.subject",
            ),
            (
                with("Patient/p-1", "Group/g-1"),
                "Observation.subject.reference",
            ),
            (
                with("2026-12-04T07:30:00+08:00", "2026-12-04"),
                "Observation.effectiveDateTime",
            ),
            (with("8867-4", "1234-5"), "Observation.code.coding"),
            (
                with(
                    r#""valueQuantity": {"value": 44, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},"#,
                    r#""dataAbsentReason": {"text": "asked to skip"},"#,
                ),
                "Observation.dataAbsentReason",
            ),
        ];
        for (p, expression) in cases {
            assert_eq!(p.expression, expression, "{p:?}");
            assert!(!p.diagnostics.is_empty());
        }
    }

    #[test]
    fn capillary_glucose_codes_name_glucose() {
        assert_eq!(loinc_metric("14743-9"), Some(Metric::Glucose));
        assert_eq!(loinc_metric("41653-7"), Some(Metric::Glucose));
        assert_eq!(loinc_metric("heart_rate"), None, "LOINC codes only");
    }

    #[test]
    fn a_patient_identifier_of_the_configured_system_names_the_patient() {
        let body = HEART_RATE.replace(
            r#""subject": {"reference": "Patient/p-1"}"#,
            r#""subject": {"identifier": {"system": "urn:oid:1.2.3", "value": "mrn-7"}}"#,
        );
        let o: Observation = serde_json::from_str(&body).unwrap();
        let mapping = Mapping {
            patient_identifier_system: Some("urn:oid:1.2.3".into()),
        };
        assert_eq!(o.readings(&mapping).unwrap()[0].patient_id, "mrn-7");
        assert_eq!(
            o.readings(&Mapping::default()).unwrap_err().expression,
            "Observation.subject.identifier"
        );
    }
}
