//! The engine's windows and open alerts across a restart: which patients changed, their
//! snapshots taken and restored, the open alerts re-opened.

use super::*;

impl Engine {
    /// Re-opens alerts recovered from the journal; no event is written. Each patient's
    /// state learns of its open alerts again, so a condition still present is not raised
    /// twice and one that has cleared resolves as it would have.
    pub fn restore_open_alerts(&self, alerts: Vec<Alert>) {
        for alert in alerts {
            let (patient_id, rule_id, alert_id) = (
                alert.patient_id.clone(),
                alert.rule_id.clone(),
                alert.id.clone(),
            );
            let flag = self.book.restore(alert);
            if let Some(mut state) = self.admitted(&patient_id) {
                state.open.push(OpenAlert {
                    rule_id,
                    alert_id,
                    flag,
                });
            }
        }
    }

    /// Brings open alerts in line with how they stand elsewhere (a cluster's alert stream,
    /// after a takeover): acknowledgements, escalations and resolutions made there are
    /// taken as they are, alerts raised there (by a clock) join, and no event is written.
    pub fn adopt_alerts(&self, alerts: Vec<Alert>) {
        for alert in alerts {
            let (patient_id, rule_id, alert_id) = (
                alert.patient_id.clone(),
                alert.rule_id.clone(),
                alert.id.clone(),
            );
            let flag = self.book.adopt(alert);
            if let (Some(flag), Some(mut state)) = (flag, self.admitted(&patient_id)) {
                // The patient's own episode of that rule, if it opened one, is the adopted
                // alert's: it leaves the book too, not only the patient.
                for superseded in state
                    .open
                    .iter()
                    .filter(|a| a.rule_id == rule_id && a.alert_id != alert_id)
                {
                    self.book.forget(&superseded.alert_id);
                }
                state
                    .open
                    .retain(|a| a.rule_id != rule_id && a.flag.is_open());
                state.open.push(OpenAlert {
                    rule_id,
                    alert_id,
                    flag,
                });
            }
        }
    }

    /// Every patient tracked, for snapshots taken a slice at a time.
    pub fn patient_keys(&self) -> Vec<PatientKey> {
        self.store.ids()
    }

    /// What to write for those of `ids` whose windows changed since their last snapshot
    /// (whole, or only the samples added: see [`crate::snapshot`]), marking it written;
    /// each patient locked only while its windows are copied.
    pub fn take_snapshots(&self, ids: &[PatientKey]) -> Vec<(String, SnapshotPart)> {
        let mut out = Vec::new();
        for id in ids {
            if let Some(mut state) = self.store.get_mut(id) {
                let state = &mut *state;
                if let Some(part) = state.persisted.take(&mut state.measured) {
                    out.push((id.to_string(), part));
                }
            }
        }
        out
    }

    /// Samples the next snapshot would write, all patients together: what a shutdown
    /// must still write (each shard read-locked while it is counted).
    pub fn snapshot_backlog(&self) -> usize {
        self.store
            .sum(|state| state.persisted.pending(&state.measured))
    }

    /// Every patient's windows, whole (a cluster partition's snapshot, published as one
    /// object), each patient locked only while its windows are copied.
    pub fn whole_snapshots(&self) -> Vec<(String, PatientSnapshot)> {
        let mut out = Vec::new();
        for id in self.store.ids() {
            if let Some(state) = self.store.get_mut(&id) {
                out.push((id.to_string(), PatientSnapshot::of(&state.measured)));
            }
        }
        out
    }

    /// The parts taken for `ids` could not be written: their next snapshots are whole.
    pub fn snapshots_failed<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        for id in ids {
            if let Some(mut state) = self.store.get_mut(id) {
                state.persisted.failed();
            }
        }
    }

    /// Refills a patient's windows from a snapshot, without evaluating rules (alert states
    /// come from the journal), and re-arms `absent` deadlines from the newest sample's time
    /// (never later than `now_ms`), so a patient who fell silent before a restart is still
    /// noticed: a deadline that passed while the server was down fires at the first tick.
    /// Skipped, returning false, for a patient who is not admitted or has not consented.
    ///
    /// `whole` is the patient's whole snapshot and `deltas` the deltas stored after it, in
    /// order.
    pub fn restore_snapshot(
        &self,
        patient_id: &str,
        whole: &PatientSnapshot,
        deltas: &[PatientSnapshot],
        now_ms: i64,
    ) -> bool {
        let rules = self.rules.load();
        let Some(mut state) = self.admitted(patient_id).filter(|s| s.hot.consent) else {
            return false;
        };
        let state = &mut *state;
        state.refresh_applies(&rules);
        let mut restored = [false; Metric::COUNT];
        let retention = |metric: Metric| {
            rules
                .window_ms(metric)
                .max(state.hot.longest_override_ms())
                .max(self.min_history_ms())
        };
        // Each metric's samples from the whole snapshot and every delta, in order, at once.
        let mut histories: Vec<(Metric, HistorySamples)> = std::iter::once(whole)
            .chain(deltas)
            .flat_map(PatientSnapshot::histories)
            .collect();
        // Stable: a metric's parts stay in the order they were written.
        histories.sort_by_key(|(metric, _)| metric.index());
        // Every metric with samples or measured days, in one allocation.
        let with_days = std::iter::once(whole)
            .chain(deltas)
            .flat_map(|part| part.day_masks().map(|(metric, _)| metric));
        state
            .measured
            .ensure(histories.iter().map(|(metric, _)| *metric).chain(with_days));
        for run in histories.chunk_by(|a, b| a.0 == b.0) {
            let metric = run[0].0;
            let count = run.iter().map(|(_, s)| s.len()).sum();
            let samples = run.iter().flat_map(|(_, s)| s.clone());
            let needs = state.needs(&rules, metric);
            let retention = retention(metric);
            let s = state.measured.entry(metric);
            s.restore(Counted(samples, count), retention, needs);
            state.measured.sync_latest(metric);
            restored[metric.index()] = true;
        }
        for part in std::iter::once(whole).chain(deltas) {
            for (metric, mask) in part.day_masks() {
                state.measured.entry(metric).days.merge(&mask);
            }
        }
        for metric in Metric::ALL.into_iter().filter(|m| restored[m.index()]) {
            let latest = state.measured.latest(metric);
            if let Some(latest) = latest.filter(|_| rules.has_absent(metric)) {
                let seen = latest.ts_ms.min(now_ms);
                state.measured.entry(metric).seen_at(seen);
                self.arm(patient_id, &rules, state, metric, seen);
            }
        }
        let delta_samples = deltas.iter().map(PatientSnapshot::sample_count).sum();
        state
            .persisted
            .restored(&mut state.measured, deltas.len() as u32, delta_samples);
        true
    }
}

/// An iterator whose length is known ahead (the sum of the parts it chains).
struct Counted<I>(I, usize);

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.0.next()?;
        self.1 = self.1.saturating_sub(1);
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.1, Some(self.1))
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}
