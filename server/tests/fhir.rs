//! FHIR R4 ingest against the real server with a real HTTP client: vital-signs
//! Observations in the shape of the specification's examples become readings (and alerts
//! on the gRPC stream where the values call for them); Bundles in batch and transaction;
//! every error an OperationOutcome naming the element at fault; bearer tokens with
//! `[auth]`.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use vigil_proto::v1;

const RULES: &str = r#"
[fhir]
max_body_bytes = 65536

[[rules]]
id = "hr_high"
metric = "heart_rate"
above = 120
severity = "high"

[[rules]]
id = "spo2_low"
metric = "spo2"
below = 90
severity = "high"

[[rules]]
id = "fever"
metric = "temperature"
above = 38.5
severity = "medium"

[[rules]]
id = "bp_high"
metric = "systolic_bp"
above = 160
severity = "high"

[[rules]]
id = "weight_high"
metric = "weight"
above = 80
severity = "low"
"#;

fn now_text(minutes_ago: i64) -> String {
    let t = std::time::SystemTime::now() - Duration::from_secs(60 * minutes_ago as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A vital-signs Observation in the shape of the specification's examples.
fn observation(patient: &str, code: &str, value: f64, ucum: &str, id: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "id": id,
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{id}")}],
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}], "text": "vital sign"},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": now_text(1),
        "performer": [{"reference": "Practitioner/example"}],
        "valueQuantity": {"value": value, "unit": ucum, "system": "http://unitsofmeasure.org", "code": ucum}
    })
}

fn blood_pressure(patient: &str, systolic: f64, diastolic: f64) -> Value {
    let component = |code: &str, v: f64| {
        json!({"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
               "valueQuantity": {"value": v, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}})
    };
    json!({
        "resourceType": "Observation", "id": "blood-pressure", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectivePeriod": {"start": now_text(2)},
        "component": [component("8480-6", systolic), component("8462-4", diastolic)]
    })
}

struct Fhir {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Fhir {
    fn new(server: &Server, token: Option<&str>) -> Fhir {
        Fhir {
            http: common::web::Web::new(server.http).http,
            base: format!("http://{}", server.http),
            token: token.map(str::to_string),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.post_raw(
            path,
            "application/fhir+json",
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    async fn post_raw(&self, path: &str, media: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", media)
            .body(body);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        assert!(
            response.headers().get("location").is_none(),
            "nothing is stored: no Location"
        );
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

/// An OperationOutcome with at least one issue, each with severity, code and diagnostics.
/// Codes of FHIR R4's IssueType value set that Vigil answers with.
const ISSUE_TYPES: [&str; 12] = [
    "invalid",
    "structure",
    "required",
    "value",
    "login",
    "forbidden",
    "not-supported",
    "business-rule",
    "too-costly",
    "exception",
    "transient",
    "informational",
];

fn assert_outcome(body: &Value) -> &Value {
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    let issue = &body["issue"][0];
    for field in ["severity", "code", "diagnostics"] {
        assert!(issue[field].is_string(), "{field} in {body}");
    }
    assert!(
        ["fatal", "error", "warning", "information"].contains(&issue["severity"].as_str().unwrap()),
        "{body}"
    );
    assert!(
        ISSUE_TYPES.contains(&issue["code"].as_str().unwrap()),
        "{body}"
    );
    issue
}

async fn ingested(server: &Server) -> f64 {
    server
        .metric("vigil_readings_ingested_total{source=\"fhir\"}")
        .await
}

async fn raised(stream: &mut tonic::Streaming<v1::AlertEvent>, patient: &str, rule: &str) {
    loop {
        let e = next_event(stream).await;
        let a = e.alert.unwrap();
        if a.patient_id == patient && a.rule_id == rule {
            return;
        }
    }
}

#[tokio::test]
async fn vital_signs_observations_become_readings_and_alerts() {
    let server = Server::start(Some(RULES));
    let fhir = Fhir::new(&server, None);
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;

    // Each with the readings it must become: (metric, value in the canonical unit).
    let cases = [
        (
            observation("p-hr", "8867-4", 130.0, "/min", "hr-1"),
            "hr_high",
            vec![("heart_rate", 130.0)],
        ),
        (
            observation("p-ox", "2708-6", 85.0, "%", "ox-1"),
            "spo2_low",
            vec![("spo2", 85.0)],
        ),
        (
            observation("p-t", "8310-5", 39.5, "Cel", "t-1"),
            "fever",
            vec![("temperature", 39.5)],
        ),
        // 185 lb = 83.9 kg, above 80.
        (
            observation("p-w", "29463-7", 185.0, "[lb_av]", "w-1"),
            "weight_high",
            vec![("weight", 185.0 * 0.453_592_37)],
        ),
        (
            blood_pressure("p-bp", 167.0, 108.0),
            "bp_high",
            vec![("systolic_bp", 167.0), ("diastolic_bp", 108.0)],
        ),
    ];
    let web = common::web::Web::open(server.http).await;
    for (body, rule, want) in &cases {
        let (status, answer) = fhir.post("/fhir/Observation", body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let issue = assert_outcome(&answer);
        assert_eq!(issue["severity"], "information");
        let patient = body["subject"]["reference"].as_str().unwrap();
        let patient = patient.trim_start_matches("Patient/");
        raised(&mut stream, patient, rule).await;
        // The reading as judged: metric, value (converted), event time.
        let page = web.get_json(&format!("/api/patients/{patient}")).await;
        let effective = body["effectiveDateTime"]
            .as_str()
            .or(body["effectivePeriod"]["start"].as_str())
            .unwrap();
        let taken_ms = humantime::parse_rfc3339(effective)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let series = page["series"].as_array().unwrap();
        assert_eq!(series.len(), want.len(), "{page}");
        for (s, (metric, value)) in series.iter().zip(want) {
            assert_eq!(s["metric"], *metric);
            let got = s["samples"][0][1].as_f64().unwrap();
            assert!((got - value).abs() < 1e-6, "{metric}: {got} != {value}");
            assert_eq!(
                s["samples"][0][0].as_f64(),
                Some(taken_ms as f64),
                "{metric}'s time"
            );
        }
    }
    assert_eq!(ingested(&server).await, 6.0, "the panel is two readings");

    // The same Observation posted again is not judged twice.
    let (status, answer) = fhir.post("/fhir/Observation", &cases[0].0).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        assert_outcome(&answer)["diagnostics"]
            .as_str()
            .unwrap()
            .contains("already received"),
        "{answer}"
    );
    assert_eq!(ingested(&server).await, 6.0);

    let (status, capability) = {
        let r = fhir
            .http
            .get(format!("{}/fhir/metadata", fhir.base))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK);
    assert_eq!(capability["resourceType"], "CapabilityStatement");
    assert_eq!(capability["fhirVersion"], "4.0.1");
    assert_eq!(capability["rest"][0]["resource"][0]["type"], "Observation");
}

#[tokio::test]
async fn what_cannot_be_used_is_refused_with_an_operation_outcome_naming_the_element() {
    let server = Server::start(Some(RULES));
    let fhir = Fhir::new(&server, None);
    let hr = observation("p-1", "8867-4", 72.0, "/min", "e-1");
    let with = |pointer: &str, value: Value| {
        let mut body = hr.clone();
        *body.pointer_mut(pointer).unwrap() = value;
        body
    };
    let cases = [
        (
            with("/code/coding/0/code", json!("1234-5")),
            "Observation.code.coding",
        ),
        (
            with("/valueQuantity/code", json!("kg")),
            "Observation.valueQuantity.code",
        ),
        (
            with("/valueQuantity/value", json!(900)),
            "Observation.valueQuantity.value",
        ),
        (
            with("/status", json!("entered-in-error")),
            "Observation.status",
        ),
        (
            with("/subject/reference", json!("Group/g-1")),
            "Observation.subject.reference",
        ),
        (
            with("/effectiveDateTime", json!("2020-01-01T00:00:00Z")),
            "Observation.effective[x]",
        ),
        (
            with("/effectiveDateTime", json!("2026-12-04")),
            "Observation.effectiveDateTime",
        ),
    ];
    for (body, expression) in &cases {
        let (status, answer) = fhir.post("/fhir/Observation", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        let issue = assert_outcome(&answer);
        assert_eq!(issue["severity"], "error");
        assert_eq!(issue["expression"][0], *expression, "{answer}");
    }
    let mut absent = hr.clone();
    absent.as_object_mut().unwrap().remove("valueQuantity");
    absent["dataAbsentReason"] = json!({"text": "patient refused"});
    let (status, answer) = fhir.post("/fhir/Observation", &absent).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        assert_outcome(&answer)["expression"][0],
        "Observation.dataAbsentReason"
    );

    let (status, answer) = fhir
        .post_raw(
            "/fhir/Observation",
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_outcome(&answer);
    let (status, answer) = fhir
        .post(
            "/fhir/Observation",
            &json!({"resourceType": "Patient", "id": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_outcome(&answer);
    let (status, answer) = fhir
        .post_raw("/fhir/Observation", "text/plain", b"72".to_vec())
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_outcome(&answer);
    let mut huge = hr.clone();
    huge["note"] = json!([{"text": "x".repeat(70_000)}]);
    let (status, answer) = fhir.post("/fhir/Observation", &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_outcome(&answer);
    assert_eq!(ingested(&server).await, 0.0);
    assert!(
        server
            .metric("vigil_readings_rejected_total{reason=\"unknown_unit\"}")
            .await
            >= 1.0
    );
    let metrics = server.scrape().await;
    assert!(
        metrics.contains(
            "vigil_http_request_duration_seconds_count{route=\"/fhir/Observation\",status=\"422\"}"
        ),
        "the request histogram by route and status"
    );
}

#[tokio::test]
async fn a_transaction_is_all_or_nothing_and_a_batch_answers_per_entry() {
    let server = Server::start(Some(RULES));
    let fhir = Fhir::new(&server, None);
    let good = |id: &str| observation("p-1", "8867-4", 72.0, "/min", id);
    let mut bad = good("bad");
    bad["valueQuantity"]["code"] = json!("kg");
    let bundle = |kind: &str| {
        json!({"resourceType": "Bundle", "type": kind, "entry": [
            {"fullUrl": "urn:uuid:a", "resource": good("a"), "request": {"method": "POST", "url": "Observation"}},
            {"fullUrl": "urn:uuid:b", "resource": bad, "request": {"method": "POST", "url": "Observation"}},
            {"fullUrl": "urn:uuid:c", "resource": good("c"), "request": {"method": "POST", "url": "Observation"}},
        ]})
    };
    let (status, answer) = fhir.post("/fhir", &bundle("transaction")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let issue = assert_outcome(&answer);
    assert_eq!(
        issue["expression"][0],
        "Bundle.entry[1].resource.valueQuantity.code"
    );
    assert!(issue["diagnostics"].as_str().unwrap().contains("entry 1"));
    assert_eq!(ingested(&server).await, 0.0, "nothing of the transaction");

    let (status, answer) = fhir.post("/fhir", &bundle("batch")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["type"], "batch-response");
    let statuses: Vec<&str> = answer["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["200 OK", "422 Unprocessable Entity", "200 OK"]);
    assert_outcome(&answer["entry"][1]["response"]["outcome"]);
    assert_eq!(ingested(&server).await, 2.0);

    let mut whole = bundle("transaction");
    whole["entry"].as_array_mut().unwrap().remove(1);
    let (status, answer) = fhir.post("/fhir", &whole).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["type"], "transaction-response");
    assert_eq!(answer["entry"].as_array().unwrap().len(), 2);
    let (status, answer) = fhir
        .post(
            "/fhir",
            &json!({"resourceType": "Bundle", "type": "collection"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_outcome(&answer);
}

#[tokio::test]
async fn with_auth_only_an_ingest_token_may_post() {
    let (gateway, gateway_entry) =
        token_create("ehr", "gateway", &["--patient-prefix", "ward3-"]).await;
    let (nurse, nurse_entry) = token_create("kim", "care_team:ward", &[]).await;
    let config = format!("[auth]\nenabled = true\n\n{gateway_entry}\n{nurse_entry}\n{RULES}");
    let server = Server::start(Some(&config));
    let body = observation("ward3-7", "8867-4", 72.0, "/min", "a-1");
    for (token, want, code) in [
        (None, StatusCode::UNAUTHORIZED, "login"),
        (Some("vigil_not-a-token"), StatusCode::UNAUTHORIZED, "login"),
        (Some(nurse.as_str()), StatusCode::FORBIDDEN, "forbidden"),
    ] {
        let (status, answer) = Fhir::new(&server, token)
            .post("/fhir/Observation", &body)
            .await;
        assert_eq!(status, want, "{answer}");
        assert_eq!(assert_outcome(&answer)["code"], code);
    }
    let ehr = Fhir::new(&server, Some(&gateway));
    let (status, answer) = ehr.post("/fhir/Observation", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let outside = observation("ward4-1", "8867-4", 72.0, "/min", "a-2");
    let (status, answer) = ehr.post("/fhir/Observation", &outside).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(assert_outcome(&answer)["code"], "forbidden");
    assert_eq!(ingested(&server).await, 1.0);
    assert!(
        server
            .metric("vigil_auth_failures_total{reason=\"wrong_role\"}")
            .await
            >= 1.0
    );
}
