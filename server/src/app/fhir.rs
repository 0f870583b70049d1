//! Readings from FHIR R4 Observations (one, or the entries of a `batch` or `transaction`
//! Bundle): each Observation decoded and validated as a whole, then its readings judged
//! like any other source's. A transaction is all or nothing: if one entry cannot be used,
//! none is taken.

use std::time::Instant;

use vigil_ingest::fhir::{Entry, FhirReading, Problem};
use vigil_ingest::{Candidate, RejectReason, Rejection};

use super::{App, AppError, Caller};
use crate::clock::now_ms;
use crate::telemetry::Source;

/// What happened to one Observation.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryOutcome {
    /// Its readings were taken (`duplicates` of them had been received before).
    Taken { readings: usize, duplicates: usize },
    /// It could not be used (nothing of it was taken).
    Refused(Problem),
    /// A transaction's good entry, not taken because another entry was refused.
    NotTaken,
}

impl App {
    /// Takes the readings of `entries` (`transaction`: all or none) for `caller`; one
    /// outcome per entry, in order.
    pub async fn ingest_fhir(
        &self,
        caller: &Caller,
        entries: Vec<Entry>,
        transaction: bool,
    ) -> Result<Vec<EntryOutcome>, AppError> {
        let received = Instant::now();
        let now = now_ms();
        let mapping = &self.fhir.mapping;
        let who = caller.principal.as_deref();
        // Every entry decoded into readings first: a transaction takes none if one fails.
        let decoded: Vec<Result<Vec<FhirReading>, Problem>> = entries
            .into_iter()
            .map(|entry| entry.and_then(|o| o.readings(mapping)))
            .collect();
        let mut checked = Vec::with_capacity(decoded.len());
        let mut not_permitted = 0u64;
        for entry in &decoded {
            let readings = match entry {
                Ok(readings) => readings,
                Err(problem) => {
                    self.ingest.refused(
                        None,
                        &Rejection::new(problem.reason, problem.diagnostics.clone()),
                    );
                    checked.push(Err(problem.clone()));
                    continue;
                }
            };
            let mut ok = Vec::with_capacity(readings.len());
            let mut refused = None;
            for r in readings {
                if who.is_some_and(|p| !p.may_publish_for(&r.patient_id)) {
                    not_permitted += 1;
                    refused = Some(problem_of(
                        r,
                        Rejection::new(
                            RejectReason::NotPermitted,
                            "this token may not publish for that patient id (outside its \
                             patient_prefixes)",
                        ),
                    ));
                    break;
                }
                let candidate = Candidate {
                    metric: r.metric.name(),
                    value: r.value,
                    unit: r.unit.as_deref(),
                    ts_ms: Some(Some(r.ts_ms)),
                    device_id: Some(r.device_id.as_deref().unwrap_or("fhir")),
                    seq: r.seq,
                };
                match self.ingest.check(&r.patient_id, candidate, now) {
                    Ok(reading) => ok.push(reading),
                    Err(rejection) => {
                        self.ingest.refused(Some(&r.patient_id), &rejection);
                        refused = Some(problem_of(r, rejection));
                        break;
                    }
                }
            }
            checked.push(match refused {
                Some(problem) => Err(problem),
                None => Ok(ok),
            });
        }
        self.outside_prefixes(who, not_permitted, "FHIR", "Observations");
        let failed = checked.iter().any(Result::is_err);
        if transaction && failed {
            return Ok(checked
                .into_iter()
                .map(|c| match c {
                    Ok(_) => EntryOutcome::NotTaken,
                    Err(problem) => EntryOutcome::Refused(problem),
                })
                .collect());
        }
        let mut forward = Vec::new();
        let outcomes: Vec<EntryOutcome> = checked
            .into_iter()
            .map(|c| match c {
                Ok(readings) => {
                    let duplicates =
                        self.ingest
                            .take(&readings, received, Source::Fhir, &mut forward);
                    EntryOutcome::Taken {
                        readings: readings.len(),
                        duplicates,
                    }
                }
                Err(problem) => EntryOutcome::Refused(problem),
            })
            .collect();
        self.ingest.store(forward).await.map_err(|e| {
            AppError::Unavailable(format!(
                "{e}: none of this request's readings are acknowledged; send it again"
            ))
        })?;
        Ok(outcomes)
    }
}

/// A validation refusal as a FHIR problem naming the element at fault.
fn problem_of(r: &FhirReading, rejection: Rejection) -> Problem {
    let (code, expression) = match rejection.reason {
        RejectReason::UnknownUnit => ("not-supported", format!("{}.code", r.value_expression)),
        RejectReason::Implausible => ("value", format!("{}.value", r.value_expression)),
        RejectReason::TooOld | RejectReason::InFuture | RejectReason::BadTimestamp => {
            ("value", "Observation.effective[x]".to_string())
        }
        RejectReason::NotEnrolled | RejectReason::NoConsent => {
            ("business-rule", "Observation.subject".to_string())
        }
        RejectReason::NotPermitted => ("forbidden", "Observation.subject".to_string()),
        RejectReason::UnknownMetric => ("not-supported", "Observation.code".to_string()),
        _ => ("invalid", "Observation".to_string()),
    };
    Problem {
        reason: rejection.reason,
        code,
        expression,
        diagnostics: rejection.detail.to_string(),
    }
}
