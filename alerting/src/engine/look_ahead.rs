//! Looking ahead in a batch whose consecutive readings belong to different patients (a
//! gateway's): each patient's lines start loading some places before its reading is
//! processed, so that the cache misses of several patients overlap instead of following
//! one another.

use vigil_ingest::{Metric, Rejection};

use super::{BatchRules, Engine, LockedPatient};
use crate::patient_shards::Found;
use crate::RuleSet;

/// How far a stage of the look-ahead goes for a patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefetch {
    /// The map's control bytes and the entries near where the patient's lookup starts.
    Slot,
    /// The patient state's own lines (a lookup, which waits for the slot).
    State,
    /// The measured metrics' states: window headers and newest samples (a lookup, and
    /// the state's line that says where they are).
    Measured,
    /// The metric's newest and oldest samples and its derived state's own lines (a
    /// lookup, and the window's header).
    Window,
    /// What the metric's derived state points to (a lookup, and the derived state).
    Derived,
}

/// For a sequence of patients: how many patients ahead of the one being processed each
/// stage is asked for. Each stage's lines must have arrived by the time the next stage
/// reads them, so the distances shrink stage by stage. Measured on the rules bench
/// (interleaved readings at 100 000 patients): a reading takes a few hundred
/// nanoseconds, longer than a miss, so a place or two between stages is enough, and
/// farther apart measured slower (likely because more of what was asked for is evicted
/// before it is read); the derived state's own stage pays where the hardware's
/// prefetchers cannot guess the next patient (a shuffled order) and costs nothing
/// measurable where they can.
pub(crate) const PREFETCH_AHEAD: [(usize, Prefetch); 5] = [
    (6, Prefetch::Slot),
    (4, Prefetch::State),
    (3, Prefetch::Measured),
    (2, Prefetch::Window),
    (1, Prefetch::Derived),
];

/// Places whose hashes are kept: more than the farthest stage.
const KEPT: usize = 16;
const _: () = assert!(PREFETCH_AHEAD[0].0 < KEPT);
// Each stage nearer than the one before it (it reads what that one asked for).
const _: () = {
    let mut i = 1;
    while i < PREFETCH_AHEAD.len() {
        assert!(PREFETCH_AHEAD[i].0 < PREFETCH_AHEAD[i - 1].0);
        i += 1;
    }
};

/// The look-ahead over one sequence of patients (numbered by place from 0). Each
/// patient's id is hashed once for all the stages that look it up and for its lock
/// ([`LookAhead::lock`]), and its map entry is found once: the later stages and the lock
/// go straight to it while it is still a full bucket of the shard's table (the lock
/// checks that it is the id's). Places are matched
/// by number, so a new sequence needs a new `LookAhead`, and what is kept for a place is
/// used only for the very id (the same borrowed string) it was found from. Only hints:
/// nothing is locked for longer than a lookup, nothing changes.
#[derive(Debug)]
pub struct LookAhead<'a> {
    /// By place modulo [`KEPT`].
    places: [Place<'a>; KEPT],
}

/// What the look-ahead keeps for one place.
#[derive(Debug, Clone, Copy)]
struct Place<'a> {
    /// The place plus one (0: none yet).
    number: usize,
    id: &'a str,
    /// The id's hash in the store.
    hash: u64,
    /// Where the state stage found an entry tagged like the hash (perhaps another
    /// patient's: the lock checks).
    found: Option<Found>,
}

impl Default for LookAhead<'_> {
    fn default() -> Self {
        LookAhead {
            places: [Place {
                number: 0,
                id: "",
                hash: 0,
                found: None,
            }; KEPT],
        }
    }
}

impl<'a> LookAhead<'a> {
    pub fn new() -> Self {
        LookAhead::default()
    }

    /// Called as the patient at place `at` is about to be processed: starts each stage
    /// of [`PREFETCH_AHEAD`] for the patient that many places after it. `nth(place)`
    /// gives the patient id at a place and the metric of its reading, if known (`None`
    /// past the end).
    pub fn ahead_of(
        &mut self,
        engine: &Engine,
        at: usize,
        nth: impl Fn(usize) -> Option<(&'a str, Option<Metric>)>,
    ) {
        for (distance, stage) in PREFETCH_AHEAD {
            let place = at + distance;
            let Some((id, metric)) = nth(place) else {
                continue;
            };
            let kept = self.place(engine, place, id);
            let (hash, found) = (kept.hash, kept.found);
            let store = &engine.store;
            kept.found = match (stage, metric) {
                (Prefetch::Slot, _) => {
                    store.prefetch_slot(hash);
                    None
                }
                (Prefetch::State, _) => store.prefetch_state(hash),
                (Prefetch::Measured, m) => store.prefetch_measured(hash, found, m),
                (Prefetch::Window, Some(m)) => store.prefetch_window(hash, found, m),
                (Prefetch::Derived, Some(m)) => store.prefetch_derived(hash, found, m),
                (Prefetch::Window | Prefetch::Derived, None) => found,
            };
        }
    }

    /// [`Engine::lock_patient_under`] for `id`, the patient at place `at`, with the hash
    /// and the entry the look-ahead kept for it.
    pub fn lock<'e>(
        &mut self,
        engine: &'e Engine,
        at: usize,
        id: &'a str,
        rules: &'e RuleSet,
    ) -> Result<LockedPatient<'e>, Rejection> {
        let kept = *self.place(engine, at, id);
        engine.lock_hashed(id, kept.hash, kept.found, BatchRules::Lent(rules))
    }

    /// What is kept for `id`, the patient at `place`: kept from an earlier stage, or
    /// started afresh (the first places of a sequence, places a caller skipped, and
    /// another string than the one a stage was given).
    fn place(&mut self, engine: &Engine, place: usize, id: &'a str) -> &mut Place<'a> {
        let kept = &mut self.places[place % KEPT];
        // The same string (address and length) borrowed for 'a: the same id.
        if kept.number != place + 1 || !std::ptr::eq(kept.id, id) {
            *kept = Place {
                number: place + 1,
                id,
                hash: engine.store.hash(id),
                found: None,
            };
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{builtin_rules, AlertLog, EngineConfig};
    use std::sync::Arc;
    use vigil_ingest::Reading;

    /// An engine under open enrolment with no patient yet, and `n` patient ids.
    fn open_engine_and_ids(n: usize) -> (Engine, Vec<String>) {
        let engine = Engine::new(
            EngineConfig::open(builtin_rules()),
            Arc::new(AlertLog::default()),
        );
        (engine, (0..n).map(|i| format!("p-{i}")).collect())
    }

    #[test]
    fn looking_ahead_admits_no_one_and_keeps_each_places_hash() {
        let (engine, ids) = open_engine_and_ids(40);
        // Half of them known, half not.
        for id in ids.iter().step_by(2) {
            let r = Reading {
                patient_id: id,
                metric: Metric::HeartRate,
                value: 70.0,
                ts_ms: 1_763_892_000_000,
                device_id: None,
                seq: None,
            };
            engine
                .process(&r, 1_763_892_000_000)
                .expect("open enrolment");
        }
        let nth = |place: usize| {
            ids.get(place)
                .map(|id| (id.as_str(), Some(Metric::HeartRate)))
        };
        let mut ahead = LookAhead::new();
        for at in 0..ids.len() {
            ahead.ahead_of(&engine, at, nth);
            // The places this call's stages reached, and once the farthest stage has
            // passed them, every place up to it, have their own id's hash kept.
            let reached: Vec<usize> = if at + 1 >= PREFETCH_AHEAD[0].0 {
                (at + 1..=at + PREFETCH_AHEAD[0].0).collect()
            } else {
                PREFETCH_AHEAD.iter().map(|(d, _)| at + d).collect()
            };
            for place in reached.into_iter().filter(|&p| p < ids.len()) {
                let kept = ahead.places[place % KEPT];
                assert_eq!(kept.number, place + 1, "place {place} at {at}");
                assert_eq!(kept.id, ids[place]);
                assert_eq!(kept.hash, engine.store.hash(&ids[place]));
            }
        }
        assert_eq!(engine.store.len(), 20, "looking ahead admits no one");
    }

    #[test]
    fn a_lock_takes_the_patient_it_names_whatever_the_place_kept() {
        let (engine, ids) = open_engine_and_ids(12);
        let mut ahead = LookAhead::new();
        for at in 0..ids.len() {
            ahead.ahead_of(&engine, at, |place| {
                ids.get(place).map(|id| (id.as_str(), None))
            });
        }
        // The kept id at place 5, another string equal to it, and another patient's id
        // at that place: each locks (and under open enrolment admits) its own patient.
        let copy = ids[5].clone();
        let rules = engine.rules();
        for (place, id) in [
            (5, ids[5].as_str()),
            (5, copy.as_str()),
            (5, ids[9].as_str()),
        ] {
            let patient = ahead
                .lock(&engine, place, id, &rules)
                .expect("open enrolment");
            assert_eq!(patient.state.key().as_str(), id);
            patient.finish();
        }
        assert_eq!(engine.store.len(), 2, "p-5 and p-9, once each");
    }
}
