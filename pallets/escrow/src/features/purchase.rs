//! Buying an offer: the offer's rules, the terms and deadlines, the price, the holds and the
//! stored purchase, one step each.

use crate::*;
use fastdata_primitives::{
    escrow::{PurchaseLedger, PurchaseState, PurchaseTerms},
    EpochIndex, IdentityProvider, OfferId, OfferProvider, OfferSummary, OperatorProvider,
    PaymentMode, PurchaseId, StreamId, StreamSummary, TrustProvider, X25519Public,
};
use frame_support::{ensure, traits::Get, BoundedVec};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::{
    traits::{CheckedAdd, CheckedMul, One, Saturating, Zero},
    DispatchError,
};

/// An offer summary with the runtime's types.
type OfferSummaryOf<T> =
    OfferSummary<<T as frame_system::Config>::AccountId, BalanceOf<T>, BlockNumberFor<T>>;

/// What the checks of a purchase found: the offer, its open and hosted stream, and the buyer.
struct Checked<T: Config> {
    /// The offer bought.
    offer: OfferSummaryOf<T>,
    /// The offer's stream.
    stream_id: StreamId,
    /// The stream, open and hosted.
    stream: StreamSummary<T::AccountId>,
    /// The buyer is verified (the discount applies).
    verified: bool,
    /// The buyer's key-agreement key, which the keys are sealed to.
    buyer_key: X25519Public,
}

/// What was bought and until when.
struct Schedule<T: Config> {
    /// Batch window or stream periods.
    terms: PurchaseTerms<BlockNumberFor<T>>,
    /// First block after access.
    end: BlockNumberFor<T>,
    /// Last block for the keys of the first epoch.
    key_deadline: BlockNumberFor<T>,
    /// Streams: the epoch current at purchase time.
    first_epoch: Option<EpochIndex>,
}

impl<T: Config> Pallet<T> {
    /// Checks the offer's rules, holds price and deposit from `buyer`, stores and schedules
    /// the purchase. Returns its id.
    pub(crate) fn do_purchase(
        buyer: T::AccountId,
        offer_id: OfferId,
        periods: u32,
        max_price: BalanceOf<T>,
    ) -> Result<PurchaseId, DispatchError> {
        let checked = Self::check_purchase(&buyer, offer_id)?;
        let now = frame_system::Pallet::<T>::block_number();
        let schedule = Self::purchase_schedule(&checked, periods, now)?;
        let price = Self::purchase_price(&checked, periods, max_price)?;
        let id = NextPurchaseId::<T>::get();
        let next_id = id.checked_add(1).ok_or(Error::<T>::NoMoreIds)?;
        let purchase = Self::new_purchase(&buyer, offer_id, checked, schedule, price, now);
        Self::hold(HoldReason::PurchasePrice, &buyer, price)?;
        Self::hold(
            HoldReason::PurchaseDeposit,
            &buyer,
            purchase.payment.deposit,
        )?;
        Self::record_purchase(id, next_id, purchase, periods, now);
        Ok(id)
    }

    /// The checks of the offer's rules: the offer is active and not the buyer's own, its
    /// seller still verified, its stream registered, open and hosted; the buyer verified if
    /// the offer asks for it, trusted enough, and with a key-agreement key.
    fn check_purchase(
        buyer: &T::AccountId,
        offer_id: OfferId,
    ) -> Result<Checked<T>, DispatchError> {
        let offer = T::Offers::offer(offer_id).ok_or(Error::<T>::UnknownOffer)?;
        ensure!(offer.active, Error::<T>::OfferInactive);
        ensure!(offer.seller != *buyer, Error::<T>::OwnOffer);
        // Verification is checked again at every sale: a seller whose credentials expired or
        // were revoked since listing sells nothing more.
        ensure!(
            T::Identity::is_verified(&offer.seller),
            Error::<T>::SellerNotVerified
        );
        let stream_id = offer.stream.ok_or(Error::<T>::StreamNotRegistered)?;
        let stream = T::Offers::stream(&stream_id).ok_or(Error::<T>::StreamNotRegistered)?;
        ensure!(stream.open, Error::<T>::StreamClosed);
        ensure!(!stream.operators.is_empty(), Error::<T>::StreamNotHosted);

        let verified = T::Identity::is_verified(buyer);
        ensure!(
            verified || !offer.verified_only,
            Error::<T>::BuyerNotVerified
        );
        if offer.min_trust_score > 0 {
            ensure!(
                T::Trust::trust_score(buyer) >= offer.min_trust_score,
                Error::<T>::TrustScoreTooLow
            );
        }
        let buyer_key =
            T::Identity::key_agreement_key(buyer).ok_or(Error::<T>::NoKeyAgreementKey)?;
        Ok(Checked {
            offer,
            stream_id,
            stream,
            verified,
            buyer_key,
        })
    }

    /// The terms bought (`periods` of the offer's mode) and their deadlines from `now`,
    /// every later deadline checked to be representable.
    fn purchase_schedule(
        checked: &Checked<T>,
        periods: u32,
        now: BlockNumberFor<T>,
    ) -> Result<Schedule<T>, DispatchError> {
        let (terms, end, first_epoch) = match checked.offer.mode {
            PaymentMode::Batch { first, last } => {
                ensure!(periods == 1, Error::<T>::InvalidPeriods);
                ensure!(first <= last, Error::<T>::InvalidOffer);
                let end = now
                    .checked_add(&T::BatchAccessPeriod::get())
                    .ok_or(Error::<T>::DeadlineOverflow)?;
                (PurchaseTerms::Batch { first, last }, end, None)
            }
            PaymentMode::Stream { period } => {
                ensure!(
                    periods >= 1 && periods <= T::MaxPeriods::get(),
                    Error::<T>::InvalidPeriods
                );
                ensure!(!period.is_zero(), Error::<T>::InvalidOffer);
                // The boundaries that come before a period's settlement must fit in the
                // purchase's list of heads.
                let room = BlockNumberFor::<T>::from(MAX_PENDING_BOUNDARIES.saturating_sub(2));
                ensure!(
                    T::ClaimGracePeriod::get() <= period.saturating_mul(room),
                    Error::<T>::PeriodTooShort
                );
                let length = period
                    .checked_mul(&periods.into())
                    .ok_or(Error::<T>::DeadlineOverflow)?;
                let end = now
                    .checked_add(&length)
                    .ok_or(Error::<T>::DeadlineOverflow)?;
                (
                    PurchaseTerms::Stream { period, periods },
                    end,
                    Some(checked.stream.epoch),
                )
            }
        };
        let key_deadline = now
            .checked_add(&T::KeyDeliveryPeriod::get())
            .ok_or(Error::<T>::DeadlineOverflow)?;
        // Every later deadline (last settlement, end of retention, the agenda block after the
        // key deadline) must be representable too.
        end.checked_add(&T::ClaimGracePeriod::get())
            .and_then(|b| b.checked_add(&T::RetentionPeriod::get()))
            .and_then(|b| b.checked_add(&One::one()))
            .ok_or(Error::<T>::DeadlineOverflow)?;
        key_deadline
            .checked_add(&One::one())
            .ok_or(Error::<T>::DeadlineOverflow)?;
        Ok(Schedule {
            terms,
            end,
            key_deadline,
            first_epoch,
        })
    }

    /// The price of `periods` of the offer, less the verified-buyer discount; at most
    /// `max_price`.
    fn purchase_price(
        checked: &Checked<T>,
        periods: u32,
        max_price: BalanceOf<T>,
    ) -> Result<BalanceOf<T>, DispatchError> {
        let offer = &checked.offer;
        let list_price = offer
            .price
            .checked_mul(&periods.into())
            .ok_or(Error::<T>::PriceOverflow)?;
        let price = if checked.verified {
            list_price.saturating_sub(offer.verified_discount.mul_floor(list_price))
        } else {
            list_price
        };
        ensure!(price <= max_price, Error::<T>::PriceAboveMaximum);
        Ok(price)
    }

    /// The purchase as it starts: awaiting keys, the whole price held, a stream's head at
    /// purchase time as its first boundary, and the prices of the operators assigned now.
    fn new_purchase(
        buyer: &T::AccountId,
        offer_id: OfferId,
        checked: Checked<T>,
        schedule: Schedule<T>,
        price: BalanceOf<T>,
        now: BlockNumberFor<T>,
    ) -> PurchaseOf<T> {
        let (start_head, heads) = match schedule.terms {
            PurchaseTerms::Stream { .. } => {
                let head = T::Operators::stream_head(&checked.stream_id);
                (Some(head), BoundedVec::truncate_from(alloc::vec![head]))
            }
            PurchaseTerms::Batch { .. } => (None, BoundedVec::new()),
        };
        let operator_prices = BoundedVec::truncate_from(
            checked
                .stream
                .operators
                .iter()
                .filter_map(|op| T::Operators::price_per_mb(op).map(|price| (op.clone(), price)))
                .take(MAX_PRICED_OPERATORS as usize)
                .collect::<alloc::vec::Vec<_>>(),
        );
        Purchase {
            deal: PurchaseDeal {
                buyer: buyer.clone(),
                seller: checked.offer.seller,
                offer: offer_id,
                stream: checked.stream_id,
                terms: schedule.terms,
                buyer_key: checked.buyer_key,
            },
            payment: PurchasePayment {
                price,
                deposit: T::PurchaseDeposit::get(),
            },
            schedule: PurchaseSchedule {
                start: now,
                end: schedule.end,
                key_deadline: schedule.key_deadline,
                first_epoch: schedule.first_epoch,
            },
            state: PurchaseState::AwaitingKeys,
            keys: KeyDelivery {
                epochs: 0,
                deposits: Zero::zero(),
            },
            progress: PurchaseProgress {
                settled_periods: 0,
                delivered_up_to: None,
                start_head,
                heads,
            },
            operators: OperatorPay {
                prices: operator_prices,
                claims: 0,
                accrued: Zero::zero(),
            },
            ledger: PurchaseLedger {
                held: price,
                ..Default::default()
            },
            dispute: None,
            disputed: false,
            closed_at: None,
            scheduled_at: None,
        }
    }

    /// Schedules and stores the new purchase `id` with its index entries, keeps its offer's
    /// stream hosted until its access end, and emits [`Event::Purchased`].
    fn record_purchase(
        id: PurchaseId,
        next_id: PurchaseId,
        mut purchase: PurchaseOf<T>,
        periods: u32,
        now: BlockNumberFor<T>,
    ) {
        Self::ensure_scheduled(id, &mut purchase, now);
        NextPurchaseId::<T>::put(next_id);
        PurchasesByBuyer::<T>::insert(&purchase.deal.buyer, id, ());
        PurchasesByOffer::<T>::insert(purchase.deal.offer, id, ());
        // Checked by `purchase_schedule`: `end + ClaimGracePeriod` does not overflow.
        Self::keep_hosted_until(purchase.deal.offer, purchase.schedule.end);
        let event = Event::Purchased {
            purchase: id,
            offer: purchase.deal.offer,
            buyer: purchase.deal.buyer.clone(),
            seller: purchase.deal.seller.clone(),
            price: purchase.payment.price,
            deposit: purchase.payment.deposit,
            periods,
            access_end: purchase.schedule.end,
            key_deadline: purchase.schedule.key_deadline,
        };
        Purchases::<T>::insert(id, purchase);
        Self::deposit_event(event);
    }
}
