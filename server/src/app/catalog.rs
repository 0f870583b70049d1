//! Cluster mode: the rules, patients, silences and devices people change live are written
//! to the cluster catalog (by whichever node was asked) and applied here on every node, in
//! the order the catalog holds them. This file is that application on this node; the
//! partitions' owners apply the same changes to their engines.

use tracing::{debug, info};

use super::{App, AppError};
use crate::clock::now_ms;
use crate::nats::catalog::{CatalogError, Change};
use crate::nats::cluster::Cluster;

impl App {
    /// Applies one change of the catalog to this node's engine (what it admits and lists)
    /// and credentials.
    pub fn apply_catalog(&self, change: &Change) {
        let now = now_ms();
        match change {
            Change::Rule(rule, approval) => {
                self.engine.put_rule(rule.clone(), approval.clone());
            }
            Change::RuleGone(id, approval) => {
                self.engine.delete_rule(id, approval.clone(), now);
            }
            Change::RuleApproval(..) => {}
            Change::Patient(profile) => {
                if !profile.consent {
                    self.ingest.forget_patient(&profile.id);
                }
                self.engine.enroll(profile.clone(), now);
            }
            Change::PatientGone(id) => {
                self.engine.unenroll(id, now);
                self.ingest.forget_patient(id);
            }
            Change::Silence(silence) => self.engine.add_silence(silence.clone()),
            Change::SilenceGone(id) => {
                self.engine.delete_silence(id, now);
            }
            Change::Device(record) => {
                if let Err(e) = self.auth.devices.install(record.clone()) {
                    info!(error = %e, "a device from the cluster catalog was not installed");
                }
            }
            Change::Review(review) => self.reviews.put(review.clone()),
            Change::DeviceGone(id) => {
                if let Err(e) = self.auth.devices.revoke(id) {
                    debug!(error = %e, "a device removed from the cluster catalog was not here");
                }
            }
        }
    }

    /// Cluster mode: the cluster (whose catalog a change is written to).
    pub(super) fn shared(&self) -> Option<&Cluster> {
        self.cluster.as_deref()
    }

    /// How many open alerts (cluster-wide, from the alert stream) match `which`: what a
    /// change that resolves them will resolve.
    pub(super) fn open_matching(&self, which: impl Fn(&vigil_alerting::Alert) -> bool) -> usize {
        self.open_alerts(&Default::default())
            .iter()
            .filter(|a| which(a))
            .count()
    }
}

impl From<CatalogError> for AppError {
    fn from(e: CatalogError) -> AppError {
        AppError::Unavailable(format!("{e}; retry later"))
    }
}
