//! Rule-set versions: every change of the rules in force (a configuration file that
//! differs from the last one loaded, a rule put or deleted at run time) makes a new
//! version, numbered one past the last and named by a hash of the rules' content, with who
//! approved it and when. Alerts record the version they were raised under, so a review
//! after the fact knows which rule set, approved by whom, was in force.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::rule::Rule;

/// Who approved a change of the rules in force, and what the change was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The person (or token) who made or approved the change; "" when nobody was named
    /// (a configuration file without `[rule_set] approved_by`).
    pub by: String,
    /// A second person who approved it, when the organisation asks for two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second: Option<String>,
    /// Server time of the change, Unix epoch milliseconds.
    pub at_ms: i64,
    /// What changed: `configuration file`, `rule 'x' put`, `rule 'x' deleted`.
    pub change: String,
    /// The version's number when the caller decides it (a cluster numbers versions by the
    /// catalog's revision, alike on every node); `None`: one past the previous version.
    #[serde(skip)]
    pub number: Option<u64>,
}

/// One version of the rules in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSetVersion {
    /// Increases with every change; 0 only before any rule set was loaded.
    pub number: u64,
    /// SHA-256 (hex) of the rules' content ([`content_hash`]): equal for equal rule sets,
    /// whatever their order or the Vigil that loaded them.
    pub hash: Arc<str>,
    pub approval: Approval,
}

impl RuleSetVersion {
    /// The version that follows `self` once `rules` are in force, as `approval` says.
    pub fn next(&self, rules: &[Rule], approval: Approval) -> RuleSetVersion {
        RuleSetVersion {
            number: approval.number.unwrap_or(self.number + 1),
            hash: content_hash(rules).into(),
            approval,
        }
    }

    /// The hash's first 12 digits, as people quote it (`v7 3f2a9c01b4de`).
    pub fn short_hash(&self) -> &str {
        &self.hash[..self.hash.len().min(12)]
    }
}

/// SHA-256 (hex) over the rules' content in a canonical form: one line per rule, sorted by
/// id, with its kind, metric, severity, parameters ([`crate::RuleKind::parameters`]),
/// messages, routing, scope and inhibitions. Two rule sets with the same hash judge every
/// reading alike.
pub fn content_hash(rules: &[Rule]) -> String {
    let mut lines: Vec<String> = rules.iter().map(canonical).collect();
    lines.sort();
    let mut hasher = Sha256::new();
    for line in &lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One rule as a line; fields are separated by tabs and free text is escaped, so that no
/// two different rules share a line.
fn canonical(rule: &Rule) -> String {
    let text = |s: &str| s.escape_default().to_string();
    let list = |items: &[Arc<str>]| {
        let mut items: Vec<String> = items.iter().map(|i| text(i)).collect();
        items.sort();
        items.join(",")
    };
    [
        text(&rule.id),
        rule.kind_name().to_string(),
        rule.metric().map_or("", |m| m.name()).to_string(),
        rule.severity.as_str().to_string(),
        rule.kind.parameters(),
        text(rule.message.as_deref().unwrap_or("")),
        text(rule.patient_message.as_deref().unwrap_or("")),
        text(rule.care_team.as_deref().unwrap_or("")),
        list(&rule.conditions),
        list(&rule.tiers),
        list(&rule.supersedes),
    ]
    .join("\t")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule_spec::RuleSpec;

    fn rule(id: &str, above: f64) -> Rule {
        RuleSpec {
            id: id.into(),
            metric: Some("heart_rate".into()),
            above: Some(above),
            ..RuleSpec::default()
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn the_hash_follows_content_not_order() {
        let (a, b) = (rule("a", 120.0), rule("b", 130.0));
        let one = content_hash(&[a.clone(), b.clone()]);
        assert_eq!(one, content_hash(&[b.clone(), a.clone()]));
        assert_eq!(one.len(), 64);
        assert_ne!(one, content_hash(&[a.clone(), rule("b", 131.0)]));
        assert_ne!(one, content_hash(&[a]));
        let mut routed = b.clone();
        routed.care_team = Some("cardiology".into());
        assert_ne!(content_hash(&[routed]), content_hash(&[b]));
    }

    #[test]
    fn versions_count_up_unless_the_caller_numbers_them() {
        let rules = [rule("a", 120.0)];
        let first = RuleSetVersion::default().next(&rules, Approval::default());
        assert_eq!(first.number, 1);
        let second = first.next(
            &rules,
            Approval {
                by: "dr.li".into(),
                ..Approval::default()
            },
        );
        assert_eq!((second.number, &*second.approval.by), (2, "dr.li"));
        assert_eq!(second.hash, first.hash);
        let numbered = second.next(
            &rules,
            Approval {
                number: Some(41),
                ..Approval::default()
            },
        );
        assert_eq!(numbered.number, 41);
        assert_eq!(numbered.short_hash().len(), 12);
    }
}
