//! The connection to NATS and the streams every node shares: readings by partition
//! (`{ns}-readings`) and alert events by partition (`{ns}-alerts`), both replicated.

use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use tracing::info;

use super::partition::Subjects;
use futures_util::StreamExt;
use vigil_alerting::engine::{PatientSummary, PatientView};
use vigil_alerting::AlertEvent;

use super::wire::{CareReply, CareRequest, StreamReading, ViewReply, ViewRequest};
use crate::config::ClusterSettings;

/// How long a partition's lease lives without renewal: a dead node's partitions are
/// taken over within this time plus one ownership round.
pub const LEASE_TTL: Duration = Duration::from_secs(5);

/// How long a starting node waits for JetStream to answer.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// How long a person's action waits for the owner of the alert's partition.
const CARE_PATIENCE: Duration = Duration::from_secs(10);

/// How long the worklist waits for every partition's owner to answer.
const VIEW_PATIENCE: Duration = Duration::from_secs(3);

/// How long JetStream remembers a `Nats-Msg-Id` to drop a second copy.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// Why the cluster could not be reached or set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot connect to NATS at {urls}: {why}")]
    Connect { urls: String, why: String },
    #[error("cannot create or open the JetStream stream {name}: {why}")]
    Stream { name: String, why: String },
}

/// Runs `make` (creating or opening the stream or store `name`) until it succeeds: while
/// JetStream is still electing its leaders (nodes and NATS servers started together), it
/// tries again for up to [`STARTUP_PATIENCE`].
async fn patiently<T, E, F, Fut>(name: &str, mut make: F) -> Result<T, ClusterError>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = std::time::Instant::now() + STARTUP_PATIENCE;
    loop {
        match make().await {
            Ok(made) => return Ok(made),
            Err(e) if std::time::Instant::now() < deadline => {
                info!(stream = %name, error = %e, "JetStream not ready yet; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(ClusterError::Stream {
                    name: name.to_string(),
                    why: e.to_string(),
                })
            }
        }
    }
}

/// Readings JetStream did not acknowledge: their sender must not be told they are safe.
#[derive(Debug, thiserror::Error)]
#[error("the readings stream did not acknowledge: {0}")]
pub struct StoreError(String);

/// How long readings and alert events are kept in their streams.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Readings: at least the longest window any rule needs, since a new owner of a
    /// partition rebuilds its windows by replaying them.
    pub readings: Duration,
    /// Alert events: the journal's retention.
    pub alerts: Duration,
}

/// This node's handle on the cluster.
pub struct Cluster {
    pub settings: ClusterSettings,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub subjects: Subjects,
    /// The partitions' window snapshots.
    pub snapshots: async_nats::jetstream::object_store::ObjectStore,
    /// Rules, patients, silences and devices changed while the cluster runs.
    pub catalog: std::sync::Arc<super::catalog::Catalog>,
    /// Where the notifiers stand in the alert stream.
    pub positions: std::sync::Arc<super::positions::ClusterPositions>,
    /// How long the readings stream keeps readings (a rule's window may not be longer).
    pub retention: Retention,
}

impl Cluster {
    /// Connects (any one of `nats_urls` will do; the client learns the rest) and makes
    /// sure both streams exist.
    pub async fn connect(
        settings: &ClusterSettings,
        retention: Retention,
    ) -> Result<Cluster, ClusterError> {
        let urls = settings.nats_urls.join(",");
        let client = async_nats::ConnectOptions::new()
            .name(format!("vigil {}", settings.node_id))
            .connection_timeout(Duration::from_secs(5))
            .connect(settings.nats_urls.as_slice())
            .await
            .map_err(|e| ClusterError::Connect {
                urls: urls.clone(),
                why: e.to_string(),
            })?;
        let js = jetstream::new(client.clone());
        let subjects = Subjects::new(&settings.namespace);
        let bucket = subjects.store("snapshots");
        let replicas = usize::from(settings.replicas);
        let snapshots = patiently(&bucket, || {
            super::snapshot::open(&js, bucket.clone(), replicas)
        })
        .await?;
        let bucket = subjects.store("catalog");
        let catalog = patiently(&bucket, || {
            super::catalog::Catalog::open(&js, bucket.clone(), replicas)
        })
        .await?;
        let bucket = subjects.store("positions");
        let positions = patiently(&bucket, || {
            super::positions::ClusterPositions::open(&js, bucket.clone(), replicas)
        })
        .await?;
        let cluster = Cluster {
            positions: std::sync::Arc::new(positions),
            settings: settings.clone(),
            client,
            js,
            subjects,
            snapshots,
            catalog: std::sync::Arc::new(catalog),
            retention,
        };
        cluster
            .stream(
                "readings",
                cluster.subjects.all_readings(),
                "Vigil: accepted readings, by patient partition",
                retention.readings,
            )
            .await?;
        cluster
            .stream(
                "alerts",
                cluster.subjects.all_alerts(),
                "Vigil: alert events, by patient partition",
                retention.alerts,
            )
            .await?;
        info!(node = %settings.node_id, nats = %urls, partitions = settings.partitions, namespace = %settings.namespace, "connected to the cluster");
        Ok(cluster)
    }

    /// Creates (or opens) a stream.
    async fn stream(
        &self,
        what: &str,
        subjects: String,
        description: &str,
        max_age: Duration,
    ) -> Result<stream::Stream, ClusterError> {
        let name = self.subjects.store(what);
        let config = stream::Config {
            name: name.clone(),
            description: Some(description.into()),
            subjects: vec![subjects],
            num_replicas: usize::from(self.settings.replicas),
            storage: stream::StorageType::File,
            max_age,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        patiently(&name, || self.js.get_or_create_stream(config.clone())).await
    }

    /// This node's handle on the leases bucket (partitions' and notifiers' leases).
    pub async fn leases(&self) -> Result<super::lease::Leases, super::lease::LeaseError> {
        super::lease::Leases::open(
            &self.js,
            &self.settings.namespace,
            &self.settings.node_id,
            usize::from(self.settings.replicas),
            LEASE_TTL,
        )
        .await
    }

    /// The readings stream.
    pub async fn readings(&self) -> Result<stream::Stream, ClusterError> {
        self.open("readings").await
    }

    /// The alert stream.
    pub async fn alerts(&self) -> Result<stream::Stream, ClusterError> {
        self.open("alerts").await
    }

    async fn open(&self, what: &str) -> Result<stream::Stream, ClusterError> {
        let name = self.subjects.store(what);
        self.js
            .get_stream(&name)
            .await
            .map_err(|e| ClusterError::Stream {
                name,
                why: e.to_string(),
            })
    }

    /// Stores readings in the readings stream, one message per partition (its readings in
    /// the order given); returns once JetStream acknowledged all of them (stored on a
    /// majority of its replicas).
    pub async fn store(&self, readings: Vec<StreamReading>) -> Result<(), StoreError> {
        let mut groups: std::collections::BTreeMap<u32, Vec<&StreamReading>> =
            std::collections::BTreeMap::new();
        for r in &readings {
            groups
                .entry(self.partition_of(&r.patient_id))
                .or_default()
                .push(r);
        }
        let mut pending = Vec::with_capacity(groups.len());
        for (p, group) in groups {
            let mut message = PublishMessage::build().payload(super::wire::encode_group(&group));
            if let Some(id) = super::wire::group_msg_id(&group) {
                message = message.message_id(id);
            }
            pending.push(
                self.js
                    .send_publish(self.subjects.readings(p), message)
                    .await
                    .map_err(|e| StoreError(e.to_string()))?,
            );
        }
        for ack in pending {
            ack.await.map_err(|e| StoreError(e.to_string()))?;
        }
        Ok(())
    }

    /// Asks the owner of partition `p` to apply a person's action; its answer comes once
    /// the resulting event is in the alert stream.
    pub async fn care(&self, p: u32, request: &CareRequest) -> Result<CareReply, String> {
        let body = serde_json::to_vec(request).expect("a care request serializes");
        self.ask_owner(self.subjects.care(p), body).await
    }

    /// Sends `body` to the owner listening on `subject` (one partition's) and reads its
    /// answer; every failure says what to do.
    async fn ask_owner<T: serde::de::DeserializeOwned>(
        &self,
        subject: String,
        body: Vec<u8>,
    ) -> Result<T, String> {
        let answer = tokio::time::timeout(CARE_PATIENCE, self.client.request(subject, body.into()))
        .await
        .map_err(|_| "the node evaluating this patient did not answer in time; try again".to_string())?
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => "no node evaluates this patient right now (a takeover is under way); try again in a few seconds".to_string(),
            _ => format!("the node evaluating this patient could not be asked: {e}"),
        })?;
        serde_json::from_slice(&answer.payload).map_err(|e| {
            format!(
                "the node evaluating this patient answered in a form this node does not read: {e}"
            )
        })
    }

    /// Reads partition `p`'s alert subject from its first retained message to the last one
    /// there now, handing `visit` each message's sequence, headers and alert event (`None`
    /// for a takeover marker or anything else); returns that last sequence (0: the subject
    /// is empty).
    pub async fn read_alerts(
        &self,
        p: u32,
        mut visit: impl FnMut(u64, Option<&async_nats::HeaderMap>, Option<AlertEvent>),
    ) -> Result<u64, String> {
        use async_nats::jetstream::consumer::{pull, DeliverPolicy};
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let unreadable =
            |e: &dyn std::fmt::Display| format!("the alert stream could not be read: {e}");
        let subject = self.subjects.alerts(p);
        let stream = self.alerts().await.map_err(|e| unreadable(&e))?;
        let last = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => m.sequence,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(0),
            Err(e) => return Err(unreadable(&e)),
        };
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: subject,
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| unreadable(&e))?;
        let mut messages = consumer.messages().await.map_err(|e| unreadable(&e))?;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| unreadable(&e))?;
            let seq = message.info().map_err(|e| unreadable(&e))?.stream_sequence;
            let headers = message.headers.as_ref();
            let event = (!super::wire::is_marker(headers))
                .then(|| super::wire::decode_event(&message.payload, seq))
                .flatten();
            visit(seq, headers, event);
            if seq >= last {
                break;
            }
        }
        Ok(last)
    }

    /// Every event of alert `alert_id` in partition `p`'s alert subject (its whole
    /// retention), in order: for `History` when this node's copy no longer holds the
    /// alert's first events.
    pub async fn history(&self, p: u32, alert_id: &str) -> Result<Vec<AlertEvent>, String> {
        let mut events = Vec::new();
        self.read_alerts(p, |_, _, event| {
            events.extend(event.filter(|e| &*e.alert.id == alert_id));
        })
        .await?;
        Ok(events)
    }

    /// A patient's page from the owner of its partition (`None`: it knows no such patient).
    pub async fn patient_view(
        &self,
        patient_id: &str,
        max_samples: usize,
    ) -> Result<Option<PatientView>, String> {
        let request = ViewRequest::Patient {
            id: patient_id.to_string(),
            max_samples,
        };
        let body = serde_json::to_vec(&request).expect("a view request serializes");
        let p = self.partition_of(patient_id);
        match self.ask_owner(self.subjects.view(p), body).await? {
            ViewReply::Patient(view) => Ok(view.map(|v| *v)),
            ViewReply::Summaries { .. } => Err(
                "the node evaluating this patient answered another question than the one asked"
                    .into(),
            ),
        }
    }

    /// Every owner's summaries of its patients (of `care_team` only, if given), and how many
    /// partitions did not answer within [`VIEW_PATIENCE`] (being taken over).
    pub async fn summaries(
        &self,
        care_team: Option<&str>,
    ) -> Result<(Vec<PatientSummary>, u32), String> {
        let request = ViewRequest::Summaries {
            care_team: care_team.map(str::to_string),
        };
        let body = serde_json::to_vec(&request).expect("a view request serializes");
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| format!("cannot ask the cluster: {e}"))?;
        self.client
            .publish_with_reply(self.subjects.views(), inbox, body.into())
            .await
            .map_err(|e| format!("cannot ask the cluster: {e}"))?;
        let mut answered = std::collections::BTreeSet::new();
        let mut all = Vec::new();
        let deadline = tokio::time::Instant::now() + VIEW_PATIENCE;
        while answered.len() < self.settings.partitions as usize {
            let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await else {
                break;
            };
            if let Ok(ViewReply::Summaries {
                partition,
                summaries,
            }) = serde_json::from_slice(&message.payload)
            {
                if answered.insert(partition) {
                    all.extend(summaries);
                }
            }
        }
        let missing = self.settings.partitions - answered.len() as u32;
        Ok((all, missing))
    }

    /// The partition of `patient_id`.
    pub fn partition_of(&self, patient_id: &str) -> u32 {
        super::partition::partition(patient_id, self.settings.partitions)
    }
}
