//! The gRPC server: Vigil's five services (each behind the token guard), `grpc.health.v1` and server reflection on one
//! listener, stopped gracefully by the shutdown token.

mod alerts;
pub mod convert;
mod devices;
pub mod fields;
mod ingest;
mod patients;
mod rules;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use vigil_alerting::{Engine, Journal};
use vigil_proto::raw_ingest::ingest_server::IngestServer;
use vigil_proto::v1::alerts_server::AlertsServer;
use vigil_proto::v1::devices_server::DevicesServer;
use vigil_proto::v1::patients_server::PatientsServer;
use vigil_proto::v1::rules_server::RulesServer;

use crate::app::ingest::Pipeline;
use crate::audit::AuditLog;
use crate::auth::grpc_guard::Guard;
use crate::auth::role::Service;
use crate::auth::Auth;
use crate::telemetry::Telemetry;

/// Largest gRPC message accepted (a batch of ~100 000 readings).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

pub use alerts::MuteLimits;

/// What the services share.
pub struct Shared {
    pub mute_limits: MuteLimits,
    /// Open `Subscribe` streams at most.
    pub max_subscribers: usize,
    pub engine: Arc<Engine>,
    pub journal: Arc<Journal>,
    pub audit: Arc<AuditLog>,
    pub auth: Arc<Auth>,
    pub pipeline: Arc<Pipeline>,
    pub telemetry: Arc<Telemetry>,
}

/// Serves until `shutdown` is cancelled and in-flight calls have finished.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Shared {
        mute_limits,
        max_subscribers,
        engine,
        journal,
        audit,
        auth,
        pipeline,
        telemetry,
    } = shared;
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
    health
        .set_serving::<DevicesServer<devices::DevicesService>>()
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vigil_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vigil_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let guard = |service| Guard::new(auth.clone(), service);
    let ingest = InterceptedService::new(
        IngestServer::new(ingest::IngestService {
            pipeline: pipeline.clone(),
            auth: auth.clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES),
        guard(Service::Ingest),
    );
    let alerts = AlertsServer::with_interceptor(
        alerts::AlertsService {
            engine: engine.clone(),
            journal: journal.clone(),
            audit: audit.clone(),
            auth: auth.clone(),
            telemetry,
            limits: mute_limits,
            subscriber_slots: Arc::new(tokio::sync::Semaphore::new(max_subscribers)),
            shutdown: shutdown.clone(),
        },
        guard(Service::Alerts),
    );
    let rules = RulesServer::with_interceptor(
        rules::RulesService {
            engine: engine.clone(),
            journal: journal.clone(),
            audit: audit.clone(),
        },
        guard(Service::Rules),
    );
    let patients = PatientsServer::with_interceptor(
        patients::PatientsService {
            engine: engine.clone(),
            journal,
            audit: audit.clone(),
            pipeline,
        },
        guard(Service::Patients),
    );
    let devices = DevicesServer::with_interceptor(
        devices::DevicesService {
            auth: auth.clone(),
            audit,
            engine,
        },
        guard(Service::Devices),
    );

    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    server
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ingest)
        .add_service(alerts)
        .add_service(rules)
        .add_service(patients)
        .add_service(devices)
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
