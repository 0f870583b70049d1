//! A care team's `fallback` notifier: what one of its notifiers could not deliver for good
//! (a rotated robot key, a receiver that refuses the message) is sent through it instead,
//! marked as such, so that nothing vanishes silently. A fallback does not fall back further.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::warn;
use vigil_alerting::AlertEvent;

use super::message::FallbackFor;
use super::spec::NotifierSpec;
use super::{body, delivery, Route, Shared};

/// Care team → its fallback notifier.
#[derive(Default)]
pub struct Fallbacks {
    by_team: HashMap<String, Arc<Route>>,
}

impl Fallbacks {
    /// `pairs` are (care team, notifier id), checked by the configuration.
    pub fn new(pairs: &[(String, String)], routes: &HashMap<String, Arc<Route>>) -> Fallbacks {
        Fallbacks {
            by_team: pairs
                .iter()
                .filter_map(|(team, id)| Some((team.clone(), routes.get(id)?.clone())))
                .collect(),
        }
    }

    /// Where `team`'s events go when notifier `failed` could not deliver them: none when
    /// the team has no fallback, or when it is `failed` itself.
    fn for_team(&self, team: &str, failed: &str) -> Option<&Arc<Route>> {
        self.by_team.get(team).filter(|r| r.spec.id != failed)
    }
}

/// Hands `group` (refused for good by `from`, because of `why`) to the fallback of each
/// event's care team, and waits until each fallback delivered it or refused it too.
pub async fn hand_over(shared: &Shared, from: &NotifierSpec, group: &[&AlertEvent], why: &str) {
    let telemetry = &shared.app.telemetry;
    let mut by_route: Vec<(&Arc<Route>, Vec<&AlertEvent>)> = Vec::new();
    for &event in group {
        let Some(route) = shared.fallbacks.for_team(&event.alert.care_team, &from.id) else {
            telemetry.notifier_fallback(&from.id, "", "none");
            warn!(notifier = %from.id, seq = event.seq, "no fallback notifier for the event's care team: it was not delivered to anyone");
            continue;
        };
        match by_route.iter_mut().find(|(r, _)| Arc::ptr_eq(r, route)) {
            Some((_, events)) => events.push(event),
            None => by_route.push((route, vec![event])),
        }
    }
    for (route, events) in by_route {
        let to = &route.spec;
        let note = FallbackFor {
            notifier: &from.id,
            why,
        };
        let payload = body(to, &events, &shared.render, Some(&note));
        let sent = delivery::deliver(
            &shared.client,
            to,
            route.limiter.as_deref(),
            &payload,
            |_| telemetry.notification(&to.id, "retried"),
        )
        .await;
        match sent {
            Ok(()) => telemetry.notifier_fallback(&from.id, &to.id, "sent"),
            Err(why) => {
                telemetry.notifier_fallback(&from.id, &to.id, "failed");
                warn!(notifier = %from.id, fallback = %to.id, why, "the fallback notifier refused the events too");
            }
        }
    }
}
