//! Care-team hours against the real server, with its clock set through configuration
//! (`[server] clock_start`) to 20 s before a Monday's 08:00 in Shanghai: a LOW alert of a
//! team that holds after hours is HELD (listed, not delivered) and released as RAISED when
//! the hours begin; a HIGH alert goes out at night at once; a LOW alert of a team with an
//! after-hours cover also reaches the cover.

mod common;

use std::time::Duration;

use common::*;
use vigil_proto::v1;

const WARD: &str = r#"
[server]
clock_start = "2027-01-04T07:59:40+08:00"

[[care_teams]]
id = "home-bp"
hours = { timezone = "Asia/Shanghai", days = "mon-fri", from = "08:00", to = "18:00" }
after_hours = "hold"
holidays = ["2027-02-11"]

[[care_teams]]
id = "cardiology"
hours = { timezone = "Asia/Shanghai", days = "mon-fri", from = "08:00", to = "18:00" }
after_hours = "night"

[[care_teams]]
id = "night"

[[patients]]
id = "p1"
care_team = "home-bp"
consent = true
[[patients]]
id = "p2"
care_team = "cardiology"
consent = true
[[patients]]
id = "p3"
care_team = "home-bp"
consent = true

[[rules]]
id = "bp_raised"
metric = "systolic_bp"
above = 160
severity = "low"

[[rules]]
id = "bp_crisis"
metric = "systolic_bp"
above = 180
severity = "high"
"#;

#[tokio::test]
async fn outside_the_hours_low_alerts_are_held_or_covered_and_high_ones_go_out_at_once() {
    let server = Server::start(Some(WARD));
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    let mut ingest = server.ingest().await;
    for (patient, value) in [("p1", 170.0), ("p3", 200.0), ("p2", 170.0)] {
        ingest
            .publish_batch(v1::ReadingBatch {
                readings: vec![reading(patient, "systolic_bp", value)],
            })
            .await
            .unwrap();
    }
    // Four alerts are open: p1 and p3's LOW ones held, p3's HIGH one and p2's LOW one out.
    let open = eventually(Duration::from_secs(10), "four open alerts", || async {
        let open = server.open_alerts().await;
        (open.len() == 4).then_some(open)
    })
    .await;
    let state = |patient: &str, rule: &str| {
        open.iter()
            .find(|a| a.patient_id == patient && a.rule_id == rule)
            .map(|a| (a.state, a.escalated_to.clone()))
            .unwrap()
    };
    let held = v1::AlertState::Held as i32;
    assert_eq!(state("p1", "bp_raised").0, held);
    assert_eq!(state("p3", "bp_raised").0, held);
    assert_eq!(state("p3", "bp_crisis").0, v1::AlertState::Active as i32);
    let covered = state("p2", "bp_raised");
    assert_eq!(
        covered,
        (v1::AlertState::Active as i32, vec!["night".to_string()])
    );

    // The subscriber got the HIGH alert and the covered one at once, nothing held.
    let mut first = Vec::new();
    for _ in 0..2 {
        let e = next_event(&mut stream).await;
        let a = e.alert.unwrap();
        first.push((a.patient_id, a.rule_id));
    }
    first.sort();
    assert_eq!(
        first,
        [
            ("p2".to_string(), "bp_raised".to_string()),
            ("p3".to_string(), "bp_crisis".to_string())
        ]
    );
    // At 08:00 the held ones are released, as RAISED, with why.
    let mut released = Vec::new();
    while released.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("the held alerts are released when the hours begin")
            .unwrap()
            .unwrap();
        assert_eq!(e.kind, v1::EventKind::Raised as i32);
        assert!(
            e.note.contains("held outside care team home-bp's hours"),
            "{}",
            e.note
        );
        let a = e.alert.unwrap();
        assert_eq!(a.state, v1::AlertState::Active as i32);
        released.push(a.patient_id);
    }
    released.sort();
    assert_eq!(released, ["p1", "p3"]);
    assert!(server
        .stderr()
        .contains("clock_start is for drills and tests only"));
}

#[tokio::test]
async fn hours_are_checked_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vigil.toml");
    std::fs::write(
        &file,
        "[[care_teams]]\nid = \"a\"\nhours = { timezone = \"Asia/Shanghai\", days = \"mon-fri\", from = \"18:00\", to = \"08:00\" }\n\n[[care_teams]]\nid = \"b\"\nafter_hours = \"nobody\"\n",
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(VIGIL)
            .args(["rules", "check"])
            .arg(&file)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    for needle in [
        ":1: care team 'a': `hours`: `to` (08:00) must be later than `from` (18:00)",
        ":5: care team 'b': `after_hours` and `holidays` need `hours`",
        "not 'nobody'",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
}
