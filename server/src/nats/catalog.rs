//! What people change while the cluster runs: rules, patients, silences, device
//! credentials and review marks, kept in the replicated key-value bucket `{namespace}-catalog` (the newest
//! value of each key, deletions as markers). A change is written there by whichever node
//! was asked; every node follows the bucket and applies each change to its own state (the
//! engine that admits readings, the device book) and hands it to the owners of its
//! partitions, so a change made on one node applies on all of them.
//!
//! Keys are `{kind}.{id}` (`rule.`, `patient.`, `silence.`, `device.`, and `review.` by
//! patient for the worklist's review marks); an id with a
//! character a key may not hold is written `{kind}.={hex of its bytes}` (`=` never occurs in
//! the plain form).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vigil_alerting::{Approval, PatientProfile, Review, Rule, RuleSpec, Silence};

use crate::auth::device::DeviceRecord;
use crate::untrusted::clip;

/// How many changes an owner may fall behind before it stops and takes its partition over
/// again from the whole catalog.
const BACKLOG: usize = 65_536;

/// How long a change waits to be applied on the node that wrote it before the caller is
/// answered anyway (it is stored; the other nodes apply it as they follow the bucket).
const APPLY_PATIENCE: Duration = Duration::from_secs(10);

/// One change, as every node applies it.
#[derive(Debug, Clone)]
pub enum Change {
    /// A rule put, with the approval of the change (numbered by the entry's revision).
    Rule(Rule, Approval),
    /// A rule deleted, with the approval written before the deletion (empty if none was).
    RuleGone(String, Approval),
    /// The approval of the deletion of the rule that follows; held until then.
    RuleApproval(String, Approval),
    Patient(PatientProfile),
    PatientGone(String),
    Silence(Silence),
    SilenceGone(String),
    Device(DeviceRecord),
    DeviceGone(String),
    /// A patient's review mark (one per patient, replaced by the next).
    Review(Review),
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the cluster's catalog bucket {bucket}: {why}")]
    Bucket { bucket: String, why: String },
    #[error("the change was not stored in the cluster (nothing was changed): {0}")]
    NotStored(String),
}

/// The bucket, the changes applied on this node so far (its revision), and the owners'
/// feed.
pub struct Catalog {
    store: kv::Store,
    bucket: String,
    applied: watch::Sender<u64>,
    changes: broadcast::Sender<Arc<Change>>,
    /// By rule id: the approval of a deletion, written just before it (a deletion marker
    /// carries no value).
    approvals: std::sync::Mutex<std::collections::HashMap<String, Approval>>,
}

/// A rule as the bucket holds it: the spec, and who approved the change (ignored by a
/// Vigil that predates approvals).
#[derive(serde::Serialize, serde::Deserialize)]
struct RuleValue {
    #[serde(flatten)]
    spec: RuleSpec,
    #[serde(default)]
    approval: Approval,
}

/// The kinds of entry, as key prefixes.
const RULE: &str = "rule";
const PATIENT: &str = "patient";
const SILENCE: &str = "silence";
const DEVICE: &str = "device";
const REVIEW: &str = "review";
const RULE_APPROVAL: &str = "ruleapproval";

/// The rule-set version a rule change at catalog revision `revision` makes: alike on every
/// node, after the configuration file's (1).
fn rule_set_number(revision: u64) -> u64 {
    revision + 1
}

/// The key of `id` of `kind`.
pub fn key(kind: &str, id: &str) -> String {
    let plain = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        format!("{kind}.{id}")
    } else {
        format!("{kind}.={}", crate::auth::token::hex(id.as_bytes()))
    }
}

/// The kind and id a key names (`None`: not a key Vigil writes).
pub fn parse_key(key: &str) -> Option<(&str, String)> {
    let (kind, id) = key.split_once('.')?;
    let id = match id.strip_prefix('=') {
        Some(hex) => {
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            String::from_utf8(bytes).ok()?
        }
        None => id.to_string(),
    };
    Some((kind, id))
}

impl Catalog {
    /// Opens (or creates) the bucket.
    pub async fn open(
        js: &jetstream::Context,
        bucket: String,
        replicas: usize,
    ) -> Result<Catalog, CatalogError> {
        let store = super::bucket::open_bucket(
            js,
            kv::Config {
                bucket: bucket.clone(),
                description: "Vigil: rules, patients, silences and devices changed while \
                              the cluster runs"
                    .into(),
                history: 1,
                num_replicas: replicas,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            },
        )
        .await
        .map_err(|why| CatalogError::Bucket {
            bucket: bucket.clone(),
            why,
        })?;
        Ok(Catalog {
            store,
            bucket,
            applied: watch::channel(0).0,
            changes: broadcast::channel(BACKLOG).0,
            approvals: Default::default(),
        })
    }

    /// The changes this node applies from now on, for an owner of a partition.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    pub async fn put_rule(&self, spec: &RuleSpec, approval: &Approval) -> Result<(), CatalogError> {
        let value = RuleValue {
            spec: spec.clone(),
            approval: approval.clone(),
        };
        self.put(&key(RULE, &spec.id), serde_json::to_vec(&value))
            .await
    }

    /// Writes the deletion's approval, then deletes.
    pub async fn delete_rule(&self, id: &str, approval: &Approval) -> Result<(), CatalogError> {
        self.put(&key(RULE_APPROVAL, id), serde_json::to_vec(approval))
            .await?;
        self.delete(&key(RULE, id)).await
    }

    pub async fn put_patient(&self, profile: &PatientProfile) -> Result<(), CatalogError> {
        self.put(&key(PATIENT, &profile.id), serde_json::to_vec(profile))
            .await
    }

    pub async fn delete_patient(&self, id: &str) -> Result<(), CatalogError> {
        self.delete(&key(PATIENT, id)).await
    }

    pub async fn put_silence(&self, silence: &Silence) -> Result<(), CatalogError> {
        self.put(&key(SILENCE, &silence.id), serde_json::to_vec(silence))
            .await
    }

    pub async fn delete_silence(&self, id: &str) -> Result<(), CatalogError> {
        self.delete(&key(SILENCE, id)).await
    }

    pub async fn put_device(&self, record: &DeviceRecord) -> Result<(), CatalogError> {
        self.put(&key(DEVICE, &record.id), serde_json::to_vec(record))
            .await
    }

    pub async fn delete_device(&self, id: &str) -> Result<(), CatalogError> {
        self.delete(&key(DEVICE, id)).await
    }

    pub async fn put_review(&self, review: &Review) -> Result<(), CatalogError> {
        self.put(&key(REVIEW, &review.patient_id), serde_json::to_vec(review))
            .await
    }

    /// Writes a value, then waits until this node applied it (so the caller's next read on
    /// this node sees it).
    async fn put(
        &self,
        key: &str,
        value: Result<Vec<u8>, serde_json::Error>,
    ) -> Result<(), CatalogError> {
        let value = value.map_err(|e| CatalogError::NotStored(e.to_string()))?;
        let revision = self
            .store
            .put(key, value.into())
            .await
            .map_err(|e| CatalogError::NotStored(e.to_string()))?;
        self.applied_through(revision).await;
        Ok(())
    }

    /// Deletes a key, then waits until this node applied the deletion. A deletion marker's
    /// revision is not returned, so the wait is for the bucket's last revision as the
    /// server reports it afterwards (`Store::status` would give the one cached at open).
    async fn delete(&self, key: &str) -> Result<(), CatalogError> {
        self.store
            .delete(key)
            .await
            .map_err(|e| CatalogError::NotStored(e.to_string()))?;
        match self.store.stream.get_info().await {
            Ok(info) => self.applied_through(info.state.last_sequence).await,
            Err(e) => warn!(
                error = %e,
                "the catalog's revision after a deletion is unknown; answering before this \
                 node applied it"
            ),
        }
        Ok(())
    }

    async fn applied_through(&self, revision: u64) {
        let mut applied = self.applied.subscribe();
        let caught_up =
            tokio::time::timeout(APPLY_PATIENCE, applied.wait_for(|&done| done >= revision)).await;
        if !matches!(caught_up, Ok(Ok(_))) {
            warn!(
                revision,
                "a stored catalog change was not applied on this node in time"
            );
        }
    }

    /// Applies every entry of the bucket with `apply` and returns once the bucket as it was
    /// at the call is applied; a task then goes on applying changes until `shutdown`.
    pub async fn follow<F>(
        self: &Arc<Self>,
        apply: F,
        shutdown: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, CatalogError>
    where
        F: Fn(&Change) + Send + Sync + 'static,
    {
        let broken = |why: String| CatalogError::Bucket {
            bucket: self.bucket.clone(),
            why,
        };
        // Asked of the server: `Store::status` gives the revision cached when the bucket
        // was opened.
        let last = self
            .store
            .stream
            .get_info()
            .await
            .map_err(|e| broken(e.to_string()))?
            .state
            .last_sequence;
        let mut entries = self
            .store
            .watch_with_history(">")
            .await
            .map_err(|e| broken(e.to_string()))?;
        let mut applied = 0;
        while applied < last {
            match entries.next().await {
                Some(Ok(entry)) => {
                    applied = entry.revision;
                    self.take(entry, &apply);
                }
                Some(Err(e)) => return Err(broken(e.to_string())),
                None => return Err(broken("the watch ended".into())),
            }
        }
        info!(revision = applied, "cluster catalog applied");
        let catalog = self.clone();
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    entry = entries.next() => match entry {
                        Some(Ok(entry)) => catalog.take(entry, &apply),
                        other => {
                            if let Some(Err(e)) = other {
                                warn!(error = %e, "following the cluster catalog failed; resuming");
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            let from = *catalog.applied.borrow() + 1;
                            match catalog.store.watch_all_from_revision(from).await {
                                Ok(again) => entries = again,
                                Err(e) => debug!(error = %e, "catalog watch not resumed yet"),
                            }
                        }
                    },
                }
            }
        }))
    }

    /// Applies one entry here and hands it to the owners.
    fn take<F: Fn(&Change)>(&self, entry: kv::Entry, apply: &F) {
        let revision = entry.revision;
        match decode(&entry).map(|c| c.map(|c| self.approved(c, revision))) {
            Ok(Some(Change::RuleApproval(..))) => {}
            Ok(Some(change)) => {
                apply(&change);
                let _ = self.changes.send(Arc::new(change));
            }
            Ok(None) => {}
            Err(why) => warn!(
                key = %clip(&entry.key),
                why,
                "a catalog entry this node cannot read was skipped"
            ),
        }
        self.applied
            .send_modify(|done| *done = (*done).max(revision));
    }

    /// Numbers a rule change by its revision; holds a deletion's approval until the
    /// deletion, and attaches it then.
    fn approved(&self, change: Change, revision: u64) -> Change {
        let number = Some(rule_set_number(revision));
        let approvals = || self.approvals.lock().unwrap_or_else(|e| e.into_inner());
        match change {
            Change::Rule(rule, approval) => Change::Rule(rule, Approval { number, ..approval }),
            Change::RuleGone(id, _) => {
                let approval = approvals().remove(&id).unwrap_or_else(|| Approval {
                    change: format!("rule '{id}' deleted"),
                    ..Approval::default()
                });
                Change::RuleGone(id, Approval { number, ..approval })
            }
            Change::RuleApproval(id, approval) => {
                approvals().insert(id.clone(), approval.clone());
                Change::RuleApproval(id, approval)
            }
            other => other,
        }
    }
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// The change an entry stands for (`None`: a key Vigil does not write).
fn decode(entry: &kv::Entry) -> Result<Option<Change>, String> {
    let Some((kind, id)) = parse_key(&entry.key) else {
        return Ok(None);
    };
    let gone = !matches!(entry.operation, kv::Operation::Put);
    let body = &entry.value;
    let change = match (kind, gone) {
        (RULE, true) => Change::RuleGone(id, Approval::default()),
        (PATIENT, true) => Change::PatientGone(id),
        (SILENCE, true) => Change::SilenceGone(id),
        (DEVICE, true) => Change::DeviceGone(id),
        (RULE, false) => {
            let RuleValue { spec, approval } = json(body)?;
            let rule = spec.validate().map_err(|errors| {
                let lines: Vec<String> = errors.into_iter().map(|e| e.to_string()).collect();
                lines.join("; ")
            })?;
            Change::Rule(rule, approval)
        }
        (RULE_APPROVAL, false) => Change::RuleApproval(id, json(body)?),
        (PATIENT, false) => Change::Patient(json(body)?),
        (SILENCE, false) => Change::Silence(json(body)?),
        (DEVICE, false) => Change::Device(json(body)?),
        (REVIEW, false) => Change::Review(json(body)?),
        _ => return Ok(None),
    };
    Ok(Some(change))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_id_both_ways() {
        for id in ["p-001", "rule_x", "李雷", "a.b", "=x", "a b/c"] {
            let k = key(PATIENT, id);
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.=".contains(&b)),
                "{k}"
            );
            assert_eq!(parse_key(&k), Some((PATIENT, id.to_string())), "{k}");
        }
        assert_eq!(key(RULE, "hr_high"), "rule.hr_high");
        assert_ne!(key(RULE, "3d"), key(RULE, "="));
    }
}
