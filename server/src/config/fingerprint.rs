//! What must be alike on every node of a cluster, as a short digest per section of the
//! configuration: the tokens (and whether authentication is on), the configured rules,
//! patients, devices and care teams. Changes made while the cluster runs go through its
//! catalog; these come from each node's file, so nodes publish their digests and compare
//! them (`vigil_cluster_config_differs`).

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use super::Compiled;

/// Section name → digest (16 hex digits).
pub type Fingerprints = BTreeMap<String, String>;

pub fn of(compiled: &Compiled) -> Fingerprints {
    let auth = &compiled.auth;
    let mut tokens: Vec<String> = auth
        .tokens
        .iter()
        .map(|(digest, p)| format!("{} {} {:?}", digest.to_hex(), p.name, p.role))
        .collect();
    tokens.push(format!("enabled {}", auth.enabled));
    let sections: [(&str, Vec<String>); 5] = [
        ("tokens", tokens),
        (
            "rules",
            compiled.rules.iter().map(|r| format!("{r:?}")).collect(),
        ),
        ("patients", compiled.patients.iter().map(json).collect()),
        ("devices", auth.devices.iter().map(json).collect()),
        ("care_teams", compiled.care_teams.clone()),
    ];
    sections
        .into_iter()
        .map(|(name, mut lines)| {
            lines.sort();
            let mut hash = Sha256::new();
            for line in &lines {
                hash.update(line.as_bytes());
                hash.update(b"\n");
            }
            let digest = hash.finalize();
            (name.to_string(), crate::auth::token::hex(&digest[..8]))
        })
        .collect()
}

/// JSON text of a configured item.
fn json<T: serde::Serialize>(item: &T) -> String {
    serde_json::to_string(item).unwrap_or_default()
}

/// The sections in which `theirs` differs from `mine` (a section only one has counts).
pub fn differing<'a>(mine: &'a Fingerprints, theirs: &Fingerprints) -> Vec<&'a str> {
    mine.iter()
        .filter(|(section, digest)| theirs.get(*section) != Some(*digest))
        .map(|(section, _)| section.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_gives_the_same_digests_and_a_changed_section_differs() {
        let file = |extra: &str| {
            let text = format!(
                "[[rules]]\nid = \"hr_high\"\nmetric = \"heart_rate\"\nabove = 120\n\n[[patients]]\nid = \"p1\"\n{extra}"
            );
            of(&super::super::load_str(&text).unwrap().1)
        };
        let (a, b) = (file(""), file(""));
        assert_eq!(a, b);
        assert!(differing(&a, &b).is_empty());
        let c = file("\n[[patients]]\nid = \"p2\"\n");
        assert_eq!(differing(&a, &c), vec!["patients"]);
        assert_eq!(a.len(), 5);
    }
}
