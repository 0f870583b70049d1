//! Who answers for an alert: claim ("I take it"), assign to a named person, and the shift
//! handover, which lists a team's open alerts with their last notes and hands one person's
//! alerts to another in one action. A patient's responsible clinician is the default
//! assignee of the patient's alerts (set by the engine when it raises them).

use tokio::task::spawn_blocking;
use vigil_alerting::{Alert, AlertEvent};

use super::care::AlertQuery;
use super::{fields, App, AppError, Caller};
use crate::clock::now_ms;
use crate::nats::wire::CareAction;

/// An open alert and its newest event with a note (who wrote what, when), for a handover.
pub struct HandoverItem {
    pub alert: Alert,
    pub last_note: Option<AlertEvent>,
}

impl App {
    /// "I take it": the caller (its `by`, or its token's name) answers for the alert.
    pub async fn claim(
        &self,
        caller: &Caller,
        alert_id: &str,
        by: &str,
        note: &str,
    ) -> Result<Alert, AppError> {
        let (recorded_by, recorded_note) = self.may_act_on(caller, alert_id, by, note)?;
        let action = CareAction::Assign {
            assignee: Some(recorded_by.clone()),
        };
        let alert = self
            .act(alert_id, &recorded_by, &recorded_note, action)
            .await?;
        self.audit
            .record(&caller.audit_actor(by), "claim", alert_id, "");
        Ok(alert)
    }

    /// Gives the alert to `assignee` (`""`: releases it).
    pub async fn assign(
        &self,
        caller: &Caller,
        alert_id: &str,
        assignee: &str,
        by: &str,
        note: &str,
    ) -> Result<Alert, AppError> {
        let (recorded_by, recorded_note) = self.may_act_on(caller, alert_id, by, note)?;
        fields::id("assignee", assignee)?;
        let action = CareAction::Assign {
            assignee: (!assignee.is_empty()).then(|| assignee.to_string()),
        };
        let alert = self
            .act(alert_id, &recorded_by, &recorded_note, action)
            .await?;
        self.audit
            .record(&caller.audit_actor(by), "assign", alert_id, assignee);
        Ok(alert)
    }

    /// A shift handover: every open alert of `care_team` assigned to `from` goes to `to`
    /// (in cluster mode, one alert at a time through each alert's owner).
    pub async fn handover(
        &self,
        caller: &Caller,
        care_team: &str,
        from: &str,
        to: &str,
        by: &str,
        note: &str,
    ) -> Result<Vec<Alert>, AppError> {
        fields::required_id("care_team", care_team)?;
        fields::required_id("from", from)?;
        fields::required_id("to", to)?;
        fields::id("by", by)?;
        fields::text("note", note)?;
        self.may_act(caller, care_team)?;
        let query = AlertQuery {
            care_teams: vec![care_team.to_string()],
            ..AlertQuery::default()
        };
        let filter = self.scope(caller, query, "Alerts/Handover")?;
        let (recorded_by, recorded_note) = caller.attribution(by, note);
        let moved = match &self.open {
            None => self
                .engine
                .handover(&filter, from, to, &recorded_by, &recorded_note, now_ms()),
            Some(_) => {
                let mut moved = Vec::new();
                for alert in self.open_alerts(&filter) {
                    if alert.assignee.as_deref() != Some(from) {
                        continue;
                    }
                    let action = CareAction::Assign {
                        assignee: Some(to.to_string()),
                    };
                    moved.push(
                        self.act(&alert.id, &recorded_by, &recorded_note, action)
                            .await?,
                    );
                }
                moved
            }
        };
        self.audit.record(
            &caller.audit_actor(by),
            "handover",
            care_team,
            &format!("{} alerts from {from} to {to}", moved.len()),
        );
        Ok(moved)
    }

    /// The open alerts of `care_team` the caller may see, oldest first, each with its
    /// newest note: what the next shift reads before taking over.
    pub async fn handover_view(
        &self,
        caller: &Caller,
        care_team: &str,
    ) -> Result<Vec<HandoverItem>, AppError> {
        fields::required_id("care_team", care_team)?;
        let query = AlertQuery {
            care_teams: vec![care_team.to_string()],
            ..AlertQuery::default()
        };
        let filter = self.scope(caller, query, "Alerts/Handover")?;
        let mut alerts = self.open_alerts(&filter);
        alerts.sort_by_key(|a| a.raised_at_ms);
        if let Some(mirror) = &self.mirror {
            // Cluster mode: the notes among the events the node's copy of the stream holds.
            return Ok(alerts
                .into_iter()
                .map(|alert| {
                    let last_note = mirror
                        .events_of(&alert.id)
                        .into_iter()
                        .rev()
                        .find(|e| !e.note.is_empty());
                    HandoverItem { alert, last_note }
                })
                .collect());
        }
        let journal = self.journal.clone();
        spawn_blocking(move || {
            alerts
                .into_iter()
                .map(|alert| {
                    let last_note = journal
                        .alert_history(&alert.id)
                        .unwrap_or_default()
                        .into_iter()
                        .rev()
                        .find(|e| !e.note.is_empty());
                    HandoverItem { alert, last_note }
                })
                .collect()
        })
        .await
        .map_err(|e| AppError::Unavailable(format!("handover lookup failed: {e}")))
    }
}
