//! Hosting paid by the seller: a per-stream quota and the funds that pay the operators for
//! the bytes they store.
//!
//! A stream's hosting account is opened with its assignment request (quota 0, no funds:
//! the daemons store nothing for it) and funded by its seller with
//! [`Pallet::fund_hosting`]: a quota comes with funds for every replica storing all of it
//! for a hosting period, and the daemons accept segments only while the funds cover that
//! ([`Pallet::is_funded`]); a quota cannot go below the bytes an operator attests it stores. Each attestation of an operator after its first pays it
//! [`Config::HostingPricePerMb`] per MB per [`Config::HostingPeriod`] for the blocks since
//! its previous one (at most one period), for the lower median of the bytes the assigned
//! operators attested, capped at the quota: fewer than half of the replicas cannot inflate
//! it. The pay moves from the funds held from the seller; once they run out the operators
//! refuse new segments. Releasing the stream pays the operators up to that block and returns
//! what is left.

use crate::{
    features::heads::{attested_by, lower_median},
    *,
};
use fastdata_primitives::{escrow::BYTES_PER_MB, StreamId};
use frame_support::{
    ensure,
    pallet_prelude::Get,
    traits::{
        fungible::MutateHold,
        tokens::{Fortitude, Precision, Restriction},
    },
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::{
    traits::{Saturating, Zero},
    DispatchResult, Perbill, SaturatedConversion,
};

impl<T: Config> Pallet<T> {
    /// Opens the (empty) hosting account of a newly requested `stream` of `replicas`
    /// operators, paid by `payer`.
    pub(crate) fn open_hosting(stream: &StreamId, payer: &T::AccountId, replicas: u32) {
        Hosting::<T>::insert(
            stream,
            HostingAccount {
                payer: payer.clone(),
                quota_mb: 0,
                funds: Zero::zero(),
                replicas,
            },
        );
    }

    /// What a period of `account`'s replicas each storing its full quota costs.
    pub fn period_cost(account: &HostingAccountOf<T>) -> BalanceOf<T> {
        let quota_bytes = u64::from(account.quota_mb).saturating_mul(BYTES_PER_MB);
        Self::hosting_cost(quota_bytes, account.quota_mb, T::HostingPeriod::get())
            .saturating_mul(account.replicas.max(1).into())
    }

    /// `account` has a quota and funds for a period of it: its operators accept segments.
    pub fn is_funded(account: &HostingAccountOf<T>) -> bool {
        account.quota_mb > 0 && account.funds >= Self::period_cost(account)
    }

    /// [`Pallet::fund_hosting`].
    pub(crate) fn do_fund_hosting(
        who: T::AccountId,
        stream: StreamId,
        quota_mb: u32,
        amount: BalanceOf<T>,
    ) -> DispatchResult {
        ensure!(quota_mb <= T::MaxQuotaMb::get(), Error::<T>::QuotaTooLarge);
        Hosting::<T>::try_mutate(stream, |maybe| {
            let account = maybe.as_mut().ok_or(Error::<T>::NoHosting)?;
            ensure!(account.payer == who, Error::<T>::NotPayer);
            ensure!(
                quota_mb != account.quota_mb || !amount.is_zero(),
                Error::<T>::NothingToUpdate
            );
            if quota_mb < account.quota_mb {
                // What is stored stays paid for: no quota below the bytes an operator holds.
                let stored = StreamHeads::<T>::get(stream)
                    .iter()
                    .map(|r| r.stored_bytes)
                    .max()
                    .unwrap_or(0);
                ensure!(
                    u64::from(quota_mb).saturating_mul(BYTES_PER_MB) >= stored,
                    Error::<T>::QuotaBelowStored
                );
            }
            if !amount.is_zero() {
                T::Currency::hold(&HoldReason::Hosting.into(), &who, amount)?;
                account.funds = account.funds.saturating_add(amount);
            }
            account.quota_mb = quota_mb;
            ensure!(
                quota_mb == 0 || Self::is_funded(account),
                Error::<T>::HostingUnderfunded
            );
            Self::deposit_event(Event::HostingFunded {
                stream,
                payer: who.clone(),
                quota_mb,
                added: amount,
                funds: account.funds,
            });
            Ok(())
        })
    }

    /// What hosting `bytes` (capped at `quota_mb`) for `blocks` costs.
    pub fn hosting_cost(bytes: u64, quota_mb: u32, blocks: BlockNumberFor<T>) -> BalanceOf<T> {
        let period = T::HostingPeriod::get();
        let quota_bytes = u64::from(quota_mb).saturating_mul(BYTES_PER_MB);
        let bytes = bytes.min(quota_bytes);
        let per_period = T::HostingPricePerMb::get()
            .saturating_mul(bytes.saturated_into::<BalanceOf<T>>())
            / BYTES_PER_MB.saturated_into::<BalanceOf<T>>();
        Perbill::from_rational(blocks.min(period), period).mul_floor(per_period)
    }

    /// Pays `operator` for hosting `bytes` of `stream` from block `since` to `now`, as far
    /// as the stream's funds go.
    pub(crate) fn pay_hosting(
        stream: &StreamId,
        operator: &T::AccountId,
        bytes: u64,
        since: BlockNumberFor<T>,
        now: BlockNumberFor<T>,
    ) {
        let Some(mut account) = Hosting::<T>::get(stream) else {
            return;
        };
        let blocks = now.saturating_sub(since).min(T::HostingPeriod::get());
        let due = Self::hosting_cost(bytes, account.quota_mb, blocks).min(account.funds);
        if due.is_zero() {
            return;
        }
        let paid = match T::Currency::transfer_on_hold(
            &HoldReason::Hosting.into(),
            &account.payer,
            operator,
            due,
            Precision::BestEffort,
            Restriction::Free,
            Fortitude::Polite,
        ) {
            Ok(paid) => paid,
            Err(error) => {
                log::error!(target: LOG_TARGET, "hosting pay of {stream:?} failed: {error:?}");
                return;
            }
        };
        account.funds = account.funds.saturating_sub(paid);
        Self::deposit_event(Event::HostingPaid {
            stream: *stream,
            operator: operator.clone(),
            amount: paid,
            bytes: bytes.min(u64::from(account.quota_mb).saturating_mul(BYTES_PER_MB)),
            blocks,
        });
        if account.funds.is_zero() {
            Self::deposit_event(Event::HostingExhausted { stream: *stream });
        }
        Hosting::<T>::insert(stream, account);
    }

    /// Closes the hosting account of a released `stream`: pays each assigned operator for
    /// hosting since its latest attestation, then returns the rest to the payer.
    pub(crate) fn close_hosting(stream: &StreamId) {
        if let Some(assigned) = Assignments::<T>::get(stream) {
            let records = StreamHeads::<T>::get(stream);
            let bytes = lower_median(attested_by(&assigned, &records, |r| r.stored_bytes));
            let now = frame_system::Pallet::<T>::block_number();
            for record in records.iter().filter(|r| assigned.contains(&r.operator)) {
                Self::pay_hosting(stream, &record.operator, bytes, record.at, now);
            }
        }
        let Some(account) = Hosting::<T>::take(stream) else {
            return;
        };
        if account.funds.is_zero() {
            return;
        }
        let released = T::Currency::release(
            &HoldReason::Hosting.into(),
            &account.payer,
            account.funds,
            Precision::BestEffort,
        )
        .unwrap_or_else(|error| {
            log::error!(target: LOG_TARGET, "hosting refund of {stream:?} failed: {error:?}");
            Zero::zero()
        });
        Self::deposit_event(Event::HostingRefunded {
            stream: *stream,
            payer: account.payer,
            amount: released,
        });
    }
}
