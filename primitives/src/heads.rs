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
//!   highest head any operator attested, so a replica catches up with the most advanced
//!   honest one, and a peer cannot plant segments above what someone attested.
//!
//! ```
//! use fastdata_primitives::heads::{backfill_cap, chain_head};
//! assert_eq!(chain_head([9, 3, 5, 0].to_vec()), 3);
//! assert_eq!(backfill_cap([9, 3, 5, 0]), Some(9));
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

/// How far a daemon backfills a stream: the highest of the `attested` heads (of any operator
/// that attested it); `None` before the first attestation, when nothing is backfilled.
pub fn backfill_cap(attested: impl IntoIterator<Item = Sequence>) -> Option<Sequence> {
    attested.into_iter().max()
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
    fn the_backfill_cap_is_the_highest_attested_head() {
        assert_eq!(backfill_cap([]), None);
        assert_eq!(backfill_cap([0]), Some(0));
        assert_eq!(backfill_cap([12, 40, 3]), Some(40));
        // The cap is not the chain head: it follows the most advanced replica.
        let heads = [2, 3, 40];
        assert_eq!(backfill_cap(heads), Some(40));
        assert_eq!(chain_head(heads.to_vec()), 3);
    }
}
