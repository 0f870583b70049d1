//! Notifiers: alerts pushed to people where they already are (an Alertmanager webhook
//! receiver, WeCom and DingTalk group robots, Slack). Each notifier is a durable consumer of
//! the alert stream in two lanes (HIGH alerts, and the rest: see [`Lane`]): each lane sends
//! the events it selects one message at a time (a patient's pending events grouped, in `seq`
//! order per alert), and journals where it stands after each confirmed delivery, so a
//! restart (kill -9 included) resumes with every selected event not yet confirmed. A slow or dead receiver holds only
//! its own notifier: ingest, gRPC subscribers and other notifiers never wait for it.
//!
//! | file | what |
//! | --- | --- |
//! | `spec.rs` | a notifier as configured, and which events it selects |
//! | `message.rs` | the words of a chat message (en, zh-CN; full or minimal) |
//! | `webhook.rs` | Alertmanager's webhook payload, version 4 |
//! | `robots.rs` | WeCom, DingTalk (signed) and Slack bodies; what an answer means |
//! | `group.rs` | a lane's pending events, grouped per patient, and where the lane stands |
//! | `lane.rs` | one lane of one notifier: takes events, sends groups, journals progress |
//! | `fallback.rs` | the care team's notifier for what another could not deliver |
//! | `delivery.rs` | the HTTP request and its retries |
//! | `heartbeat.rs` | the periodic "Vigil is alive" message |

pub mod delivery;
pub mod fallback;
pub mod group;
pub mod heartbeat;
pub mod lane;
pub mod message;
pub mod robots;
pub mod spec;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vigil_alerting::AlertEvent;

use self::delivery::Limiter;
use self::fallback::Fallbacks;
use self::lane::{Backlog, Lane};
use self::message::FallbackFor;
use self::spec::{Kind, NotifierSpec};
use super::alert_feed::{PositionError, Positions};
use super::App;

/// A notifier and its request budget, shared by its lanes, its heartbeat and the lanes
/// of other notifiers that fall back to it.
pub struct Route {
    pub spec: Arc<NotifierSpec>,
    pub limiter: Option<Arc<Limiter>>,
}

/// How messages are written: where the console is, and the time zone people read.
#[derive(Clone)]
pub struct Render {
    pub external_url: String,
    pub zone: jiff::tz::TimeZone,
}

/// What every lane shares.
pub struct Shared {
    pub app: Arc<App>,
    pub client: reqwest::Client,
    pub render: Render,
    pub fallbacks: Fallbacks,
}

/// The configured notifiers, ready to start: on a single node all of them at once, in
/// cluster mode each on the node that holds its lease.
pub struct Notifiers {
    shared: Arc<Shared>,
    routes: HashMap<String, Arc<Route>>,
}

/// Prepares every notifier (`None`: none configured). `fallbacks` maps a care team to the
/// notifier that receives what its notifiers could not deliver.
pub fn prepare(
    app: &Arc<App>,
    specs: Vec<NotifierSpec>,
    fallbacks: &[(String, String)],
    render: Render,
) -> anyhow::Result<Option<Notifiers>> {
    let routes: HashMap<String, Arc<Route>> = specs
        .into_iter()
        .map(|spec| {
            let limiter = delivery::limiter(&spec);
            let route = Route {
                spec: Arc::new(spec),
                limiter,
            };
            (route.spec.id.clone(), Arc::new(route))
        })
        .collect();
    app.reach
        .set_notified(routes.values().map(|r| r.spec.care_teams.clone()));
    if routes.is_empty() {
        return Ok(None);
    }
    let unreached = app.reach.without_notifier();
    if !unreached.is_empty() {
        warn!(
            care_teams = %unreached.join(", "),
            "no notifier reaches these care teams: their alerts reach people only through the console"
        );
    }
    let shared = Arc::new(Shared {
        app: app.clone(),
        client: delivery::client()?,
        render,
        fallbacks: Fallbacks::new(fallbacks, &routes),
    });
    Ok(Some(Notifiers { shared, routes }))
}

impl Notifiers {
    /// The notifiers' ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.routes.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The names notifier `id`'s lanes keep their positions under.
    pub fn positions_of(&self, id: &str) -> Vec<String> {
        self.routes.get(id).map_or_else(Vec::new, |route| {
            Lane::of(&route.spec)
                .into_iter()
                .map(|lane| lane.consumer_name(&route.spec))
                .collect()
        })
    }

    /// Starts every notifier, keeping positions in `positions` (single node: the journal).
    pub fn start_all(
        &self,
        positions: &Arc<dyn Positions>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        for id in self.ids() {
            self.start(&id, positions, shutdown)?;
        }
        Ok(())
    }

    /// Starts notifier `id`: one consumer per lane and its heartbeat, until `stop`; their
    /// tasks.
    pub fn start(
        &self,
        id: &str,
        positions: &Arc<dyn Positions>,
        stop: &CancellationToken,
    ) -> Result<Vec<JoinHandle<()>>, PositionError> {
        let Some(route) = self.routes.get(id) else {
            return Ok(Vec::new());
        };
        let shared = &self.shared;
        let backlog = Arc::new(Backlog::new(&route.spec.id, shared.app.telemetry.clone()));
        let mut tasks = Vec::new();
        for lane in Lane::of(&route.spec) {
            let consumer = lane::Consumer::open(
                shared,
                route.clone(),
                lane,
                backlog.clone(),
                positions.clone(),
            )?;
            tasks.push(tokio::spawn(consumer.run(shared.clone(), stop.clone())));
        }
        if let Some(every) = route.spec.heartbeat {
            tasks.push(tokio::spawn(heartbeat::run(
                shared.clone(),
                route.clone(),
                every,
                stop.clone(),
            )));
        }
        info!(notifier = %route.spec.id, kind = ?route.spec.kind, "notifier started");
        Ok(tasks)
    }
}

/// The request body of a group of one patient's events for the notifier's kind.
pub fn body(
    spec: &NotifierSpec,
    group: &[&AlertEvent],
    render: &Render,
    fallback: Option<&FallbackFor>,
) -> serde_json::Value {
    let link = message::link(spec, &render.external_url, group[0]);
    match spec.kind {
        Kind::Webhook => webhook::body(
            spec,
            group,
            &render.external_url,
            &link,
            fallback.map(|f| f.notifier),
        ),
        kind => {
            let observed = |ms| crate::clock::local_time(ms, &render.zone).unwrap_or_default();
            robots::body(
                kind,
                &message::render(spec, group, &observed, &link, fallback),
            )
        }
    }
}
