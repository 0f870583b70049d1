//! `vigil rules diff BEFORE AFTER`: what changed between two rule files, for the person
//! who approves a change before it goes live: rules added and removed, and each changed
//! key of a rule with its old and new value, keys and durations as the file writes them.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use vigil_alerting::parameters::duration;
use vigil_alerting::RuleSpec;

use crate::config::{self, spec_from_entry};

/// A key of a rule that changed: (key, before, after), values as the file writes them
/// (`None`: not set).
pub type KeyChange = (String, Option<String>, Option<String>);

/// What changed between two sets of rules.
#[derive(Debug, Default, PartialEq)]
pub struct RulesDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Per rule, each key that changed.
    pub changed: Vec<(String, Vec<KeyChange>)>,
    pub unchanged: usize,
}

impl RulesDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Runs the command; returns the exit code (0: no change, 1: changes, 2: a file could not
/// be read or parsed).
pub fn run(before: &Path, after: &Path) -> i32 {
    let (a, b) = match (rules_of(before), rules_of(after)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let diff = diff(&a, &b);
    print!("{}", render(&diff, &b));
    println!(
        "{} -> {}: {} added, {} removed, {} changed, {} unchanged",
        before.display(),
        after.display(),
        diff.added.len(),
        diff.removed.len(),
        diff.changed.len(),
        diff.unchanged
    );
    i32::from(!diff.is_empty())
}

/// The rules a file puts in force: its `[[rules]]`, or the built-in set when it has none.
/// Syntax errors are refused with their lines; a rule need not be valid to be compared.
fn rules_of(path: &Path) -> Result<Vec<RuleSpec>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let (parsed, diags) = config::parse_partial(&text);
    if !diags.is_empty() {
        return Err(config::render(path, &diags));
    }
    Ok(match parsed.rules {
        None => vigil_alerting::builtin::specs(),
        Some(entries) => entries.iter().map(|e| spec_from_entry(&e.value)).collect(),
    })
}

/// Rules are matched by id; keys compared as the file writes them.
pub fn diff(before: &[RuleSpec], after: &[RuleSpec]) -> RulesDiff {
    let by_id = |rules: &[RuleSpec]| -> BTreeMap<String, BTreeMap<String, String>> {
        rules.iter().map(|r| (r.id.clone(), keys_of(r))).collect()
    };
    let (a, b) = (by_id(before), by_id(after));
    let mut out = RulesDiff::default();
    for (id, keys) in &b {
        match a.get(id) {
            None => out.added.push(id.clone()),
            Some(old) if old == keys => out.unchanged += 1,
            Some(old) => {
                let names: std::collections::BTreeSet<&String> =
                    old.keys().chain(keys.keys()).collect();
                let changes = names
                    .into_iter()
                    .filter(|k| old.get(*k) != keys.get(*k))
                    .map(|k| (k.clone(), old.get(k).cloned(), keys.get(k).cloned()))
                    .collect();
                out.changed.push((id.clone(), changes));
            }
        }
    }
    out.removed = a
        .keys()
        .filter(|id| !b.contains_key(*id))
        .cloned()
        .collect();
    out
}

/// The keys a rule sets, named and written as in a rule file (`for = "30s"`).
fn keys_of(rule: &RuleSpec) -> BTreeMap<String, String> {
    let Value::Object(fields) = serde_json::to_value(rule).expect("a rule serializes") else {
        unreachable!("a rule is a struct");
    };
    fields
        .into_iter()
        .filter(|(k, v)| k != "id" && !v.is_null() && *v != Value::Array(Vec::new()))
        .map(|(k, v)| match k.strip_suffix("_ms") {
            Some(name) => {
                let ms = v.as_i64().unwrap_or_default().max(0);
                let name = if name == "hold" { "for" } else { name };
                (name.to_string(), format!("\"{}\"", duration(ms)))
            }
            None => (k, v.to_string()),
        })
        .collect()
}

/// One line per rule added or removed, and per key changed.
fn render(diff: &RulesDiff, after: &[RuleSpec]) -> String {
    let mut out = String::new();
    for id in &diff.added {
        let rule = after.iter().find(|r| &r.id == id);
        let what = rule.map_or(String::new(), |r| {
            format!(
                " ({} {})",
                r.kind.as_deref().unwrap_or("threshold"),
                r.metric.as_deref().unwrap_or("news2")
            )
        });
        out.push_str(&format!("+ {id}{what}\n"));
    }
    for id in &diff.removed {
        out.push_str(&format!("- {id}\n"));
    }
    let unset = || "(unset)".to_string();
    for (id, changes) in &diff.changed {
        for (key, old, new) in changes {
            out.push_str(&format!(
                "~ {id}: {key} {} -> {}\n",
                old.clone().unwrap_or_else(unset),
                new.clone().unwrap_or_else(unset)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, above: Option<f64>, hold_ms: Option<i64>) -> RuleSpec {
        RuleSpec {
            id: id.into(),
            metric: Some("heart_rate".into()),
            above,
            hold_ms,
            ..RuleSpec::default()
        }
    }

    #[test]
    fn added_removed_and_changed_keys_are_named_as_the_file_writes_them() {
        let before = [
            rule("tachycardia", Some(120.0), Some(30_000)),
            rule("gone", Some(150.0), None),
            rule("same", Some(100.0), None),
        ];
        let mut tighter = rule("tachycardia", Some(130.0), Some(60_000));
        tighter.conditions = vec!["heart_failure".into()];
        let after = [
            tighter,
            rule("same", Some(100.0), None),
            rule("new", None, None),
        ];
        let d = diff(&before, &after);
        assert_eq!(d.added, ["new"]);
        assert_eq!(d.removed, ["gone"]);
        assert_eq!(d.unchanged, 1);
        let text = render(&d, &after);
        assert!(text.contains("+ new (threshold heart_rate)\n"), "{text}");
        assert!(text.contains("- gone\n"), "{text}");
        assert!(
            text.contains("~ tachycardia: above 120.0 -> 130.0\n"),
            "{text}"
        );
        assert!(
            text.contains("~ tachycardia: for \"30s\" -> \"1m\"\n"),
            "{text}"
        );
        assert!(
            text.contains("~ tachycardia: conditions (unset) -> [\"heart_failure\"]\n"),
            "{text}"
        );
        assert!(!text.contains("same"), "{text}");
    }

    #[test]
    fn days_are_written_as_a_rule_file_writes_them() {
        const DAY: i64 = 86_400_000;
        let before = [rule("long", Some(1.0), Some(7 * DAY))];
        let after = [rule("long", Some(1.0), Some(30 * DAY + 3_600_000))];
        let text = render(&diff(&before, &after), &after);
        assert!(text.contains("~ long: for \"7d\" -> \"30d1h\"\n"), "{text}");
    }

    #[test]
    fn the_same_rules_in_another_order_are_no_change() {
        let a = [rule("a", Some(1.0), None), rule("b", Some(2.0), None)];
        let b = [rule("b", Some(2.0), None), rule("a", Some(1.0), None)];
        assert!(diff(&a, &b).is_empty());
        assert_eq!(diff(&a, &b).unchanged, 2);
    }
}
