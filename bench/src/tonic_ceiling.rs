//! The bare tonic ceiling: a process serving Vigil's `vigil.v1.Ingest` with the same
//! tonic server, the same message limit and the same batch decoding (`RawBatch`), that
//! only counts the readings it receives and acknowledges them all. What a gRPC load
//! reaches against it is what tonic and the wire cost on this machine; Vigil's gRPC
//! ingest is judged as a share of it (issue 30: at least 0.8), measured in the same run.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use anyhow::Context;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use vigil_proto::raw_batch::RawBatch;
use vigil_proto::raw_ingest::ingest_server::{Ingest, IngestServer};
use vigil_proto::v1;

use crate::grpc_load::GrpcLoad;
use crate::measure::{self, Throughput};
use crate::peers::{cpu_of, Process};

/// As Vigil's gRPC server allows.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

struct Counting;

fn ack(accepted: u64) -> v1::PublishAck {
    v1::PublishAck {
        accepted,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Ingest for Counting {
    async fn publish_batch(
        &self,
        request: Request<RawBatch>,
    ) -> Result<Response<v1::PublishAck>, Status> {
        Ok(Response::new(ack(request.get_ref().len() as u64)))
    }

    async fn publish(
        &self,
        request: Request<Streaming<RawBatch>>,
    ) -> Result<Response<v1::PublishAck>, Status> {
        let mut stream = request.into_inner();
        let mut accepted = 0;
        while let Some(batch) = stream.next().await {
            accepted += batch?.len() as u64;
        }
        Ok(Response::new(ack(accepted)))
    }
}

/// Serves on `listen` until killed, printing the bound address as the first line of
/// stdout (`vigil-bench tonic-ceiling`).
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("{}", listener.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(IngestServer::new(Counting).max_decoding_message_size(MAX_MESSAGE_BYTES))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await?;
    Ok(())
}

/// The ceiling server in a process of its own, as Vigil runs in its own; killed on drop.
pub struct Ceiling {
    child: Process,
    pub addr: SocketAddr,
}

impl Ceiling {
    pub fn start() -> anyhow::Result<Ceiling> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["tonic-ceiling", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the tonic ceiling server")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("its stdout")?;
        let child = Process(child);
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        let addr = line
            .trim()
            .parse()
            .with_context(|| format!("the ceiling server's address, not {line:?}"))?;
        Ok(Ceiling { child, addr })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `load` against this server, with the CPU it used: on a machine the load generator
    /// shares, both servers may reach the rate the generator can offer, and CPU per
    /// reading is then what tells them apart.
    pub async fn run(&self, load: &GrpcLoad) -> anyhow::Result<Throughput> {
        let cpu = cpu_of(self.child.id())?;
        let mut t = measure::ceiling_run(&GrpcLoad {
            url: self.url(),
            ..load.clone()
        })
        .await?;
        t.server_cpu_secs = Some((cpu_of(self.child.id())? - cpu).as_secs_f64());
        Ok(t)
    }
}
