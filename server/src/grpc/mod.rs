//! The gRPC server: Vigil's five services (each behind the token guard), `grpc.health.v1` and server reflection on one
//! listener, stopped gracefully by the shutdown token.

mod alerts;
pub mod convert;
mod devices;
pub mod guard;
mod ingest;
mod patients;
mod rules;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::Status;
use vigil_proto::raw_ingest::ingest_server::IngestServer;
use vigil_proto::v1::alerts_server::AlertsServer;
use vigil_proto::v1::devices_server::DevicesServer;
use vigil_proto::v1::patients_server::PatientsServer;
use vigil_proto::v1::rules_server::RulesServer;

use self::guard::Guard;
use crate::app::{App, AppError};
use crate::auth::role::Service;

/// Largest gRPC message accepted (a batch of ~100 000 readings).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Serves until `shutdown` is cancelled and in-flight calls have finished.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<tonic::transport::ServerTlsConfig>,
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

    let guard = |service| Guard::new(app.auth.clone(), service);
    let ingest = InterceptedService::new(
        IngestServer::new(ingest::IngestService { app: app.clone() })
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
        guard(Service::Ingest),
    );
    let alerts = AlertsServer::with_interceptor(
        alerts::AlertsService {
            app: app.clone(),
            shutdown: shutdown.clone(),
        },
        guard(Service::Alerts),
    );
    let rules = RulesServer::with_interceptor(
        rules::RulesService { app: app.clone() },
        guard(Service::Rules),
    );
    let patients = PatientsServer::with_interceptor(
        patients::PatientsService { app: app.clone() },
        guard(Service::Patients),
    );
    let devices = DevicesServer::with_interceptor(
        devices::DevicesService { app: app.clone() },
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
            // for the client's delayed ACK (tens of milliseconds).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.cancelled_owned(),
        )
        .await?;
    Ok(())
}

/// The gRPC status of an application refusal.
pub fn status(e: AppError) -> Status {
    match e {
        AppError::Invalid(m) => Status::invalid_argument(m),
        AppError::NotFound(m) => Status::not_found(m),
        AppError::Denied(m) => Status::permission_denied(m),
        AppError::Precondition(m) => Status::failed_precondition(m),
        AppError::Exhausted(m) => Status::resource_exhausted(m),
        AppError::Unavailable(m) => Status::unavailable(m),
    }
}
