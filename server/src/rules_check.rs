//! `vigil rules check FILE`: validates a configuration file and prints every error with
//! its line, or a summary of what the file configures.

use std::path::Path;

use crate::config::{self, Diagnostic};

/// Loads and validates a configuration file: syntax, keys, types, then semantics.
pub fn load(path: &Path) -> Result<(config::FileConfig, config::Compiled), Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            line: 0,
            message: format!("cannot read {}: {e}", path.display()),
        }]
    })?;
    config::load_str(&text)
}

/// Formats diagnostics as `FILE:LINE: message`, one per line.
pub fn render(path: &Path, diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| format!("{}:{}: {}", path.display(), d.line, d.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the command; returns the process exit code.
pub fn run(path: &Path) -> i32 {
    match load(path) {
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
