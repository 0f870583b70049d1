//! Care-team hours at raise time: a MEDIUM or LOW alert raised outside its team's hours
//! also goes to the `after_hours` team, or is held until the hours begin (the book
//! releases it then, see `Book::release_held`). HIGH always goes out at once.

use super::*;
use crate::alert::Severity;
use crate::hours::AfterHours;

/// What marks an alert held back for care-team hours (in `silenced_by`, which keeps it from
/// subscribers as a silence would).
pub const HELD_MARK: &str = "after-hours";

impl Engine {
    pub(super) fn route_after_hours(&self, alert: &mut Alert, now_ms: i64) {
        if alert.severity >= Severity::High {
            return;
        }
        let policy = self.escalation.load();
        match policy.after_hours(&alert.care_team, now_ms) {
            Some(AfterHours::Team(cover)) if !alert.escalated_to.contains(cover) => {
                alert.escalated_to.push(cover.clone());
            }
            Some(AfterHours::Hold) => {
                alert.state = AlertState::Held;
                alert.silenced_by = Some(HELD_MARK.into());
            }
            _ => {}
        }
    }
}
