//! Accountability against the real server, over gRPC and the console's HTTP API: a
//! patient's responsible clinician as the default assignee, claim, assign and the shift
//! handover (with the newest note per alert), and who did each in the alert's history.

mod common;

use std::time::Duration;

use common::web::Web;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use tonic::Code;
use vigil_proto::v1;

const WARD: &str = r#"
[[care_teams]]
id = "cardiology"

[[patients]]
id = "p1"
care_team = "cardiology"
consent = true
responsible = "dr.ode"
[[patients]]
id = "p2"
care_team = "cardiology"
consent = true

[[rules]]
id = "bp_high"
metric = "systolic_bp"
above = 180
clear = 160
severity = "high"
"#;

async fn alert_of(server: &Server, patient: &str) -> v1::Alert {
    server
        .open_alerts()
        .await
        .into_iter()
        .find(|a| a.patient_id == patient)
        .unwrap()
}

#[tokio::test]
async fn claim_assign_and_handover_say_who_answers_for_each_alert() {
    let server = Server::start(Some(WARD));
    server
        .ingest()
        .await
        .publish_batch(v1::ReadingBatch {
            readings: vec![
                reading("p1", "systolic_bp", 200.0),
                reading("p2", "systolic_bp", 205.0),
            ],
        })
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "two alerts", || async {
        (server.open_alerts().await.len() == 2).then_some(())
    })
    .await;
    let mut alerts = server.alerts().await;
    // The responsible clinician answers for p1's alert from the start; p2 has nobody.
    let (p1, p2) = (alert_of(&server, "p1").await, alert_of(&server, "p2").await);
    assert_eq!(p1.assignee, "dr.ode");
    assert_eq!(p2.assignee, "");

    let claimed = alerts
        .claim(v1::ClaimRequest {
            alert_id: p2.id.clone(),
            by: "nurse.kim".into(),
            note: "calling her".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(claimed.assignee, "nurse.kim");
    let assigned = alerts
        .assign(v1::AssignRequest {
            alert_id: p1.id.clone(),
            assignee: "nurse.kim".into(),
            by: "charge.lee".into(),
            note: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(assigned.assignee, "nurse.kim");
    let bad = alerts
        .assign(v1::AssignRequest {
            alert_id: p1.id.clone(),
            assignee: "nurse kim\n".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    // The evening shift hands over: both alerts go to the night nurse in one action.
    let moved = alerts
        .handover(v1::HandoverRequest {
            care_team: "cardiology".into(),
            from: "nurse.kim".into(),
            to: "nurse.ode".into(),
            by: "nurse.kim".into(),
            note: "night shift".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(moved.len(), 2);
    assert!(server
        .open_alerts()
        .await
        .iter()
        .all(|a| a.assignee == "nurse.ode"));
    let missing = alerts
        .handover(v1::HandoverRequest {
            care_team: "cardiology".into(),
            from: "nurse.ode".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);

    // Who did what is in the history.
    let history = alerts
        .history(v1::HistoryRequest {
            alert_id: p2.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let assigned: Vec<(String, String)> = history
        .iter()
        .filter(|e| e.kind == v1::EventKind::Assigned as i32)
        .map(|e| (e.by.clone(), e.note.clone()))
        .collect();
    assert_eq!(
        assigned,
        [
            (
                "nurse.kim".to_string(),
                "claimed by nurse.kim: calling her".to_string()
            ),
            (
                "nurse.kim".to_string(),
                "assigned to nurse.ode: night shift".to_string()
            ),
        ]
    );

    // The console's handover view: every open alert, who answers for it, its newest note.
    let web = Web::open(server.http).await;
    let view = web.get_json("/api/handover?care_team=cardiology").await;
    assert_eq!(
        (view["claimed"].as_u64(), view["unclaimed"].as_u64()),
        (Some(2), Some(0))
    );
    let notes: Vec<&str> = view["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["last_note"]["note"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["assigned to nurse.ode: night shift"; 2]);
    // The open console claims one, then hands its alerts on.
    let res = web
        .post(&format!("/api/alerts/{}/claim", p1.id), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(alert_of(&server, "p1").await.assignee, "console");
    let res = web
        .post(
            "/api/handover",
            json!({"care_team": "cardiology", "from": "console", "to": "dr.ode"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["handed_over"], 1);
    assert_eq!(alert_of(&server, "p1").await.assignee, "dr.ode");

    // A patient enrolled over gRPC names its responsible clinician too.
    let mut patients =
        vigil_proto::v1::patients_client::PatientsClient::new(channel(&server, None).await);
    patients
        .enroll(v1::Patient {
            id: "p3".into(),
            care_team: "cardiology".into(),
            consent: true,
            responsible: "dr.wu".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let p3 = patients
        .get_patient(v1::GetPatientRequest {
            patient_id: "p3".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p3.responsible, "dr.wu");
}
