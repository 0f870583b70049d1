//! `vigil rules check FILE`: validates a configuration file and prints every error with
//! its line, or a summary of what the file configures.

use std::path::Path;

use crate::config::{load_file, render};

/// Runs the command; returns the process exit code.
pub fn run(path: &Path) -> i32 {
    match load_file(path) {
        Ok((_, c)) => {
            println!(
                "{}: OK: {} rules ({}), {} patients ({}), {} care teams",
                path.display(),
                c.rules.len(),
                if c.builtin_rules {
                    "built-in set"
                } else {
                    "from [[rules]]"
                },
                c.patients.len(),
                if c.open_enrollment {
                    "open enrolment: every patient accepted"
                } else {
                    "only these accepted"
                },
                c.care_teams.len()
            );
            // What the server will name these rules, for whoever approves the file.
            let by = c.rule_set.approved_by.as_deref().unwrap_or_default();
            println!(
                "rule set hash {}, {}{}",
                vigil_alerting::rule_version::content_hash(&c.rules),
                super::rules::approved_by(
                    by,
                    c.rule_set.second_approver.as_deref().unwrap_or_default()
                ),
                if by.is_empty() {
                    " ([rule_set] approved_by)"
                } else {
                    ""
                }
            );
            0
        }
        Err(diags) => {
            eprintln!("{}", render(path, &diags));
            eprintln!("{}: {} error(s)", path.display(), diags.len());
            1
        }
    }
}
