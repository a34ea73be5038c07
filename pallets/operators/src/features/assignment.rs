//! Weighted random assignment of operators to streams, reassignment when an operator stops
//! hosting, and release of closed streams.

use crate::*;
use alloc::vec::Vec;
use codec::Encode;
use fastdata_primitives::{Score, StreamId, TrustProvider, SCORE_ONE};
use frame_support::pallet_prelude::*;
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::traits::{BlockNumberProvider, Saturating, UniqueSaturatedInto};

/// Subject of the randomness drawn for new streams' assignments (the stream id is mixed in
/// per stream).
const ASSIGN_SUBJECT: &[u8] = b"fastdata/operators/assign";
/// Subject of the randomness drawn when an operator's streams are reassigned.
const REASSIGN_SUBJECT: &[u8] = b"fastdata/operators/reassign";

/// Most operators whose replacements one block draws (each up to
/// [`Config::MaxStreamsPerOperator`] streams); the rest wait for the next blocks.
pub const REASSIGNMENTS_PER_BLOCK: usize = 2;

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

/// The seed of the draws made with the randomness `output`.
fn assignment_seed<H: Encode>(output: &H) -> [u8; 32] {
    sp_io::hashing::blake2_256(&(ASSIGN_SUBJECT, output).encode())
}

/// The `index`-th random number derived from `seed` for `stream`.
fn random_u128<H: Encode>(seed: &H, stream: &StreamId, index: u32) -> u128 {
    u128::from_le_bytes(sp_io::hashing::blake2_128(&(seed, stream, index).encode()))
}

impl<T: Config> Candidates<T> {
    /// Picks up to `replication` distinct candidates for `stream` with the random numbers
    /// derived from `seed`; fewer only if fewer are eligible.
    fn draw<H: Encode>(
        &mut self,
        seed: &H,
        stream: &StreamId,
        replication: u32,
    ) -> AssignmentOf<T> {
        let mut chosen: AssignmentOf<T> = BoundedVec::new();
        for index in 0..replication {
            let Some(who) = self.pick(random_u128(seed, stream, index), &chosen) else {
                break;
            };
            if let Err(who) = chosen.try_push(who) {
                self.unpick(&who);
                break;
            }
        }
        chosen
    }
}

impl<T: Config> Pallet<T> {
    /// `who`'s trust score ([`Config::Trust`]) capped at [`Config::MaxTrustBoost`]: what the
    /// assignment weight counts.
    pub(crate) fn capped_trust(who: &T::AccountId) -> Score {
        T::Trust::trust_score(who).min(T::MaxTrustBoost::get())
    }

    /// Queues `stream` for a draw of `replication` operators once the randomness source has
    /// moved [`Config::AssignmentDelay`] blocks past its current output.
    pub(crate) fn do_request_assignment(stream: &StreamId, replication: u32) -> DispatchResult {
        ensure!(
            replication > 0 && replication <= T::MaxReplication::get(),
            Error::<T>::InvalidReplication
        );
        let mut pending = PendingAssignments::<T>::get();
        ensure!(
            !Assignments::<T>::contains_key(stream) && !pending.iter().any(|p| p.stream == *stream),
            Error::<T>::StreamAlreadyAssigned
        );
        ensure!(
            Candidates::<T>::load().eligible(&[]) >= replication as usize,
            Error::<T>::NotEnoughOperators
        );
        let draw_after =
            T::RandomnessClock::current_block_number().saturating_add(T::AssignmentDelay::get());
        pending
            .try_push(PendingAssignment {
                stream: *stream,
                replication,
                draw_after,
            })
            .map_err(|_| Error::<T>::AssignmentQueueFull)?;
        PendingAssignments::<T>::put(pending);
        Self::deposit_event(Event::AssignmentRequested {
            stream: *stream,
            replication,
            draw_after,
        });
        Ok(())
    }

    /// Draws the operators of every queued stream due at `known_at` (the randomness
    /// source's block number of `output`) with `output`, in one pass over the active set.
    /// The runtime calls it once per block before any transaction; see the crate docs.
    /// Returns the weight used.
    pub fn draw_pending(output: T::Hash, known_at: BlockNumberFor<T>) -> Weight {
        let read = T::DbWeight::get().reads(2);
        let assigned = match Self::draw_due(&output, known_at) {
            0 => Weight::zero(),
            drawn => T::WeightInfo::assign_pending(drawn),
        };
        Self::reassign_due(&output, known_at)
            .into_iter()
            .fold(read.saturating_add(assigned), |w, s| {
                w.saturating_add(T::WeightInfo::reassign(s))
            })
    }

    /// [`Self::draw_pending`]: returns the number of streams drawn.
    pub(crate) fn draw_due(output: &T::Hash, known_at: BlockNumberFor<T>) -> u32 {
        let queue = PendingAssignments::<T>::get();
        if queue.is_empty() {
            return 0;
        }
        let (due, waiting): (Vec<_>, Vec<_>) =
            queue.into_iter().partition(|p| known_at >= p.draw_after);
        if due.is_empty() {
            return 0;
        }
        let seed = assignment_seed(output);
        PendingAssignments::<T>::put(BoundedVec::truncate_from(waiting));
        let mut candidates = Candidates::<T>::load();
        for request in due.iter() {
            let chosen = candidates.draw(&seed, &request.stream, request.replication);
            Self::record_assignment(&request.stream, chosen);
        }
        candidates.store();
        due.len() as u32
    }

    /// Draws every queued stream now, due or not: benchmark setups that need a registered
    /// stream's operators in the same block.
    #[cfg(feature = "runtime-benchmarks")]
    pub fn benchmark_draw_pending() {
        PendingAssignments::<T>::mutate(|queue| {
            queue
                .iter_mut()
                .for_each(|p| p.draw_after = sp_runtime::traits::Zero::zero())
        });
        Self::draw_due(
            &frame_system::Pallet::<T>::parent_hash(),
            sp_runtime::traits::Zero::zero(),
        );
    }

    /// Draws and records the operators of `stream` at once with the current randomness:
    /// the distribution the pending queue produces, for tests of its statistics.
    #[cfg(test)]
    pub(crate) fn assign_now(
        stream: &StreamId,
        replication: u32,
        output: T::Hash,
    ) -> Result<Vec<T::AccountId>, sp_runtime::DispatchError> {
        let mut candidates = Candidates::<T>::load();
        ensure!(
            candidates.eligible(&[]) >= replication as usize,
            Error::<T>::NotEnoughOperators
        );
        let seed = assignment_seed(&output);
        let chosen = candidates.draw(&seed, stream, replication);
        candidates.store();
        Self::record_assignment(stream, chosen.clone());
        Ok(chosen.into_inner())
    }

    /// Records `chosen` as the operators of `stream` (an [`Event::AssignmentFailed`] if
    /// nobody could be chosen).
    fn record_assignment(stream: &StreamId, chosen: AssignmentOf<T>) {
        if chosen.is_empty() {
            Self::deposit_event(Event::AssignmentFailed { stream: *stream });
            return;
        }
        for who in chosen.iter() {
            StreamsOf::<T>::insert(who, stream, ());
        }
        Assignments::<T>::insert(stream, &chosen);
        Self::deposit_event(Event::StreamAssigned {
            stream: *stream,
            operators: chosen,
        });
    }

    /// Queues the replacement of `who` (which must no longer be in the active set) on each of
    /// its streams, drawn once the randomness source has moved [`Config::AssignmentDelay`]
    /// blocks past its current output; `who` stays assigned until then. Returns the number of
    /// streams it hosts (at most [`Config::MaxStreamsPerOperator`]).
    pub(crate) fn queue_reassignment(who: &T::AccountId) -> u32 {
        let streams = StreamsOf::<T>::iter_prefix(who).count() as u32;
        if streams == 0 {
            return 0;
        }
        let draw_after =
            T::RandomnessClock::current_block_number().saturating_add(T::AssignmentDelay::get());
        PendingReassignments::<T>::mutate(|queue| {
            if queue.iter().any(|(w, _)| w == who) {
                return;
            }
            // Cannot fail: an operator is queued at most once, and at most `MaxOperators` are
            // registered.
            if queue.try_push((who.clone(), draw_after)).is_ok() {
                Self::deposit_event(Event::ReassignmentRequested {
                    operator: who.clone(),
                    streams,
                    draw_after,
                });
            }
        });
        streams
    }

    /// Drops the queued replacement of `who` (it became active again, keeping its streams).
    pub(crate) fn unqueue_reassignment(who: &T::AccountId) {
        PendingReassignments::<T>::mutate(|queue| queue.retain(|(w, _)| w != who));
    }

    /// Draws the replacements of at most [`REASSIGNMENTS_PER_BLOCK`] queued operators due at
    /// `known_at`, with `output`. Returns how many streams each had.
    pub(crate) fn reassign_due(output: &T::Hash, known_at: BlockNumberFor<T>) -> Vec<u32> {
        let queue = PendingReassignments::<T>::get();
        let due: Vec<T::AccountId> = queue
            .iter()
            .filter(|(_, after)| known_at >= *after)
            .take(REASSIGNMENTS_PER_BLOCK)
            .map(|(who, _)| who.clone())
            .collect();
        if due.is_empty() {
            return Vec::new();
        }
        PendingReassignments::<T>::put(BoundedVec::truncate_from(
            queue
                .into_iter()
                .filter(|(who, _)| !due.contains(who))
                .collect::<Vec<_>>(),
        ));
        due.iter()
            .map(|who| {
                let seed = sp_io::hashing::blake2_256(&(REASSIGN_SUBJECT, output, who).encode());
                Self::reassign_streams_of(who, &seed)
            })
            .collect()
    }

    /// Moves every stream of `who` (which must no longer be in the active set) to another
    /// active operator drawn with `seed`, emitting a [`Event::StreamReassigned`] per stream.
    /// Returns the number of streams handled (at most [`Config::MaxStreamsPerOperator`]).
    pub(crate) fn reassign_streams_of(who: &T::AccountId, seed: &[u8; 32]) -> u32 {
        let streams: Vec<StreamId> = StreamsOf::<T>::drain_prefix(who)
            .map(|(stream, ())| stream)
            .collect();
        if streams.is_empty() {
            return 0;
        }
        let mut candidates = Candidates::<T>::load();
        for (index, stream) in streams.iter().enumerate() {
            let Some(mut assigned) = Assignments::<T>::get(stream) else {
                log::error!(target: LOG_TARGET, "stream {stream:?} indexed for {who:?} has no assignment");
                continue;
            };
            assigned.retain(|a| a != who);
            let sources = assigned.clone();
            let mut to = candidates.pick(random_u128(seed, stream, index as u32), &assigned);
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

    /// Forgets the assignment of `stream`, or its pending request.
    pub(crate) fn do_release(stream: &StreamId) {
        Self::close_hosting(stream);
        let Some(assigned) = Assignments::<T>::take(stream) else {
            let mut pending = PendingAssignments::<T>::get();
            let before = pending.len();
            pending.retain(|p| p.stream != *stream);
            if pending.len() != before {
                PendingAssignments::<T>::put(pending);
                Self::deposit_event(Event::StreamReleased { stream: *stream });
            }
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
