//! The two rules over the stream heads operators attest on chain (`Operators.StreamHeads`).
//!
//! Each operator assigned to a stream attests its *head*: the number of segments it stores
//! contiguously from sequence 0. The same attestations are read two ways, for two purposes:
//!
//! - [`chain_head`]: what the **chain** takes as published (`pallet-operators`'s `head_of`,
//!   recorded by `pallet-escrow` at period boundaries and the limit of receipts): the lower
//!   median over the *assigned* operators, a silent one counting as 0, so fewer than half of
//!   the replicas can neither raise nor lower it past an honest one.
//! - [`backfill_cap`]: how far an **operator daemon** backfills a stream from its peers: the
//!   lower median of the heads attested (by whoever attested), or one past the highest
//!   sequence it stores itself (live ingest, or backfilled below an earlier cap), whichever is
//!   higher. A peer can send any envelope (daemons cannot open them), and a segment stored at
//!   a sequence the seller has not published yet would make the real one a duplicate: one
//!   operator attesting an inflated head must not open that range. A new replica that has no
//!   head of its own yet catches up below what most attested and below what it ingests live.
//!
//! ```
//! use fastdata_primitives::heads::{attested_backfill_head, backfill_cap, chain_head};
//! assert_eq!(chain_head([9, 3, 5, 0].to_vec()), 3);
//! let attested = attested_backfill_head([u64::MAX, 30, 28].to_vec());
//! assert_eq!(attested, Some(30));
//! assert_eq!(backfill_cap(attested, 0), 30);
//! assert_eq!(backfill_cap(attested, 41), 41);
//! ```

use alloc::vec::Vec;

use crate::Sequence;

/// The lower median of `values` (index `(n - 1) / 2` once sorted); `V::default()` if empty.
/// Also how the chain medians the attested stored bytes that pay hosting.
pub fn lower_median<V: Ord + Copy + Default>(mut values: Vec<V>) -> V {
    values.sort_unstable();
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

/// The chain's head of a stream from `assigned_heads`, the latest attested head of each
/// operator assigned to it (0 for one that has not attested): their [`lower_median`]; 0 for a
/// stream without operators.
pub fn chain_head(assigned_heads: Vec<Sequence>) -> Sequence {
    lower_median(assigned_heads)
}

/// The part of [`backfill_cap`] the chain gives: the [`lower_median`] of the `attested` heads
/// of a stream (of every operator that attested it); `None` before the first attestation.
pub fn attested_backfill_head(attested: Vec<Sequence>) -> Option<Sequence> {
    (!attested.is_empty()).then(|| lower_median(attested))
}

/// How far a daemon backfills a stream (it stores no sequence at or above the result): the
/// [`attested_backfill_head`] (0 without one), or `stored_next` (one past the highest sequence
/// the daemon stores itself, 0 if none), whichever is higher.
pub fn backfill_cap(attested_head: Option<Sequence>, stored_next: Sequence) -> Sequence {
    attested_head.unwrap_or(0).max(stored_next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn the_chain_head_is_the_lower_median_of_the_assigned_heads() {
        assert_eq!(chain_head(vec![]), 0);
        assert_eq!(chain_head(vec![7]), 7);
        // Even count: the lower of the two middle values.
        assert_eq!(chain_head(vec![10, 4]), 4);
        assert_eq!(chain_head(vec![1, 100, 50, 60]), 50);
        // Odd count: the middle one, whatever the order.
        assert_eq!(chain_head(vec![30, 10, 20]), 20);
        // One inflated and one silent replica of three move nothing past the honest one.
        assert_eq!(chain_head(vec![u64::MAX, 12, 0]), 12);
        assert_eq!(lower_median(vec![5u64, 5, 9]), 5);
    }

    #[test]
    fn one_inflated_head_does_not_raise_the_backfill_cap() {
        let cap = |attested: Vec<Sequence>, stored_next| {
            backfill_cap(attested_backfill_head(attested), stored_next)
        };
        assert_eq!(attested_backfill_head(vec![]), None);
        assert_eq!(attested_backfill_head(vec![0]), Some(0));
        assert_eq!(cap(vec![], 0), 0);
        assert_eq!(cap(vec![12, 40, 30], 0), 30);
        // An operator attesting far past what was published moves nothing.
        assert_eq!(cap(vec![u64::MAX, 40, 30], 0), 40);
        assert_eq!(cap(vec![u64::MAX, 30], 0), 30);
        // What the daemon stores itself (live) lets it fill the gaps below it.
        assert_eq!(cap(vec![u64::MAX, 30], 55), 55);
        assert_eq!(cap(vec![], 7), 7);
        // A handover's predecessor, the only one that attested, is the one source.
        assert_eq!(cap(vec![39], 0), 39);
    }
}
