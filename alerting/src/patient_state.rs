//! A patient's state as the store keeps it: what every reading reads first (the
//! profile's hot fields, the current day, the open alerts, which rules apply, where the
//! measured metrics' states are), the snapshots' bookkeeping and the profile.

use std::sync::Arc;

use vigil_ingest::Metric;

use crate::book::OpenFlag;
use crate::days::{Day, DayClock};
use crate::measured::Measured;
use crate::patient::{PatientKey, PatientProfile};
use crate::rule::{Rule, RuleOverride};
use crate::ruleset::RuleSet;
use crate::snapshot::Persisted;
use crate::window::Tracking;

/// An alert that is open (active or acknowledged) for one of the patient's rules.
#[derive(Debug, Clone)]
pub struct OpenAlert {
    pub rule_id: Arc<str>,
    pub alert_id: Arc<str>,
    /// Cleared by the alert book when the alert resolves (by a person or the engine).
    pub flag: OpenFlag,
}

/// A patient's open alerts: one pointer, null for the patients with none (almost all).
#[derive(Debug, Default)]
// A Vec alone is 24 bytes in every patient's state; boxed, 8.
#[allow(clippy::box_collection)]
pub struct PatientAlerts(Option<Box<Vec<OpenAlert>>>);

impl std::ops::Deref for PatientAlerts {
    type Target = [OpenAlert];

    #[inline]
    fn deref(&self) -> &[OpenAlert] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl PatientAlerts {
    pub fn push(&mut self, alert: OpenAlert) {
        self.0.get_or_insert_with(Box::default).push(alert);
    }

    /// Keeps the alerts `keep` accepts; the list is freed once empty.
    pub fn retain(&mut self, keep: impl FnMut(&OpenAlert) -> bool) {
        if let Some(v) = self.0.as_mut() {
            v.retain(keep);
            if v.is_empty() {
                self.0 = None;
            }
        }
    }

    /// Removes the alert at `i`, the last one taking its place.
    pub fn swap_remove(&mut self, i: usize) -> OpenAlert {
        let v = self.0.as_mut().expect("an alert at i");
        let gone = v.swap_remove(i);
        if v.is_empty() {
            self.0 = None;
        }
        gone
    }
}

/// Everything kept per patient, 80 bytes in two lines (`repr(C)`, the parts aligned to 4
/// first so that none is padded): the profile's hot fields and the current day, which
/// rules apply, what the snapshots hold, the open alerts, where the measured metrics'
/// states are, the profile; per metric the patient measures, its window and newest
/// sample are apart ([`Measured`]).
#[derive(Debug)]
#[repr(C)]
pub struct PatientState {
    /// Copies of the profile fields every reading needs, so that the hot path does not
    /// follow the profile pointer (a cache miss per reading at 100 000 patients).
    pub hot: HotProfile,
    /// Which rules of the current rule set apply to this patient (conditions, tiers),
    /// computed once per rule set and profile instead of comparing strings per reading.
    applies: Applies,
    /// What the window snapshots already hold.
    pub persisted: Persisted,
    /// Open alerts by rule; empty (and unallocated) for almost every patient.
    pub open: PatientAlerts,
    /// Per metric measured: its window, measured days, newest sample if NEWS2 scores it;
    /// which absence deadlines are pending.
    pub measured: Measured,
    /// `None`: admitted under open enrolment, with the default profile, which every such
    /// patient shares (see [`PatientState::profile`]). The patient's time zone is the
    /// profile's, looked up by name when the day changes ([`PatientState::zone`]): not
    /// kept here, where it would cost every patient 8 bytes for a lookup a day.
    profile: Option<Arc<PatientProfile>>,
}

/// The profile fields read per reading, and the patient's current day (read for every
/// reading anyway, beside consent, so keeping the day costs no miss).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HotProfile {
    pub consent: bool,
    pub spo2_scale: u8,
    /// The patient has at least one rule override.
    pub has_overrides: bool,
    /// The longest `for` or `window` among the overrides, in whole seconds rounded up
    /// (4 bytes, not 8; see [`HotProfile::longest_override_ms`]).
    longest_override_s: u32,
    /// The local day readings last fell on (in the profile's time zone: a new profile
    /// starts it again).
    pub clock: DayClock,
}

impl HotProfile {
    /// The longest `for` or `window` among the overrides: windows keep at least this much
    /// history (up to a second more than the override asks, which changes no verdict).
    #[inline]
    pub fn longest_override_ms(&self) -> i64 {
        i64::from(self.longest_override_s) * 1000
    }

    fn of(p: &PatientProfile) -> HotProfile {
        HotProfile {
            consent: p.consent,
            spo2_scale: p.spo2_scale,
            has_overrides: !p.overrides.is_empty(),
            longest_override_s: crate::window::whole_seconds_up(p.longest_window_ms()),
            clock: DayClock::default(),
        }
    }
}

#[cfg(test)]
mod needs {
    use super::*;

    #[test]
    fn a_window_keeps_only_what_the_rules_of_its_patient_need() {
        let rules = RuleSet::new(crate::builtin_rules());
        let respiratory = PatientProfile {
            conditions: vec!["respiratory".into()],
            ..PatientProfile::open("r")
        };
        let mut copd = PatientState::new("r", Some(Arc::new(respiratory)));
        let mut other = PatientState::new("o", None);
        for state in [&mut copd, &mut other] {
            state.refresh_applies(&rules);
        }
        // spo2_trend is for respiratory patients only.
        assert_eq!(copd.needs(&rules, Metric::Spo2).trend_ms, 30 * 60_000);
        assert_eq!(other.needs(&rules, Metric::Spo2), Tracking::default());
        // Home blood pressure means are for hypertension, weight gain for heart failure.
        for state in [&copd, &other] {
            assert_eq!(state.needs(&rules, Metric::SystolicBp), Tracking::default());
            assert_eq!(state.needs(&rules, Metric::Weight), Tracking::default());
        }
    }

    #[test]
    fn what_a_window_keeps_is_the_walk_of_its_trackers_whatever_applies() {
        // A SpO2 floor for everyone beside the respiratory cohort's trend: some of the
        // metric's trackers apply to a patient and some do not.
        let floor = crate::rule_spec::RuleSpec {
            id: "spo2_floor".into(),
            kind: Some("min".into()),
            metric: Some("spo2".into()),
            window_ms: Some(3_600_000),
            below: Some(88.0),
            ..Default::default()
        };
        let mut all = crate::builtin_rules();
        all.push(floor.validate().expect("a valid rule"));
        let rules = RuleSet::new(all);
        let conditions = ["respiratory", "heart_failure", "hypertension", "diabetes"];
        for subset in 0..1u32 << conditions.len() {
            let profile = PatientProfile {
                conditions: (0..conditions.len())
                    .filter(|i| subset & 1 << i != 0)
                    .map(|i| conditions[i].into())
                    .collect(),
                ..PatientProfile::open("p")
            };
            let mut state = PatientState::new("p", Some(Arc::new(profile)));
            state.refresh_applies(&rules);
            for m in Metric::ALL {
                assert_eq!(
                    state.needs(&rules, m),
                    state.needs_of_some(&rules, m),
                    "{m:?}, conditions {subset:#b}"
                );
            }
        }
    }
}

#[cfg(test)]
mod hot {
    use super::*;
    use crate::overrides::RuleOverride;

    #[test]
    fn the_longest_override_is_kept_in_whole_seconds_rounded_up() {
        let with = |window_ms: Option<i64>, hold_ms: Option<i64>| {
            let profile = PatientProfile {
                overrides: vec![(
                    "r".into(),
                    RuleOverride {
                        window_ms,
                        hold_ms,
                        ..RuleOverride::default()
                    },
                )],
                ..PatientProfile::open("p")
            };
            HotProfile::of(&profile).longest_override_ms()
        };
        assert_eq!(with(Some(1_500), Some(900)), 2_000);
        assert_eq!(with(None, Some(86_400_000)), 86_400_000);
        assert_eq!(with(Some(i64::MAX), None), i64::from(u32::MAX) * 1000);
        assert_eq!(with(None, None), 0);
        assert_eq!(
            HotProfile::of(&PatientProfile::open("p")).longest_override_ms(),
            0
        );
    }
}

#[cfg(test)]
mod layout {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn what_every_reading_reads_is_in_the_first_two_lines() {
        for offset in [
            offset_of!(PatientState, hot) + std::mem::size_of::<HotProfile>() - 1,
            offset_of!(PatientState, open) + 7,
            offset_of!(PatientState, applies) + std::mem::size_of::<Applies>() - 1,
            offset_of!(PatientState, measured) + std::mem::size_of::<Measured>() - 1,
        ] {
            assert!(offset < 2 * 64, "{offset}");
        }
        // A patient's fixed part, whatever it measures, before its metrics' states: within
        // the allocator's 80-byte class, with no padding between its parts.
        assert_eq!(std::mem::size_of::<PatientState>(), 80);
        assert_eq!(std::mem::size_of::<HotProfile>(), 20);
        assert_eq!(std::mem::size_of::<Applies>(), 20);
        assert_eq!(std::mem::size_of::<Persisted>(), 8);
        assert_eq!(std::mem::size_of::<Measured>(), 16);
    }
}

/// Bit `i` set: rule `i` of the rule set of generation `generation` applies.
/// Rules past the first 128 are judged on the spot. 20 bytes, aligned to 4 like the hot
/// profile and the snapshots' bookkeeping beside it, so that the three leave no padding.
#[derive(Debug, Clone, Copy, Default)]
struct Applies {
    generation: u32,
    bits: [u32; 4],
}

impl PatientState {
    /// A new patient `id`'s state, with `profile` (`None`: open enrolment's default).
    pub fn new(id: &str, profile: Option<Arc<PatientProfile>>) -> PatientState {
        PatientState {
            hot: HotProfile::of(profile.as_deref().unwrap_or(open_profile())),
            applies: Applies::default(),
            profile,
            measured: Measured::new(PatientKey::from(id)),
            open: PatientAlerts::default(),
            persisted: Persisted::default(),
        }
    }

    /// The patient's time zone: the profile's (checked when the profile was accepted), or
    /// the server's (`server`) if it has none.
    fn zone(&self, server: impl FnOnce() -> jiff::tz::TimeZone) -> jiff::tz::TimeZone {
        self.profile()
            .timezone
            .as_deref()
            .and_then(|name| jiff::tz::TimeZone::get(name).ok())
            .unwrap_or_else(server)
    }

    /// The patient's settings (care team, consent, conditions, overrides, ...). For a
    /// patient admitted under open enrolment this is the shared default, whose `id` is
    /// empty: a patient's id is the store's key, or [`PatientState::profile_of`].
    pub fn profile(&self) -> &PatientProfile {
        self.profile.as_deref().unwrap_or(open_profile())
    }

    /// The patient's id as the map keys it.
    pub fn key(&self) -> &PatientKey {
        self.measured.key()
    }

    /// The patient's id, `id`, shared with the profile's when the patient is enrolled.
    pub fn id_of(&self, id: &str) -> Arc<str> {
        match &self.profile {
            Some(p) if *p.id == *id => p.id.clone(),
            _ => id.into(),
        }
    }

    /// The patient's profile as people see it, `id` being the patient's.
    pub fn profile_of(&self, id: &str) -> Arc<PatientProfile> {
        match &self.profile {
            Some(p) => p.clone(),
            None => Arc::new(PatientProfile::open(id)),
        }
    }

    /// Marks the day a reading of metric `m` taken at `ts_ms` fell on (`server`: the
    /// server's time zone, asked only when the day is not the current one). Writes the
    /// metric's mask only for its first reading of a day.
    #[inline]
    pub fn record_day(
        &mut self,
        m: Metric,
        ts_ms: i64,
        server: impl FnOnce() -> jiff::tz::TimeZone,
    ) {
        let bit = 1u16 << m.index();
        if !self.hot.clock.covers(ts_ms) {
            self.hot.clock = DayClock::of(ts_ms, &self.zone(server));
        } else if self.hot.clock.recorded & bit != 0 {
            return;
        }
        self.measured.entry(m).days.record(self.hot.clock.day());
        self.hot.clock.recorded |= bit;
    }

    /// The local day of `ts_ms` for this patient, without moving the current day.
    pub fn day_of(&self, ts_ms: i64, server: impl FnOnce() -> jiff::tz::TimeZone) -> Day {
        if self.hot.clock.covers(ts_ms) {
            return self.hot.clock.day();
        }
        crate::days::day_of(ts_ms, &self.zone(server))
    }

    /// Replaces the profile, keeping the windows.
    pub fn set_profile(&mut self, profile: Arc<PatientProfile>) {
        self.hot = HotProfile::of(&profile);
        self.applies = Applies::default();
        self.profile = Some(profile);
    }

    /// Brings the cache of which rules apply up to date with `rules` (a no-op unless the
    /// rule set or the profile changed). Call it once per locked batch, then [`applies`].
    ///
    /// [`applies`]: PatientState::applies
    #[inline]
    pub fn refresh_applies(&mut self, rules: &RuleSet) {
        if self.applies.generation != rules.generation() {
            self.compute_applies(rules);
        }
    }

    /// Which rules of `rules` apply, computed afresh (a new rule set or profile).
    fn compute_applies(&mut self, rules: &RuleSet) {
        let bits = rules
            .rules()
            .iter()
            .take(128)
            .enumerate()
            .filter(|(_, r)| r.applies_to(self.profile()))
            .fold([0u32; 4], |mut bits, (i, _)| {
                bits[i / 32] |= 1 << (i % 32);
                bits
            });
        self.applies = Applies {
            generation: rules.generation(),
            bits,
        };
    }

    /// Whether `rule`, at `index` in the rule set last passed to
    /// [`PatientState::refresh_applies`], applies to this patient.
    #[inline]
    pub fn applies(&self, index: usize, rule: &Rule) -> bool {
        if index >= 128 {
            return rule.applies_to(self.profile());
        }
        self.applies.bits[index / 32] & (1 << (index % 32)) != 0
    }

    /// What `metric`'s window must keep for the rules of `rules` that apply to this
    /// patient (call [`PatientState::refresh_applies`] first): a patient outside a
    /// cohort rule's conditions does not pay for its derived state.
    #[inline]
    pub fn needs(&self, rules: &RuleSet, metric: Metric) -> Tracking {
        if let Some(trackers) = rules.tracker_bits(metric) {
            let (mut some, mut all) = (false, true);
            for (applies, tracker) in self.applies.bits.iter().zip(trackers.bits) {
                some |= applies & tracker != 0;
                all &= applies & tracker == tracker;
            }
            if all {
                return trackers.all;
            }
            if !some {
                return Tracking::default();
            }
        }
        self.needs_of_some(rules, metric)
    }

    /// [`PatientState::needs`] when some of the metric's trackers apply and some do not.
    fn needs_of_some(&self, rules: &RuleSet, metric: Metric) -> Tracking {
        rules
            .trackers(metric)
            .iter()
            .filter(|&&(i, _)| self.applies(i, &rules.rules()[i]))
            .fold(Tracking::default(), |all, &(_, needs)| all.union(needs))
    }

    /// The patient's override of `rule_id`, without touching the profile when there is none.
    #[inline]
    pub fn override_for(&self, rule_id: &str) -> Option<&RuleOverride> {
        if self.hot.has_overrides {
            self.profile().override_for(rule_id)
        } else {
            None
        }
    }
}

/// The profile of a patient admitted under open enrolment, shared by all of them (its
/// `id` is empty).
fn open_profile() -> &'static PatientProfile {
    static OPEN: std::sync::LazyLock<PatientProfile> =
        std::sync::LazyLock::new(|| PatientProfile::open(""));
    &OPEN
}

impl PatientState {
    /// Starts loading what a reading of any metric reads after the patient's own lines:
    /// the newest sample of every NEWS2 parameter measured (NEWS2 reads them all). Their
    /// address is in the patient's first lines ([`PatientState::prefetch_own`]).
    #[inline]
    pub fn prefetch_common(&self) {
        self.measured.prefetch_newest();
    }

    /// Starts loading the patient's own lines: the hot profile, which rules apply, where
    /// the metrics' states are, what the snapshots hold.
    #[inline]
    pub fn prefetch_own(&self) {
        crate::prefetch::prefetch_lines(self);
    }
}
