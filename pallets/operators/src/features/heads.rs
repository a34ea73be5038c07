//! Stream heads: what was published, as attested by the operators hosting each stream.
//!
//! Each assigned operator attests, per stream, the number of segments it stores
//! contiguously from sequence 0 (its *head*) and the bytes it stores. The chain's head of a
//! stream is the lower median of the latest attestations of the operators assigned to it,
//! an operator that has not attested counting as 0: fewer than half of the replicas can
//! neither raise nor lower it past an honest one. `pallet-escrow` records it at the period
//! boundaries of stream purchases and refuses receipts beyond it. The stored bytes are
//! medianed the same way to pay hosting (`hosting.rs`).

use crate::*;
use alloc::vec::Vec;
use fastdata_primitives::{Sequence, StreamId};
use frame_support::{ensure, BoundedVec};
use sp_runtime::DispatchResult;

/// The lower median (the one rule, shared with the daemon's backfill cap beside it).
pub(crate) use fastdata_primitives::heads::lower_median;

/// What `assigned` operators attested in `records` (`field` of each), a silent one counting
/// as 0.
pub(crate) fn attested_by<A: PartialEq, B, V: Copy + Default>(
    assigned: &[A],
    records: &[HeadRecord<A, B>],
    field: impl Fn(&HeadRecord<A, B>) -> V,
) -> Vec<V> {
    assigned
        .iter()
        .map(|who| {
            records
                .iter()
                .find(|r| r.operator == *who)
                .map_or_else(V::default, &field)
        })
        .collect()
}

impl<T: Config> Pallet<T> {
    /// Records `operator`'s heads and stored bytes, paying it for hosting each stream since
    /// its previous attestation. A stream no longer assigned to it (released or reassigned
    /// since the daemon read the chain) is skipped with [`Event::HeadSkipped`]; if every
    /// stream is skipped the call fails with `NotAssigned`. A head lower than the caller's
    /// previous attestation fails the call and changes nothing.
    pub(crate) fn do_attest_heads(
        operator: T::AccountId,
        heads: BoundedVec<(StreamId, Sequence, u64), T::MaxStreamsPerOperator>,
    ) -> DispatchResult {
        ensure!(!heads.is_empty(), Error::<T>::NoHeads);
        ensure!(
            Operators::<T>::contains_key(&operator),
            Error::<T>::NotRegistered
        );
        let now = frame_system::Pallet::<T>::block_number();
        let mut attested = 0u32;
        // A call is transactional: an error undoes the payments of the streams before it.
        for (stream, head, stored_bytes) in heads.iter() {
            let Some(assigned) =
                Assignments::<T>::get(stream).filter(|assigned| assigned.contains(&operator))
            else {
                Self::deposit_event(Event::HeadSkipped {
                    operator: operator.clone(),
                    stream: *stream,
                });
                continue;
            };
            let mut records = StreamHeads::<T>::get(stream);
            // Attestations of operators no longer assigned stop counting.
            records.retain(|r| assigned.contains(&r.operator));
            // Hosting is paid by the bytes attested before this attestation, so an operator
            // cannot raise its own pay for the past.
            let paid_bytes = lower_median(attested_by(&assigned, &records, |r| r.stored_bytes));
            let record = HeadRecord {
                operator: operator.clone(),
                head: *head,
                stored_bytes: *stored_bytes,
                at: now,
            };
            match records.iter_mut().find(|r| r.operator == operator) {
                Some(slot) => {
                    ensure!(*head >= slot.head, Error::<T>::HeadDecreased);
                    let since = slot.at;
                    *slot = record;
                    Self::pay_hosting(stream, &operator, paid_bytes, since, now);
                }
                // Cannot fail: `records` only holds assigned operators, at most
                // `MaxReplication`, and the caller is assigned but not among them.
                None => records
                    .try_push(record)
                    .map_err(|_| Error::<T>::NotAssigned)?,
            }
            StreamHeads::<T>::insert(stream, records);
            attested = attested.saturating_add(1);
        }
        ensure!(attested > 0, Error::<T>::NotAssigned);
        Self::deposit_event(Event::HeadsAttested {
            operator,
            streams: attested,
        });
        Ok(())
    }

    /// The lower median of the assigned operators' latest attested heads of `stream`, a
    /// silent operator counting as 0 ([`fastdata_primitives::heads::chain_head`]); 0 for a
    /// stream without assignment.
    pub fn head_of(stream: &StreamId) -> Sequence {
        let Some(assigned) = Assignments::<T>::get(stream) else {
            return 0;
        };
        fastdata_primitives::heads::chain_head(attested_by(
            &assigned,
            &StreamHeads::<T>::get(stream),
            |r| r.head,
        ))
    }
}
