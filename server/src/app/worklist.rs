//! What a case manager works from: the patients of the caller's care team sorted by risk,
//! each patient's page (profile, readings, rule levels, alerts and their history), and
//! review marks ("reviewed until", with a note), journaled and audited like an
//! acknowledgement.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use vigil_alerting::engine::{PatientSummary, PatientView};
use vigil_alerting::{Alert, AlertEvent, AlertFilter, PatientProfile, Review};

use super::{fields, App, AppError, Caller};
use crate::clock::now_ms;

/// Review marks by patient, restored from the journal at start; at most one per patient
/// the engine knows (a mark for an unknown patient is refused).
#[derive(Default)]
pub struct Reviews(Mutex<HashMap<Arc<str>, Review>>);

impl Reviews {
    pub fn new(restored: Vec<Review>) -> Reviews {
        Reviews(Mutex::new(
            restored
                .into_iter()
                .map(|r| (r.patient_id.clone(), r))
                .collect(),
        ))
    }

    pub fn get(&self, patient_id: &str) -> Option<Review> {
        self.0.lock().get(patient_id).cloned()
    }

    pub fn put(&self, review: Review) {
        self.0.lock().insert(review.patient_id.clone(), review);
    }
}

/// One line of the worklist.
#[derive(Debug, Clone)]
pub struct WorklistEntry {
    pub summary: PatientSummary,
    /// Open alerts by severity: low, medium, high.
    pub open: [u32; 3],
    pub review: Option<Review>,
    /// No review mark holds, or an alert was raised after it.
    pub needs_review: bool,
}

/// What the patient page shows.
#[derive(Debug, Clone)]
pub struct PatientPage {
    pub view: PatientView,
    pub open_alerts: Vec<Alert>,
    /// The patient's retained alert events, newest first (at most [`RECENT_EVENTS`]).
    pub recent: Vec<Arc<AlertEvent>>,
    pub review: Option<Review>,
}

/// The most alert events a patient page lists.
pub const RECENT_EVENTS: usize = 200;
/// The most samples per metric a patient page carries.
pub const MAX_CHART_SAMPLES: usize = 2000;
/// The longest a review mark may hold.
pub const MAX_REVIEW_MS: i64 = 31 * 86_400_000;

impl App {
    /// The summaries of the patients the caller may see: from this node's engine, or in
    /// cluster mode from the owners of every partition (a partition being taken over is
    /// missing for a few seconds, and logged).
    pub async fn patient_summaries(
        &self,
        caller: &Caller,
    ) -> Result<Vec<PatientSummary>, AppError> {
        let team = caller.team().map(|(_, t)| t.to_string());
        if let Some(cluster) = self.shared() {
            let (summaries, missing) = cluster
                .summaries(team.as_deref())
                .await
                .map_err(AppError::Unavailable)?;
            if missing > 0 {
                tracing::warn!(
                    missing,
                    "the worklist lacks the patients of partitions that did not answer"
                );
            }
            return Ok(summaries);
        }
        let engine = self.engine.clone();
        // Walks every patient: off the async workers.
        tokio::task::spawn_blocking(move || {
            engine.patient_summaries(|p: &PatientProfile| {
                team.as_deref().is_none_or(|t| *p.care_team == *t)
            })
        })
        .await
        .map_err(|e| AppError::Unavailable(format!("the worklist could not be made: {e}")))
    }

    /// The patients of `summaries` (the caller's: [`App::patient_summaries`]) riskiest
    /// first: those needing review, then by open alerts (high, medium, low), NEWS2, and the
    /// longest without a reading.
    pub fn worklist(&self, summaries: Vec<PatientSummary>) -> Vec<WorklistEntry> {
        let mut open: HashMap<Arc<str>, ([u32; 3], i64)> = HashMap::new();
        for alert in self.open_alerts(&AlertFilter::default()) {
            let entry = open.entry(alert.patient_id.clone()).or_default();
            entry.0[alert.severity as usize - 1] += 1;
            entry.1 = entry.1.max(alert.raised_at_ms);
        }
        let now = now_ms();
        let mut list: Vec<WorklistEntry> = summaries
            .into_iter()
            .map(|summary| {
                let (counts, newest_raised) =
                    open.get(&summary.profile.id).copied().unwrap_or_default();
                let review = self.reviews.get(&summary.profile.id);
                let needs_review = review
                    .as_ref()
                    .is_none_or(|r| !r.holds(now) || newest_raised > r.at_ms);
                WorklistEntry {
                    summary,
                    open: counts,
                    review,
                    needs_review,
                }
            })
            .collect();
        list.sort_by(|a, b| {
            risk(b, now)
                .cmp(&risk(a, now))
                .then_with(|| a.summary.profile.id.cmp(&b.summary.profile.id))
        });
        list
    }

    /// A patient this node admits, or in cluster mode one the owner of its partition knows
    /// (under open enrolment, patients are known where their readings are judged).
    async fn known_patient(&self, id: &str) -> Result<Arc<PatientProfile>, AppError> {
        match (self.patient(id), self.shared()) {
            (Err(AppError::NotFound(why)), Some(cluster)) => cluster
                .patient_view(id, 0)
                .await
                .map_err(AppError::Unavailable)?
                .map(|v| v.profile)
                .ok_or(AppError::NotFound(why)),
            (known, _) => known,
        }
    }

    /// The patient's page, if the caller may see the patient.
    pub async fn patient_page(&self, caller: &Caller, id: &str) -> Result<PatientPage, AppError> {
        fields::required_id("patient_id", id)?;
        let view = match self.shared() {
            Some(cluster) => cluster
                .patient_view(id, MAX_CHART_SAMPLES)
                .await
                .map_err(AppError::Unavailable)?,
            None => self.engine.patient_view(id, MAX_CHART_SAMPLES, now_ms()),
        };
        let view = view.ok_or_else(|| AppError::NotFound(format!("no patient with id '{id}'")))?;
        self.patient_in_scope(caller, &view.profile, "patient")?;
        let filter = AlertFilter {
            patient_ids: vec![id.to_string()],
            ..AlertFilter::default()
        };
        let open_alerts = self.open_alerts(&filter);
        let mut recent = self.alert_log.subscribe(filter, Some(0)).replay;
        recent.reverse();
        recent.truncate(RECENT_EVENTS);
        Ok(PatientPage {
            view,
            open_alerts,
            recent,
            review: self.reviews.get(id),
        })
    }

    /// Marks a patient reviewed until `until_ms` (0: clears the mark), journaled before it
    /// applies, then audited.
    pub async fn review(
        &self,
        caller: &Caller,
        patient_id: &str,
        until_ms: i64,
        by: &str,
        note: &str,
    ) -> Result<Review, AppError> {
        self.may_act(caller, patient_id)?;
        fields::required_id("patient_id", patient_id)?;
        fields::id("by", by)?;
        fields::text("note", note)?;
        let profile = self.known_patient(patient_id).await?;
        self.patient_in_scope(caller, &profile, "review")?;
        let now = now_ms();
        if until_ms != 0 && (until_ms <= now || until_ms - now > MAX_REVIEW_MS) {
            return Err(AppError::Invalid(
                "until_ms must be in the future and at most 31 days ahead (0 clears the mark)"
                    .into(),
            ));
        }
        let (recorded_by, recorded_note) = caller.attribution(by, note);
        let review = Review {
            patient_id: profile.id.clone(),
            at_ms: now,
            until_ms,
            by: recorded_by,
            note: recorded_note,
        };
        match self.shared() {
            // Every node applies it from the catalog, this one included.
            Some(cluster) => cluster.catalog.put_review(&review).await?,
            None => {
                self.journal.put_review(&review)?;
                self.reviews.put(review.clone());
            }
        }
        self.audit.record(
            &caller.audit_actor(by),
            "review",
            patient_id,
            &format!("until_ms {until_ms}"),
        );
        Ok(review)
    }

    /// Refuses a care-team caller a patient of another team.
    fn patient_in_scope(
        &self,
        caller: &Caller,
        profile: &PatientProfile,
        what: &str,
    ) -> Result<(), AppError> {
        match caller.team() {
            Some((p, team)) if *profile.care_team != *team => Err(self.denied(
                p,
                &format!("{what} {}", profile.id),
                format!(
                    "patient '{}' is not in care team '{team}'",
                    crate::untrusted::clip(&profile.id)
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// Larger is riskier.
fn risk(e: &WorklistEntry, now: i64) -> (bool, [u32; 3], u32, i64) {
    let [low, medium, high] = e.open;
    let news2 = e.summary.news2.map_or(0, |s| s.total);
    let silent_ms = e.summary.last_reading_ms.map_or(i64::MAX, |t| now - t);
    (e.needs_review, [high, medium, low], news2, silent_ms)
}
