//! What makes a patient profile invalid, checked the same way whether it comes from the
//! configuration file or from `Patients.Enroll`: the id, the care team, the tier, the
//! SpO2 scale, the time zone, and each override against the rule it overrides.

use std::collections::HashSet;

use crate::patient::PatientProfile;
use crate::rule::Rule;
use crate::rule_spec::TIERS;

/// Where a profile's overrides look their rules up, and what to call that set in messages.
pub struct RuleLookup<'r, F: Fn(&str) -> Option<&'r Rule>> {
    pub get: F,
    /// "the built-in rule set", "[[rules]]", "the rules in force".
    pub source: &'static str,
}

/// Every problem of `profile`, each a sentence without the patient's id. `care_teams`
/// lists the teams that exist; empty means any team is accepted.
pub fn problems<'r, F: Fn(&str) -> Option<&'r Rule>>(
    profile: &PatientProfile,
    rules: &RuleLookup<'r, F>,
    care_teams: &HashSet<String>,
) -> Vec<String> {
    let mut found = Vec::new();
    if let Err(rejection) = vigil_ingest::validate_patient_id(&profile.id) {
        found.push(format!("patient id: {}", rejection.detail));
    }
    if !care_teams.is_empty() && !care_teams.contains(&*profile.care_team) {
        found.push(format!(
            "care team '{}' is not defined in [[care_teams]]",
            profile.care_team
        ));
    }
    for (rule_id, o) in &profile.overrides {
        match (rules.get)(rule_id) {
            Some(rule) => found.extend(
                rule.check_override(o)
                    .into_iter()
                    .map(|m| format!("override of '{rule_id}': {m}")),
            ),
            None => found.push(format!(
                "override for unknown rule '{rule_id}' (not in {})",
                rules.source
            )),
        }
    }
    if let Some(tier) = &profile.tier {
        if !TIERS.contains(&&**tier) {
            found.push(format!("tier '{tier}' is not one of A, B, C"));
        }
    }
    if !(1..=2).contains(&profile.spo2_scale) {
        found.push("spo2_scale must be 1 or 2".into());
    }
    if let Some(zone) = &profile.timezone {
        let shaped = !zone.is_empty()
            && zone.len() <= 64
            && !zone.starts_with('/')
            && !zone.contains("..")
            && zone
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
        if !shaped || jiff::tz::TimeZone::get(zone).is_err() {
            found.push(format!(
                "timezone '{}' is not a known IANA time zone (e.g. Asia/Shanghai, Europe/London, UTC)",
                zone.escape_default()
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::builtin_rules;
    use crate::overrides::RuleOverride;

    #[test]
    fn every_problem_is_found_and_named() {
        let rules = builtin_rules();
        let lookup = RuleLookup {
            get: |id: &str| rules.iter().find(|r| &*r.id == id),
            source: "the built-in rule set",
        };
        let teams: HashSet<String> = ["cardiology".to_string()].into();
        let mut p = PatientProfile::open("p-1");
        p.care_team = "cardiology".into();
        assert!(problems(&p, &lookup, &teams).is_empty());

        p.care_team = "oncology".into();
        p.tier = Some("Z".into());
        p.spo2_scale = 3;
        p.overrides = vec![
            ("nope".into(), RuleOverride::default()),
            (
                "tachycardia".into(),
                RuleOverride {
                    below: Some(50.0),
                    ..RuleOverride::default()
                },
            ),
        ];
        let found = problems(&p, &lookup, &teams);
        assert_eq!(found.len(), 5, "{found:?}");
        assert!(found[0].contains("care team 'oncology' is not defined"));
        assert!(found[1].contains("unknown rule 'nope' (not in the built-in rule set)"));
        assert!(found[2].contains("override of 'tachycardia'"));
        assert!(
            problems(&p, &lookup, &HashSet::new()).len() == 4,
            "any team"
        );
    }
}
