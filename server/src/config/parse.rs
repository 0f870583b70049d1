//! Structural parsing of the configuration file: TOML syntax, known sections, known keys
//! and value types. Every problem found is reported with its line, not just the first.

use std::fmt;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::{AtLine, FileConfig};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

const SECTIONS: &str =
    "server, mqtt, auth, audit, fhir, tls, tokens, devices, care_teams, patients, rules, rule_set, notifiers, dispositions, cluster";

/// Parses `text`. Returns every structural problem, sorted by line.
#[cfg(test)]
pub fn parse(text: &str) -> Result<FileConfig, Vec<Diagnostic>> {
    let (config, diags) = parse_partial(text);
    if diags.is_empty() {
        Ok(config)
    } else {
        Err(diags)
    }
}

/// Parses what can be parsed: the entries that are structurally valid, and a diagnostic
/// for every one that is not (so semantic checks can still run on the rest). After a TOML
/// syntax error nothing is returned but the syntax errors.
pub fn parse_partial(text: &str) -> (FileConfig, Vec<Diagnostic>) {
    let lines = LineIndex::new(text);
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    let mut diags: Vec<Diagnostic> = syntax_errors
        .iter()
        .map(|e| lines.diag(e.span().map(|s| s.start), e.message()))
        .collect();
    if !diags.is_empty() {
        // After a syntax error the recovered document is not trustworthy.
        diags.sort();
        return (FileConfig::default(), diags);
    }
    let mut config = FileConfig::default();
    for (key, value) in root.get_ref().iter() {
        let name: &str = key.get_ref();
        match name {
            "server" => {
                if let Some(v) = one(&lines, value, &mut diags, "[server]") {
                    config.server = v;
                }
            }
            "mqtt" => {
                if let Some(v) = one(&lines, value, &mut diags, "[mqtt]") {
                    config.mqtt = v;
                }
            }
            "auth" => {
                if let Some(v) = one(&lines, value, &mut diags, "[auth]") {
                    config.auth = v;
                    config.auth_line = lines.line_of(key.span().start);
                }
            }
            "audit" => {
                if let Some(v) = one(&lines, value, &mut diags, "[audit]") {
                    config.audit = v;
                }
            }
            "fhir" => {
                if let Some(v) = one(&lines, value, &mut diags, "[fhir]") {
                    config.fhir = v;
                }
            }
            "tls" => {
                if let Some(v) = one(&lines, value, &mut diags, "[tls]") {
                    let line = lines.line_of(key.span().start);
                    config.tls = Some(AtLine { line, value: v });
                }
            }
            "tokens" => config.tokens = many(&lines, value, &mut diags, "tokens"),
            "devices" => config.devices = many(&lines, value, &mut diags, "devices"),
            "care_teams" => config.care_teams = many(&lines, value, &mut diags, "care_teams"),
            "patients" => config.patients = many(&lines, value, &mut diags, "patients"),
            "rules" => config.rules = Some(many(&lines, value, &mut diags, "rules")),
            "rule_set" => {
                if let Some(v) = one(&lines, value, &mut diags, "[rule_set]") {
                    config.rule_set = v;
                }
            }
            "notifiers" => config.notifiers = many(&lines, value, &mut diags, "notifiers"),
            "cluster" => {
                if let Some(v) = one(&lines, value, &mut diags, "[cluster]") {
                    let line = lines.line_of(key.span().start);
                    config.cluster = Some(AtLine { line, value: v });
                }
            }
            "dispositions" => config.dispositions = many(&lines, value, &mut diags, "dispositions"),
            other => diags.push(lines.diag(
                Some(key.span().start),
                &format!("unknown key `{other}`; expected one of: {SECTIONS}"),
            )),
        }
    }
    diags.sort();
    (config, diags)
}

fn one<T: DeserializeOwned>(
    lines: &LineIndex,
    value: &Spanned<DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
    what: &str,
) -> Option<T> {
    if !value.get_ref().is_table() {
        diags.push(lines.diag(Some(value.span().start), &format!("{what} must be a table")));
        return None;
    }
    deserialize(lines, value, diags)
}

fn many<T: DeserializeOwned>(
    lines: &LineIndex,
    value: &Spanned<DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
    what: &str,
) -> Vec<AtLine<T>> {
    let Some(items) = value.get_ref().as_array() else {
        diags.push(lines.diag(
            Some(value.span().start),
            &format!("`{what}` must be an array of tables: write [[{what}]]"),
        ));
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let line = lines.line_of(item.span().start);
            deserialize(lines, item, diags).map(|value| AtLine { line, value })
        })
        .collect()
}

fn deserialize<T: DeserializeOwned>(
    lines: &LineIndex,
    value: &Spanned<DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(value.clone())) {
        Ok(v) => Some(v),
        Err(e) => {
            let at = e.span().map(|s| s.start).unwrap_or(value.span().start);
            diags.push(lines.diag(Some(at), e.message()));
            None
        }
    }
}

/// Maps byte offsets to 1-based line numbers.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }

    fn diag(&self, offset: Option<usize>, message: &str) -> Diagnostic {
        Diagnostic {
            line: offset.map(|o| self.line_of(o)).unwrap_or(1),
            message: message.trim().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<Diagnostic> {
        parse(text).unwrap_err()
    }

    #[test]
    fn contract_example_parses() {
        let text = r#"
[server]
mqtt_addr = "127.0.0.1:1883"

[[care_teams]]
id = "cardiology"
escalate_after = "15m"

[[patients]]
id = "p-001"
care_team = "cardiology"
consent = true
overrides = { "tachycardia" = { above = 130 } }

[[rules]]
id = "tachycardia"
metric = "heart_rate"
above = 120
for = "30s"
clear = 110
severity = "high"
message = "Heart rate above 120/min for 30 s"
"#;
        let c = parse(text).unwrap();
        assert_eq!(c.server.mqtt_addr.unwrap().port(), 1883);
        assert_eq!(c.care_teams[0].value.escalate_after.unwrap().as_secs(), 900);
        assert_eq!(c.patients[0].line, 9, "the [[patients]] header line");
        assert_eq!(
            c.patients[0].value.overrides["tachycardia"].above,
            Some(130.0)
        );
        let rules = c.rules.unwrap();
        assert_eq!(rules[0].line, 15);
        assert_eq!(rules[0].value.hold.unwrap().as_secs(), 30);
    }

    #[test]
    fn unknown_keys_are_named_with_their_lines() {
        let text = "[server]\nmqtt_adr = \"127.0.0.1:1\"\n\n[[rules]]\nid = \"x\"\nmetric = \"heart_rate\"\nabove = 1\nsevrity = \"high\"\n\n[alerting]\nx = 1\n";
        let e = errors(text);
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!(e[0].line, 2);
        assert!(e[0].message.contains("mqtt_adr"), "{}", e[0]);
        assert_eq!(e[1].line, 8);
        assert!(e[1].message.contains("sevrity"), "{}", e[1]);
        assert_eq!(e[2].line, 10);
        assert!(e[2].message.contains("alerting"), "{}", e[2]);
    }

    #[test]
    fn bad_values_report_their_line() {
        let text = "[[rules]]\nid = \"a\"\nmetric = \"heart_rate\"\nabove = 1\nfor = \"thirty seconds\"\n\n[[rules]]\nid = \"b\"\nmetric = \"spo2\"\nbelow = \"low\"\n";
        let e = errors(text);
        assert_eq!(
            e.iter().map(|d| d.line).collect::<Vec<_>>(),
            vec![5, 10],
            "{e:?}"
        );
    }

    #[test]
    fn syntax_errors_have_lines() {
        let e = errors("[server]\nmqtt_addr = \n");
        assert_eq!(e[0].line, 2, "{e:?}");
    }
}
