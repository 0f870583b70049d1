//! The hazard log names, for each mitigation, the tests that verify it
//! (`path/to/file.rs::test_name`). This checks that every one of them exists as a test, so
//! the log cannot rot when a test is renamed or removed, and that every hazard names at
//! least one.

use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate sits in the workspace")
        .to_path_buf()
}

/// The `file.rs::name` references in backticks on `text`'s lines.
fn references(text: &str) -> Vec<(String, String)> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|quoted| quoted.split_once(".rs::"))
        .map(|(file, name)| (format!("{file}.rs"), name.to_string()))
        .collect()
}

/// Whether `source` declares a test function `name`: `fn name(` whose attributes (the
/// attribute and comment lines right above it) include `#[test]` or `#[tokio::test...]`
/// (a proptest's functions carry `#[test]` too).
fn declares_test(source: &str, name: &str) -> bool {
    let lines: Vec<&str> = source.lines().map(str::trim_start).collect();
    lines.iter().enumerate().any(|(i, line)| {
        let declared = line
            .trim_start_matches("async ")
            .strip_prefix("fn ")
            .and_then(|rest| rest.strip_prefix(name))
            .is_some_and(|rest| rest.starts_with('('));
        declared
            && lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.starts_with("#[") || l.starts_with("//"))
                .any(|l| l.starts_with("#[test]") || l.starts_with("#[tokio::test"))
    })
}

#[test]
fn every_test_the_hazard_log_names_exists() {
    let root = repository();
    let log = std::fs::read_to_string(root.join("docs/safety/hazard-log.md"))
        .expect("docs/safety/hazard-log.md");
    let refs = references(&log);
    assert!(refs.len() >= 15, "the log names {} tests", refs.len());
    let missing: Vec<String> = refs
        .iter()
        .filter(|(file, name)| {
            std::fs::read_to_string(root.join(file))
                .map(|source| !declares_test(&source, name))
                .unwrap_or(true)
        })
        .map(|(file, name)| format!("{file}::{name}"))
        .collect();
    assert!(
        missing.is_empty(),
        "the hazard log names tests that do not exist:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_hazard_names_a_test_that_verifies_it() {
    let log = std::fs::read_to_string(repository().join("docs/safety/hazard-log.md"))
        .expect("docs/safety/hazard-log.md");
    let hazards: Vec<&str> = log.split("\n## H-").skip(1).collect();
    assert!(hazards.len() >= 10, "{} hazards", hazards.len());
    for hazard in hazards {
        let title = hazard.lines().next().unwrap_or_default();
        assert!(
            hazard.contains("**Verified by.**") && !references(hazard).is_empty(),
            "hazard H-{title} names no test"
        );
        for field in [
            "**Causes.**",
            "**Harm.**",
            "**Mitigations.**",
            "**Residual.**",
        ] {
            assert!(hazard.contains(field), "hazard H-{title} lacks {field}");
        }
    }
}

#[test]
fn the_check_finds_a_test_and_refuses_what_is_not_one() {
    let source = "#[test]\nfn real_one() {}\n\nfn helper() {}\n#[tokio::test(flavor = \"multi_thread\")]\nasync fn an_async_one() {}\n";
    assert!(declares_test(source, "real_one"));
    assert!(declares_test(source, "an_async_one"));
    assert!(!declares_test(source, "helper"), "not a test");
    assert!(!declares_test(source, "real"), "a prefix is not the name");
    assert_eq!(
        references("see `a/b.rs::c` and `not a ref` and `d.rs::e`"),
        [
            ("a/b.rs".to_string(), "c".to_string()),
            ("d.rs".to_string(), "e".to_string())
        ]
    );
}
