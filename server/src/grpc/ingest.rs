//! `vigil.v1.Ingest`: batches of readings from gateways, with per-index rejections.

use std::sync::Arc;
use std::time::Instant;

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use vigil_proto::v1::{self, ingest_server::Ingest};

use crate::pipeline::Pipeline;

pub struct IngestService {
    pub pipeline: Arc<Pipeline>,
}

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn publish_batch(
        &self,
        request: Request<v1::ReadingBatch>,
    ) -> Result<Response<v1::PublishAck>, Status> {
        let received = Instant::now();
        let mut ack = v1::PublishAck::default();
        self.pipeline
            .grpc_batch(request.get_ref(), 0, received, &mut ack);
        Ok(Response::new(ack))
    }

    async fn publish(
        &self,
        request: Request<Streaming<v1::ReadingBatch>>,
    ) -> Result<Response<v1::PublishAck>, Status> {
        let mut stream = request.into_inner();
        let mut ack = v1::PublishAck::default();
        let mut index_base = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let received = Instant::now();
            self.pipeline
                .grpc_batch(&batch, index_base, received, &mut ack);
            index_base += batch.readings.len() as u64;
        }
        Ok(Response::new(ack))
    }
}
