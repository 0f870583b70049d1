//! `vigil.v1.Ingest`: batches of readings from gateways, with per-index rejections. Batches
//! arrive as `RawBatch` (one text buffer per batch, not a `String` per field).

use std::sync::Arc;

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use vigil_proto::raw_batch::RawBatch;
use vigil_proto::raw_ingest::ingest_server::Ingest;
use vigil_proto::v1;

use super::guard::caller;
use crate::app::ingest::BatchOutcome;
use crate::app::App;

pub struct IngestService {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn publish_batch(
        &self,
        request: Request<RawBatch>,
    ) -> Result<Response<v1::PublishAck>, Status> {
        let mut outcome = BatchOutcome::default();
        self.app
            .publish_batch(&caller(&request), request.get_ref(), 0, &mut outcome);
        self.store(&mut outcome).await?;
        Ok(Response::new(ack(outcome)))
    }

    async fn publish(
        &self,
        request: Request<Streaming<RawBatch>>,
    ) -> Result<Response<v1::PublishAck>, Status> {
        let who = caller(&request);
        let mut stream = request.into_inner();
        let mut outcome = BatchOutcome::default();
        let mut index_base = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            self.app
                .publish_batch(&who, &batch, index_base, &mut outcome);
            self.store(&mut outcome).await?;
            index_base += batch.len() as u64;
        }
        Ok(Response::new(ack(outcome)))
    }
}

impl IngestService {
    /// Cluster mode: stores the accepted readings in the readings stream before the call
    /// is answered; if they cannot be, the call fails and the gateway sends them again.
    async fn store(&self, outcome: &mut BatchOutcome) -> Result<(), Status> {
        let readings = std::mem::take(&mut outcome.forward);
        self.app.ingest.store(readings).await.map_err(|e| {
            Status::unavailable(format!(
                "{e}: none of this call's readings are acknowledged; send them again"
            ))
        })
    }
}

fn ack(o: BatchOutcome) -> v1::PublishAck {
    v1::PublishAck {
        accepted: o.accepted,
        rejected: o.rejected,
        rejections: o
            .listed
            .into_iter()
            .map(|(index, rejection)| v1::Rejection {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                reason: rejection.to_string(),
            })
            .collect(),
        rejected_by_reason: o
            .by_reason
            .into_iter()
            .map(|(reason, n)| (reason.to_string(), n))
            .collect(),
    }
}
