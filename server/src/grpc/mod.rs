//! The gRPC server: Vigil's four services, `grpc.health.v1` and server reflection on one
//! listener, stopped gracefully by the shutdown token.

mod alerts;
pub mod convert;
mod ingest;
mod patients;
mod rules;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil_alerting::{Engine, Journal};
use vigil_proto::v1::alerts_server::AlertsServer;
use vigil_proto::v1::ingest_server::IngestServer;
use vigil_proto::v1::patients_server::PatientsServer;
use vigil_proto::v1::rules_server::RulesServer;

use crate::audit::AuditLog;
use crate::pipeline::Pipeline;
use crate::telemetry::Telemetry;

/// Largest gRPC message accepted (a batch of ~100 000 readings).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Serves until `shutdown` is cancelled and in-flight calls have finished.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    journal: Arc<Journal>,
    audit: Arc<AuditLog>,
    pipeline: Arc<Pipeline>,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<IngestServer<ingest::IngestService>>()
        .await;
    health
        .set_serving::<AlertsServer<alerts::AlertsService>>()
        .await;
    health
        .set_serving::<RulesServer<rules::RulesService>>()
        .await;
    health
        .set_serving::<PatientsServer<patients::PatientsService>>()
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vigil_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vigil_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let ingest = IngestServer::new(ingest::IngestService {
        pipeline: pipeline.clone(),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let alerts = AlertsServer::new(alerts::AlertsService {
        engine: engine.clone(),
        journal: journal.clone(),
        audit: audit.clone(),
        telemetry,
        shutdown: shutdown.clone(),
    });
    let rules = RulesServer::new(rules::RulesService {
        engine: engine.clone(),
        journal: journal.clone(),
        audit: audit.clone(),
    });
    let patients = PatientsServer::new(patients::PatientsService {
        engine,
        journal,
        audit,
        pipeline,
    });

    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ingest)
        .add_service(alerts)
        .add_service(rules)
        .add_service(patients)
        .serve_with_incoming_shutdown(
            // No Nagle: an alert event is a small write that must leave at once, not wait
            // for the client's delayed ACK (measured: p50 reading→alert 2.7 ms with it).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.cancelled_owned(),
        )
        .await?;
    Ok(())
}

/// A journal write that failed: the change was not applied, so the caller may retry.
fn journal_unavailable(e: vigil_alerting::JournalError) -> tonic::Status {
    tonic::Status::unavailable(format!(
        "the change could not be made durable ({e}); nothing was changed, retry later"
    ))
}
