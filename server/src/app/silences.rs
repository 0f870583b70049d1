//! Silences: mute alerts matching a patient, a rule or a care team until a time. A
//! care-team token's silences always carry its team and last at most `max_silence`.

use std::sync::Arc;

use tracing::info;
use vigil_alerting::Silence;

use super::{fields, App, AppError, Caller};
use crate::clock::now_ms;

/// What a caller asks to silence (empty fields match anything, but not all three).
#[derive(Debug, Clone, Default)]
pub struct SilenceRequest {
    pub patient_id: String,
    pub rule_id: String,
    pub care_team: String,
    /// Server clock, Unix epoch milliseconds; must be in the future.
    pub ends_at_ms: i64,
    pub reason: String,
    pub by: String,
}

impl App {
    pub async fn silence(
        &self,
        caller: &Caller,
        mut r: SilenceRequest,
    ) -> Result<Silence, AppError> {
        self.may_act(caller, "Alerts/Silence")?;
        fields::id("patient_id", &r.patient_id)?;
        fields::id("rule_id", &r.rule_id)?;
        fields::id("care_team", &r.care_team)?;
        fields::id("by", &r.by)?;
        fields::text("reason", &r.reason)?;
        if let Some((p, team)) = caller.team() {
            if r.care_team.is_empty() {
                // A care team's silence only ever mutes its own alerts.
                r.care_team = team.to_string();
            } else if r.care_team != team {
                return Err(self.denied(
                    p,
                    "Alerts/Silence",
                    format!("token '{}' may silence care team '{team}' only", p.name),
                ));
            }
        }
        let now = now_ms();
        let (by, reason) = caller.attribution(&r.by, &r.reason);
        let matcher = |v: &str| (!v.is_empty()).then(|| Arc::<str>::from(v));
        let silence = Silence {
            id: uuid::Uuid::now_v7().to_string().into(),
            patient_id: matcher(&r.patient_id),
            rule_id: matcher(&r.rule_id),
            care_team: matcher(&r.care_team),
            starts_at_ms: now,
            ends_at_ms: r.ends_at_ms,
            reason,
            by,
        };
        if silence.patient_id.is_none() && silence.rule_id.is_none() && silence.care_team.is_none()
        {
            return Err(AppError::Invalid(
                "a silence needs at least one of patient_id, rule_id, care_team (silencing \
                 everything is not allowed)"
                    .into(),
            ));
        }
        if silence.ends_at_ms <= now {
            return Err(AppError::Invalid(format!(
                "ends_at_ms must be in the future (server time is {now})"
            )));
        }
        let lasts = u64::try_from(silence.ends_at_ms.saturating_sub(now)).unwrap_or(u64::MAX);
        self.within_mute_limit(caller, "ends_at_ms", lasts)?;
        match self.shared() {
            Some(cluster) => cluster.catalog.put_silence(&silence).await?,
            None => {
                self.journal.put_silence(&silence)?;
                self.engine.add_silence(silence.clone());
            }
        }
        info!(silence_id = %silence.id, by = %silence.by, "silence added");
        let detail = format!("ends_at_ms {}", silence.ends_at_ms);
        self.audit
            .record(&caller.audit_actor(&r.by), "silence", &silence.id, &detail);
        Ok(silence)
    }

    /// The silences in force that the caller may see (a care team: its own).
    pub fn list_silences(&self, caller: &Caller) -> Vec<Silence> {
        let team = caller.team().map(|(_, t)| t);
        self.engine
            .silences(now_ms())
            .into_iter()
            .filter(|s| team.is_none() || s.care_team.as_deref() == team)
            .collect()
    }

    pub async fn delete_silence(&self, caller: &Caller, id: &str) -> Result<Silence, AppError> {
        self.may_act(caller, "Alerts/DeleteSilence")?;
        fields::required_id("id", id)?;
        let Some(existing) = self
            .engine
            .silences(now_ms())
            .into_iter()
            .find(|s| *s.id == *id)
        else {
            return Err(AppError::NotFound(format!(
                "no silence with id '{id}' (or it has ended)"
            )));
        };
        if let Some((p, team)) = caller.team() {
            if existing.care_team.as_deref() != Some(team) {
                return Err(self.denied(
                    p,
                    id,
                    format!("silence '{id}' is not care team '{team}''s"),
                ));
            }
        }
        let silence = match self.shared() {
            Some(cluster) => {
                cluster.catalog.delete_silence(id).await?;
                existing
            }
            None => {
                self.journal.remove_silence(id)?;
                let Some(silence) = self.engine.delete_silence(id, now_ms()) else {
                    return Err(AppError::NotFound(format!("no silence with id '{id}'")));
                };
                silence
            }
        };
        info!(silence_id = %id, "silence deleted");
        self.audit
            .record(&caller.audit_actor(""), "silence_delete", id, "");
        Ok(silence)
    }
}
