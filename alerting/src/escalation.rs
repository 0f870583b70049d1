//! Escalation and re-notification policy per care team: an alert nobody acknowledges
//! escalates, level by level along `escalate_to`; an acknowledged alert whose condition is
//! still present after `renotify_after` becomes active again.

use std::collections::HashMap;
use std::sync::Arc;

use crate::hours::{AfterHours, Hours};

/// One care team's policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamPolicy {
    /// An ACTIVE alert escalates this long after it became active (or after the previous
    /// level, for the next team along the chain).
    pub escalate_after_ms: Option<i64>,
    /// The team that also receives the alert when it escalates (none: the event goes to
    /// the same team, once).
    pub escalate_to: Option<Arc<str>>,
    /// An ACKNOWLEDGED alert still open this long after its acknowledgement is re-notified.
    pub renotify_after_ms: Option<i64>,
    /// The team's working hours: escalation deadlines count working time only.
    pub hours: Option<Hours>,
    /// What happens to a MEDIUM or LOW alert raised outside the hours.
    pub after_hours: Option<AfterHours>,
}

/// Every team's policy, by team id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EscalationPolicy {
    pub teams: HashMap<Arc<str>, TeamPolicy>,
}

/// The next escalation of an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// When it is due (server clock).
    pub due_ms: i64,
    /// The team that also receives the alert from then on, if any.
    pub to: Option<Arc<str>>,
}

impl EscalationPolicy {
    /// The escalation after `level` levels of an alert of `team` active since
    /// `active_since_ms`, if the chain has one. Level n+1 is due once every team along the
    /// chain up to it has had its `escalate_after`; the chain ends at a team without one,
    /// after a team without `escalate_to`, or when it would revisit a team.
    pub fn next_step(&self, team: &str, level: u32, active_since_ms: i64) -> Option<Step> {
        let mut due = active_since_ms;
        let mut current: Arc<str> = team.into();
        let mut visited = vec![current.clone()];
        for reached in 0..=level {
            let policy = self.teams.get(&current)?;
            let after = policy.escalate_after_ms?;
            due = match &policy.hours {
                Some(hours) => hours.add_working(due, after),
                None => due.saturating_add(after),
            };
            if reached == level {
                return Some(Step {
                    due_ms: due,
                    to: policy.escalate_to.clone(),
                });
            }
            let next = policy.escalate_to.clone()?;
            if visited.contains(&next) {
                return None;
            }
            visited.push(next.clone());
            current = next;
        }
        None
    }

    /// Where a MEDIUM or LOW alert of `team` raised at `now_ms` goes: `None` when the team
    /// is within its hours (or has none).
    pub fn after_hours(&self, team: &str, now_ms: i64) -> Option<&AfterHours> {
        let policy = self.teams.get(team)?;
        match &policy.hours {
            Some(hours) if !hours.is_open(now_ms) => policy.after_hours.as_ref(),
            _ => None,
        }
    }

    /// Whether `team` is within its hours at `now_ms` (a team without hours always is).
    pub fn within_hours(&self, team: &str, now_ms: i64) -> bool {
        self.teams
            .get(team)
            .and_then(|p| p.hours.as_ref())
            .is_none_or(|h| h.is_open(now_ms))
    }

    /// When an alert of `team` acknowledged at `acknowledged_ms` is re-notified, if ever.
    pub fn renotify_at(&self, team: &str, acknowledged_ms: i64) -> Option<i64> {
        let after = self.teams.get(team)?.renotify_after_ms?;
        Some(acknowledged_ms.saturating_add(after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_counts_working_time_for_a_team_with_hours() {
        let hours = Hours::parse("UTC", "mon-fri", "08:00", "18:00", &[]).unwrap();
        let policy = EscalationPolicy {
            teams: [(
                "home".into(),
                TeamPolicy {
                    escalate_after_ms: Some(30 * 60_000),
                    hours: Some(hours),
                    after_hours: Some(AfterHours::Hold),
                    ..TeamPolicy::default()
                },
            )]
            .into_iter()
            .collect(),
        };
        // Monday 2027-01-04 17:50 UTC: 10 minutes that day, 20 the next morning.
        let monday_1750 = 1_799_085_000_000;
        let step = policy.next_step("home", 0, monday_1750).unwrap();
        assert_eq!(step.due_ms, monday_1750 + (14 * 60 + 30) * 60_000);
        assert!(policy
            .after_hours("home", monday_1750 + 3_600_000)
            .is_some());
        assert!(policy.after_hours("home", monday_1750).is_none());
        assert!(policy.within_hours("elsewhere", 0));
    }

    fn policy() -> EscalationPolicy {
        let team = |after: Option<i64>, to: Option<&str>| TeamPolicy {
            escalate_after_ms: after,
            escalate_to: to.map(Arc::from),
            renotify_after_ms: Some(600),
            ..TeamPolicy::default()
        };
        EscalationPolicy {
            teams: [
                ("ward".into(), team(Some(300), Some("charge"))),
                ("charge".into(), team(Some(600), Some("physician"))),
                ("physician".into(), team(None, None)),
                ("solo".into(), team(Some(100), None)),
                ("loop-a".into(), team(Some(10), Some("loop-b"))),
                ("loop-b".into(), team(Some(10), Some("loop-a"))),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn levels_follow_the_chain_and_end() {
        let p = policy();
        let step = |team, level| p.next_step(team, level, 1000);
        assert_eq!(
            step("ward", 0),
            Some(Step {
                due_ms: 1300,
                to: Some("charge".into())
            })
        );
        assert_eq!(
            step("ward", 1),
            Some(Step {
                due_ms: 1900,
                to: Some("physician".into())
            })
        );
        assert_eq!(step("ward", 2), None, "the physician has no escalate_after");
        assert_eq!(
            step("solo", 0),
            Some(Step {
                due_ms: 1100,
                to: None
            })
        );
        assert_eq!(step("solo", 1), None, "no escalate_to: one level");
        assert_eq!(step("unknown", 0), None);
        assert!(step("loop-a", 1).is_some());
        assert_eq!(step("loop-a", 2), None, "a cycle ends the chain");
        assert_eq!(p.renotify_at("ward", 5000), Some(5600));
        assert_eq!(p.renotify_at("unknown", 5000), None);
    }
}
