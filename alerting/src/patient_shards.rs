//! The sharded in-memory store: per patient, one sliding window per metric and the
//! patient's open alerts, behind a lock-sharded map so readings for different patients
//! never contend on one lock.

use std::hash::BuildHasher;
use std::sync::Arc;

use compact_str::CompactString;
use hashbrown::raw::RawTable;
use parking_lot::{MappedRwLockWriteGuard, RwLock, RwLockWriteGuard};
use vigil_ingest::Metric;

use crate::book::OpenFlag;
use crate::days::{Day, DayClock};
use crate::measured::Measured;
use crate::patient::PatientProfile;
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

/// Everything kept per patient: what every reading reads first (`repr(C)`: the profile's
/// hot fields, the current day, the open alerts, which rules apply and where the measured
/// metrics' states are, in two lines), then the rest; per metric the patient measures,
/// its window and newest sample are apart ([`Measured`]).
#[derive(Debug)]
#[repr(C)]
pub struct PatientState {
    /// Copies of the profile fields every reading needs, so that the hot path does not
    /// follow the profile pointer (a cache miss per reading at 100 000 patients).
    pub hot: HotProfile,
    /// Open alerts by rule; empty (and unallocated) for almost every patient.
    pub open: PatientAlerts,
    /// Which rules of the current rule set apply to this patient (conditions, tiers),
    /// computed once per rule set and profile instead of comparing strings per reading.
    applies: Applies,
    /// Per metric measured: its window, measured days, newest sample if NEWS2 scores it.
    pub measured: Measured,
    /// Bit per metric: an absence deadline is pending in the timer heap.
    pub armed: u16,
    /// What the window snapshots already hold.
    pub persisted: Persisted,
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
}

#[cfg(test)]
mod ids {
    use super::same_id;

    #[test]
    fn ids_compare_as_their_bytes_at_every_length() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=base.len() {
            let a = &base[..n];
            assert!(same_id(a, a), "{n}");
            assert!(!same_id(a, &base[..n.saturating_sub(1)]) || n == 0);
            for i in 0..n {
                let mut b = a.to_vec();
                b[i] ^= 1;
                assert!(!same_id(a, &b), "length {n}, byte {i}");
            }
        }
    }
}

#[cfg(test)]
mod prefetching {
    use super::*;

    #[test]
    fn prefetching_changes_nothing_whatever_the_map_holds() {
        let shards = PatientShards::new();
        let nobody = shards.hash("nobody");
        shards.prefetch_slot(nobody);
        shards.prefetch_state("nobody", nobody);
        shards.prefetch_measured("nobody", nobody, Some(Metric::Spo2));
        shards.prefetch_window("nobody", nobody, Metric::Spo2);
        for i in 0..1000 {
            shards.upsert_profile(PatientProfile {
                care_team: format!("team-{i}").into(),
                ..PatientProfile::open(&format!("p-{i}"))
            });
        }
        for i in 0..1100 {
            let id = format!("p-{i}");
            let hash = shards.hash(&id);
            shards.prefetch_slot(hash);
            shards.prefetch_state(&id, hash);
            shards.prefetch_measured(&id, hash, Some(Metric::HeartRate));
            shards.prefetch_window(&id, hash, Metric::HeartRate);
            // The hashed lookup finds the patient's own state, and only patients held.
            let team = shards.read_hashed(&id, hash, |s| s.profile().care_team.clone());
            assert_eq!(
                team.as_deref(),
                (i < 1000).then(|| format!("team-{i}")).as_deref()
            );
            assert_eq!(shards.get_mut(&id).is_some(), i < 1000, "{id}");
        }
    }

    #[test]
    fn admitting_through_the_shard_agrees_with_the_map_as_it_grows() {
        let shards = PatientShards::new();
        // Enough ids that every shard's table grows several times (rehashing its keys).
        let ids: Vec<String> = (0..20_000).map(|i| format!("patient-{i:05}")).collect();
        for id in &ids {
            let mut state = shards.get_or_admit(id);
            assert_eq!(state.key().as_str(), id);
            state.hot.consent = id.ends_with('7');
        }
        assert_eq!(shards.len(), ids.len());
        for id in &ids {
            // Admitting again finds the same state; the map's own lookups (profile,
            // remove) find what the shard-level insert filed.
            assert_eq!(shards.get_or_admit(id).hot.consent, id.ends_with('7'));
            assert!(shards.profile(id).is_some(), "{id}");
        }
        assert_eq!(shards.len(), ids.len(), "admitting again adds no one");
        for id in ids.iter().step_by(3) {
            assert!(shards.remove(id).is_some(), "{id}");
            assert!(shards.get_mut(id).is_none(), "{id}");
        }
        let state = shards.get_mut(&ids[1]).expect("kept");
        assert_eq!(
            (state.key().as_str(), state.hot.consent),
            (ids[1].as_str(), false)
        );
        drop(state);
        // Every id is walked once, the removed ones not at all.
        let mut walked = shards.ids();
        walked.sort();
        let kept: Vec<&String> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, id)| id)
            .collect();
        assert_eq!(walked, kept);
        assert_eq!(
            shards.sum(|s| usize::from(s.hot.consent)),
            kept.iter().filter(|id| id.ends_with('7')).count()
        );
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
            offset_of!(PatientState, applies) + 23,
            offset_of!(PatientState, measured) + std::mem::size_of::<Measured>() - 1,
        ] {
            assert!(offset < 2 * 64, "{offset}");
        }
        // A patient's fixed part, whatever it measures, before its metrics' states: within
        // the allocator's 96-byte class.
        assert!(std::mem::size_of::<PatientState>() <= 96);
    }
}

/// Bit `i` set: rule `i` of rule set `generation` applies. Rules past the first 128 are
/// judged on the spot.
#[derive(Debug, Clone, Copy, Default)]
struct Applies {
    generation: u64,
    /// Two words rather than a u128, which would align the struct to 16 bytes and
    /// lengthen it by 8.
    bits: [u64; 2],
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
            armed: 0,
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
        self.measured.entry(m).days.record(self.hot.clock.day);
        self.hot.clock.recorded |= bit;
    }

    /// The local day of `ts_ms` for this patient, without moving the current day.
    pub fn day_of(&self, ts_ms: i64, server: impl FnOnce() -> jiff::tz::TimeZone) -> Day {
        if self.hot.clock.covers(ts_ms) {
            return self.hot.clock.day;
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
    /// A change also has every window look at its oldest samples at its next reading:
    /// the rules and the profile's overrides set how much history a window keeps.
    ///
    /// [`applies`]: PatientState::applies
    pub fn refresh_applies(&mut self, rules: &RuleSet) {
        if self.applies.generation != rules.generation() {
            for (_, window) in self.measured.iter_mut() {
                window.look_again();
            }
            let bits = rules
                .rules()
                .iter()
                .take(128)
                .enumerate()
                .filter(|(_, r)| r.applies_to(self.profile()))
                .fold([0u64; 2], |mut bits, (i, _)| {
                    bits[i / 64] |= 1 << (i % 64);
                    bits
                });
            self.applies = Applies {
                generation: rules.generation(),
                bits,
            };
        }
    }

    /// Whether `rule`, at `index` in the rule set last passed to
    /// [`PatientState::refresh_applies`], applies to this patient.
    #[inline]
    pub fn applies(&self, index: usize, rule: &Rule) -> bool {
        if index >= 128 {
            return rule.applies_to(self.profile());
        }
        self.applies.bits[index / 64] & (1 << (index % 64)) != 0
    }

    /// What `metric`'s window must keep for the rules of `rules` that apply to this
    /// patient (call [`PatientState::refresh_applies`] first): a patient outside a
    /// cohort rule's conditions does not pay for its derived state.
    pub fn needs(&self, rules: &RuleSet, metric: Metric) -> Tracking {
        rules
            .trackers(metric)
            .iter()
            .filter(|&&(i, _)| self.applies(i, &rules.rules()[i]))
            .fold(Tracking::default(), |all, &(_, needs)| all.union(needs))
    }

    /// The patient's override of `rule_id`, without touching the profile when there is none.
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

/// Patients by id: lock shards, each a hash table of bare pointers to patients' states
/// (the key is in the state, [`PatientState::key`]). A table entry is 8 bytes and a
/// control byte, where an id inline beside its pointer took 33: the map is a tenth of
/// what a patient costs at a million patients, hash tables being powers of two at most
/// 7/8 full. A lookup compares ids in the state's line that the reading reads anyway.
pub struct PatientShards {
    shards: Box<[Shard]>,
    hasher: PatientHasher,
}

/// One lock shard: its own cache lines, so that locking one never invalidates a
/// neighbour's lock word.
#[repr(align(128))]
struct Shard(RwLock<RawTable<Box<PatientState>>>);

/// The map's hash: foldhash, seeded at random per map. Every reading hashes its patient's
/// id once to process it and once per look-ahead stage; SipHash, the standard one, was
/// a tenth of a gateway batch's rule evaluation. An attacker choosing ids cannot see the
/// seed or any hash, so cannot aim ids at one bucket.
type PatientHasher = foldhash::fast::RandomState;

/// Lock shards of the patient map (a power of two). Many: a snapshot walks every patient,
/// locking each one's shard in turn while ingest locks others, and the fewer patients a
/// shard holds, the rarer the two meet.
const SHARDS: usize = 256;

/// A shard is chosen by the hash's bits below the top seven (which the tables keep as
/// each entry's tag) and far above those a table indexes its buckets by.
const SHARD_SHIFT: u32 = 64 - 7 - SHARDS.trailing_zeros();

impl Default for PatientShards {
    fn default() -> PatientShards {
        PatientShards {
            shards: (0..SHARDS)
                .map(|_| Shard(RwLock::new(RawTable::new())))
                .collect(),
            hasher: PatientHasher::default(),
        }
    }
}

/// Whether two ids are the same, compared a word at a time: ids are short, and a call to
/// `memcmp` for a few bytes costs more than the comparison.
#[inline]
fn same_id(a: &[u8], b: &[u8]) -> bool {
    fn word(s: &[u8], at: usize) -> u64 {
        u64::from_ne_bytes(s[at..at + 8].try_into().expect("eight bytes"))
    }
    fn half(s: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(s[at..at + 4].try_into().expect("four bytes"))
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        // Whole words from the start, then the last word (overlapping the one before).
        8.. => {
            let mut at = 0;
            while at + 8 < n {
                if word(a, at) != word(b, at) {
                    return false;
                }
                at += 8;
            }
            word(a, n - 8) == word(b, n - 8)
        }
        4..8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

/// A patient id as the store keys it: ids up to 24 bytes are held inline.
pub type PatientKey = CompactString;

/// Whether a map entry is `id`'s (its key compared a word at a time): the one test every
/// lookup uses.
fn entry_of(id: &str) -> impl Fn(&Box<PatientState>) -> bool + '_ {
    move |state| same_id(state.key().as_bytes(), id.as_bytes())
}

/// A patient's state, locked for writing: its shard stays write-locked until this drops.
pub struct StateMut<'a> {
    state: MappedRwLockWriteGuard<'a, PatientState>,
}

impl std::ops::Deref for StateMut<'_> {
    type Target = PatientState;

    #[inline]
    fn deref(&self) -> &PatientState {
        &self.state
    }
}

impl std::ops::DerefMut for StateMut<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut PatientState {
        &mut self.state
    }
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

impl PatientShards {
    pub fn new() -> PatientShards {
        PatientShards::default()
    }

    /// The shard holding the id hashed `hash`.
    #[inline]
    fn shard(&self, hash: u64) -> &RwLock<RawTable<Box<PatientState>>> {
        &self.shards[(hash >> SHARD_SHIFT) as usize % SHARDS].0
    }

    /// The hash the map files `id` under: a batch's look-ahead hashes each id once for
    /// all its stages ([`crate::LookAhead`]).
    pub fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The patient's state, locked for writing (only its shard is locked).
    pub fn get_mut(&self, id: &str) -> Option<StateMut<'_>> {
        self.get_mut_hashed(id, self.hash(id))
    }

    /// Like [`PatientShards::get_mut`], for an id whose [`PatientShards::hash`] is `hash`
    /// (a batch's look-ahead has hashed it already). Any other hash would miss the patient.
    pub(crate) fn get_mut_hashed(&self, id: &str, hash: u64) -> Option<StateMut<'_>> {
        let shard = self.shard(hash).write();
        let state = RwLockWriteGuard::try_map(shard, |table| {
            table.get_mut(hash, entry_of(id)).map(|state| &mut **state)
        })
        .ok()?;
        Some(StateMut { state })
    }

    /// The patient's state, created with the open-enrolment default profile if absent;
    /// `hash` must be the id's [`PatientShards::hash`] (any other would file a second
    /// state for the id). One lookup under one lock either way.
    pub(crate) fn get_or_admit_hashed(&self, id: &str, hash: u64) -> StateMut<'_> {
        let shard = self.shard(hash).write();
        let state = RwLockWriteGuard::map(shard, |table| {
            let bucket = match table.find_or_find_insert_slot(hash, entry_of(id), |s| {
                // Growing the table rehashes its keys as the map hashes them.
                self.hash(s.key())
            }) {
                Ok(bucket) => bucket,
                // SAFETY: the slot was found in this table just now, under the same
                // write lock, and the table has not changed since.
                Err(slot) => unsafe {
                    table.insert_in_slot(hash, slot, Box::new(PatientState::new(id, None)))
                },
            };
            // SAFETY: `bucket` is a full bucket of `table`, which this closure borrows
            // mutably for the returned reference's lifetime (the shard's write lock), so
            // it is neither freed nor aliased while the reference lives (the state is
            // boxed: growing the table would move the pointer, not the state).
            unsafe { &mut **bucket.as_mut() }
        });
        StateMut { state }
    }

    /// The patient's state, created with the open-enrolment default profile if absent.
    pub fn get_or_admit(&self, id: &str) -> StateMut<'_> {
        self.get_or_admit_hashed(id, self.hash(id))
    }

    /// `f` of the state of `id`, whose [`PatientShards::hash`] is `hash`, read-locked
    /// for as long as `f` runs; `None` if there is no such patient.
    fn read_hashed<R>(&self, id: &str, hash: u64, f: impl FnOnce(&PatientState) -> R) -> Option<R> {
        let shard = self.shard(hash).read();
        shard.get(hash, entry_of(id)).map(|state| f(state))
    }

    /// `f` of the state the table's first entry tagged like `hash` points to, without
    /// comparing ids (which would wait for the state's line): for hints only, since the
    /// state may be another patient's (one in 128 of the entries probed carry the tag).
    fn read_tagged(&self, hash: u64, f: impl FnOnce(&PatientState)) {
        let shard = self.shard(hash).read();
        // SAFETY: the buckets are read only while the shard stays read-locked, so the
        // table is neither freed nor changed meanwhile.
        unsafe {
            if let Some(bucket) = shard.iter_hash(hash).next() {
                f(bucket.as_ref());
            }
        }
    }

    /// Starts loading the map's control bytes and entries where a lookup of the id hashed
    /// `hash` starts probing, without waiting for them (a batch asks this several readings
    /// ahead).
    pub fn prefetch_slot(&self, hash: u64) {
        let shard = self.shard(hash).read();
        let data_end = shard.data_end().as_ptr().cast::<u8>().cast_const();
        let home = hash as usize & (shard.buckets() - 1);
        crate::prefetch::prefetch_address(data_end.wrapping_add(home));
        // Entries are stored downwards from the control bytes; an id's sits at or just
        // after its home slot unless the table is crowded there.
        let entry = std::mem::size_of::<Box<PatientState>>();
        crate::prefetch::prefetch_address(data_end.wrapping_sub((home + 1) * entry));
    }

    /// Starts loading the patient state's own lines (a batch asks this a few readings
    /// ahead, once the map's entry is loaded): the state the entry tagged like `hash`
    /// points to, not compared with `id` (its line is what is being loaded).
    pub fn prefetch_state(&self, _id: &str, hash: u64) {
        self.read_tagged(hash, PatientState::prefetch_own);
    }

    /// Starts loading the measured NEWS2 parameters' newest samples, the patient's id
    /// and the state of `metric` (where they are is in the state's own lines, which
    /// [`PatientShards::prefetch_state`] loaded).
    /// Like [`PatientShards::prefetch_state`], the state is the one tagged like `hash`,
    /// not compared with `id` (the id is in the block being loaded).
    pub fn prefetch_measured(&self, _id: &str, hash: u64, metric: Option<Metric>) {
        self.read_tagged(hash, |state| {
            state.prefetch_common();
            if let Some(m) = metric {
                state.measured.prefetch(m);
            }
        });
    }

    /// Starts loading the metric's samples and derived state (their addresses are in the
    /// window header, which [`PatientShards::prefetch_measured`] loaded).
    pub fn prefetch_window(&self, id: &str, hash: u64, metric: Metric) {
        self.read_hashed(id, hash, |state| {
            if let Some(window) = state.measured.window(metric) {
                window.prefetch();
            }
        });
    }

    /// Installs or replaces a patient's profile, keeping its windows, unless consent is
    /// withdrawn: then nothing recorded about the patient is kept.
    pub fn upsert_profile(&self, profile: PatientProfile) {
        let profile = Arc::new(profile);
        let mut state = self.get_or_admit(&profile.id);
        if profile.consent {
            state.set_profile(profile);
        } else {
            *state = PatientState::new(&profile.id, Some(profile.clone()));
        }
    }

    /// A patient's profile.
    pub fn profile(&self, id: &str) -> Option<Arc<PatientProfile>> {
        self.read_hashed(id, self.hash(id), |s| s.profile_of(id))
    }

    /// Removes a patient and everything stored for them.
    pub fn remove(&self, id: &str) -> Option<Box<PatientState>> {
        let hash = self.hash(id);
        self.shard(hash).write().remove_entry(hash, entry_of(id))
    }

    /// `f` of every patient's state, a shard at a time (each read-locked while walked).
    fn for_each(&self, mut f: impl FnMut(&PatientState)) {
        for shard in self.shards.iter() {
            let table = shard.0.read();
            // SAFETY: the buckets are read only while the shard stays read-locked.
            for bucket in unsafe { table.iter() } {
                f(unsafe { bucket.as_ref() });
            }
        }
    }

    /// Every patient id, copied (each shard is read-locked only while it is copied).
    pub fn ids(&self) -> Vec<PatientKey> {
        let mut ids = Vec::with_capacity(self.len());
        self.for_each(|s| ids.push(s.key().clone()));
        ids
    }

    /// The sum of `f` over every patient (each shard read-locked while it is walked).
    pub fn sum(&self, f: impl Fn(&PatientState) -> usize) -> usize {
        let mut sum = 0;
        self.for_each(|s| sum += f(s));
        sum
    }

    /// Number of patients tracked (enrolled or seen).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.read().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
