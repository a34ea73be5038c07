//! Stream heads: what was published, as attested by the operators hosting each stream.
//!
//! Each assigned operator attests, per stream, the number of segments it stores
//! contiguously from sequence 0 (its *head*). The chain's head of a stream is the lower
//! median of the latest attestations of the operators assigned to it, an operator that has
//! not attested counting as 0: fewer than half of the replicas can neither raise nor lower
//! it past an honest one. `pallet-escrow` records it at the period boundaries of stream
//! purchases and refuses receipts beyond it.

use crate::*;
use alloc::vec::Vec;
use fastdata_primitives::{Sequence, StreamId};
use frame_support::{ensure, BoundedVec};
use sp_runtime::DispatchResult;

impl<T: Config> Pallet<T> {
    /// Records `operator`'s heads. Every stream must be assigned to it, and no head may be
    /// lower than its previous attestation for the stream; otherwise nothing changes.
    pub(crate) fn do_attest_heads(
        operator: T::AccountId,
        heads: BoundedVec<(StreamId, Sequence), T::MaxStreamsPerOperator>,
    ) -> DispatchResult {
        ensure!(!heads.is_empty(), Error::<T>::NoHeads);
        ensure!(
            Operators::<T>::contains_key(&operator),
            Error::<T>::NotRegistered
        );
        for (stream, head) in heads.iter() {
            let assigned = Assignments::<T>::get(stream).ok_or(Error::<T>::NotAssigned)?;
            ensure!(assigned.contains(&operator), Error::<T>::NotAssigned);
            let mut attested = StreamHeads::<T>::get(stream);
            // Attestations of operators no longer assigned stop counting.
            attested.retain(|(who, _)| assigned.contains(who));
            match attested.iter_mut().find(|(who, _)| *who == operator) {
                Some((_, previous)) => {
                    ensure!(*head >= *previous, Error::<T>::HeadDecreased);
                    *previous = *head;
                }
                None => attested
                    .try_push((operator.clone(), *head))
                    .map_err(|_| Error::<T>::NotAssigned)?,
            }
            StreamHeads::<T>::insert(stream, attested);
        }
        Self::deposit_event(Event::HeadsAttested {
            operator,
            streams: heads.len() as u32,
        });
        Ok(())
    }

    /// The lower median of the assigned operators' latest attested heads of `stream`, a
    /// silent operator counting as 0; 0 for a stream without assignment.
    pub fn head_of(stream: &StreamId) -> Sequence {
        let Some(assigned) = Assignments::<T>::get(stream) else {
            return 0;
        };
        let attested = StreamHeads::<T>::get(stream);
        let mut heads: Vec<Sequence> = assigned
            .iter()
            .map(|who| {
                attested
                    .iter()
                    .find(|(w, _)| w == who)
                    .map_or(0, |(_, head)| *head)
            })
            .collect();
        heads.sort_unstable();
        // Lower median: index (n - 1) / 2 of the sorted heads.
        heads
            .get(heads.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(0)
    }
}
