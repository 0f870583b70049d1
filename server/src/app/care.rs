//! Care actions on alerts, in the caller's scope: acknowledge, resolve, snooze, the history
//! of one alert, the open alerts, and the filter of a subscription. A care-team (or viewer)
//! token reaches its own team's alerts and those escalated to it; asking for another team is
//! refused, never silently narrowed.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tracing::info;
use vigil_alerting::{Alert, AlertEvent, AlertFilter, Severity};

use super::alert_feed::{AlertFeed, Lag};
use super::reach::Watching;
use super::{fields, App, AppError, Caller};
use crate::clock::now_ms;
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
        Ok(self.engine.list_active(&filter))
    }

    /// Acknowledges an alert; `disposition` (`""`: none) says what it led to.
    pub fn acknowledge(
        &self,
        caller: &Caller,
        alert_id: &str,
        by: &str,
        note: &str,
        disposition: &str,
    ) -> Result<Alert, AppError> {
        self.single_node_only("Alerts/Acknowledge")?;
        self.with_disposition(caller, alert_id, by, note, disposition, "acknowledge")
    }

    /// Resolves an alert by hand; `disposition` (required) says what it led to.
    pub fn resolve(
        &self,
        caller: &Caller,
        alert_id: &str,
        by: &str,
        note: &str,
        disposition: &str,
    ) -> Result<Alert, AppError> {
        self.single_node_only("Alerts/Resolve")?;
        self.with_disposition(caller, alert_id, by, note, disposition, "resolve")
    }

    /// Acknowledge or resolve: the disposition is checked once the caller may act on the
    /// alert (so that a refusal for lack of rights is never hidden behind a missing field).
    fn with_disposition(
        &self,
        caller: &Caller,
        alert_id: &str,
        by: &str,
        note: &str,
        given: &str,
        action: &str,
    ) -> Result<Alert, AppError> {
        let resolving = action == "resolve";
        let mut recorded = None;
        let alert = self.on_alert(caller, alert_id, by, note, action, given, |by, note| {
            let disposition = self.dispositions.check(given, resolving)?;
            recorded = disposition;
            let now = now_ms();
            let done = if resolving {
                self.engine.resolve(alert_id, by, note, disposition, now)
            } else {
                self.engine
                    .acknowledge(alert_id, by, note, disposition, now)
            };
            Ok::<_, AppError>(done?)
        })?;
        self.count_disposition(&alert, recorded);
        Ok(alert)
    }

    fn count_disposition(&self, alert: &Alert, disposition: Option<&str>) {
        if let Some(d) = disposition {
            self.dispositions.record(&alert.rule_id, d, now_ms());
        }
    }

    /// Snoozes an alert for `duration_ms` (0 cancels a snooze), within the caller's limit.
    pub fn snooze(
        &self,
        caller: &Caller,
        alert_id: &str,
        duration_ms: u64,
        by: &str,
        note: &str,
    ) -> Result<Alert, AppError> {
        self.single_node_only("Alerts/Snooze")?;
        self.may_act(caller, alert_id)?;
        self.within_mute_limit(caller, "duration_ms", duration_ms)?;
        let now = now_ms();
        let until = if duration_ms == 0 {
            0
        } else {
            now.saturating_add(i64::try_from(duration_ms).unwrap_or(i64::MAX))
        };
        let detail = format!("until_ms {until}");
        self.on_alert(caller, alert_id, by, note, "snooze", &detail, |by, note| {
            self.engine.snooze(alert_id, until, by, note, now)
        })
    }

    /// Every journaled event of one alert, if the caller may see it.
    pub async fn history(
        &self,
        caller: &Caller,
        alert_id: &str,
    ) -> Result<Vec<AlertEvent>, AppError> {
        fields::required_id("alert_id", alert_id)?;
        let journal = self.journal.clone();
        let lookup = alert_id.to_string();
        let events = tokio::task::spawn_blocking(move || journal.alert_history(&lookup))
            .await
            .map_err(|e| AppError::Unavailable(format!("history lookup failed: {e}")))?
            .map_err(|e| AppError::Unavailable(format!("the journal could not be read: {e}")))?;
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

    /// One action on one alert: the caller may act and the fields are sound, the alert is
    /// the caller's team's, then `apply` with who is recorded and the note (journaled
    /// before it returns), then the audit record.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_alert<E>(
        &self,
        caller: &Caller,
        alert_id: &str,
        by: &str,
        note: &str,
        action: &str,
        detail: &str,
        apply: impl FnOnce(&str, &str) -> Result<Alert, E>,
    ) -> Result<Alert, AppError>
    where
        AppError: From<E>,
    {
        self.may_act(caller, alert_id)?;
        fields::required_id("alert_id", alert_id)?;
        fields::id("by", by)?;
        fields::text("note", note)?;
        if let Some((p, team)) = caller.team() {
            if let Some(alert) = self.engine.open_alert(alert_id) {
                if !team_filter(team).matches(&alert) {
                    return Err(self.denied(
                        p,
                        alert_id,
                        format!("alert '{alert_id}' is not care team '{team}''s"),
                    ));
                }
            }
        }
        let (recorded_by, recorded_note) = caller.attribution(by, note);
        let alert = apply(&recorded_by, &recorded_note)?;
        self.audit
            .record(&caller.audit_actor(by), action, alert_id, detail);
        Ok(alert)
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
