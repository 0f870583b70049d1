//! Care actions on alerts, in the caller's scope: acknowledge, resolve, snooze, the history
//! of one alert, the open alerts, and the filter of a subscription. A care-team (or viewer)
//! token reaches its own team's alerts and those escalated to it; asking for another team is
//! refused, never silently narrowed.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tracing::info;
use vigil_alerting::{Alert, AlertEvent, AlertFilter, EventKind, Severity};

use super::alert_feed::{AlertFeed, Lag};
use super::reach::Watching;
use super::{fields, App, AppError, Caller};
use crate::clock::now_ms;
use crate::nats::wire::{CareAction, CareReply, CareRequest};
use crate::telemetry::Telemetry;

/// A subscriber's feed and its place among `max_subscribers`, given back (and counted in
/// `vigil_alert_subscribers`) when dropped.
pub struct Subscribed {
    pub feed: AlertFeed,
    _place: OwnedSemaphorePermit,
    /// Counts the stream as reaching its care teams (a stream on chosen patients does not).
    _watching: Option<Watching>,
    telemetry: Arc<Telemetry>,
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.telemetry.subscriber(-1.0);
    }
}

/// What a caller asks to see: care teams and patients (empty: all it may see).
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub care_teams: Vec<String>,
    pub patient_ids: Vec<String>,
    pub min_severity: Option<Severity>,
}

impl App {
    /// The filter a listing or subscription of `caller` gets: for a care-team token its own
    /// team (asking for any other is refused), else what was asked.
    pub fn scope(
        &self,
        caller: &Caller,
        query: AlertQuery,
        operation: &str,
    ) -> Result<AlertFilter, AppError> {
        fields::ids("care_teams", &query.care_teams)?;
        fields::ids("patient_ids", &query.patient_ids)?;
        let care_teams = match caller.team() {
            None => query.care_teams,
            Some((p, team)) => match query.care_teams.iter().find(|t| *t != team) {
                None => vec![team.to_string()],
                Some(other) => {
                    return Err(self.denied(
                        p,
                        operation,
                        format!(
                            "token '{}' reads care team '{team}' only, not '{other}'",
                            p.name
                        ),
                    ))
                }
            },
        };
        Ok(AlertFilter {
            care_teams,
            patient_ids: query.patient_ids,
            min_severity: query.min_severity,
        })
    }

    /// A feed of the alerts the caller may see (after `after_seq`, then live), holding one
    /// of `max_subscribers` places while it lives. Falling too far behind cuts it off.
    pub fn subscribe(
        &self,
        caller: &Caller,
        query: AlertQuery,
        after_seq: Option<u64>,
    ) -> Result<Subscribed, AppError> {
        let filter = self.scope(caller, query, "Alerts/Subscribe")?;
        let Ok(place) = self.subscriber_slots.clone().try_acquire_owned() else {
            return Err(AppError::Exhausted(
                "the server serves no more alert subscriptions at once ([server] \
                 max_subscribers): close unused streams, or retry later"
                    .into(),
            ));
        };
        let watching = filter
            .patient_ids
            .is_empty()
            .then(|| self.reach.watch(&filter.care_teams));
        let feed = AlertFeed::open(self.alert_log.clone(), filter, after_seq, Lag::CutOff);
        if let (Some(after), Some(oldest)) = (after_seq, feed.oldest_retained()) {
            if after + 1 < oldest {
                info!(
                    after,
                    oldest, "subscriber resumes after events that are no longer retained"
                );
            }
        }
        self.telemetry.subscriber(1.0);
        Ok(Subscribed {
            feed,
            _place: place,
            _watching: watching,
            telemetry: self.telemetry.clone(),
        })
    }

    /// The open alerts the caller may see.
    pub fn list_active(&self, caller: &Caller, query: AlertQuery) -> Result<Vec<Alert>, AppError> {
        let filter = self.scope(caller, query, "Alerts/ListActive")?;
        Ok(self.open_alerts(&filter))
    }

    /// Acknowledges an alert; `disposition` (`""`: none) says what it led to.
    pub async fn acknowledge(
        &self,
        caller: &Caller,
        alert_id: &str,
        by: &str,
        note: &str,
        disposition: &str,
    ) -> Result<Alert, AppError> {
        self.with_disposition(caller, alert_id, by, note, disposition, false)
            .await
    }

    /// Resolves an alert by hand; `disposition` (required) says what it led to.
    pub async fn resolve(
        &self,
        caller: &Caller,
        alert_id: &str,
        by: &str,
        note: &str,
        disposition: &str,
    ) -> Result<Alert, AppError> {
        self.with_disposition(caller, alert_id, by, note, disposition, true)
            .await
    }

    /// Acknowledge or resolve: the disposition is checked once the caller may act on the
    /// alert (so that a refusal for lack of rights is never hidden behind a missing field).
    async fn with_disposition(
        &self,
        caller: &Caller,
        alert_id: &str,
        by: &str,
        note: &str,
        given: &str,
        resolving: bool,
    ) -> Result<Alert, AppError> {
        let (by_recorded, note_recorded) = self.may_act_on(caller, alert_id, by, note)?;
        let disposition = self.dispositions.check(given, resolving)?;
        let owned = disposition.map(str::to_string);
        let action = if resolving {
            CareAction::Resolve { disposition: owned }
        } else {
            CareAction::Acknowledge { disposition: owned }
        };
        let alert = self
            .act(alert_id, &by_recorded, &note_recorded, action)
            .await?;
        let name = if resolving { "resolve" } else { "acknowledge" };
        self.audit
            .record(&caller.audit_actor(by), name, alert_id, given);
        self.count_disposition(&alert, disposition);
        Ok(alert)
    }

    fn count_disposition(&self, alert: &Alert, disposition: Option<&str>) {
        if let Some(d) = disposition {
            self.dispositions.record(&alert.rule_id, d, now_ms());
        }
    }

    /// Snoozes an alert for `duration_ms` (0 cancels a snooze), within the caller's limit.
    pub async fn snooze(
        &self,
        caller: &Caller,
        alert_id: &str,
        duration_ms: u64,
        by: &str,
        note: &str,
    ) -> Result<Alert, AppError> {
        self.may_act(caller, alert_id)?;
        self.within_mute_limit(caller, "duration_ms", duration_ms)?;
        let (by_recorded, note_recorded) = self.may_act_on(caller, alert_id, by, note)?;
        let until = if duration_ms == 0 {
            0
        } else {
            now_ms().saturating_add(i64::try_from(duration_ms).unwrap_or(i64::MAX))
        };
        let alert = self
            .act(
                alert_id,
                &by_recorded,
                &note_recorded,
                CareAction::Snooze { until_ms: until },
            )
            .await?;
        self.audit.record(
            &caller.audit_actor(by),
            "snooze",
            alert_id,
            &format!("until_ms {until}"),
        );
        Ok(alert)
    }

    /// Applies a person's action: to this node's engine, or in cluster mode through the
    /// node that owns the alert's patient (answered once the event is in the alert
    /// stream).
    pub(super) async fn act(
        &self,
        alert_id: &str,
        by: &str,
        note: &str,
        action: CareAction,
    ) -> Result<Alert, AppError> {
        let Some(cluster) = &self.cluster else {
            return Ok(action.apply(&self.engine, alert_id, by, note, now_ms())?);
        };
        let alert = self.known_alert(alert_id).ok_or_else(|| {
            AppError::NotFound(format!(
                "no alert with id '{alert_id}' among the cluster's open alerts and retained \
                 events"
            ))
        })?;
        let request = CareRequest {
            alert_id: alert_id.to_string(),
            by: by.to_string(),
            note: note.to_string(),
            action,
        };
        match cluster
            .care(cluster.partition_of(&alert.patient_id), &request)
            .await
        {
            Ok(CareReply::Done(alert)) => Ok(*alert),
            Ok(CareReply::NotFound(why)) => Err(AppError::NotFound(why)),
            Ok(CareReply::Refused(why)) => Err(AppError::Precondition(why)),
            Err(why) => Err(AppError::Unavailable(why)),
        }
    }

    /// The open alerts `filter` matches: this node's engine's, or in cluster mode those of
    /// the copy of the alert stream.
    pub fn open_alerts(&self, filter: &AlertFilter) -> Vec<Alert> {
        match &self.open {
            None => self.engine.list_active(filter),
            Some(open) => open.list(filter),
        }
    }

    /// The alert as this node knows it: its engine's open alert, or in cluster mode the
    /// cluster's open alert, else its newest state in the copy of the alert stream.
    fn known_alert(&self, alert_id: &str) -> Option<Alert> {
        match &self.open {
            None => self.engine.open_alert(alert_id),
            Some(open) => open
                .get(alert_id)
                .or_else(|| self.alert_log.find_alert(alert_id)),
        }
    }

    /// Every journaled event of one alert, if the caller may see it.
    pub async fn history(
        &self,
        caller: &Caller,
        alert_id: &str,
    ) -> Result<Vec<AlertEvent>, AppError> {
        fields::required_id("alert_id", alert_id)?;
        let events = match (&self.mirror, self.shared()) {
            // Cluster mode: the events retained in the copy of the alert stream; if the
            // copy no longer holds the alert's raising, the alert's partition in the stream.
            (Some(mirror), Some(cluster)) => {
                let events = mirror.events_of(alert_id);
                let patient = match events.first() {
                    Some(first) if first.kind == EventKind::Raised => None,
                    Some(first) => Some(first.alert.patient_id.clone()),
                    None => self.known_alert(alert_id).map(|a| a.patient_id),
                };
                match patient {
                    Some(patient) => cluster
                        .history(cluster.partition_of(&patient), alert_id)
                        .await
                        .map_err(AppError::Unavailable)?,
                    None => events,
                }
            }
            _ => {
                let journal = self.journal.clone();
                let lookup = alert_id.to_string();
                tokio::task::spawn_blocking(move || journal.alert_history(&lookup))
                    .await
                    .map_err(|e| AppError::Unavailable(format!("history lookup failed: {e}")))?
                    .map_err(|e| {
                        AppError::Unavailable(format!("the journal could not be read: {e}"))
                    })?
            }
        };
        if events.is_empty() {
            return Err(AppError::NotFound(format!(
                "no events for alert '{alert_id}' (unknown, or older than the journal's retention)"
            )));
        }
        if let Some((p, team)) = caller.team() {
            let filter = team_filter(team);
            if !events.iter().any(|e| filter.matches(&e.alert)) {
                return Err(self.denied(
                    p,
                    alert_id,
                    format!("alert '{alert_id}' is not care team '{team}''s"),
                ));
            }
        }
        Ok(events)
    }

    /// The caller may act, the fields are sound, and the alert is the caller's team's;
    /// returns who is recorded and the note.
    pub(super) fn may_act_on(
        &self,
        caller: &Caller,
        alert_id: &str,
        by: &str,
        note: &str,
    ) -> Result<(String, String), AppError> {
        self.may_act(caller, alert_id)?;
        fields::required_id("alert_id", alert_id)?;
        fields::id("by", by)?;
        fields::text("note", note)?;
        if let Some((p, team)) = caller.team() {
            if let Some(alert) = self.known_alert(alert_id) {
                if !team_filter(team).matches(&alert) {
                    return Err(self.denied(
                        p,
                        alert_id,
                        format!("alert '{alert_id}' is not care team '{team}''s"),
                    ));
                }
            }
        }
        Ok(caller.attribution(by, note))
    }

    /// Refuses a silence or snooze longer than the caller may set.
    pub(super) fn within_mute_limit(
        &self,
        caller: &Caller,
        field: &str,
        millis: u64,
    ) -> Result<(), AppError> {
        let (limit, setting) = match caller.team() {
            Some(_) => (
                self.mute_limits.care_team,
                "[auth] max_silence, for care-team tokens",
            ),
            None => (self.mute_limits.other, "[server] retention"),
        };
        if u128::from(millis) <= limit.as_millis() {
            return Ok(());
        }
        Err(AppError::Invalid(format!(
            "{field} asks for a silence or snooze of more than {} ({setting}); set a shorter one",
            humantime::format_duration(limit)
        )))
    }
}

/// The alerts a care team sees: its own and those escalated to it.
fn team_filter(team: &str) -> AlertFilter {
    AlertFilter {
        care_teams: vec![team.to_string()],
        ..AlertFilter::default()
    }
}
