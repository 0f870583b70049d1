//! Partition snapshots: each owner publishes its partition's windows, with the
//! readings-stream sequence they cover, to the object store `{ns}-snapshots` (an object per
//! partition, replaced each time). A new owner restores the newest one and replays only the
//! readings after it.

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use vigil_alerting::PatientSnapshot;

use async_nats::jetstream::object_store::{self, GetErrorKind, ObjectStore};

/// A partition's windows as of one reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionSnapshot {
    pub partition: u32,
    /// The readings-stream sequence of the last reading the windows hold.
    pub readings_seq: u64,
    /// Server time it was taken (Unix ms).
    pub taken_ms: i64,
    pub node: String,
    pub patients: Vec<(String, PatientSnapshot)>,
}

#[derive(Debug, thiserror::Error)]
#[error("partition snapshots: {0}")]
pub struct SnapshotError(String);

fn err(e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError(e.to_string())
}

fn name(partition: u32) -> String {
    format!("p{partition}")
}

/// Opens (or creates) the object store of snapshots.
pub async fn open(
    js: &async_nats::jetstream::Context,
    bucket: String,
    replicas: usize,
) -> Result<ObjectStore, SnapshotError> {
    if let Ok(store) = js.get_object_store(&bucket).await {
        return Ok(store);
    }
    js.create_object_store(object_store::Config {
        bucket,
        description: Some("Vigil: each partition's windows, for takeovers".into()),
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(err)
}

/// The newest snapshot of `partition`, if any.
pub async fn load(
    store: &ObjectStore,
    partition: u32,
) -> Result<Option<PartitionSnapshot>, SnapshotError> {
    let mut object = match store.get(name(partition)).await {
        Ok(object) => object,
        Err(e) if e.kind() == GetErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    let mut body = Vec::new();
    object.read_to_end(&mut body).await.map_err(err)?;
    serde_json::from_slice(&body).map(Some).map_err(err)
}

/// Publishes `snapshot` in place of the partition's previous one; its size in bytes.
pub async fn save(
    store: &ObjectStore,
    snapshot: &PartitionSnapshot,
) -> Result<usize, SnapshotError> {
    let body = serde_json::to_vec(snapshot).map_err(err)?;
    store
        .put(name(snapshot.partition).as_str(), &mut body.as_slice())
        .await
        .map_err(err)?;
    Ok(body.len())
}
