//! `vigil.v1.Alerts`: the alert stream (replay then live, cut off with RESOURCE_EXHAUSTED
//! when too slow) and the acknowledge/resolve/snooze/silence lifecycle, translated to and
//! from the application's care operations.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::debug;
use vigil_proto::v1::{self, alerts_server::Alerts};

use super::guard::caller;
use super::{convert, status};
use crate::app::alert_feed::FeedEnd;
use crate::app::care::{AlertQuery, Subscribed};
use crate::app::silences::SilenceRequest;
use crate::app::App;

pub struct AlertsService {
    pub app: Arc<App>,
    /// Ends open streams on shutdown so the server can stop.
    pub shutdown: CancellationToken,
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
        let r = request.into_inner();
        let query = AlertQuery {
            care_teams: r.care_teams,
            patient_ids: r.patient_ids,
            min_severity: convert::min_severity(r.min_severity),
        };
        let subscribed = self
            .app
            .subscribe(&who, query, r.after_seq)
            .map_err(status)?;
        let (last_seq, oldest) = (
            subscribed.feed.started_at(),
            subscribed.feed.oldest_retained(),
        );
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(forward(subscribed, tx, self.shutdown.clone()));
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
        let r = request.get_ref();
        let alert = self
            .app
            .acknowledge(
                &caller(&request),
                &r.alert_id,
                &r.by,
                &r.note,
                &r.disposition,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(convert::alert(&alert)))
    }

    async fn resolve(
        &self,
        request: Request<v1::ResolveRequest>,
    ) -> Result<Response<v1::Alert>, Status> {
        let r = request.get_ref();
        let alert = self
            .app
            .resolve(
                &caller(&request),
                &r.alert_id,
                &r.by,
                &r.note,
                &r.disposition,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(convert::alert(&alert)))
    }

    async fn claim(
        &self,
        request: Request<v1::ClaimRequest>,
    ) -> Result<Response<v1::Alert>, Status> {
        let r = request.get_ref();
        let alert = self
            .app
            .claim(&caller(&request), &r.alert_id, &r.by, &r.note)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::alert(&alert)))
    }

    async fn assign(
        &self,
        request: Request<v1::AssignRequest>,
    ) -> Result<Response<v1::Alert>, Status> {
        let r = request.get_ref();
        let alert = self
            .app
            .assign(&caller(&request), &r.alert_id, &r.assignee, &r.by, &r.note)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::alert(&alert)))
    }

    async fn handover(
        &self,
        request: Request<v1::HandoverRequest>,
    ) -> Result<Response<v1::HandoverResponse>, Status> {
        let r = request.get_ref();
        let alerts = self
            .app
            .handover(
                &caller(&request),
                &r.care_team,
                &r.from,
                &r.to,
                &r.by,
                &r.note,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(v1::HandoverResponse {
            alerts: alerts.iter().map(convert::alert).collect(),
        }))
    }

    async fn snooze(
        &self,
        request: Request<v1::SnoozeRequest>,
    ) -> Result<Response<v1::Alert>, Status> {
        let r = request.get_ref();
        let alert = self
            .app
            .snooze(
                &caller(&request),
                &r.alert_id,
                r.duration_ms,
                &r.by,
                &r.note,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(convert::alert(&alert)))
    }

    async fn history(
        &self,
        request: Request<v1::HistoryRequest>,
    ) -> Result<Response<v1::HistoryResponse>, Status> {
        let events = self
            .app
            .history(&caller(&request), &request.get_ref().alert_id)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::HistoryResponse {
            events: events.iter().map(convert::event).collect(),
        }))
    }

    async fn list_active(
        &self,
        request: Request<v1::ListActiveRequest>,
    ) -> Result<Response<v1::ListActiveResponse>, Status> {
        let who = caller(&request);
        let r = request.into_inner();
        let query = AlertQuery {
            care_teams: r.care_teams,
            patient_ids: r.patient_ids,
            min_severity: None,
        };
        let alerts = self.app.list_active(&who, query).map_err(status)?;
        Ok(Response::new(v1::ListActiveResponse {
            alerts: alerts.iter().map(convert::alert).collect(),
        }))
    }

    async fn silence(
        &self,
        request: Request<v1::SilenceRequest>,
    ) -> Result<Response<v1::SilenceInfo>, Status> {
        let who = caller(&request);
        let r = request.into_inner();
        let silence = self
            .app
            .silence(
                &who,
                SilenceRequest {
                    patient_id: r.patient_id,
                    rule_id: r.rule_id,
                    care_team: r.care_team,
                    ends_at_ms: r.ends_at_ms,
                    reason: r.reason,
                    by: r.by,
                },
            )
            .await
            .map_err(status)?;
        Ok(Response::new(convert::silence(&silence)))
    }

    async fn list_silences(
        &self,
        request: Request<v1::ListSilencesRequest>,
    ) -> Result<Response<v1::ListSilencesResponse>, Status> {
        let silences = self.app.list_silences(&caller(&request));
        Ok(Response::new(v1::ListSilencesResponse {
            silences: silences.iter().map(convert::silence).collect(),
        }))
    }

    async fn delete_silence(
        &self,
        request: Request<v1::DeleteSilenceRequest>,
    ) -> Result<Response<v1::SilenceInfo>, Status> {
        let silence = self
            .app
            .delete_silence(&caller(&request), &request.get_ref().id)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::silence(&silence)))
    }
}

/// Sends the feed to one subscriber until it leaves (noticed at once), falls too far
/// behind, or the server shuts down. Errors name the `after_seq` to resume with: the last
/// seq delivered, or where this subscription started if nothing was.
async fn forward(
    mut subscribed: Subscribed,
    tx: mpsc::Sender<Result<v1::AlertEvent, Status>>,
    shutdown: CancellationToken,
) {
    let mut delivered = false;
    loop {
        let next = tokio::select! {
            // The client went away: unregister at once, not when an event next matches its
            // filter (which, for a filter on a patient with no alerts, is never).
            () = tx.closed() => return,
            _ = shutdown.cancelled() => {
                let _ = tx.send(Err(Status::unavailable(format!(
                    "server shutting down; resume with after_seq = {}",
                    subscribed.feed.position()
                )))).await;
                return;
            }
            next = subscribed.feed.next() => next,
        };
        match next {
            Ok(event) => {
                if tx.send(Ok(convert::event(&event))).await.is_err() {
                    return;
                }
                delivered = true;
            }
            Err(FeedEnd::Behind { resume_after }) => {
                debug!(resume_after, "alert subscriber cut off: too slow");
                let last = if delivered {
                    resume_after.to_string()
                } else {
                    "none".to_string()
                };
                let _ = tx
                    .send(Err(Status::resource_exhausted(format!(
                        "subscriber fell too far behind; last delivered seq {last}; \
                         resubscribe with after_seq = {resume_after}"
                    ))))
                    .await;
                return;
            }
            Err(FeedEnd::Closed) => return,
        }
    }
}
