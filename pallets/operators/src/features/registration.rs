//! Registering operators, updating their endpoints and price, and bonding more stake.

use crate::*;
use frame_support::{pallet_prelude::*, traits::fungible::MutateHold};
use sp_runtime::traits::{Saturating, Zero};

impl<T: Config> Pallet<T> {
    /// Registers `who` as an active operator holding `stake`.
    pub(crate) fn do_register(
        who: T::AccountId,
        stake: BalanceOf<T>,
        broker_url: UrlOf<T>,
        http_url: UrlOf<T>,
        price_per_mb: BalanceOf<T>,
    ) -> DispatchResult {
        ensure!(
            !Operators::<T>::contains_key(&who),
            Error::<T>::AlreadyRegistered
        );
        ensure!(stake >= T::MinStake::get(), Error::<T>::StakeTooLow);
        ensure!(
            Endpoint::Broker.is_valid_url(&broker_url),
            Error::<T>::InvalidBrokerUrl
        );
        ensure!(
            Endpoint::Http.is_valid_url(&http_url),
            Error::<T>::InvalidHttpUrl
        );
        let count = OperatorCount::<T>::get();
        ensure!(count < T::MaxOperators::get(), Error::<T>::TooManyOperators);

        T::Currency::hold(&HoldReason::OperatorStake.into(), &who, stake)?;
        // Cannot fail: the active set is never larger than the registered count.
        ActiveOperators::<T>::try_append(ActiveOperator {
            who: who.clone(),
            stake,
            streams: 0,
            trust: Self::capped_trust(&who),
        })
        .map_err(|_| Error::<T>::TooManyOperators)?;
        OperatorCount::<T>::put(count.saturating_add(1));

        let now = frame_system::Pallet::<T>::block_number();
        Operators::<T>::insert(
            &who,
            OperatorInfo {
                stake,
                broker_url: broker_url.clone(),
                http_url: http_url.clone(),
                price_per_mb,
                status: OperatorStatus::Active,
                last_heartbeat: now,
                registered_at: now,
            },
        );
        Self::deposit_event(Event::Registered {
            operator: who,
            stake,
            broker_url,
            http_url,
            price_per_mb,
        });
        Ok(())
    }

    /// Replaces the given endpoint(s) and/or price of `who`.
    pub(crate) fn do_update(
        who: T::AccountId,
        broker_url: Option<UrlOf<T>>,
        http_url: Option<UrlOf<T>>,
        price_per_mb: Option<BalanceOf<T>>,
    ) -> DispatchResult {
        ensure!(
            broker_url.is_some() || http_url.is_some() || price_per_mb.is_some(),
            Error::<T>::NothingToUpdate
        );
        Operators::<T>::try_mutate(&who, |maybe| {
            let info = maybe.as_mut().ok_or(Error::<T>::NotRegistered)?;
            ensure!(
                !matches!(info.status, OperatorStatus::Leaving { .. }),
                Error::<T>::OperatorLeaving
            );
            if let Some(url) = broker_url {
                ensure!(
                    Endpoint::Broker.is_valid_url(&url),
                    Error::<T>::InvalidBrokerUrl
                );
                info.broker_url = url;
            }
            if let Some(url) = http_url {
                ensure!(
                    Endpoint::Http.is_valid_url(&url),
                    Error::<T>::InvalidHttpUrl
                );
                info.http_url = url;
            }
            if let Some(price) = price_per_mb {
                info.price_per_mb = price;
            }
            Self::deposit_event(Event::Updated {
                operator: who.clone(),
                broker_url: info.broker_url.clone(),
                http_url: info.http_url.clone(),
                price_per_mb: info.price_per_mb,
            });
            Ok(())
        })
    }

    /// Holds `amount` more stake from `who`.
    pub(crate) fn do_bond_extra(who: T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
        ensure!(!amount.is_zero(), Error::<T>::ZeroAmount);
        Operators::<T>::try_mutate(&who, |maybe| {
            let info = maybe.as_mut().ok_or(Error::<T>::NotRegistered)?;
            ensure!(
                !matches!(info.status, OperatorStatus::Leaving { .. }),
                Error::<T>::OperatorLeaving
            );
            T::Currency::hold(&HoldReason::OperatorStake.into(), &who, amount)?;
            info.stake = info.stake.saturating_add(amount);
            if info.status == OperatorStatus::Active {
                Self::note_stake(&who, info.stake);
            }
            Self::deposit_event(Event::StakeBonded {
                operator: who.clone(),
                amount,
                stake: info.stake,
            });
            Ok(())
        })
    }
}
