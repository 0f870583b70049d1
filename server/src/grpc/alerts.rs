//! `vigil.v1.Alerts`: the alert stream (replay then live, cut off with RESOURCE_EXHAUSTED
//! when too slow) and the acknowledge/resolve lifecycle.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{debug, info};
use vigil_alerting::{AlertFilter, AlertingError, Engine, Journal, Silence, Subscription};
use vigil_proto::v1::{self, alerts_server::Alerts};

use super::{convert, fields};
use crate::audit::{self, AuditLog};
use crate::auth::grpc_guard::{caller, out_of_scope};
use crate::auth::{Auth, AuthFailure, Principal};
use crate::clock::now_ms;
use crate::telemetry::Telemetry;

pub struct AlertsService {
    pub engine: Arc<Engine>,
    pub journal: Arc<Journal>,
    pub audit: Arc<AuditLog>,
    pub auth: Arc<Auth>,
    pub telemetry: Arc<Telemetry>,
    pub limits: MuteLimits,
    /// One permit per open `Subscribe` stream (`[server] max_subscribers`).
    pub subscriber_slots: Arc<Semaphore>,
    /// Ends open streams on shutdown so the server can stop.
    pub shutdown: CancellationToken,
}

/// How long a caller may silence or snooze alerts.
#[derive(Debug, Clone, Copy)]
pub struct MuteLimits {
    /// For care-team tokens (`[auth] max_silence`): a mute that outlives a shift is how
    /// alarms get missed.
    pub care_team: Duration,
    /// For every other caller: the journal's retention.
    pub other: Duration,
}

/// Response metadata: the seq of the newest event when the subscription started.
pub const LAST_SEQ_HEADER: &str = "vigil-last-seq";

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::AlertEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Alerts for AlertsService {
    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let who = caller(&request);
        let req = request.into_inner();
        fields::ids("care_teams", &req.care_teams)?;
        fields::ids("patient_ids", &req.patient_ids)?;
        let Ok(slot) = self.subscriber_slots.clone().try_acquire_owned() else {
            return Err(Status::resource_exhausted(
                "the server serves no more alert subscriptions at once ([server] \
                 max_subscribers): close unused streams, or retry later",
            ));
        };
        let filter = AlertFilter {
            care_teams: self.scope_teams(who.as_deref(), req.care_teams, "Alerts/Subscribe")?,
            patient_ids: req.patient_ids,
            min_severity: convert::min_severity(req.min_severity),
        };
        let subscription = self.engine.subscribe(filter, req.after_seq);
        let oldest = subscription.oldest_retained;
        if let (Some(after), Some(oldest)) = (req.after_seq, oldest) {
            if after + 1 < oldest {
                info!(
                    after,
                    oldest, "subscriber resumes after events that are no longer retained"
                );
            }
        }
        let last_seq = subscription.last_seq;
        let (tx, rx) = mpsc::channel(64);
        let telemetry = self.telemetry.clone();
        let shutdown = self.shutdown.clone();
        telemetry.subscriber(1.0);
        tokio::spawn(async move {
            forward(subscription, req.after_seq, tx, shutdown).await;
            telemetry.subscriber(-1.0);
            drop(slot);
        });
        let mut response = Response::new(Box::pin(ReceiverStream::new(rx)) as EventStream);
        // Where live events start, so a live-only client can resume after a disconnect.
        let meta = response.metadata_mut();
        if let Ok(v) = last_seq.to_string().parse() {
            meta.insert(LAST_SEQ_HEADER, v);
        }
        if let Some(Ok(v)) = oldest.map(|o| o.to_string().parse()) {
            meta.insert("vigil-oldest-retained-seq", v);
        }
        Ok(response)
    }

    async fn acknowledge(
        &self,
        request: Request<v1::AcknowledgeRequest>,
    ) -> Result<Response<v1::Alert>, Status> {
        let peer = request.remote_addr();
        let who = caller(&request);
        let r = request.into_inner();
        let (by, note) = self.may_act(who.as_deref(), &r.alert_id, &r.by, &r.note)?;
        let alert = self
            .engine
            .acknowledge(&r.alert_id, &by, &note, now_ms())
            .map_err(status)?;
        self.audit.record(
            &audit::actor(&r.by, peer, who.as_deref()),
            "acknowledge",
            &r.alert_id,
            "",
        );
        Ok(Response::new(convert::alert(&alert)))
    }

    async fn history(
        &self,
        request: Request<v1::HistoryRequest>,
    ) -> Result<Response<v1::HistoryResponse>, Status> {
        let who = caller(&request);
        let id = request.into_inner().alert_id;
        fields::required_id("alert_id", &id)?;
        let journal = self.journal.clone();
        let lookup = id.clone();
        let events = tokio::task::spawn_blocking(move || journal.alert_history(&lookup))
            .await
            .map_err(|e| Status::internal(format!("history lookup failed: {e}")))?
            .map_err(|e| Status::internal(format!("the journal could not be read: {e}")))?;
        if events.is_empty() {
            return Err(Status::not_found(format!(
                "no events for alert '{id}' (unknown, or older than the journal's retention)"
            )));
        }
        if let Some((p, team)) = team_caller(who.as_deref()) {
            let filter = team_filter(team);
            if !events.iter().any(|e| filter.matches(&e.alert)) {
                return Err(self.denied(
                    p,
                    &id,
                    format!("alert '{id}' is not care team '{team}''s"),
                ));
            }
        }
        Ok(Response::new(v1::HistoryResponse {
            events: events.iter().map(convert::event).collect(),
        }))
    }

    async fn snooze(
        &self,
        request: Request<v1::SnoozeRequest>,
    ) -> Result<Response<v1::Alert>, Status> {
        let peer = request.remote_addr();
        let who = caller(&request);
        let r = request.into_inner();
        let (by, note) = self.may_act(who.as_deref(), &r.alert_id, &r.by, &r.note)?;
        self.within_mute_limit(who.as_deref(), "duration_ms", r.duration_ms)?;
        let now = now_ms();
        let until = if r.duration_ms == 0 {
            0
        } else {
            now.saturating_add(i64::try_from(r.duration_ms).unwrap_or(i64::MAX))
        };
        let alert = self
            .engine
            .snooze(&r.alert_id, until, &by, &note, now)
            .map_err(status)?;
        let detail = format!("until_ms {until}");
        self.audit.record(
            &audit::actor(&r.by, peer, who.as_deref()),
            "snooze",
            &r.alert_id,
            &detail,
        );
        Ok(Response::new(convert::alert(&alert)))
    }

    async fn silence(
        &self,
        request: Request<v1::SilenceRequest>,
    ) -> Result<Response<v1::SilenceInfo>, Status> {
        let peer = request.remote_addr();
        let who = caller(&request);
        let mut r = request.into_inner();
        self.may_act_at_all(who.as_deref(), "Alerts/Silence")?;
        fields::id("patient_id", &r.patient_id)?;
        fields::id("rule_id", &r.rule_id)?;
        fields::id("care_team", &r.care_team)?;
        fields::id("by", &r.by)?;
        fields::text("reason", &r.reason)?;
        if let Some((p, team)) = team_caller(who.as_deref()) {
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
        let (by, reason) = attribution(&r.by, &r.reason, who.as_deref());
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
            return Err(Status::invalid_argument(
                "a silence needs at least one of patient_id, rule_id, care_team (silencing everything is not allowed)",
            ));
        }
        if silence.ends_at_ms <= now {
            return Err(Status::invalid_argument(format!(
                "ends_at_ms must be in the future (server time is {now})"
            )));
        }
        let lasts = u64::try_from(silence.ends_at_ms.saturating_sub(now)).unwrap_or(u64::MAX);
        self.within_mute_limit(who.as_deref(), "ends_at_ms", lasts)?;
        self.journal
            .put_silence(&silence)
            .map_err(super::journal_unavailable)?;
        info!(silence_id = %silence.id, by = %silence.by, "silence added");
        self.engine.add_silence(silence.clone());
        let detail = format!("ends_at_ms {}", silence.ends_at_ms);
        self.audit.record(
            &audit::actor(&r.by, peer, who.as_deref()),
            "silence",
            &silence.id,
            &detail,
        );
        Ok(Response::new(convert::silence(&silence)))
    }

    async fn list_silences(
        &self,
        request: Request<v1::ListSilencesRequest>,
    ) -> Result<Response<v1::ListSilencesResponse>, Status> {
        let who = caller(&request);
        let team = who.as_deref().and_then(|p| p.care_team());
        let silences = self
            .engine
            .silences(now_ms())
            .iter()
            .filter(|s| team.is_none() || s.care_team.as_deref() == team)
            .map(convert::silence)
            .collect();
        Ok(Response::new(v1::ListSilencesResponse { silences }))
    }

    async fn delete_silence(
        &self,
        request: Request<v1::DeleteSilenceRequest>,
    ) -> Result<Response<v1::SilenceInfo>, Status> {
        let peer = request.remote_addr();
        let who = caller(&request);
        let id = request.into_inner().id;
        self.may_act_at_all(who.as_deref(), "Alerts/DeleteSilence")?;
        fields::required_id("id", &id)?;
        let Some(existing) = self
            .engine
            .silences(now_ms())
            .into_iter()
            .find(|s| *s.id == *id)
        else {
            return Err(Status::not_found(format!(
                "no silence with id '{id}' (or it has ended)"
            )));
        };
        if let Some((p, team)) = team_caller(who.as_deref()) {
            if existing.care_team.as_deref() != Some(team) {
                return Err(self.denied(
                    p,
                    &id,
                    format!("silence '{id}' is not care team '{team}''s"),
                ));
            }
        }
        self.journal
            .remove_silence(&id)
            .map_err(super::journal_unavailable)?;
        match self.engine.delete_silence(&id, now_ms()) {
            Some(s) => {
                info!(silence_id = %id, "silence deleted");
                self.audit.record(
                    &audit::actor("", peer, who.as_deref()),
                    "silence_delete",
                    &id,
                    "",
                );
                Ok(Response::new(convert::silence(&s)))
            }
            None => Err(Status::not_found(format!("no silence with id '{id}'"))),
        }
    }

    async fn resolve(
        &self,
        request: Request<v1::ResolveRequest>,
    ) -> Result<Response<v1::Alert>, Status> {
        let peer = request.remote_addr();
        let who = caller(&request);
        let r = request.into_inner();
        let (by, note) = self.may_act(who.as_deref(), &r.alert_id, &r.by, &r.note)?;
        let alert = self
            .engine
            .resolve(&r.alert_id, &by, &note, now_ms())
            .map_err(status)?;
        self.audit.record(
            &audit::actor(&r.by, peer, who.as_deref()),
            "resolve",
            &r.alert_id,
            "",
        );
        Ok(Response::new(convert::alert(&alert)))
    }

    async fn list_active(
        &self,
        request: Request<v1::ListActiveRequest>,
    ) -> Result<Response<v1::ListActiveResponse>, Status> {
        let who = caller(&request);
        let r = request.into_inner();
        fields::ids("care_teams", &r.care_teams)?;
        fields::ids("patient_ids", &r.patient_ids)?;
        let filter = AlertFilter {
            care_teams: self.scope_teams(who.as_deref(), r.care_teams, "Alerts/ListActive")?,
            patient_ids: r.patient_ids,
            min_severity: None,
        };
        let alerts = self
            .engine
            .list_active(&filter)
            .iter()
            .map(convert::alert)
            .collect();
        Ok(Response::new(v1::ListActiveResponse { alerts }))
    }
}

impl AlertsService {
    /// The care teams a listing or subscription covers: for a care-team token its own team
    /// (asking for any other is refused, never silently narrowed), else what was asked.
    fn scope_teams(
        &self,
        who: Option<&Principal>,
        asked: Vec<String>,
        method: &str,
    ) -> Result<Vec<String>, Status> {
        let Some((p, team)) = team_caller(who) else {
            return Ok(asked);
        };
        match asked.iter().find(|t| *t != team) {
            None => Ok(vec![team.to_string()]),
            Some(other) => Err(self.denied(
                p,
                method,
                format!(
                    "token '{}' reads care team '{team}' only, not '{other}'",
                    p.name
                ),
            )),
        }
    }

    /// Refuses acting on an open alert of another care team.
    fn check_alert(&self, who: Option<&Principal>, alert_id: &str) -> Result<(), Status> {
        let Some((p, team)) = team_caller(who) else {
            return Ok(());
        };
        match self.engine.open_alert(alert_id) {
            Some(alert) if !team_filter(team).matches(&alert) => Err(self.denied(
                p,
                alert_id,
                format!("alert '{alert_id}' is not care team '{team}''s"),
            )),
            _ => Ok(()),
        }
    }

    fn denied(&self, p: &Principal, target: &str, why: String) -> Status {
        out_of_scope(&self.auth, p, target, why)
    }

    /// Refuses a read-only (viewer) caller any action on alerts (`target`: the method or
    /// the alert, for the refusal's record).
    fn may_act_at_all(&self, who: Option<&Principal>, target: &str) -> Result<(), Status> {
        match who {
            Some(p) if !p.may_act() => {
                self.auth
                    .failures
                    .record(AuthFailure::WrongRole, &p.name, &p.name, target);
                Err(Status::permission_denied(format!(
                    "token '{}' has role {}, which may read alerts but not act on them",
                    p.name, p.role
                )))
            }
            _ => Ok(()),
        }
    }

    /// Checks an action on one alert (the caller may act, the fields are sound, the alert
    /// is the caller's team's) and returns who is recorded as acting, and the note.
    fn may_act(
        &self,
        who: Option<&Principal>,
        alert_id: &str,
        by: &str,
        note: &str,
    ) -> Result<(String, String), Status> {
        self.may_act_at_all(who, alert_id)?;
        fields::required_id("alert_id", alert_id)?;
        fields::id("by", by)?;
        fields::text("note", note)?;
        self.check_alert(who, alert_id)?;
        Ok(attribution(by, note, who))
    }

    /// Refuses a silence or snooze longer than the caller may set.
    fn within_mute_limit(
        &self,
        who: Option<&Principal>,
        field: &str,
        millis: u64,
    ) -> Result<(), Status> {
        let (limit, setting) = match team_caller(who) {
            Some(_) => (
                self.limits.care_team,
                "[auth] max_silence, for care-team tokens",
            ),
            None => (self.limits.other, "[server] retention"),
        };
        if u128::from(millis) <= limit.as_millis() {
            return Ok(());
        }
        Err(Status::invalid_argument(format!(
            "{field} asks for a silence or snooze of more than {} ({setting}); set a shorter one",
            humantime::format_duration(limit)
        )))
    }
}

/// A care-team caller and its team; `None` for every other caller (or with auth off).
fn team_caller(who: Option<&Principal>) -> Option<(&Principal, &str)> {
    who.and_then(|p| Some((p, p.care_team()?)))
}

/// The alerts a care team sees: its own and those escalated to it.
fn team_filter(team: &str) -> AlertFilter {
    AlertFilter {
        care_teams: vec![team.to_string()],
        ..AlertFilter::default()
    }
}

/// Sends the replay, then live events, to one subscriber until it leaves (noticed at once),
/// falls too far behind, or the server shuts down. Errors name the `after_seq` to resume with: the last
/// seq delivered, or where this subscription started if nothing was.
async fn forward(
    mut sub: Subscription,
    after_seq: Option<u64>,
    tx: mpsc::Sender<Result<v1::AlertEvent, Status>>,
    shutdown: CancellationToken,
) {
    let mut delivered: Option<u64> = None;
    let start = after_seq.unwrap_or(sub.last_seq);
    for event in std::mem::take(&mut sub.replay) {
        if tx.send(Ok(convert::event(&event))).await.is_err() {
            return;
        }
        delivered = Some(event.seq);
    }
    loop {
        tokio::select! {
            // The client went away: unregister at once, not when an event next matches its
            // filter (which, for a filter on a patient with no alerts, is never).
            () = tx.closed() => return,
            _ = shutdown.cancelled() => {
                let _ = tx.send(Err(Status::unavailable(format!(
                    "server shutting down; resume with after_seq = {}", delivered.unwrap_or(start)
                )))).await;
                return;
            }
            event = sub.live.recv() => match event {
                Some(event) => {
                    if tx.send(Ok(convert::event(&event))).await.is_err() {
                        return;
                    }
                    delivered = Some(event.seq);
                }
                None => {
                    if sub.overflowed() {
                        debug!(?delivered, "alert subscriber cut off: too slow");
                        let last = delivered.map_or("none".to_string(), |s| s.to_string());
                        let _ = tx.send(Err(Status::resource_exhausted(format!(
                            "subscriber fell too far behind; last delivered seq {last}; resubscribe with after_seq = {}",
                            delivered.unwrap_or(start)
                        )))).await;
                    }
                    return;
                }
            }
        }
    }
}

/// Who is recorded as having acted, and the note recorded with it. With authentication it
/// is the token's name, always: a name the caller gives is kept in the note ("stated by
/// ..."), never instead of it. Without authentication it is `by`, else "unspecified".
fn attribution(by: &str, note: &str, who: Option<&Principal>) -> (String, String) {
    match who {
        Some(p) if !by.is_empty() && by != p.name => {
            let stated = format!("stated by: {by}");
            let note = if note.is_empty() {
                stated
            } else {
                format!("{stated}; {note}")
            };
            (p.name.clone(), note)
        }
        Some(p) => (p.name.clone(), note.to_string()),
        None if by.is_empty() => ("unspecified".to_string(), note.to_string()),
        None => (by.to_string(), note.to_string()),
    }
}

fn status(e: AlertingError) -> Status {
    match e {
        AlertingError::AlertNotFound(_) => Status::not_found(e.to_string()),
        AlertingError::IllegalTransition { .. } => Status::failed_precondition(e.to_string()),
        AlertingError::InvalidRule(_) => Status::invalid_argument(e.to_string()),
    }
}
