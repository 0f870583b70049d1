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
            0
        }
        Err(diags) => {
            eprintln!("{}", render(path, &diags));
            eprintln!("{}: {} error(s)", path.display(), diags.len());
            1
        }
    }
}
