//! When the seller service opens a new key epoch: on its schedule, and as soon as a buyer who
//! holds the current epoch's keys loses access, so that a buyer whose access ended cannot open
//! what is published afterwards.

use fastdata_primitives::{BlockNumber, EpochIndex, PurchaseId};

use crate::buyer::Purchase;

/// What the rotation decision needs of a purchase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseAccess {
    /// The purchase.
    pub id: PurchaseId,
    /// First block after its access (`access.end` of the purchase view).
    pub end: BlockNumber,
    /// Epochs whose keys were delivered to its buyer.
    pub epochs: Vec<EpochIndex>,
}

impl From<&Purchase> for PurchaseAccess {
    fn from(p: &Purchase) -> Self {
        Self {
            id: p.id,
            end: p.access.end,
            epochs: p.access.epochs.clone(),
        }
    }
}

/// Why a rotation is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationReason {
    /// The current epoch, opened at block `opened_at`, is `every` blocks old.
    Schedule {
        /// When the current epoch was opened.
        opened_at: BlockNumber,
        /// The schedule.
        every: BlockNumber,
    },
    /// The access of `purchase`, whose buyer holds the current epoch's keys, ended at `end`.
    AccessEnded {
        /// The purchase.
        purchase: PurchaseId,
        /// Its access end block.
        end: BlockNumber,
    },
}

impl std::fmt::Display for RotationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Schedule { opened_at, every } => write!(
                f,
                "the epoch opened at block {opened_at} is due after {every} blocks"
            ),
            Self::AccessEnded { purchase, end } => write!(
                f,
                "the access of purchase {purchase} ended at block {end} and its buyer holds the current keys"
            ),
        }
    }
}

/// Whether the stream at epoch `epoch`, opened at block `opened_at`, must rotate at finalized
/// block `now`: an ended access of a buyer holding the epoch's keys comes first (security),
/// then the schedule `every`.
pub fn rotation_due(
    now: BlockNumber,
    epoch: EpochIndex,
    opened_at: BlockNumber,
    every: Option<BlockNumber>,
    purchases: &[PurchaseAccess],
) -> Option<RotationReason> {
    if let Some(p) = purchases
        .iter()
        .filter(|p| p.end <= now && p.epochs.contains(&epoch))
        .min_by_key(|p| (p.end, p.id))
    {
        return Some(RotationReason::AccessEnded {
            purchase: p.id,
            end: p.end,
        });
    }
    every
        .filter(|every| now >= opened_at.saturating_add(*every))
        .map(|every| RotationReason::Schedule { opened_at, every })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(id: PurchaseId, end: BlockNumber, epochs: &[EpochIndex]) -> PurchaseAccess {
        PurchaseAccess {
            id,
            end,
            epochs: epochs.to_vec(),
        }
    }

    /// Runs the decision at every block from `from` to `to`, rotating when due; purchases
    /// that hold the current epoch at a block get each new epoch delivered while their access
    /// lasts (as the key-delivery service does). Returns the rotation blocks.
    fn simulate(
        every: Option<BlockNumber>,
        mut purchases: Vec<PurchaseAccess>,
        from: BlockNumber,
        to: BlockNumber,
    ) -> Vec<(BlockNumber, RotationReason)> {
        let (mut epoch, mut opened_at) = (0, from);
        let mut rotations = Vec::new();
        for now in from..=to {
            for p in &mut purchases {
                if p.end > now && !p.epochs.is_empty() && !p.epochs.contains(&epoch) {
                    p.epochs.push(epoch);
                }
            }
            if let Some(reason) = rotation_due(now, epoch, opened_at, every, &purchases) {
                rotations.push((now, reason));
                epoch += 1;
                opened_at = now;
            }
        }
        rotations
    }

    #[test]
    fn the_schedule_rotates_every_n_blocks() {
        let blocks: Vec<BlockNumber> = simulate(Some(10), vec![], 100, 135)
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        assert_eq!(blocks, vec![110, 120, 130]);
        assert!(simulate(None, vec![], 0, 1_000).is_empty());
        assert_eq!(
            rotation_due(110, 0, 100, Some(10), &[]),
            Some(RotationReason::Schedule {
                opened_at: 100,
                every: 10
            })
        );
        assert_eq!(rotation_due(109, 0, 100, Some(10), &[]), None);
    }

    #[test]
    fn an_ended_access_rotates_once_at_its_end() {
        // Purchase 1 holds epoch 0 until block 25; purchase 2 until 40; purchase 3 never got
        // keys (no rotation for it); no schedule.
        let purchases = vec![access(1, 25, &[0]), access(2, 40, &[0]), access(3, 30, &[])];
        let got = simulate(None, purchases, 0, 100);
        assert_eq!(
            got,
            vec![
                (
                    25,
                    RotationReason::AccessEnded {
                        purchase: 1,
                        end: 25
                    }
                ),
                (
                    40,
                    RotationReason::AccessEnded {
                        purchase: 2,
                        end: 40
                    }
                ),
            ]
        );
    }

    #[test]
    fn access_ends_and_schedule_together() {
        // Every 20 blocks from 0, and a buyer whose access ends at 33: rotations at 20, 33
        // (the buyer holds epoch 1, opened at 20), then 53, 73 (the schedule restarts at 33).
        let got: Vec<BlockNumber> = simulate(Some(20), vec![access(7, 33, &[0])], 0, 80)
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        assert_eq!(got, vec![20, 33, 53, 73]);
    }

    #[test]
    fn only_holders_of_the_current_epoch_count() {
        // Ended long ago but only held epoch 2; the stream is at epoch 3: nothing to do.
        assert_eq!(
            rotation_due(500, 3, 400, None, &[access(1, 100, &[1, 2])]),
            None
        );
        // Still has access at this block: nothing to do.
        assert_eq!(rotation_due(99, 3, 0, None, &[access(1, 100, &[3])]), None);
        // The first ended holder is reported.
        assert_eq!(
            rotation_due(
                200,
                3,
                0,
                None,
                &[access(5, 150, &[3]), access(4, 120, &[2, 3])]
            ),
            Some(RotationReason::AccessEnded {
                purchase: 4,
                end: 120
            })
        );
    }
}
