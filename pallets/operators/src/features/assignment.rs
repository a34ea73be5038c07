//! Weighted random assignment of operators to streams, reassignment when an operator stops
//! hosting, and release of closed streams.

use crate::*;
use alloc::vec::Vec;
use codec::Encode;
use fastdata_primitives::{Score, StreamId, TrustProvider, SCORE_ONE};
use frame_support::{pallet_prelude::*, traits::Randomness};
use sp_runtime::{traits::UniqueSaturatedInto, DispatchError};

/// Subject of the randomness drawn for a new stream's assignment.
const ASSIGN_SUBJECT: &[u8] = b"fastdata/operators/assign";
/// Subject of the randomness drawn when an operator's streams are reassigned.
const REASSIGN_SUBJECT: &[u8] = b"fastdata/operators/reassign";

/// The active operators with their assignment weights, loaded once per assignment batch and
/// written back (with the new stream counts) at its end.
struct Candidates<T: Config> {
    entries: BoundedVec<ActiveOperatorOf<T>, T::MaxOperators>,
    /// `stake × (SCORE_ONE + min(trust, MaxTrustBoost))` per entry, capped so the sum of all
    /// weights cannot overflow.
    weights: Vec<u128>,
}

impl<T: Config> Candidates<T> {
    /// Reads the active set with each operator's cached trust score.
    fn load() -> Self {
        let entries = ActiveOperators::<T>::get();
        let cap = u128::MAX / u128::from(T::MaxOperators::get().max(1));
        let weights = entries
            .iter()
            .map(|entry| {
                let stake: u128 = entry.stake.unique_saturated_into();
                let trust: Score = entry.trust.min(T::MaxTrustBoost::get());
                stake
                    .saturating_mul(u128::from(SCORE_ONE.saturating_add(trust)))
                    .min(cap)
            })
            .collect();
        Self { entries, weights }
    }

    /// Writes the stream counts back.
    fn store(self) {
        ActiveOperators::<T>::put(self.entries);
    }

    /// The weight of entry `index` if it can take one more stream and is not in `exclude`.
    fn eligible_weight(&self, index: usize, exclude: &[T::AccountId]) -> u128 {
        match (self.entries.get(index), self.weights.get(index)) {
            (Some(entry), Some(weight))
                if entry.streams < T::MaxStreamsPerOperator::get()
                    && !exclude.contains(&entry.who) =>
            {
                *weight
            }
            _ => 0,
        }
    }

    /// Number of candidates that could take one more stream, excluding `exclude`.
    fn eligible(&self, exclude: &[T::AccountId]) -> usize {
        (0..self.entries.len())
            .filter(|i| self.eligible_weight(*i, exclude) > 0)
            .count()
    }

    /// Picks one eligible candidate not in `exclude`, with probability proportional to its
    /// weight, using the random number `random`; counts the new stream in its load.
    fn pick(&mut self, random: u128, exclude: &[T::AccountId]) -> Option<T::AccountId> {
        let total = (0..self.entries.len()).fold(0u128, |acc, i| {
            acc.saturating_add(self.eligible_weight(i, exclude))
        });
        if total == 0 {
            return None;
        }
        let mut target = random % total;
        let mut chosen = None;
        for index in 0..self.entries.len() {
            let weight = self.eligible_weight(index, exclude);
            if target < weight {
                chosen = Some(index);
                break;
            }
            target -= weight;
        }
        let entry = self.entries.get_mut(chosen?)?;
        entry.streams = entry.streams.saturating_add(1);
        Some(entry.who.clone())
    }
}

impl<T: Config> Candidates<T> {
    /// Undoes the load counted by [`Self::pick`] for `who`.
    fn unpick(&mut self, who: &T::AccountId) {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.who == *who) {
            entry.streams = entry.streams.saturating_sub(1);
        }
    }
}

/// The `index`-th random number derived from `seed` for `stream`.
fn random_u128<H: Encode>(seed: &H, stream: &StreamId, index: u32) -> u128 {
    u128::from_le_bytes(sp_io::hashing::blake2_128(&(seed, stream, index).encode()))
}

impl<T: Config> Pallet<T> {
    /// `who`'s trust score ([`Config::Trust`]) capped at [`Config::MaxTrustBoost`]: what the
    /// assignment weight counts.
    pub(crate) fn capped_trust(who: &T::AccountId) -> Score {
        T::Trust::trust_score(who).min(T::MaxTrustBoost::get())
    }

    /// Picks `replication` distinct active operators for `stream`, weighted by stake and trust,
    /// and records the assignment.
    pub(crate) fn do_assign(
        stream: &StreamId,
        replication: u32,
    ) -> Result<Vec<T::AccountId>, DispatchError> {
        ensure!(
            replication > 0 && replication <= T::MaxReplication::get(),
            Error::<T>::InvalidReplication
        );
        ensure!(
            !Assignments::<T>::contains_key(stream),
            Error::<T>::StreamAlreadyAssigned
        );
        let mut candidates = Candidates::<T>::load();
        ensure!(
            candidates.eligible(&[]) >= replication as usize,
            Error::<T>::NotEnoughOperators
        );

        let (seed, _) = T::Randomness::random(&(ASSIGN_SUBJECT, stream).encode());
        let mut chosen: AssignmentOf<T> = BoundedVec::new();
        for index in 0..replication {
            let who = candidates
                .pick(random_u128(&seed, stream, index), &chosen)
                .ok_or(Error::<T>::NotEnoughOperators)?;
            chosen
                .try_push(who)
                .map_err(|_| Error::<T>::InvalidReplication)?;
        }
        for who in chosen.iter() {
            StreamsOf::<T>::insert(who, stream, ());
        }
        candidates.store();
        Assignments::<T>::insert(stream, &chosen);
        Self::deposit_event(Event::StreamAssigned {
            stream: *stream,
            operators: chosen.clone(),
        });
        Ok(chosen.into_inner())
    }

    /// Moves every stream of `who` (which must no longer be in the active set) to another
    /// active operator, emitting a [`Event::StreamReassigned`] per stream. Returns the number
    /// of streams handled (at most [`Config::MaxStreamsPerOperator`]).
    pub(crate) fn reassign_streams_of(who: &T::AccountId) -> u32 {
        let streams: Vec<StreamId> = StreamsOf::<T>::drain_prefix(who)
            .map(|(stream, ())| stream)
            .collect();
        if streams.is_empty() {
            return 0;
        }
        let mut candidates = Candidates::<T>::load();
        let (seed, _) = T::Randomness::random(&(REASSIGN_SUBJECT, who).encode());
        for (index, stream) in streams.iter().enumerate() {
            let Some(mut assigned) = Assignments::<T>::get(stream) else {
                log::error!(target: LOG_TARGET, "stream {stream:?} indexed for {who:?} has no assignment");
                continue;
            };
            assigned.retain(|a| a != who);
            let sources = assigned.clone();
            let mut to = candidates.pick(random_u128(&seed, stream, index as u32), &assigned);
            if let Some(new) = &to {
                // Cannot fail: `who` left a place in the assignment.
                if assigned.try_push(new.clone()).is_ok() {
                    StreamsOf::<T>::insert(new, stream, ());
                } else {
                    candidates.unpick(new);
                    to = None;
                }
            }
            Assignments::<T>::insert(stream, assigned);
            Self::deposit_event(Event::StreamReassigned {
                stream: *stream,
                from: who.clone(),
                to,
                sources,
            });
        }
        candidates.store();
        streams.len() as u32
    }

    /// Forgets the assignment of `stream`.
    pub(crate) fn do_release(stream: &StreamId) {
        let Some(assigned) = Assignments::<T>::take(stream) else {
            return;
        };
        StreamHeads::<T>::remove(stream);
        for who in assigned.iter() {
            StreamsOf::<T>::remove(who, stream);
        }
        ActiveOperators::<T>::mutate(|active| {
            for entry in active.iter_mut().filter(|e| assigned.contains(&e.who)) {
                entry.streams = entry.streams.saturating_sub(1);
            }
        });
        Self::deposit_event(Event::StreamReleased { stream: *stream });
    }
}
