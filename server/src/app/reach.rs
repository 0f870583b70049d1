//! Which care teams anyone reaches: a notifier that selects the team's alerts, or an alert
//! stream open on the whole team right now (a console board, a care-team application on
//! gRPC `Subscribe`). A team nobody reaches raises alerts that no person sees: it is
//! reported at start and by the metric `vigil_care_team_unreached`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

pub struct Reach {
    /// The configured care teams (`default` when none is).
    teams: Vec<String>,
    /// Each notifier's `care_teams` (empty: every team).
    notified: OnceLock<Vec<Vec<String>>>,
    /// Open streams by care team; `None`: a stream that sees every team.
    watching: Mutex<HashMap<Option<String>, usize>>,
}

/// An open stream, counted for as long as it is held.
pub struct Watching {
    reach: Arc<Reach>,
    teams: Vec<Option<String>>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut watching = self.reach.watching.lock();
        for t in &self.teams {
            if let Some(n) = watching.get_mut(t) {
                *n -= 1;
                if *n == 0 {
                    watching.remove(t);
                }
            }
        }
    }
}

impl Reach {
    pub fn new(care_teams: &[String]) -> Reach {
        let teams = if care_teams.is_empty() {
            vec![vigil_alerting::DEFAULT_CARE_TEAM.to_string()]
        } else {
            care_teams.to_vec()
        };
        Reach {
            teams,
            notified: OnceLock::new(),
            watching: Mutex::new(HashMap::new()),
        }
    }

    /// Records the notifiers' care teams (once, at start).
    pub fn set_notified(&self, notifiers: impl Iterator<Item = Vec<String>>) {
        let _ = self.notified.set(notifiers.collect());
    }

    /// Counts a stream open on `care_teams` (empty: every team) until the guard drops.
    pub fn watch(self: &Arc<Reach>, care_teams: &[String]) -> Watching {
        let teams: Vec<Option<String>> = if care_teams.is_empty() {
            vec![None]
        } else {
            care_teams.iter().cloned().map(Some).collect()
        };
        let mut watching = self.watching.lock();
        for t in &teams {
            *watching.entry(t.clone()).or_default() += 1;
        }
        Watching {
            reach: self.clone(),
            teams,
        }
    }

    fn notifier_reaches(&self, team: &str) -> bool {
        self.notified.get().is_some_and(|n| {
            n.iter()
                .any(|t| t.is_empty() || t.iter().any(|t| t == team))
        })
    }

    /// The care teams no notifier reaches.
    pub fn without_notifier(&self) -> Vec<String> {
        self.teams
            .iter()
            .filter(|t| !self.notifier_reaches(t))
            .cloned()
            .collect()
    }

    /// Every care team, and whether a notifier or an open stream reaches it now.
    pub fn teams(&self) -> Vec<(&str, bool)> {
        let watching = self.watching.lock();
        let everyone = watching.contains_key(&None);
        self.teams
            .iter()
            .map(|t| {
                let watched = everyone || watching.contains_key(&Some(t.clone()));
                (t.as_str(), watched || self.notifier_reaches(t))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_is_reached_by_a_notifier_or_by_an_open_stream() {
        let reach = Arc::new(Reach::new(&["ward".into(), "home".into(), "icu".into()]));
        reach.set_notified([vec!["icu".to_string()]].into_iter());
        assert_eq!(reach.without_notifier(), ["ward", "home"]);
        let unreached = |r: &Reach| -> Vec<String> {
            r.teams()
                .into_iter()
                .filter(|(_, reached)| !reached)
                .map(|(t, _)| t.to_string())
                .collect()
        };
        assert_eq!(unreached(&reach), ["ward", "home"]);
        let board = reach.watch(&["ward".into()]);
        assert_eq!(unreached(&reach), ["home"]);
        {
            let _admin = reach.watch(&[]);
            assert!(unreached(&reach).is_empty());
        }
        drop(board);
        assert_eq!(unreached(&reach), ["ward", "home"]);
    }
}
