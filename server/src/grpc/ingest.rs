//! `vigil.v1.Ingest`: batches of readings from gateways, with per-index rejections. Batches
//! arrive as `RawBatch` (one text buffer per batch, not a `String` per field).

use std::sync::Arc;
use std::time::Instant;

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use vigil_proto::raw_batch::RawBatch;
use vigil_proto::raw_ingest::ingest_server::Ingest;
use vigil_proto::v1;

use crate::app::ingest::Pipeline;
use crate::auth::grpc_guard::caller;
use crate::auth::{Auth, AuthFailure, Principal};

pub struct IngestService {
    pub pipeline: Arc<Pipeline>,
    pub auth: Arc<Auth>,
}

impl IngestService {
    /// One batch, confined to the caller's patients; a batch reaching outside them is
    /// counted once as an authorisation failure (its other readings are still taken).
    fn batch(
        &self,
        who: Option<&Principal>,
        batch: &RawBatch,
        index_base: u64,
        ack: &mut v1::PublishAck,
    ) {
        let received = Instant::now();
        let refused = self.pipeline.grpc_batch(
            batch,
            index_base,
            received,
            |patient| who.is_none_or(|p| p.may_publish_for(patient)),
            ack,
        );
        if let (Some(p), true) = (who, refused > 0) {
            self.auth.failures.record(
                AuthFailure::OutOfScope,
                &p.name,
                &p.name,
                &format!("Ingest: {refused} readings outside patient_prefixes"),
            );
        }
    }
}

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn publish_batch(
        &self,
        request: Request<RawBatch>,
    ) -> Result<Response<v1::PublishAck>, Status> {
        let who = caller(&request);
        let mut ack = v1::PublishAck::default();
        self.batch(who.as_deref(), request.get_ref(), 0, &mut ack);
        Ok(Response::new(ack))
    }

    async fn publish(
        &self,
        request: Request<Streaming<RawBatch>>,
    ) -> Result<Response<v1::PublishAck>, Status> {
        let who = caller(&request);
        let mut stream = request.into_inner();
        let mut ack = v1::PublishAck::default();
        let mut index_base = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            self.batch(who.as_deref(), &batch, index_base, &mut ack);
            index_base += batch.len() as u64;
        }
        Ok(Response::new(ack))
    }
}
