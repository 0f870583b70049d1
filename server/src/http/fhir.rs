//! FHIR R4 on the HTTP listener: `POST /fhir/Observation`, `POST /fhir` (a `batch` or
//! `transaction` Bundle of Observations) and `GET /fhir/metadata`. Vigil judges
//! Observations and does not keep them as resources, so success is `200 OK` with an
//! `OperationOutcome` (or a `batch-response` / `transaction-response` Bundle), never a
//! `Location`. Every error is an `OperationOutcome`. Not behind the console's sessions: a
//! FHIR client sends a bearer token whose role may ingest (with `[auth]`).

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use vigil_ingest::fhir::{self, Problem};

use super::Console;
use crate::app::fhir::EntryOutcome;
use crate::app::{AppError, Caller};
use crate::auth::role::Service;
use crate::auth::Refusal;

const FHIR_JSON: &str = "application/fhir+json";

/// An answer: a status and a FHIR resource.
fn resource(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, FHIR_JSON)],
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response()
}

/// An `OperationOutcome` with one issue.
fn outcome(severity: &str, code: &str, diagnostics: &str, expression: Option<&str>) -> Value {
    let mut issue = json!({"severity": severity, "code": code, "diagnostics": diagnostics});
    if let Some(e) = expression {
        issue["expression"] = json!([e]);
    }
    json!({"resourceType": "OperationOutcome", "issue": [issue]})
}

fn error(status: StatusCode, code: &str, diagnostics: &str) -> Response {
    resource(status, outcome("error", code, diagnostics, None))
}

fn problem_outcome(p: &Problem, prefix: &str) -> Value {
    let expression = match prefix {
        "" => p.expression.clone(),
        // Within a Bundle entry the path continues from the resource, without its type.
        prefix => match p.expression.strip_prefix("Observation") {
            Some(rest) => format!("{prefix}{rest}"),
            None => format!("{prefix}.{}", p.expression),
        },
    };
    let expression = (!p.expression.is_empty()).then_some(expression.as_str());
    outcome("error", p.code, &p.diagnostics, expression)
}

/// The caller, if the request may ingest (`Err`: the answer to send).
fn caller(
    console: &Console,
    headers: &HeaderMap,
    peer: std::net::SocketAddr,
) -> Result<Caller, Box<Response>> {
    let auth = &console.app.auth;
    if !auth.enabled {
        return Ok(Caller {
            principal: None,
            peer: Some(peer),
        });
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::token::bearer);
    match auth.authenticate(bearer, Service::Ingest, Some(peer)) {
        Ok(principal) => Ok(Caller {
            principal: Some(principal),
            peer: Some(peer),
        }),
        Err(Refusal::Unauthenticated(why)) => {
            Err(Box::new(error(StatusCode::UNAUTHORIZED, "login", &why)))
        }
        Err(Refusal::Forbidden(why)) => {
            Err(Box::new(error(StatusCode::FORBIDDEN, "forbidden", &why)))
        }
    }
}

/// The body, within the size limit and of a JSON media type (`Err`: the answer).
async fn read_body(
    console: &Console,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, Box<Response>> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if !matches!(media.as_deref(), Some(FHIR_JSON | "application/json")) {
        return Err(Box::new(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "send the resource as application/fhir+json (or application/json)",
        )));
    }
    let limit = console.app.fhir.max_body_bytes;
    let bytes = to_bytes(body, limit).await.map_err(|_| {
        Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-costly",
            &format!(
                "the body is larger than {limit} bytes ([fhir] max_body_bytes): split the Bundle"
            ),
        ))
    })?;
    Ok(bytes)
}

/// A request whose structure is wrong (not JSON, not the resource expected): counted,
/// answered 400.
fn malformed(console: &Console, p: &Problem) -> Response {
    console.app.ingest.refused(
        None,
        &vigil_ingest::Rejection::new(p.reason, p.diagnostics.clone()),
    );
    resource(StatusCode::BAD_REQUEST, problem_outcome(p, ""))
}

fn unavailable(e: AppError) -> Response {
    let (status, code) = match &e {
        AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "transient"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "exception"),
    };
    error(status, code, &e.to_string())
}

/// The caller and the body of a request that may ingest (`Err`: the answer to send).
async fn admit(
    console: &Console,
    headers: &HeaderMap,
    peer: std::net::SocketAddr,
    body: Body,
) -> Result<(Caller, axum::body::Bytes), Box<Response>> {
    let caller = caller(console, headers, peer)?;
    Ok((caller, read_body(console, headers, body).await?))
}

/// `POST /fhir/Observation`.
pub async fn post_observation(
    State(console): State<Arc<Console>>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (caller, bytes) = match admit(&console, &headers, peer, body).await {
        Ok(admitted) => admitted,
        Err(answer) => return *answer,
    };
    let entry = match fhir::parse_observation(&bytes) {
        Ok(o) => o,
        Err(p) => return malformed(&console, &p),
    };
    match console
        .app
        .ingest_fhir(&caller, vec![Ok(entry)], false)
        .await
    {
        Ok(mut outcomes) => match outcomes.pop() {
            Some(EntryOutcome::Taken {
                readings,
                duplicates,
            }) => resource(
                StatusCode::OK,
                outcome(
                    "information",
                    "informational",
                    &taken(readings, duplicates),
                    None,
                ),
            ),
            Some(EntryOutcome::Refused(p)) => {
                resource(StatusCode::UNPROCESSABLE_ENTITY, problem_outcome(&p, ""))
            }
            _ => error(StatusCode::INTERNAL_SERVER_ERROR, "exception", "no outcome"),
        },
        Err(e) => unavailable(e),
    }
}

fn taken(readings: usize, duplicates: usize) -> String {
    let s = if readings == 1 { "" } else { "s" };
    match duplicates {
        0 => format!("accepted {readings} reading{s} for judgement (not stored as a FHIR resource)"),
        d => format!(
            "accepted {readings} reading{s} for judgement ({d} already received); not stored as a FHIR resource"
        ),
    }
}

/// `POST /fhir`: a `batch` or `transaction` Bundle.
pub async fn post_bundle(
    State(console): State<Arc<Console>>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (caller, bytes) = match admit(&console, &headers, peer, body).await {
        Ok(admitted) => admitted,
        Err(answer) => return *answer,
    };
    let (transaction, entries) = match fhir::parse_bundle(&bytes) {
        Ok(parsed) => parsed,
        Err(p) => return malformed(&console, &p),
    };
    let outcomes = match console.app.ingest_fhir(&caller, entries, transaction).await {
        Ok(o) => o,
        Err(e) => return unavailable(e),
    };
    if transaction {
        if let Some((i, p)) = outcomes.iter().enumerate().find_map(|(i, o)| match o {
            EntryOutcome::Refused(p) => Some((i, p)),
            _ => None,
        }) {
            // All or nothing: the first entry at fault is named, nothing was taken.
            let mut body = problem_outcome(p, &format!("Bundle.entry[{i}].resource"));
            body["issue"][0]["diagnostics"] = json!(format!(
                "entry {i}: {}; the transaction was not processed (no reading was taken)",
                p.diagnostics
            ));
            let status = if p.code == "structure" {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            return resource(status, body);
        }
    }
    let kind = if transaction {
        "transaction-response"
    } else {
        "batch-response"
    };
    let entry: Vec<Value> = outcomes
        .iter()
        .map(|o| match o {
            EntryOutcome::Taken { readings, duplicates } => json!({"response": {
                "status": "200 OK",
                "outcome": outcome("information", "informational", &taken(*readings, *duplicates), None),
            }}),
            EntryOutcome::Refused(p) => {
                let status = if p.code == "structure" {
                    "400 Bad Request"
                } else {
                    "422 Unprocessable Entity"
                };
                json!({"response": {"status": status, "outcome": problem_outcome(p, "")}})
            }
            EntryOutcome::NotTaken => json!({"response": {"status": "424 Failed Dependency"}}),
        })
        .collect();
    resource(
        StatusCode::OK,
        json!({"resourceType": "Bundle", "type": kind, "entry": entry}),
    )
}

/// `GET /fhir/metadata`: what this endpoint does, exactly.
pub async fn metadata(State(console): State<Arc<Console>>) -> Response {
    let identifier = match &console.app.fhir.mapping.patient_identifier_system {
        Some(system) => format!(" or subject.identifier of system {system}"),
        None => String::new(),
    };
    let doc = format!(
        "Vigil judges vital-signs Observations against its rules and does not store them as \
         FHIR resources: create answers 200 with an OperationOutcome, without Location; read \
         and search are not supported. The patient is subject.reference Patient/{{id}}{identifier}; \
         the time effectiveDateTime, effectiveInstant or effectivePeriod.start with a time zone; \
         the value valueQuantity (UCUM code, else unit). LOINC codes: 8867-4, 59408-5, 2708-6, \
         9279-1, 8480-6, 8462-4, 85354-9 (components 8480-6 and 8462-4), 8310-5, 29463-7, \
         2339-0, 15074-8, 14743-9, 41653-7. Status final, amended, corrected or preliminary."
    );
    resource(
        StatusCode::OK,
        json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-12-04",
            "kind": "instance",
            "software": {"name": "Vigil", "version": env!("CARGO_PKG_VERSION")},
            "implementation": {"description": "Vigil vital-signs ingest"},
            "fhirVersion": "4.0.1",
            "format": [FHIR_JSON, "application/json"],
            "rest": [{
                "mode": "server",
                "documentation": doc,
                "security": {"description": "With authentication on: Authorization: Bearer <token> of a token whose role may ingest (gateway)."},
                "resource": [{
                    "type": "Observation",
                    "profile": "http://hl7.org/fhir/StructureDefinition/vitalsigns",
                    "interaction": [{"code": "create", "documentation": "Judged, not stored: 200 with an OperationOutcome."}]
                }],
                "interaction": [
                    {"code": "batch", "documentation": "Each Observation entry on its own: a batch-response Bundle."},
                    {"code": "transaction", "documentation": "All or nothing: a transaction-response Bundle, or an OperationOutcome naming the entry at fault."}
                ]
            }]
        }),
    )
}
