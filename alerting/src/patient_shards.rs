//! The sharded in-memory store: patients' states ([`PatientState`]) by id, behind
//! lock shards so readings for different patients never contend on one lock.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::raw::{Bucket, RawTable};
use parking_lot::{MappedRwLockWriteGuard, RwLock, RwLockWriteGuard};
use vigil_ingest::Metric;

use crate::patient::{PatientKey, PatientProfile};
use crate::patient_state::PatientState;
use crate::window::Window;

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
mod model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Admit(usize),
        Mark(usize, u8),
        Remove(usize),
        Enrol(usize, bool),
        Read(usize),
        Measure(usize),
        /// The look-ahead's state stage for patient `.0`, kept for the locks after it.
        Look(usize),
        /// A lock of patient `.0` given what was found for patient `.1` (perhaps stale).
        LockFound(usize, usize),
    }

    /// Ids short and long (inline and not), some sharing long prefixes.
    fn id(i: usize) -> String {
        match i % 3 {
            0 => format!("p{i}"),
            1 => format!("a-patient-id-longer-than-inline-{i}"),
            _ => format!("ward-7/bed-{i:04}"),
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        let i = 0usize..40;
        prop_oneof![
            i.clone().prop_map(Op::Admit),
            (i.clone(), any::<u8>()).prop_map(|(i, m)| Op::Mark(i, m)),
            i.clone().prop_map(Op::Remove),
            (i.clone(), any::<bool>()).prop_map(|(i, c)| Op::Enrol(i, c)),
            i.clone().prop_map(Op::Read),
            i.clone().prop_map(Op::Measure),
            i.clone().prop_map(Op::Look),
            (i.clone(), i).prop_map(|(i, j)| Op::LockFound(i, j)),
        ]
    }

    proptest! {
        /// The map against a `HashMap` of what each patient should hold: who is there,
        /// what was last written to them, and their id, through every operation.
        #[test]
        fn the_patient_map_agrees_with_a_hash_map(ops in proptest::collection::vec(op(), 1..200)) {
            let shards = PatientShards::new();
            // Per patient: the spo2 scale last written, and the metrics measured.
            let mut model: HashMap<String, (u8, usize)> = HashMap::new();
            let mut found: HashMap<usize, Option<Found>> = HashMap::new();
            for op in ops {
                match op {
                    Op::Admit(i) => {
                        let state = shards.get_or_admit(&id(i));
                        prop_assert_eq!(state.key().as_str(), id(i));
                        // Open enrolment's default profile: SpO2 scale 1.
                        let want = model.entry(id(i)).or_insert((1, 0));
                        prop_assert_eq!((state.hot.spo2_scale, state.measured.len()), *want);
                    }
                    Op::Mark(i, m) => match shards.get_mut(&id(i)) {
                        Some(mut state) => {
                            state.hot.spo2_scale = m;
                            model.get_mut(&id(i)).expect("in the model").0 = m;
                        }
                        None => prop_assert!(!model.contains_key(&id(i))),
                    },
                    Op::Remove(i) => {
                        let gone = shards.remove(&id(i));
                        prop_assert_eq!(gone.map(|s| s.key().to_string()), model.remove(&id(i)).map(|_| id(i)));
                    }
                    Op::Enrol(i, consent) => {
                        shards.upsert_profile(PatientProfile {
                            consent,
                            spo2_scale: 1,
                            ..PatientProfile::open(&id(i))
                        });
                        let want = model.entry(id(i)).or_insert((1, 0));
                        // Withdrawn consent keeps nothing recorded.
                        *want = if consent { (1, want.1) } else { (1, 0) };
                    }
                    Op::Read(i) => {
                        let hash = shards.hash(&id(i));
                        let got = shards.read_hashed(&id(i), hash, |s| (s.hot.spo2_scale, s.measured.len()));
                        prop_assert_eq!(got, model.get(&id(i)).copied());
                    }
                    Op::Look(i) => {
                        found.insert(i, shards.prefetch_state(shards.hash(&id(i))));
                    }
                    Op::LockFound(i, j) => {
                        let hint = found.get(&j).copied().flatten();
                        let got = shards
                            .get_mut_hashed(&id(i), shards.hash(&id(i)), hint)
                            .map(|s| (s.key().to_string(), s.hot.spo2_scale, s.measured.len()));
                        let want = model.get(&id(i)).map(|&(scale, n)| (id(i), scale, n));
                        prop_assert_eq!(got, want);
                    }
                    Op::Measure(i) => {
                        if let Some(mut state) = shards.get_mut(&id(i)) {
                            let n = state.measured.len();
                            if let Some(&m) = Metric::ALL.get(n) {
                                state.measured.entry(m);
                                model.get_mut(&id(i)).expect("in the model").1 = n + 1;
                            }
                            // The id moves with the block as it grows.
                            prop_assert_eq!(state.key().as_str(), id(i));
                        }
                    }
                }
                prop_assert_eq!(shards.len(), model.len());
            }
            let mut ids: Vec<String> = shards.ids().iter().map(|k| k.to_string()).collect();
            let mut want: Vec<String> = model.keys().cloned().collect();
            ids.sort();
            want.sort();
            prop_assert_eq!(ids, want);
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
        assert_eq!(shards.prefetch_state(nobody), None, "an empty table");
        shards.prefetch_measured(nobody, None, Some(Metric::Spo2));
        shards.prefetch_window(nobody, None, Metric::Spo2);
        shards.prefetch_derived(nobody, None, Metric::Spo2);
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
            let found = shards.prefetch_state(hash);
            // A patient held has an entry with its tag (its own, or one probed before).
            assert!(i >= 1000 || found.is_some(), "{id}");
            // The table does not change between the stages: each goes to the same entry.
            assert_eq!(
                shards.prefetch_measured(hash, found, Some(Metric::HeartRate)),
                found
            );
            assert_eq!(
                shards.prefetch_window(hash, found, Metric::HeartRate),
                found
            );
            assert_eq!(
                shards.prefetch_derived(hash, found, Metric::HeartRate),
                found
            );
            // The hashed lookup finds the patient's own state, and only patients held.
            let team = shards.read_hashed(&id, hash, |s| s.profile().care_team.clone());
            assert_eq!(
                team.as_deref(),
                (i < 1000).then(|| format!("team-{i}")).as_deref()
            );
            assert_eq!(shards.get_mut(&id).is_some(), i < 1000, "{id}");
            let locked = shards.get_mut_hashed(&id, hash, found);
            assert_eq!(
                locked.map(|s| s.key().to_string()),
                (i < 1000).then_some(id)
            );
        }
    }

    #[test]
    fn an_entry_found_earlier_locks_its_own_patient_whatever_changed_since() {
        let shards = PatientShards::new();
        let ids: Vec<String> = (0..3000).map(|i| format!("p-{i}")).collect();
        for id in &ids[..1000] {
            shards.get_or_admit(id);
        }
        let found: Vec<Option<Found>> = ids
            .iter()
            .map(|id| shards.prefetch_state(shards.hash(id)))
            .collect();
        // Another patient's entry (in this shard or another): the lock looks the id up.
        for (i, id) in ids[..1000].iter().enumerate() {
            let other = found[(i + 1) % 1000];
            let state = shards.get_mut_hashed(id, shards.hash(id), other);
            assert_eq!(state.expect("held").key().as_str(), id);
        }
        // Entries freed and moved (removals; the table growing as patients are
        // admitted): an entry found before may now be empty or another patient's; each
        // id still finds its own.
        for id in ids[..1000].iter().step_by(3) {
            shards.remove(id);
        }
        // Removals alone: a removed patient's emptied entry is not used.
        for (i, id) in ids[..1000].iter().enumerate().step_by(3) {
            assert!(shards
                .get_mut_hashed(id, shards.hash(id), found[i])
                .is_none());
        }
        for (i, id) in ids.iter().enumerate().skip(1000) {
            let state = shards.get_or_admit_hashed(id, shards.hash(id), found[i]);
            assert_eq!(state.key().as_str(), id);
        }
        for (i, id) in ids[..1000].iter().enumerate() {
            let state = shards.get_mut_hashed(id, shards.hash(id), found[i]);
            let want = (i % 3 != 0).then_some(id.as_str());
            assert_eq!(state.as_ref().map(|s| s.key().as_str()), want, "{id}");
        }
        assert_eq!(shards.len(), 3000 - 334);
    }

    #[test]
    fn an_entry_found_in_a_larger_map_is_checked_against_a_smaller_ones_tables() {
        // Tables of 128 buckets, and of 4: most entries found in the first are past the
        // end of the second's tables (some in the control bytes' mirrored tail).
        let (large, small) = (PatientShards::new(), PatientShards::new());
        let ids: Vec<String> = (0..20_000).map(|i| format!("p-{i}")).collect();
        for id in &ids {
            large.get_or_admit(id);
        }
        for id in &ids[..300] {
            small.get_or_admit(id);
        }
        for (i, id) in ids.iter().enumerate() {
            let found = large.prefetch_state(large.hash(id));
            let hash = small.hash(id);
            small.prefetch_measured(hash, found, Some(Metric::HeartRate));
            small.prefetch_window(hash, found, Metric::HeartRate);
            let state = small.get_mut_hashed(id, hash, found);
            let want = (i < 300).then_some(id.as_str());
            assert_eq!(state.as_ref().map(|s| s.key().as_str()), want, "{id}");
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

/// Patients by id: lock shards, each a hash table of bare pointers to patients' states
/// (the key is in the state, [`PatientState::key`]). A table entry is 8 bytes and a
/// control byte, where an id inline beside its pointer took 33: the map is a tenth of
/// what a patient costs at a million patients, hash tables being powers of two at most
/// 7/8 full. A lookup compares ids in the state's line that the reading reads anyway.
pub struct PatientShards {
    shards: Box<[Shard; SHARDS]>,
    hasher: PatientHasher,
}

/// One lock shard: its own cache lines, so that locking one never invalidates a
/// neighbour's lock word.
#[repr(align(128))]
struct Shard(RwLock<Table>);

/// A shard's hash table.
struct Table {
    entries: RawTable<Box<PatientState>>,
    /// The shard's number, which an entry [`Found`] in it names.
    shard: u32,
}

/// Where a lookup found an entry of a shard's table, for a later lookup of the same id
/// (a batch's look-ahead finds a patient once for all its stages and its lock). Only a
/// hint: the table may have grown or lost entries since, so a use checks that the bucket
/// is still in the table and full ([`Table::bucket`]), and a lock that it holds the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    shard: u32,
    index: u32,
}

impl Table {
    /// The bucket `found` names, if it is a full bucket of this table (perhaps no
    /// longer the one found: another patient's).
    #[inline]
    fn bucket(&self, found: Option<Found>) -> Option<Bucket<Box<PatientState>>> {
        let found = found.filter(|f| f.shard == self.shard)?;
        let index = found.index as usize;
        // SAFETY: `is_bucket_full` and `bucket` are given an index below the number of
        // buckets, and the bucket is full: it holds a state.
        unsafe {
            (index < self.entries.buckets() && self.entries.is_bucket_full(index))
                .then(|| self.entries.bucket(index))
        }
    }

    /// The state `found` names, if it is a full bucket of this table.
    #[inline]
    fn at(&self, found: Option<Found>) -> Option<&PatientState> {
        // SAFETY: a full bucket of this table, read while the table is borrowed.
        self.bucket(found).map(|b| unsafe { &**b.as_ref() })
    }

    /// The bucket `found` names, if it is a full bucket of this table holding `id`'s
    /// state (a lock's shortcut past the lookup).
    #[inline]
    fn bucket_of(&self, found: Option<Found>, id: &str) -> Option<Bucket<Box<PatientState>>> {
        // SAFETY: a full bucket of this table, read while the table is borrowed.
        self.bucket(found)
            .filter(|b| is_of(unsafe { b.as_ref() }, id))
    }

    /// The first entry tagged like `hash`, not compared with any id (which would wait
    /// for the state's line): for hints only, since it may be another patient's (one in
    /// 128 of the entries probed carry the tag).
    #[inline]
    fn tagged(&self, hash: u64) -> Option<(&PatientState, Option<Found>)> {
        // SAFETY: the bucket is read only while the table is borrowed, so it is neither
        // freed nor changed meanwhile.
        unsafe {
            let bucket = self.entries.iter_hash(hash).next()?;
            let found = u32::try_from(self.entries.bucket_index(&bucket))
                .ok()
                .map(|index| Found {
                    shard: self.shard,
                    index,
                });
            Some((bucket.as_ref(), found))
        }
    }
}

/// The map's hash: foldhash, seeded at random per map. Every reading hashes its patient's
/// id once (a batch's look-ahead once for all its stages and the lock); SipHash, the
/// standard one, was a tenth of a gateway batch's rule evaluation. An attacker choosing
/// ids cannot see the seed or any hash, so cannot aim ids at one bucket.
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
                .map(|shard| {
                    Shard(RwLock::new(Table {
                        entries: RawTable::new(),
                        shard: shard as u32,
                    }))
                })
                .collect::<Box<[Shard]>>()
                .try_into()
                .unwrap_or_else(|_| unreachable!("SHARDS shards")),
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

/// Whether a map entry is `id`'s (its key compared a word at a time): the one test every
/// lookup uses.
fn entry_of(id: &str) -> impl Fn(&Box<PatientState>) -> bool + '_ {
    move |state| is_of(state, id)
}

/// Whether `state` is the state of patient `id`.
#[inline]
fn is_of(state: &PatientState, id: &str) -> bool {
    same_id(state.key().as_bytes(), id.as_bytes())
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

impl PatientShards {
    pub fn new() -> PatientShards {
        PatientShards::default()
    }

    /// The shard holding the id hashed `hash`.
    #[inline]
    fn shard(&self, hash: u64) -> &RwLock<Table> {
        &self.shards[(hash >> SHARD_SHIFT) as usize % SHARDS].0
    }

    /// The hash the map files `id` under: a batch's look-ahead hashes each id once for
    /// all its stages ([`crate::LookAhead`]).
    pub fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The patient's state, locked for writing (only its shard is locked).
    pub fn get_mut(&self, id: &str) -> Option<StateMut<'_>> {
        self.get_mut_hashed(id, self.hash(id), None)
    }

    /// Like [`PatientShards::get_mut`], for an id whose [`PatientShards::hash`] is `hash`
    /// (a batch's look-ahead has hashed it already). Any other hash would miss the patient.
    /// `found`, if given, is where a look-ahead found an entry tagged like `hash`: used
    /// if it is still a full bucket of the table and holds the id's state.
    pub(crate) fn get_mut_hashed(
        &self,
        id: &str,
        hash: u64,
        found: Option<Found>,
    ) -> Option<StateMut<'_>> {
        let shard = self.shard(hash).write();
        let state = RwLockWriteGuard::try_map(shard, |table| {
            if let Some(bucket) = table.bucket_of(found, id) {
                // SAFETY: a full bucket of `table`, which this closure borrows mutably
                // for the returned reference's lifetime (the shard's write lock).
                return Some(unsafe { &mut **bucket.as_mut() });
            }
            table
                .entries
                .get_mut(hash, entry_of(id))
                .map(|state| &mut **state)
        })
        .ok()?;
        Some(StateMut { state })
    }

    /// The patient's state, created with the open-enrolment default profile if absent;
    /// `hash` must be the id's [`PatientShards::hash`] (any other would file a second
    /// state for the id). One lookup under one lock either way.
    pub(crate) fn get_or_admit_hashed(
        &self,
        id: &str,
        hash: u64,
        found: Option<Found>,
    ) -> StateMut<'_> {
        let shard = self.shard(hash).write();
        let state = RwLockWriteGuard::map(shard, |table| {
            if let Some(bucket) = table.bucket_of(found, id) {
                // SAFETY: as in `get_mut_hashed`.
                return unsafe { &mut **bucket.as_mut() };
            }
            let entries = &mut table.entries;
            let bucket = match entries.find_or_find_insert_slot(hash, entry_of(id), |s| {
                // Growing the table rehashes its keys as the map hashes them.
                self.hash(s.key())
            }) {
                Ok(bucket) => bucket,
                // SAFETY: the slot was found in this table just now, under the same
                // write lock, and the table has not changed since.
                Err(slot) => unsafe {
                    entries.insert_in_slot(hash, slot, Box::new(PatientState::new(id, None)))
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
        self.get_or_admit_hashed(id, self.hash(id), None)
    }

    /// `f` of the state of `id`, whose [`PatientShards::hash`] is `hash`, read-locked
    /// for as long as `f` runs; `None` if there is no such patient.
    fn read_hashed<R>(&self, id: &str, hash: u64, f: impl FnOnce(&PatientState) -> R) -> Option<R> {
        let shard = self.shard(hash).read();
        shard.entries.get(hash, entry_of(id)).map(|state| f(state))
    }

    /// `f` of the state at `found` if that is still a full bucket of the table, else of
    /// the table's first entry tagged like `hash` (not compared with any id: for hints
    /// only). Returns where that state was found.
    #[inline]
    fn read_found(
        &self,
        hash: u64,
        found: Option<Found>,
        f: impl FnOnce(&PatientState),
    ) -> Option<Found> {
        let table = self.shard(hash).read();
        if let Some(state) = table.at(found) {
            f(state);
            return found;
        }
        let (state, found) = table.tagged(hash)?;
        f(state);
        found
    }

    /// Starts loading the map's control bytes and entries where a lookup of the id hashed
    /// `hash` starts probing, without waiting for them (a batch asks this several readings
    /// ahead).
    pub fn prefetch_slot(&self, hash: u64) {
        let table = self.shard(hash).read();
        let data_end = table.entries.data_end().as_ptr().cast::<u8>().cast_const();
        let home = hash as usize & (table.entries.buckets() - 1);
        // A probe reads a group of 16 control bytes from the home slot on (two lines
        // where the group straddles one).
        crate::prefetch::prefetch_address(data_end.wrapping_add(home));
        crate::prefetch::prefetch_address(data_end.wrapping_add(home + 15));
        // Entries are stored downwards from the control bytes; an id's sits in the first
        // free slot of its group when it was inserted: at its home slot or a few after it,
        // unless the table is crowded there. The first eight span one or two lines.
        let entry = std::mem::size_of::<Box<PatientState>>();
        crate::prefetch::prefetch_address(data_end.wrapping_sub((home + 1) * entry));
        crate::prefetch::prefetch_address(data_end.wrapping_sub((home + 8) * entry));
    }

    /// Starts loading the patient state's own lines (a batch asks this a few readings
    /// ahead, once the map's entry is loaded): the state the entry tagged like `hash`
    /// points to, not compared with the id (its line is what is being loaded). Returns
    /// where the entry is, for the later stages and the lock.
    pub(crate) fn prefetch_state(&self, hash: u64) -> Option<Found> {
        self.read_found(hash, None, PatientState::prefetch_own)
    }

    /// Starts loading the measured NEWS2 parameters' newest samples, the patient's id
    /// and the state of `metric` (where they are is in the state's own lines, which
    /// [`PatientShards::prefetch_state`] loaded). The state is the one at `found`, or
    /// as there the one tagged like `hash`, not compared with the id (the id is in the
    /// block being loaded).
    pub(crate) fn prefetch_measured(
        &self,
        hash: u64,
        found: Option<Found>,
        metric: Option<Metric>,
    ) -> Option<Found> {
        self.read_found(hash, found, |state| {
            state.prefetch_common();
            if let Some(m) = metric {
                state.measured.prefetch(m);
            }
        })
    }

    /// Starts loading the metric's newest and oldest samples and its derived state's own
    /// lines (their addresses are in the window header, which
    /// [`PatientShards::prefetch_measured`] loaded). The state is found as there.
    pub(crate) fn prefetch_window(
        &self,
        hash: u64,
        found: Option<Found>,
        metric: Metric,
    ) -> Option<Found> {
        self.prefetch_in_window(hash, found, metric, Window::prefetch_near)
    }

    /// Starts loading what the metric's derived state points to (min/max candidates,
    /// running sums, a trend's span; where they are is in the derived state's lines,
    /// which [`PatientShards::prefetch_window`] loaded). The state is found as there.
    pub(crate) fn prefetch_derived(
        &self,
        hash: u64,
        found: Option<Found>,
        metric: Metric,
    ) -> Option<Found> {
        self.prefetch_in_window(hash, found, metric, Window::prefetch_far)
    }

    /// `part` of the window of `metric` in the state at `found` or tagged like `hash`.
    #[inline]
    fn prefetch_in_window(
        &self,
        hash: u64,
        found: Option<Found>,
        metric: Metric,
        part: fn(&Window),
    ) -> Option<Found> {
        self.read_found(hash, found, |state| {
            if let Some(window) = state.measured.window(metric) {
                part(window);
            }
        })
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
        self.shard(hash)
            .write()
            .entries
            .remove_entry(hash, entry_of(id))
    }

    /// `f` of every patient's state, a shard at a time (each read-locked while walked).
    fn for_each(&self, mut f: impl FnMut(&PatientState)) {
        for shard in self.shards.iter() {
            let table = shard.0.read();
            // SAFETY: the buckets are read only while the shard stays read-locked.
            for bucket in unsafe { table.entries.iter() } {
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
        self.shards.iter().map(|s| s.0.read().entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
